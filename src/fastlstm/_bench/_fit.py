"""Whole fits: an estimator against the same model in a plain PyTorch loop.

For each task both trainers get the same data and split, the same model (one
LSTM layer and a linear readout of the final hidden state, as the estimators
build it), the same initial weights (the estimator's own initialization,
forget-gate biases at 1, copied into the PyTorch module), the same loss
(mean cross-entropy, or mean squared error on standardized targets), the same
optimizer (Adam with PyTorch's defaults, the task's learning rate, the global
gradient norm clipped at 5), the same mini-batches in the same order every
epoch (the estimator's length-grouped shuffling, drawn from the same seed),
the same number of epochs (no early stopping, no validation split) and the
same thread count. The tasks:

- ``digits``: scikit-learn's digits, 8 steps of 8 pixels, 10 classes (the
  ``fastlstm demo`` model);
- ``pixels``: the same digits pixel by pixel, 64 steps of one pixel (a long
  sequence of a narrow input at batch 32);
- ``drift``: T=128 steps of one noisy feature whose mean is +0.3 or -0.3,
  2 classes by its sign (a long sequence of few features whose training
  converges smoothly, so that test scores compare the libraries);
- ``sine`` (not run by default): noisy sines, T=128 steps of one feature, 2
  classes by frequency; its loss sits on a plateau whose exit time float
  rounding decides (two trainers that agree to 1e-10 in float64 after two
  epochs part by the sixth), so its scores vary between runs of either
  library and are no accuracy comparison;
- ``ragged``: 4-channel noisy oscillations of 3 classes, lengths uniform in
  [20, 60] (3x); fastlstm gets the list of arrays, PyTorch a
  ``PackedSequence`` per mini-batch;
- ``adding`` (not run by default): the adding problem, T=100 steps of 2
  features, regression (test R^2);
- ``stacked`` (not run by default): the ``digits`` task through two stacked
  LSTM layers (the model is then a stack of that many layers on both sides);
- ``bidirectional`` (not run by default): the ``digits`` task through one
  bidirectional LSTM layer, whose readout takes both directions' final
  states.

What is timed: the estimator's ``fit`` (input validation and packing
included) against the PyTorch loop on tensors prepared beforehand (padding
and the initial weights outside its timer, favourable to PyTorch).

Fit efficiency: the forward and backward FLOPs of the fit (:func:`fit_flops`)
per second, as a share of the register-only FMA peak of the cores the fit
ran on (the benchmark's peaks section, at the same thread count).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fastlstm._bench._fit_data import (
    Split,
    adding_data,
    digits_data,
    drift_data,
    pixel_digits_data,
    ragged_data,
    sine_data,
)
from fastlstm._bench._report import Report, fmt, table
from fastlstm._bench._timing import log, thread_limit

__all__ = ["CLIP", "DEFAULT_TASKS", "SCORE_TOL", "TASKS", "FitResult", "FitTask",
           "fit_fastlstm", "fit_flops", "fit_markdown", "fit_records", "fit_section", "fit_tables",
           "fit_torch", "initial_net", "load_net", "make_estimator", "torch_model"]

CLIP = 5.0  # the estimators' default clip_norm
SCORE_TOL = 0.01  # "equal test accuracy": |fastlstm - PyTorch| <= this

@dataclass(frozen=True)
class FitTask:
    """One whole-fit task: data, model size and training schedule.

    ``make(seed, n_samples)`` returns the split; ``n_samples`` None takes the
    whole data set (digits) or the task's default size.
    """

    name: str
    kind: str  # "classifier" or "regressor"
    make: Callable[[int, int | None], Split]
    describe: str
    hidden_size: int
    learning_rate: float
    batch_size: int
    epochs: int
    quick_epochs: int
    n_samples: int | None = None  # None: the data set's default size
    quick_n_samples: int | None = None
    num_layers: int = 1  # stacked recurrent layers
    bidirectional: bool = False

    def schedule(self, quick: bool) -> tuple[int, int | None]:
        """(epochs, samples) of a full or a ``--quick`` run."""
        return ((self.quick_epochs, self.quick_n_samples) if quick
                else (self.epochs, self.n_samples))


TASKS: dict[str, FitTask] = {
    "digits": FitTask("digits", "classifier", digits_data,
                      "scikit-learn digits, T=8, I=8, 10 classes", 64, 1e-2, 32, 20, 3),
    "pixels": FitTask("pixels", "classifier", pixel_digits_data,
                      "digits pixel by pixel, T=64, I=1, 10 classes", 64, 1e-2, 32, 20, 3),
    "drift": FitTask("drift", "classifier", drift_data,
                     "noisy drift sign, T=128, I=1, 2 classes", 32, 3e-3, 32, 10, 4,
                     quick_n_samples=1600),
    "sine": FitTask("sine", "classifier", sine_data,
                    "noisy sines, T=128, I=1, 2 classes", 32, 1e-2, 32, 10, 4,
                    quick_n_samples=1600),
    "ragged": FitTask("ragged", "classifier", ragged_data,
                      "ragged, T in [20, 60], I=4, 3 classes", 32, 1e-2, 32, 10, 3,
                      quick_n_samples=900),
    "adding": FitTask("adding", "regressor", adding_data,
                      "adding problem, T=100, I=2, regression", 32, 1e-2, 64, 20, 3,
                      quick_n_samples=1200),
    # a batch too narrow for two row chunks: one chunk, on one thread at this
    # width (hidden slices pay from wider layers: fastlstm.train.plans)
    "narrow": FitTask("narrow", "classifier", pixel_digits_data,
                      "digits pixel by pixel in batches of 4, T=64, I=1, H=128, 10 classes",
                      128, 2e-3, 4, 5, 1, quick_n_samples=120),
    "stacked": FitTask("stacked", "classifier", digits_data,
                       "digits through 2 stacked layers, T=8, I=8, 10 classes", 64, 1e-2, 32,
                       20, 3, num_layers=2),
    "bidirectional": FitTask("bidirectional", "classifier", digits_data,
                             "digits through a bidirectional layer, T=8, I=8, 10 classes", 64,
                             1e-2, 32, 20, 3, bidirectional=True),
}
DEFAULT_TASKS = ("digits", "pixels", "drift", "ragged")


def fit_flops(n_features: int, hidden_size: int, lengths: np.ndarray, epochs: int,
              num_layers: int = 1, num_directions: int = 1) -> float:
    """Forward and backward FLOPs of an LSTM fit: the matrix products only.

    Per sequence step, with G = 4H gate rows: the first layer's forward
    2G(I + H), the backward's recurrent product 2GH and weight gradients
    2G(I + H) (no dX: the inputs need no gradient); each layer above the same
    with D*H inputs, and its dX (the gradient for the layer below) 2G*D*H; each
    direction of a bidirectional layer the same; the readout and the gate
    math are left out.

    Examples
    --------
    >>> fit_flops(1, 64, np.full(10, 64), 1) / 1e6  # ten sequences of 64 steps
    63.56992
    """
    G = 4 * hidden_size
    per_step = 2.0 * G * (n_features + hidden_size) + 2.0 * G * hidden_size \
        + 2.0 * G * (n_features + hidden_size)
    D = num_directions
    upper = (2.0 * G * (D * hidden_size + hidden_size) * 2 + 2.0 * G * hidden_size
             + 2.0 * G * D * hidden_size)
    per_step = D * (per_step + (num_layers - 1) * upper)
    return per_step * float(np.sum(lengths)) * epochs


def _sizes(X: Any) -> tuple[int, np.ndarray]:
    """(features, lengths) of a 3D array or a list of 2D arrays."""
    if isinstance(X, list):
        return X[0].shape[1], np.array([len(x) for x in X])
    return X.shape[2], np.full(len(X), X.shape[1])


# --------------------------------------------------------------------------- fastlstm


@dataclass
class FitResult:
    """One trainer's fit: seconds, test score (accuracy or R^2) and the trained model."""

    seconds: float
    score: float
    model: Any


def make_estimator(task: FitTask, epochs: int, threads: int, seed: int,
                   dtype: str = "float32") -> Any:
    """The task's estimator: no early stopping, exactly ``epochs`` epochs."""
    import fastlstm

    cls = fastlstm.LSTMClassifier if task.kind == "classifier" else fastlstm.LSTMRegressor
    # the plateau count can exceed n_iter_no_change only after more than `epochs` epochs
    return cls(hidden_size=task.hidden_size, max_epochs=epochs, learning_rate=task.learning_rate,
               num_layers=task.num_layers, bidirectional=task.bidirectional,
               batch_size=task.batch_size, clip_norm=CLIP,
               n_iter_no_change=epochs,
               random_state=seed, n_jobs=threads, dtype=dtype)


def fit_fastlstm(task: FitTask, split: Split, epochs: int, threads: int, seed: int,
                 dtype: str = "float32") -> FitResult:
    """Fit the estimator (timed: ``fit`` as a user calls it) and score it on the test set."""
    from sklearn.exceptions import ConvergenceWarning

    X_train, X_test, y_train, y_test = split
    est = make_estimator(task, epochs, threads, seed, dtype)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # stops at its epoch limit
        est.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    if est.n_iter_ != epochs:
        raise RuntimeError(f"fastlstm ran {est.n_iter_} epochs, not {epochs}")
    return FitResult(seconds, float(est.score(X_test, y_test)), est)


# --------------------------------------------------------------------------- PyTorch


def initial_net(task: FitTask, n_features: int, n_outputs: int, seed: int,
                dtype: str = "float32") -> tuple[Any, np.random.RandomState]:
    """The network the estimator starts from, and its generator after the draw.

    As ``_BaseLSTM._fit_body``: ``check_random_state(random_state)`` draws the
    network's seed, then shuffles the mini-batches of every epoch.

    Examples
    --------
    >>> net, rng = initial_net(TASKS["sine"], n_features=1, n_outputs=2, seed=0)
    >>> h = net.config["hidden_size"]
    >>> b = net.layer.state_dict()["bias_ih_l0"]
    >>> float(b[h:2 * h].min()), float(b[h:2 * h].max())  # forget gates start open
    (1.0, 1.0)
    """
    from sklearn.utils import check_random_state

    from fastlstm.train.network import SequenceNet

    rng = check_random_state(seed)
    net_seed = int(rng.randint(np.iinfo(np.int32).max))
    net = SequenceNet(n_features, n_outputs, hidden_size=task.hidden_size, dtype=dtype,
                      num_layers=task.num_layers, bidirectional=task.bidirectional,
                      random_state=net_seed)
    return net, rng


def torch_model(n_features: int, hidden_size: int, n_outputs: int,
                dtype: str = "float32", num_layers: int = 1, bidirectional: bool = False) -> Any:
    """An ``nn.LSTM`` of ``num_layers`` (batch first), an ``nn.Linear`` readout of ``h_n[-1]``
    (bidirectional: of ``h_n[-2]`` and ``h_n[-1]`` side by side).

    ``model(x, lengths=None)``: with ``lengths`` the padded batch goes through
    ``pack_padded_sequence(..., enforce_sorted=False)``, so that ``h_n`` is
    each sequence's own last step (the estimator's representation).
    """
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence

    class LSTMReadout(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(n_features, hidden_size, num_layers=num_layers,
                                      bidirectional=bidirectional, batch_first=True)
            self.head = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), n_outputs)

        def forward(self, x: Any, lengths: Any = None) -> Any:
            if lengths is not None:
                x = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(x)
            feats = torch.cat([h_n[-2], h_n[-1]], dim=1) if bidirectional else h_n[-1]
            return self.head(feats)

    model = LSTMReadout()
    return model.to(torch.float64 if dtype == "float64" else torch.float32)


def load_net(model: Any, net: Any) -> None:
    """Copy a :class:`~fastlstm.train.network.SequenceNet`'s weights into :func:`torch_model`."""
    import torch

    model.lstm.load_state_dict({k: torch.from_numpy(np.array(v))
                                for k, v in net.layer.state_dict().items()})
    model.head.load_state_dict({"weight": torch.from_numpy(np.array(net.weight)),
                                "bias": torch.from_numpy(np.array(net.bias))})


def _padded(X: Any, n_features: int, dtype: Any) -> tuple[Any, Any]:
    """(padded batch-first tensor, lengths tensor or None) of a 3D array or a list."""
    import torch

    if not isinstance(X, list):
        return torch.from_numpy(np.ascontiguousarray(X, dtype=dtype)), None
    lengths = np.array([len(x) for x in X])
    padded = np.zeros((len(X), int(lengths.max()), n_features), dtype=dtype)
    for k, x in enumerate(X):
        padded[k, :len(x)] = x
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def _targets(task: FitTask, y_train: np.ndarray, dtype: Any) -> tuple[Any, Any, Any]:
    """(training target tensor, classes or None, (mean, scale) or None), as the estimator."""
    import torch

    if task.kind == "classifier":
        classes = np.unique(y_train)
        return torch.from_numpy(np.searchsorted(classes, y_train).astype(np.int64)), classes, None
    y2 = np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1)
    mean, scale = y2.mean(axis=0), y2.std(axis=0)
    scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
    return torch.from_numpy(((y2 - mean) / scale).astype(dtype)), None, (mean, scale)


def fit_torch(task: FitTask, split: Split, epochs: int, threads: int, seed: int,
              dtype: str = "float32") -> FitResult:
    """The same model, weights, batches and optimizer as a plain PyTorch loop.

    Timed: the epochs (``model.train()``, ``zero_grad(set_to_none=True)``,
    forward, loss, backward, ``clip_grad_norm_``, ``Adam.step``); the tensors
    and the initial weights are prepared before the timer. PyTorch runs on
    ``threads`` threads (its previous count is restored afterwards).
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _torch_loop(task, split, epochs, seed, dtype)
    finally:
        torch.set_num_threads(previous)


def _torch_loop(task: FitTask, split: Split, epochs: int, seed: int, dtype: str) -> FitResult:
    import torch

    from fastlstm.train.sequences import length_batches

    X_train, X_test, y_train, y_test = split
    np_dtype = np.dtype(dtype)
    n_features, lengths = _sizes(X_train)
    target, classes, scaling = _targets(task, y_train, np_dtype)
    n_outputs = len(classes) if classes is not None else target.shape[1]
    net, rng = initial_net(task, n_features, n_outputs, seed, dtype)
    model = torch_model(n_features, task.hidden_size, n_outputs, dtype, task.num_layers,
                        task.bidirectional)
    load_net(model, net)
    xt, lt = _padded(X_train, n_features, np_dtype)
    opt = torch.optim.Adam(model.parameters(), lr=task.learning_rate)
    loss_fn = (torch.nn.functional.cross_entropy if classes is not None
               else torch.nn.functional.mse_loss)
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        # the estimator's mini-batches: similar lengths together, shuffled, same generator
        for idx in length_batches(lengths, task.batch_size, rng):
            idx_t = torch.from_numpy(idx)
            xb, lb = xt[idx_t], None
            if lt is not None:
                lb = lt[idx_t]
                xb = xb[:, :int(lb.max())]  # this batch's longest sequence
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb, lb), target[idx_t])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
    seconds = time.perf_counter() - start
    model.eval()
    xs, ls = _padded(X_test, n_features, np_dtype)
    with torch.inference_mode():
        out = model(xs, ls).double().numpy()
    if classes is not None:
        score = float(np.mean(classes[out.argmax(axis=1)] == y_test))
    else:
        from sklearn.metrics import r2_score

        mean, scale = scaling
        pred = out * scale + mean
        score = float(r2_score(y_test, pred[:, 0] if np.ndim(y_test) == 1 else pred))
    return FitResult(seconds, score, model)


# --------------------------------------------------------------------------- section


def _settle() -> None:
    gc.collect()
    time.sleep(0.25)  # the previous library's spinning pool threads go idle


def _torch_error() -> str | None:
    from fastlstm._bench import _peers

    return _peers.peer_status()["torch"]


def fit_records(tasks: Sequence[FitTask], thread_counts: Sequence[int], quick: bool,
                seed: int = 0, epochs: int | None = None, report: Report | None = None,
                peaks: dict[int, dict[str, Any]] | None = None
                ) -> tuple[list[dict], list[dict]]:
    """Fit every task with both trainers at each thread count.

    Each timed fit follows an untimed one-epoch fit of the same trainer on two
    mini-batches (first-call costs) and a quarter-second pause.

    Returns ``(task descriptions, results)``: one result per task and thread
    count with ``fastlstm_s``, ``torch_s``, ``ratio`` (PyTorch / fastlstm),
    ``fastlstm_score``, ``torch_score``, ``score_diff`` and ``within_tol``
    (None where PyTorch is absent or a fit failed, with a note in ``report``),
    ``flops`` and, with ``peaks`` (by thread count, as the peaks section
    returns them), ``fastlstm_pct_fma_peak`` and ``torch_pct_fma_peak``.
    """
    torch_error = _torch_error()
    if torch_error is not None and report is not None:
        report.note(f"whole fits: PyTorch absent ({torch_error}); its columns are n/a")
    described, results = [], []
    for task in tasks:
        n_epochs, n_samples = task.schedule(quick)
        n_epochs = epochs or n_epochs
        split = task.make(seed, n_samples)
        n_features, lengths = _sizes(split[0])
        k = 2 * task.batch_size
        warm = (split[0][:k], split[1][:k], split[2][:k], split[3][:k])
        described.append({
            "task": task.name, "data": task.describe, "kind": task.kind,
            "metric": "accuracy" if task.kind == "classifier" else "R^2",
            "n_train": len(split[0]), "n_test": len(split[1]), "n_features": n_features,
            "min_length": int(lengths.min()), "max_length": int(lengths.max()),
            "hidden_size": task.hidden_size, "learning_rate": task.learning_rate,
            "batch_size": task.batch_size, "epochs": n_epochs})
        for n in thread_counts:
            log(f"[{n} thread(s)] whole fit {task.name}: {len(split[0])} train / "
                f"{len(split[1])} test sequences, {n_epochs} epochs ...")
            rec: dict[str, Any] = {"task": task.name, "threads": n, "epochs": n_epochs,
                                   "flops": fit_flops(n_features, task.hidden_size, lengths,
                                                      n_epochs, task.num_layers,
                                                      2 if task.bidirectional else 1)}
            runs: dict[str, FitResult | None] = {"fastlstm": None, "torch": None}
            with thread_limit(n):
                for lib, fit in (("fastlstm", fit_fastlstm), ("torch", fit_torch)):
                    if lib == "torch" and torch_error is not None:
                        continue
                    # untimed warm-up (lazy imports, thread pools); its failure, if
                    # any, shows in the real fit
                    with contextlib.suppress(Exception):
                        fit(task, warm, 1, n, seed)
                    _settle()
                    try:
                        runs[lib] = fit(task, split, n_epochs, n, seed)
                    except Exception as exc:  # one broken fit must not end the run
                        if report is None:
                            raise
                        report.note(f"whole fit {task.name} ({lib}, {n} thread(s)) failed: "
                                    f"{type(exc).__name__}: {exc}")
            fl, tp = runs["fastlstm"], runs["torch"]
            rec["fastlstm_s"] = None if fl is None else fl.seconds
            rec["torch_s"] = None if tp is None else tp.seconds
            rec["fastlstm_score"] = None if fl is None else fl.score
            rec["torch_score"] = None if tp is None else tp.score
            both = fl is not None and tp is not None
            rec["ratio"] = tp.seconds / fl.seconds if both and fl.seconds > 0 else None
            rec["score_diff"] = fl.score - tp.score if both else None
            rec["within_tol"] = (None if rec["score_diff"] is None
                                 else bool(abs(rec["score_diff"]) <= SCORE_TOL))
            fma = (peaks or {}).get(n, {}).get("fma_gflops")
            for lib in ("fastlstm", "torch"):
                secs = rec[f"{lib}_s"]
                rec[f"{lib}_pct_fma_peak"] = (None if not fma or not secs
                                              else 100.0 * rec["flops"] / secs / (fma * 1e9))
            results.append(rec)
    return described, results


def _yes_no(v: bool | None) -> str:
    return "n/a" if v is None else ("yes" if v else "no")


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}%"


def fit_tables(described: Sequence[dict], results: Sequence[dict]) -> str:
    """The task table and the results table, as markdown."""
    tasks = [[d["task"], d["data"], f"{d['n_train']}/{d['n_test']}",
              f"H={d['hidden_size']}, lr={d['learning_rate']:g}, batch={d['batch_size']}, "
              f"{d['epochs']} epochs", d["metric"]] for d in described]
    metric = {d["task"]: d["metric"] for d in described}
    rows = [[r["task"], str(r["threads"]), fmt(r["fastlstm_s"]), fmt(r["torch_s"]),
             "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}x", metric[r["task"]],
             "n/a" if r["fastlstm_score"] is None else f"{r['fastlstm_score']:.4f}",
             "n/a" if r["torch_score"] is None else f"{r['torch_score']:.4f}",
             _yes_no(r["within_tol"]), _pct(r.get("fastlstm_pct_fma_peak")),
             _pct(r.get("torch_pct_fma_peak"))] for r in results]
    return (table(["task", "data", "train/test", "model & schedule", "test metric"], tasks)
            + "\n\n"
            + table(["task", "thr", "fastlstm fit s", "torch fit s", "torch/fastlstm",
                     "metric", "fastlstm", "torch", f"scores within {SCORE_TOL:g}",
                     "fastlstm % FMA peak", "torch % FMA peak"], rows))


_HOW = ("Same data and split, same model (one LSTM layer; two for the stacked task, "
        "bidirectional for the bidirectional one; linear readout of the final hidden state), "
        "same initial weights (the estimator's, forget-gate biases at 1), same loss, Adam "
        "(same learning rate, gradient norm clipped at 5), same mini-batches in "
        "the same order, same epochs (no early stopping) and threads. Timed: the "
        "estimator's `fit` (validation and packing included) vs the PyTorch loop on tensors "
        "prepared beforehand; ragged data: `PackedSequence` per mini-batch. One fit each, so "
        "the times carry the machine's noise. % FMA peak: the fit's forward and backward "
        "matrix-product FLOPs per second over the FMA peak of the cores used (the peaks "
        "section, same thread count).")


def fit_section(thread_counts: Sequence[int], report: Report, quick: bool = False,
                tasks: Sequence[FitTask] | None = None, seed: int = 0,
                peaks: dict[int, dict[str, Any]] | None = None) -> None:
    """The whole-fit section of the benchmark report (``report.data["fit"]``)."""
    tasks = [TASKS[name] for name in DEFAULT_TASKS] if tasks is None else list(tasks)
    described, results = fit_records(tasks, thread_counts, quick, seed, report=report,
                                     peaks=peaks)
    report.data["fit"] = {"tasks": described, "results": results, "seed": seed,
                          "score_tolerance": SCORE_TOL}
    report.sections.append(
        "### Whole fits: estimator vs the same model in a plain PyTorch loop"
        + (" (quick: fewer epochs, smaller sets)" if quick else "") + "\n\n"
        + f"torch/fastlstm > 1: fastlstm's fit is faster; scores within {SCORE_TOL:g}: the "
        "two trainers reach the same test score. " + _HOW + "\n\n"
        + fit_tables(described, results))


def fit_markdown(names: Sequence[str], quick: bool, threads: int | Sequence[int], seed: int = 0,
                 epochs: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    """The whole-fit comparison alone, as markdown (``bench/fit_vs_torch.py``)."""
    import fastlstm

    counts = [threads] if isinstance(threads, int) else list(threads)
    tasks = [replace(TASKS[name], **(overrides or {})) for name in names]
    report = Report(echo=True)
    from fastlstm._bench._timing import fma_peak, thread_limit

    peaks = {}
    for n in counts:
        with thread_limit(n):
            peaks[n] = {"fma_gflops": fma_peak(n)}
    described, results = fit_records(tasks, counts, quick, seed, epochs, report=report,
                                     peaks=peaks)
    lines = [f"## Whole fits, fastlstm {fastlstm.__version__} vs a PyTorch loop "
             f"({', '.join(map(str, counts))} thread(s){', quick' if quick else ''})", "",
             fit_tables(described, results), "",
             f"torch/fastlstm > 1: fastlstm's fit is faster; scores within {SCORE_TOL:g}: the "
             "two trainers reach the same test score. " + _HOW]
    lines += [f"\nNote: {n}" for n in report.notes]
    if hasattr(os, "getloadavg"):
        lines.append(f"\nLoad average at end: {os.getloadavg()[0]:.2f} (> 0.5: other "
                     "processes share the cores; rerun on a quiet machine before quoting).")
    return "\n".join(lines) + "\n"
