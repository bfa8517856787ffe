"""A fleet of per-series forecasters: fastlstm in one call against PyTorch fits one per core.

The task: univariate series of length 300 (a random walk plus a seasonal
wave, one per series), one model each: a window of 24 steps, 16 steps ahead
(direct), one LSTM layer and a linear readout, Adam, mini-batches of 32, 20
epochs, the windows scaled relative to their last value.

- fastlstm: ``LSTMForecaster(per_series=True, n_jobs=<cores>)`` on all the
  series in one ``fit`` (one model per thread).
- PyTorch: the same windows and targets (fastlstm's own scaling, so both fit
  the same problem), ``nn.LSTM`` + ``nn.Linear`` trained by a plain loop with
  ``torch.set_num_threads(1)``, one series after the other; the time of
  ``--torch-series`` series is scaled to the whole fleet and divided by the
  cores (one such fit per core, perfectly parallel: PyTorch's best case).

Prints the times, the CPU seconds of this process (threads; PyTorch), the
ratio (PyTorch time / fastlstm time) and the peak resident memory of the
process.  Timings vary with the machine's load: compare ratios taken in one
run; on a shared machine the CPU-time ratio is the steadier one.
``--python-step N`` also fits the first N series with the trainer's Python
step (the compiled step switched off in this process), for a before/after
pair in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/fleet_vs_torch.py \
        [--series 1000] [--torch-series 20] [--hidden-size 16] [--python-step 50]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    import fastlstm
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastlstm

from fastlstm._bench._machine import cpu_model, kernel_info, usable_cores  # noqa: E402
from fastlstm.estimators.forecaster_core import WindowSpec, training_windows  # noqa: E402
from fastlstm.train.windows import fit_scaling  # noqa: E402

LENGTH, WINDOW, HORIZON, EPOCHS, BATCH = 300, 24, 16, 20, 32


def make_series(n: int, seed: int = 0) -> list[np.ndarray]:
    """Random walks with a seasonal wave of random phase and period."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    return [np.cumsum(rng.normal(size=LENGTH)) + 3 * np.sin(2 * np.pi * t / rng.integers(7, 30)
                                                            + rng.uniform(0, 6))
            for _ in range(n)]


def fastlstm_fleet(series: list[np.ndarray], hidden: int, cores: int, lr: float,
                   backend: str | None = None) -> tuple[float, list, float]:
    """Fit the fleet: (wall seconds, its forecasts, CPU seconds of this process)."""
    f = fastlstm.LSTMForecaster(window=WINDOW, horizon=HORIZON, hidden_size=hidden,
                                max_epochs=EPOCHS, batch_size=BATCH, learning_rate=lr,
                                per_series=True, n_jobs=cores, random_state=0,
                                backend=backend)
    cpu, start = time.process_time(), time.perf_counter()
    f.fit(series)
    return time.perf_counter() - start, f.predict(), time.process_time() - cpu


def python_step_fleet(series: list[np.ndarray], hidden: int, cores: int, lr: float
                      ) -> tuple[float, list, float]:
    """The fleet with the trainer's Python step (the compiled step off in this process)."""
    from fastlstm.train import engine

    saved = engine.CompiledStep.for_network
    engine.CompiledStep.for_network = classmethod(lambda cls, net, loss: None)
    try:
        return fastlstm_fleet(series, hidden, cores, lr)
    finally:
        engine.CompiledStep.for_network = saved


def torch_one(torch, series: np.ndarray, hidden: int, lr: float, seed: int
              ) -> tuple[float, float]:
    """One PyTorch fit of ``series``: (wall seconds, CPU seconds)."""
    s = series[:, None]
    spec = WindowSpec(WINDOW, HORIZON, 1, 0, np.zeros(0, dtype=np.intp), "float32")
    scaling = fit_scaling([s], 1, WINDOW, "last")
    X, Y, _, _ = training_windows([s], spec, scaling, None, fastlstm.LSTMRegressor())
    X, Y = torch.from_numpy(X), torch.from_numpy(Y.astype(np.float32))
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(1, hidden, batch_first=True)
    head = torch.nn.Linear(hidden, HORIZON)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), generator=gen)
        for i in range(0, len(X), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            _, (h, _) = lstm(X[idx])
            loss = torch.nn.functional.mse_loss(head(h[-1]), Y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1000, help="series of the fastlstm fleet")
    ap.add_argument("--torch-series", type=int, default=20,
                    help="series PyTorch fits (its time is scaled to --series)")
    ap.add_argument("--hidden-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--threads", type=int, default=usable_cores(),
                    help="cores for both (default: all usable)")
    ap.add_argument("--processes", action="store_true",
                    help="also fit the fleet with backend='processes' (joblib's loky workers)")
    ap.add_argument("--dask", action="store_true",
                    help="also fit the fleet on a LocalCluster of one single-threaded worker "
                         "process per core (and check it equals the threads' fleet)")
    ap.add_argument("--python-step", type=int, default=0, metavar="N",
                    help="also fit the first N series with the trainer's Python step "
                         "(the compiled step off): the before of a before/after pair")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # 20 epochs do not converge, on purpose
    series = make_series(args.series)
    cores = args.threads
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i.get('internal_api')} {i.get('num_threads')} threads"
                         for i in threadpool_info())
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"fleet: {args.series} series of {LENGTH} steps, window {WINDOW}, horizon {HORIZON}, "
          f"hidden {args.hidden_size}, {EPOCHS} epochs, batch {BATCH}; {cores} cores; {blas}")
    kernels = kernel_info()
    print(f"CPU: {cpu_model()}; kernel variant {kernels.get('variant', kernels)}; "
          f"load average {os.getloadavg()[0]:.1f}")
    timings, cpu_per = {}, {}
    t_fast, forecast, c_fast = fastlstm_fleet(series, args.hidden_size, cores, args.lr)
    timings["threads"] = t_fast
    cpu_per["threads"] = c_fast / args.series
    print(f"fastlstm, one fit of the fleet on {cores} threads: {t_fast:.2f} s "
          f"({1000 * t_fast / args.series:.1f} ms per series; CPU "
          f"{1000 * c_fast / args.series:.1f} ms per series)")
    if args.python_step:
        n = min(args.python_step, args.series)
        t_py, py_forecast, c_py = python_step_fleet(series[:n], args.hidden_size, cores,
                                                    args.lr)
        timings["threads, Python step"] = t_py * args.series / n
        cpu_per["threads, Python step"] = c_py / n
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                   for a, b in zip(forecast[:n], py_forecast, strict=True))
        print(f"fastlstm with the Python step, {n} series on {cores} threads: {t_py:.2f} s "
              f"({1000 * t_py / n:.1f} ms per series; CPU {1000 * c_py / n:.1f} ms per "
              f"series); largest forecast difference to the compiled step's: {diff:.2g}")
    if args.processes:
        t_proc, in_procs, _ = fastlstm_fleet(series, args.hidden_size, cores, args.lr,
                                             "processes")
        timings["processes"] = t_proc
        same = all(np.array_equal(a, b) for a, b in zip(forecast, in_procs, strict=True))
        print(f"fastlstm on {cores} worker processes (backend='processes'): {t_proc:.2f} s "
              f"({1000 * t_proc / args.series:.1f} ms per series, worker start included); "
              f"identical to the threads' fleet: {same}")
    if args.dask:
        import distributed

        with distributed.LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=40) as cluster, distributed.Client(cluster):
            t_dask, on_dask, _ = fastlstm_fleet(series, args.hidden_size, 1, args.lr,
                                                "dask")
        timings["dask"] = t_dask
        same = all(np.array_equal(a, b) for a, b in zip(forecast, on_dask, strict=True))
        print(f"fastlstm on a LocalCluster of {cores} single-threaded workers: {t_dask:.2f} s "
              f"({1000 * t_dask / args.series:.1f} ms per series); identical to the "
              f"threads' fleet: {same}")
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: no comparison")
        return 0
    torch.set_num_threads(1)
    times = np.array([torch_one(torch, s, args.hidden_size, args.lr, i)
                      for i, s in enumerate(series[:args.torch_series])])
    per, per_cpu = float(np.mean(times[:, 0])), float(np.mean(times[:, 1]))
    t_torch = per * args.series / cores
    print(f"PyTorch, {args.torch_series} single-threaded fits: {per:.3f} s per series "
          f"(CPU {per_cpu:.3f} s); scaled to {args.series} series one per core: "
          f"{t_torch:.1f} s")
    for name, t in timings.items():
        line = f"ratio (PyTorch / fastlstm, {name}): {t_torch / t:.2f}x"
        if name in cpu_per:  # CPU seconds per series, both sides (the steadier under load)
            line += f"; CPU time per series: {per_cpu / cpu_per[name]:.2f}x"
        print(line)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
