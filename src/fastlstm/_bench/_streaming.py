"""Streaming: one step at a time with carried state, every cell, beside torch's cells.

``layer.step`` of fastlstm's LSTM, RNN and GRU against ``nn.LSTMCell``,
``nn.RNNCell`` and ``nn.GRUCell`` with the same weights, and an estimator's
``predict_step`` (classifier and regressor: the step plus the readout), each
timed as a user calls it, Python call included.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastlstm._bench import _peers
from fastlstm._bench._report import Report, fmt, ratio, table
from fastlstm._bench._shapes import PARITY_TOL, SEED, fastlstm_error
from fastlstm._bench._timing import Timer, log, thread_limit

__all__ = ["STREAM", "streaming_section"]

STREAM = (1, 32, 128)  # B, I, H
STREAM_STEPS = 200
CELLS = ("lstm", "rnn", "gru")


def streaming_section(thread_counts: Sequence[int], timer: Timer, report: Report) -> None:
    """One step at B=1 with carried state, per cell: fastlstm vs torch, µs/step."""
    b, i, h = STREAM
    xs = np.random.default_rng(SEED).standard_normal((STREAM_STEPS, b, i), dtype=np.float32)
    rows = []
    records = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] streaming ...")
            for cell in CELLS:
                rec = _stream_one(cell, n, xs, timer, report, check=(n == thread_counts[0]))
                records.append(rec)
                rows.append([str(n), cell, _us(rec, "step_us"), _us(rec, "step_in_place_us"),
                             _us(rec, "torch_us"),
                             ratio(rec["torch_us"], rec["step_us"]),
                             _us(rec, "predict_step_classifier_us"),
                             _us(rec, "predict_step_regressor_us")])
    report.data["streaming"] = {"case": dict(zip("BIH", STREAM, strict=True)),
                                "steps": STREAM_STEPS, "results": records}
    text = (f"### Streaming (one step, B={b}, I={i}, H={h}, state carried; µs/step, "
            f"mean over {STREAM_STEPS}-step runs, median of runs; Python call included)\n\n"
            + table(["thr", "cell", "fastlstm step µs", "in place µs", "torch cell µs",
                     "torch/fl",
                     "predict_step clf µs", "predict_step reg µs"], rows)
            + "\n\ntorch cell: `nn.LSTMCell`, `nn.RNNCell` (tanh) or `nn.GRUCell` with the "
            "same weights, under `inference_mode`; in place: `layer.step(x_t, state, "
            "out=state)`, the state updated in its arrays; predict_step: an estimator of the cell "
            "(hidden_size=128), the step and its readout (class probabilities, or the "
            "regression target in its units).")
    report.sections.append(text)


def _us(rec: dict, key: str) -> str:
    value = rec[key]
    return fmt(value) if value is not None else rec.get("note", "n/a")


def _run_steps(step: Any, xs: Any) -> Any:
    state = None
    y = None
    for x_t in xs:
        y, state = step(x_t, state)
    return y


def _run_steps_in_place(layer: Any, xs: Any) -> Any:
    # the state updated in its own arrays (out=state), from zeros
    _, state = layer.step(np.zeros_like(xs[0]), None)
    for a in (state if isinstance(state, tuple) else (state,)):
        a[...] = 0
    y = None
    for x_t in xs:
        y, _ = layer.step(x_t, state, out=state)
    return y


def _run_torch_steps(cell: _peers.TorchCell, xs: Sequence[Any]) -> Any:
    import torch

    state = None
    with torch.inference_mode():
        for x_t in xs:
            state = cell.step(x_t, state)
    return state[0] if isinstance(state, tuple) else state


def _estimator(kind: str, cell: str, n: int) -> Any:
    """A small fitted estimator of ``cell`` with hidden_size=H, for predict_step."""
    import fastlstm

    _, i, h = STREAM
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((32, 5, i), dtype=np.float32)
    cls = fastlstm.LSTMClassifier if kind == "classifier" else fastlstm.LSTMRegressor
    y = (X[:, -1, 0] > 0).astype(int) if kind == "classifier" else X[:, :, 0].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: never converged
        return cls(hidden_size=h, cell=cell, max_epochs=1, random_state=SEED,
                   n_jobs=n).fit(X, y)


def _stream_one(cell: str, n: int, xs: np.ndarray, timer: Timer, report: Report,
                check: bool) -> dict:
    """µs/step of ``cell``'s layer.step, torch's cell and predict_step at ``n`` threads."""
    _, i, h = STREAM
    steps = xs.shape[0]
    rec: dict[str, Any] = {"threads": n, "cell": cell, "step_us": None,
                           "step_in_place_us": None, "torch_us": None,
                           "predict_step_classifier_us": None,
                           "predict_step_regressor_us": None}
    layer = sd = None
    if fastlstm_error() is None:
        import fastlstm

        layer = {"lstm": fastlstm.LSTM, "rnn": fastlstm.RNN, "gru": fastlstm.GRU}[cell](
            i, h, n_jobs=n, random_state=SEED)
        sd = _peers.state_dict_numpy(layer.state_dict())
        try:
            rec["step_us"] = 1e6 * timer(lambda: _run_steps(layer.step, xs), "fastlstm") / steps
            rec["step_in_place_us"] = 1e6 * timer(lambda: _run_steps_in_place(layer, xs),
                                                  "fastlstm") / steps
            for kind in ("classifier", "regressor"):
                est = _estimator(kind, cell, n)
                rec[f"predict_step_{kind}_us"] = 1e6 * timer(
                    lambda est=est: _run_steps(est.predict_step, xs), "fastlstm") / steps
        except Exception as exc:  # the step API differs from the expected one: report it
            rec["note"] = f"n/a (step failed: {type(exc).__name__}: {exc})"
    else:
        rec["note"] = "n/a (fastlstm not usable)"
        sd = _peers.random_state_dict(i, h, seed=SEED)
    # without fastlstm the random weights are an LSTM's: torch's other cells need a layer's
    if _peers.peer_status()["torch"] is None and (layer is not None or cell == "lstm"):
        import torch

        peer = _peers.TorchCell(cell, sd, n)
        xt = [torch.from_numpy(xs[k].copy()) for k in range(steps)]
        rec["torch_us"] = 1e6 * timer(lambda: _run_torch_steps(peer, xt), "torch") / steps
        if check and rec["step_us"] is not None:
            err = _peers.max_abs_diff(_run_steps(layer.step, xs),
                                      _run_torch_steps(peer, xt).numpy())
            report.parity.append(f"- streaming {cell} {steps} steps "
                                 f"B,I,H={','.join(map(str, STREAM))}: torch "
                                 f"{_peers.TorchCell.CLASSES[cell]} final h {err:.1e}")
            if err > PARITY_TOL:
                report.note(f"streaming: {cell} step differs from torch's cell by {err:.2e}")
    return rec
