"""Training speed: the same model trained with fastlstm and with a plain PyTorch loop.

One LSTM layer and a linear readout of the final hidden state, squared-error
loss on a standardized target, Adam, mini-batches of 64, gradient norm clipped
at 5, forget-gate biases started at 1: ``LSTMRegressor`` on one side, its
equivalent as ``torch.nn.LSTM`` + ``torch.nn.Linear`` + ``torch.optim.Adam`` on
the other, on the same data, at 1 thread and at all usable cores. The plot
shows the mean training loss of each epoch against wall-clock time (and
against the epoch, where the two libraries should agree, since the math is
the same). PyTorch is optional: without it the plot shows fastlstm alone.

OpenBLAS settings in the environment (``OPENBLAS_CORETYPE``,
``OPENBLAS_L2_SIZE``) change which GEMM kernels run; the output records them.

Run: ``python docs/examples/training_speed.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np
from _common import parse_args, publish
from threadpoolctl import threadpool_info, threadpool_limits

import fastlstm

SEED = 0
LEARNING_RATE = 2e-3
BATCH = 64


def make_data(n: int, steps: int, features: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Noise sequences; the target is a running product-sum of two features.

    ``y = sum_t x[t, 0] * x[t, 1] / sqrt(T)``: the network has to multiply
    two inputs at every step and integrate the products over the sequence,
    so the loss falls steadily rather than at once.
    """
    x = rng.standard_normal((n, steps, features)).astype(np.float32)
    y = (x[:, :, 0].astype(np.float64) * x[:, :, 1]).sum(axis=1) / np.sqrt(steps)
    return x, y


def sgemm_gflops(threads: int, size: int = 1024) -> float:
    """scipy's float32 GEMM speed at ``threads`` threads: the machine's yardstick now."""
    from scipy.linalg.blas import sgemm

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        sgemm(1.0, a, a)
        best = min(_timed(lambda: sgemm(1.0, a, a)) for _ in range(5))
    return 2 * size ** 3 / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_fastlstm(X: np.ndarray, y: np.ndarray, hidden: int, epochs: int, threads: int
                   ) -> dict[str, list[float]]:
    model = fastlstm.LSTMRegressor(hidden_size=hidden, learning_rate=LEARNING_RATE,
                                   batch_size=BATCH, n_jobs=threads, random_state=SEED)
    times, losses = [], []
    start = time.perf_counter()
    for _ in range(epochs):
        model.partial_fit(X, y)  # one epoch
        times.append(time.perf_counter() - start)
        losses.append(model.loss_curve_[-1])
    return {"time_s": times, "loss": losses}


def train_torch(X: np.ndarray, y: np.ndarray, hidden: int, epochs: int, threads: int
                ) -> dict[str, list[float]]:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(SEED)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(X.shape[2], hidden, batch_first=True)
            self.head = torch.nn.Linear(hidden, 1)
            with torch.no_grad():  # as LSTMRegressor: forget gates start open
                self.lstm.bias_ih_l0[hidden:2 * hidden] = 1.0
                self.lstm.bias_hh_l0[hidden:2 * hidden] = 0.0

        def forward(self, x: Any) -> Any:
            _, (h_n, _) = self.lstm(x)
            return self.head(h_n[-1])[:, 0]

    net = Net()
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    X_t = torch.from_numpy(X)
    y_t = torch.from_numpy(((y - y.mean()) / y.std()).astype(np.float32))
    generator = torch.Generator().manual_seed(SEED)
    times, losses = [], []
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator)
        total = 0.0
        for i in range(0, len(X), BATCH):
            idx = order[i:i + BATCH]
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(net(X_t[idx]), y_t[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            total += loss.item() * len(idx)
        times.append(time.perf_counter() - start)
        losses.append(total / len(X))
    return {"time_s": times, "loss": losses}


def plot(runs: dict[str, dict[str, list[float]]], title: str, note: str, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2),
                                   gridspec_kw={"width_ratios": [2, 1]})
    for name, run in runs.items():
        style = dict(color="C0" if name.startswith("fastlstm") else "C3",
                     ls="-" if name.endswith("1 thread") else "--", marker=".")
        ax1.plot([0.0, *run["time_s"]], [np.nan, *run["loss"]], label=name, **style)
        ax2.plot(np.arange(1, len(run["loss"]) + 1), run["loss"], label=name, **style)
    ax1.set_xlabel("wall-clock time (s)")
    ax1.set_ylabel("mean training loss of the epoch (MSE)")
    ax1.set_title(title, fontsize=10)
    ax2.set_xlabel("epoch")
    ax2.set_title("Same model, same math: loss per epoch", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    if note:
        fig.text(0.01, 0.01, note, fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, steps, features, hidden, epochs = ((256, 30, 16, 32, 2) if args.quick
                                          else (4096, 100, 64, 128, 10))
    X, y = make_data(n, steps, features, np.random.default_rng(SEED))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    thread_counts = sorted({1, cores or 1})
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: timing fastlstm alone")
    blas = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    overrides = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                 if k in os.environ}
    load_before = os.getloadavg()
    peaks = {t: round(sgemm_gflops(t), 1) for t in thread_counts}
    runs: dict[str, dict[str, list[float]]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for threads in thread_counts:
            label = f"{threads} thread{'s' if threads > 1 else ''}"
            runs[f"fastlstm, {label}"] = train_fastlstm(X, y, hidden, epochs, threads)
            if torch is not None:
                # PyTorch uses its own thread pool; keep scipy's BLAS out of its way
                with threadpool_limits(1, user_api="blas"):
                    runs[f"PyTorch {torch.__version__}, {label}"] = train_torch(
                        X, y, hidden, epochs, threads)
    lines = [f"BLAS: {'; '.join(blas)}; OpenBLAS overrides: {overrides or 'none'}",
             f"{n} sequences per epoch, B={BATCH}, T={steps}, I={features}, H={hidden}, "
             f"{epochs} epochs",
             "scipy sgemm 1024^3 right before: "
             + ", ".join(f"{v} GFLOP/s at {t} thread{'s' if t > 1 else ''}"
                         for t, v in peaks.items())]
    for name, run in runs.items():
        per_epoch = run["time_s"][-1] / epochs
        lines.append(f"{name:28s} {per_epoch:7.3f} s/epoch, {n / per_epoch:8.0f} sequences/s, "
                     f"final loss {run['loss'][-1]:.4f}")
    shape = f"B={BATCH}, T={steps}, I={features}, H={hidden}"
    title = f"{n} sequences per epoch, {shape}, Adam lr={LEARNING_RATE}"
    note = "" if torch is not None else "PyTorch is not installed: fastlstm alone."
    plot(runs, title, note, args.out / "training_speed.png")
    publish(args.out, "training_speed", {
        "quick": args.quick, "n": n, "steps": steps, "features": features, "hidden": hidden,
        "batch": BATCH, "epochs": epochs, "blas": blas, "openblas_overrides": overrides,
        "sgemm_gflops": peaks,
        "load_average_before": [round(v, 2) for v in load_before],
        "torch": None if torch is None else torch.__version__, "runs": runs}, lines)


if __name__ == "__main__":
    main()
