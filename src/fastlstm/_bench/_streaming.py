"""Streaming: one step at a time with carried state, ``LSTM.step`` vs ``nn.LSTMCell``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastlstm._bench import _peers
from fastlstm._bench._report import Report, fmt, ratio, table
from fastlstm._bench._shapes import PARITY_TOL, SEED, weights
from fastlstm._bench._timing import Timer, log, thread_limit

__all__ = ["STREAM", "streaming_section"]

STREAM = (1, 32, 128)  # B, I, H
STREAM_STEPS = 200


def streaming_section(thread_counts: Sequence[int], timer: Timer, report: Report) -> None:
    """One step at B=1 with carried state: fastlstm.step vs nn.LSTMCell, µs/step."""
    b, i, h = STREAM
    xs = np.random.default_rng(SEED).standard_normal((STREAM_STEPS, b, i), dtype=np.float32)
    rows = []
    records = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] streaming ...")
            fl_us, fl_note, t_us = _stream_one(n, xs, timer, report,
                                               check=(n == thread_counts[0]))
        records.append({"threads": n, "fastlstm_us": fl_us, "torch_us": t_us})
        rows.append([str(n), fmt(fl_us) if fl_us is not None else fl_note, fmt(t_us),
                     ratio(t_us, fl_us)])
    report.data["streaming"] = {"case": dict(zip("BIH", STREAM, strict=True)),
                                "steps": STREAM_STEPS, "results": records}
    text = (f"### Streaming (one step, B={b}, I={i}, H={h}, state carried; "
            f"µs/step, mean over {STREAM_STEPS}-step runs, median of runs)\n\n"
            + table(["thr", "fastlstm step µs", "torch LSTMCell µs", "torch/fl"], rows))
    report.sections.append(text)


def _run_fl_steps(layer: Any, xs: np.ndarray) -> Any:
    state = None
    h_t = None
    for k in range(xs.shape[0]):
        h_t, state = layer.step(xs[k], state)
    return h_t


def _run_torch_steps(cell: _peers.TorchLSTMCell, xs: Sequence[Any]) -> Any:
    import torch

    state = None
    with torch.inference_mode():
        for x_t in xs:
            state = cell.step(x_t, state)
    return state[0]


def _stream_one(n: int, xs: np.ndarray, timer: Timer, report: Report,
                check: bool) -> tuple[float | None, str, float | None]:
    """(fastlstm µs/step or None, why not, torch µs/step or None) at ``n`` threads."""
    _, i, h = STREAM
    steps = xs.shape[0]
    layer, sd = weights(i, h, n)
    fl_us: float | None = None
    fl_note = "n/a"
    if layer is None:
        fl_note = "n/a (fastlstm not usable)"
    elif not hasattr(layer, "step"):
        fl_note = "n/a (no LSTM.step)"
    else:
        try:
            fl_us = 1e6 * timer(lambda: _run_fl_steps(layer, xs), "fastlstm") / steps
        except Exception as exc:  # step API differs from the expected one: report it
            fl_note = f"n/a (step failed: {type(exc).__name__}: {exc})"
    t_us: float | None = None
    if _peers.peer_status()["torch"] is None:
        import torch

        cell = _peers.TorchLSTMCell(sd, n)
        xt = [torch.from_numpy(xs[k].copy()) for k in range(steps)]
        t_us = 1e6 * timer(lambda: _run_torch_steps(cell, xt), "torch") / steps
        if check and fl_us is not None:
            err = _peers.max_abs_diff(_run_fl_steps(layer, xs),
                                      _run_torch_steps(cell, xt).numpy())
            report.parity.append(f"- streaming {steps} steps B,I,H={','.join(map(str, STREAM))}: "
                                 f"torch LSTMCell final h {err:.1e}")
            if err > PARITY_TOL:
                report.note(f"streaming: LSTM.step differs from nn.LSTMCell by {err:.2e}")
    return fl_us, fl_note, t_us
