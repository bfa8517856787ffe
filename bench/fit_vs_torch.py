"""Whole fits: fastlstm's estimator against a plain PyTorch loop, same model and schedule.

For each task, the same data and split, the same architecture (one LSTM
layer and a linear readout of the final hidden state), the same
initialization scheme (PyTorch's uniform +-1/sqrt(H), forget-gate biases at
1), the same optimizer (Adam, learning rate, batch size, gradient norm
clipped at 5), the same number of epochs and threads:

- ``digits``: scikit-learn's digits, 8 steps of 8 pixels, 10 classes (the
  ``fastlstm demo`` model);
- ``sine``: noisy sines, T=128 steps of 1 feature, 2 classes by frequency
  (1/16 or 1/12 cycles per step, random phase, noise as strong as the signal);
- ``ragged``: 4-channel noisy oscillations of 3 classes (frequency), lengths
  uniform in [20, 60] (3x); fastlstm gets the list of arrays, PyTorch a
  ``PackedSequence`` per mini-batch;
- ``adding`` (not run by default, ``--tasks adding``): the adding problem,
  T=100 steps of 2 features (a value and a marker), target = the sum of the
  two marked values (regression, test R^2); a long-memory task that takes
  many more epochs than the default 20 to solve, useful for timing.

Prints a markdown table: fit time of each trainer, the speed ratio (PyTorch
time / fastlstm time, > 1: fastlstm faster) and the test score of each.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/fit_vs_torch.py [--quick]
    python bench/fit_vs_torch.py --tasks adding --epochs 5 --threads 1

What is timed: ``fit`` of the estimator (input validation and packing
included) against the PyTorch training loop on tensors prepared beforehand
(padding included, favourable to PyTorch).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

import fastlstm

CLIP = 5.0


@dataclass(frozen=True)
class Task:
    """One benchmark task: data, model size and training schedule."""

    name: str
    kind: str  # "classifier" or "regressor"
    make: Callable[[int, bool], tuple[Any, Any, Any, Any]]  # (seed, quick) -> split
    describe: str
    hidden_size: int
    learning_rate: float
    batch_size: int
    epochs: int
    quick_epochs: int


# --------------------------------------------------------------------------- data


def digits_data(seed: int, quick: bool) -> tuple[Any, Any, Any, Any]:
    """The demo's split: 8x8 images read row by row, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    return tuple(train_test_split(X, digits.target, test_size=0.25, random_state=seed,
                                  stratify=digits.target))


def adding_data(seed: int, quick: bool) -> tuple[Any, Any, Any, Any]:
    """The adding problem: values in [0, 1], two marked steps, target their sum."""
    rng = np.random.default_rng(seed)
    n, steps = (1200, 64) if quick else (4000, 100)
    X = np.zeros((n, steps, 2), dtype=np.float32)
    X[:, :, 0] = rng.uniform(size=(n, steps))
    first = rng.integers(0, steps // 2, size=n)
    second = rng.integers(steps // 2, steps, size=n)
    rows = np.arange(n)
    X[rows, first, 1] = 1.0
    X[rows, second, 1] = 1.0
    y = X[rows, first, 0].astype(np.float64) + X[rows, second, 0]
    return tuple(train_test_split(X, y, test_size=0.25, random_state=seed))


def sine_data(seed: int, quick: bool) -> tuple[Any, Any, Any, Any]:
    """Noisy sines of 128 steps, class = frequency (1/16 or 1/12 cycles per step)."""
    rng = np.random.default_rng(seed)
    n, steps = (1600, 128) if quick else (3000, 128)
    y = rng.integers(0, 2, size=n)
    freq = np.where(y == 1, 1 / 12, 1 / 16)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    t = np.arange(steps)
    X = np.sin(2 * np.pi * freq[:, None] * t + phase[:, None]) + rng.normal(size=(n, steps))
    return tuple(train_test_split(X.astype(np.float32)[..., None], y, test_size=0.25,
                                  random_state=seed, stratify=y))


def ragged_data(seed: int, quick: bool) -> tuple[Any, Any, Any, Any]:
    """Noisy 4-channel oscillations, class = frequency, lengths uniform in [20, 60]."""
    rng = np.random.default_rng(seed)
    n = 900 if quick else 3000
    freqs = np.array([0.05, 0.08, 0.12])  # cycles per step
    mix = rng.normal(size=(2, 4)).astype(np.float32)  # sin/cos -> 4 channels
    X, y = [], rng.integers(0, 3, size=n)
    for k in range(n):
        t = np.arange(rng.integers(20, 61))
        phase = rng.uniform(0, 2 * np.pi)
        base = np.stack([np.sin(2 * np.pi * freqs[y[k]] * t + phase),
                         np.cos(2 * np.pi * freqs[y[k]] * t + phase)], axis=1)
        X.append((base @ mix + 0.5 * rng.normal(size=(len(t), 4))).astype(np.float32))
    idx_train, idx_test = train_test_split(np.arange(n), test_size=0.25, random_state=seed,
                                           stratify=y)
    return ([X[i] for i in idx_train], [X[i] for i in idx_test], y[idx_train], y[idx_test])


TASKS = {
    "digits": Task("digits", "classifier", digits_data,
                   "scikit-learn digits, T=8, I=8, 10 classes", 64, 1e-2, 32, 20, 3),
    "sine": Task("sine", "classifier", sine_data,
                 "noisy sines, T=128, I=1, 2 classes", 32, 1e-2, 32, 10, 4),
    "ragged": Task("ragged", "classifier", ragged_data,
                   "ragged, T in [20, 60], I=4, 3 classes", 32, 1e-2, 32, 10, 3),
    "adding": Task("adding", "regressor", adding_data,
                   "adding problem, T=100 (quick: 64), I=2, regression", 32, 1e-2, 64, 20, 3),
}
DEFAULT_TASKS = ["digits", "sine", "ragged"]


def sizes(X: Any) -> tuple[int, list[int]]:
    """(features, lengths) of a 3D array or a list of 2D arrays."""
    if isinstance(X, list):
        return X[0].shape[1], [len(x) for x in X]
    return X.shape[2], [X.shape[1]] * len(X)


# --------------------------------------------------------------------------- fastlstm


def run_fastlstm(task: Task, split: tuple[Any, ...], epochs: int, threads: int,
                 seed: int) -> tuple[float, float]:
    """Fit the estimator; return (test score, fit seconds)."""
    X_train, X_test, y_train, y_test = split
    cls = fastlstm.LSTMClassifier if task.kind == "classifier" else fastlstm.LSTMRegressor
    est = cls(hidden_size=task.hidden_size, max_epochs=epochs,
              learning_rate=task.learning_rate, batch_size=task.batch_size, clip_norm=CLIP,
              n_iter_no_change=epochs, random_state=seed, n_jobs=threads)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # stops at its epoch limit
        est.fit(X_train, y_train)
    fit = time.perf_counter() - start
    if est.n_iter_ != epochs:
        raise RuntimeError(f"fastlstm ran {est.n_iter_} epochs, not {epochs}")
    return est.score(X_test, y_test), fit


# --------------------------------------------------------------------------- PyTorch


def run_torch(task: Task, split: tuple[Any, ...], epochs: int, threads: int,
              seed: int) -> tuple[float, float]:
    """The same model and schedule as a plain PyTorch loop; (test score, fit seconds)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    X_train, X_test, y_train, y_test = split
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    n_features, len_train = sizes(X_train)
    classifier = task.kind == "classifier"
    if classifier:
        classes = np.unique(y_train)
        n_out = len(classes)
        target = torch.from_numpy(np.searchsorted(classes, y_train)).long()
    else:  # standardized targets, as LSTMRegressor trains on
        mean, scale = float(np.mean(y_train)), float(np.std(y_train))
        n_out = 1
        target = torch.from_numpy(((y_train - mean) / scale).astype(np.float32))[:, None]
    h = task.hidden_size

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(n_features, h, batch_first=True)
            self.head = torch.nn.Linear(h, n_out)
            with torch.no_grad():  # forget gates start open, as in fastlstm
                self.lstm.bias_ih_l0[h:2 * h] = 1.0
                self.lstm.bias_hh_l0[h:2 * h] = 0.0

        def forward(self, x: Any, lengths: Any = None) -> Any:
            if lengths is not None:
                x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(x)
            return self.head(h_n[-1])

    def tensors(X: Any) -> tuple[Any, Any]:
        if not isinstance(X, list):
            return torch.from_numpy(np.ascontiguousarray(X)), None
        lengths = torch.tensor([len(x) for x in X])
        padded = np.zeros((len(X), int(lengths.max()), n_features), dtype=np.float32)
        for k, x in enumerate(X):
            padded[k, :len(x)] = x
        return torch.from_numpy(padded), lengths

    xt, lt = tensors(X_train)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=task.learning_rate)
    loss_fn = (torch.nn.functional.cross_entropy if classifier
               else torch.nn.functional.mse_loss)
    rng = np.random.default_rng(seed)
    n = len(len_train)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, task.batch_size):
            idx = order[i:i + task.batch_size]
            opt.zero_grad()
            out = net(xt[idx], None if lt is None else lt[idx])
            loss = loss_fn(out, target[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP)
            opt.step()
    fit = time.perf_counter() - start
    xs, ls = tensors(X_test)
    with torch.no_grad():
        out = net(xs, ls).numpy()
    if classifier:
        score = float(np.mean(classes[out.argmax(1)] == y_test))
    else:
        score = float(r2_score(y_test, out[:, 0] * scale + mean))
    return score, fit


# --------------------------------------------------------------------------- main


def run_tasks(names: Sequence[str], quick: bool, threads: int, seed: int,
              epochs: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    """Fit every task with both trainers; the markdown report."""
    try:
        import torch  # noqa: F401

        torch_error = None
    except ImportError as exc:
        torch_error = f"PyTorch not installed ({exc}): its columns are n/a"
    rows = []
    for name in names:
        task = replace(TASKS[name], **(overrides or {}))
        n_epochs = epochs or (task.quick_epochs if quick else task.epochs)
        split = task.make(seed, quick)
        n_features, lengths = sizes(split[0])
        print(f"{name}: {len(lengths)} train / {len(split[1])} test sequences, "
              f"{n_epochs} epochs ...", file=sys.stderr, flush=True)
        fl_score, fl_fit = run_fastlstm(task, split, n_epochs, threads, seed)
        t_score = t_fit = None
        if torch_error is None:
            t_score, t_fit = run_torch(task, split, n_epochs, threads, seed)
        metric = "accuracy" if task.kind == "classifier" else "R^2"
        steps = n_epochs * sum(lengths)
        rows.append([
            name, task.describe, f"{len(lengths)}/{len(split[1])}",
            f"H={task.hidden_size}, lr={task.learning_rate:g}, batch={task.batch_size}, "
            f"{n_epochs} ep",
            f"{fl_fit:.2f}", "n/a" if t_fit is None else f"{t_fit:.2f}",
            "n/a" if t_fit is None else f"{t_fit / fl_fit:.2f}x",
            f"{steps / fl_fit / 1e3:.0f}", metric, f"{fl_score:.4f}",
            "n/a" if t_score is None else f"{t_score:.4f}",
        ])
    head = ["task", "data", "train/test", "model & schedule", "fastlstm fit s",
            "PyTorch fit s", "PyTorch/fastlstm", "fastlstm k steps/s", "test metric",
            "fastlstm", "PyTorch"]
    lines = [f"## Whole fits, fastlstm {fastlstm.__version__} vs a PyTorch loop "
             f"({threads} thread(s){', quick' if quick else ''})", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "Ratio > 1: fastlstm's fit is faster. k steps/s: thousands of "
              "(sequence, time step) pairs trained per second by fastlstm. fastlstm's fit "
              "time includes input validation and packing; PyTorch's tensors are prepared "
              "before its timer."]
    if torch_error:
        lines.append(f"\nNote: {torch_error}.")
    if hasattr(os, "getloadavg"):
        lines.append(f"\nLoad average at end: {os.getloadavg()[0]:.2f} (> 0.5: other "
                     "processes share the cores; rerun on a quiet machine before quoting).")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=DEFAULT_TASKS)
    ap.add_argument("--quick", action="store_true",
                    help="fewer epochs and smaller synthetic sets")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every task")
    ap.add_argument("--threads", type=int, default=usable or 1,
                    help=f"threads for both trainers (default: {usable})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    text = run_tasks(args.tasks, args.quick, args.threads, args.seed, args.epochs)
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
