"""Ragged batches: fastlstm with ``lengths=`` vs padded vs PyTorch's PackedSequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastlstm._bench import _peers
from fastlstm._bench._dense import timed
from fastlstm._bench._report import Report, fmt, ratio, table
from fastlstm._bench._shapes import PARITY_TOL, SEED, fl_train_step, inputs, weights
from fastlstm._bench._timing import Timer, log, thread_limit

__all__ = ["RAGGED", "ragged_section"]

RAGGED = (64, 100, 64, 128)  # B, T_max, I, H; lengths uniform in [25, 100]


def ragged_section(thread_counts: Sequence[int], timer: Timer, report: Report) -> None:
    """Variable lengths: fastlstm with lengths vs padded vs torch PackedSequence."""
    b, t, i, h = RAGGED
    rng = np.random.default_rng(SEED)
    lengths = rng.integers(25, t + 1, size=b)  # uniform in [25, 100]
    x, d_out = inputs(b, t, i, h)
    mask = (np.arange(t)[None, :] < lengths[:, None])[..., None]
    x = np.where(mask, x, 0).astype(np.float32)
    rows = []
    records = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] ragged ...")
            res = _ragged_one(n, x, d_out, lengths, timer, report,
                              check=(n == thread_counts[0]))
        rec: dict[str, Any] = {"threads": n}
        for key, label in (("lengths", "fastlstm, lengths="), ("padded", "fastlstm, padded"),
                           ("torch", "torch PackedSequence")):
            sec = res[key]
            rec[key + "_ms"] = None if sec is None else 1e3 * sec
            rows.append([label, str(n), fmt(rec[key + "_ms"]), ratio(sec, res["lengths"])])
        records.append(rec)
    report.data["ragged"] = {"case": dict(zip("BTIH", RAGGED, strict=True)),
                             "mean_length": float(lengths.mean()), "results": records}
    text = (f"### Ragged batch (B={b}, T_max={t}, lengths uniform in [25, {t}] seed {SEED}, "
            f"mean {lengths.mean():.1f}; I={i}, H={h}; forward+backward)\n\n"
            "torch includes pack_padded_sequence (enforce_sorted=False) and "
            "pad_packed_sequence; fastlstm padded runs all rows for T_max steps.\n\n"
            + table(["variant", "thr", "f+b ms", "time / fastlstm lengths"], rows))
    report.sections.append(text)


def _ragged_parity(layer: Any, tp: _peers.TorchLSTM, x: np.ndarray, lengths: np.ndarray,
                   report: Report) -> None:
    """fastlstm with ``lengths`` vs torch PackedSequence, forward."""
    try:
        out, (hn, cn) = layer.forward(x, lengths=lengths)
        tout, th, tc = tp.packed_forward(tp.tensor(x), lengths)
        err = max(_peers.max_abs_diff(out, tout), _peers.max_abs_diff(hn, th),
                  _peers.max_abs_diff(cn, tc))
    except Exception as exc:  # reported; timings still run
        report.note(f"ragged parity check failed: {type(exc).__name__}: {exc}")
        return
    report.parity.append(f"- ragged B,T,I,H={','.join(map(str, RAGGED))}: "
                         f"torch packed fwd {err:.1e}")
    if err > PARITY_TOL:
        report.note(f"ragged: torch packed differs from fastlstm by {err:.2e}")


def _ragged_one(n: int, x: np.ndarray, d_out: np.ndarray, lengths: np.ndarray, timer: Timer,
                report: Report, check: bool) -> dict[str, float | None]:
    """Seconds per ragged training step for each variant at ``n`` threads."""
    b, t, i, h = RAGGED
    mask = (np.arange(t)[None, :] < lengths[:, None])[..., None]
    d_masked = np.where(mask, d_out, 0).astype(np.float32)
    layer, sd = weights(i, h, n)
    res: dict[str, float | None] = {"lengths": None, "padded": None, "torch": None}
    if layer is not None:
        res["lengths"] = timed(timer, report, "fastlstm ragged",
                               lambda: fl_train_step(layer, x, d_masked, lengths), "fastlstm")
        res["padded"] = timed(timer, report, "fastlstm padded",
                              lambda: fl_train_step(layer, x, d_out), "fastlstm")
    if _peers.peer_status()["torch"] is not None:
        return res
    import torch

    tp = _peers.TorchLSTM(sd, n)
    xg, dt = tp.tensor(x, requires_grad=True), tp.tensor(d_masked)
    lt = torch.as_tensor(lengths)
    if layer is not None and check:
        _ragged_parity(layer, tp, x, lengths, report)
        timer.used("parity check")
    res["torch"] = timed(timer, report, "torch packed",
                         lambda: tp.packed_forward_backward(xg, lt, dt), "torch")
    return res
