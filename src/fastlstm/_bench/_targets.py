"""The issue's speed, memory and quality targets, checked against one run's numbers.

Each target is read off ``report.data`` (the same numbers as the tables), so
a reader sees in one place which ones this run meets; a section that did not
run, or a peer that is absent, leaves its targets at ``n/a``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastlstm._bench._report import Report, fmt, table

__all__ = ["check_targets", "targets_section"]

DENSE_SMALL_H = 256  # forward+backward >= 2x PyTorch for H <= this ...
DENSE_SMALL_RATIO = 2.0
DENSE_LARGE_RATIO = 1.5  # ... and >= 1.5x above it (the H = 512 case)


def _worst(values: list[tuple[float, str]], worst: Callable) -> tuple[float | None, str]:
    if not values:
        return None, ""
    return worst(values, key=lambda v: v[0])


def check_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per target: ``target``, ``required``, ``worst``, ``where``, ``met``.

    ``worst`` is the least favourable measured value over the cases and thread
    counts the target covers; ``met`` is None when nothing was measured.

    Examples
    --------
    >>> data = {"dense": [{"case": {"B": 2, "T": 3, "I": 2, "H": 8}, "threads": 1,
    ...                    "torch": {"train_ratio": 2.5}}]}
    >>> small, large = check_targets(data)[:2]
    >>> small["target"], small["worst"], small["where"], small["met"]
    ('dense f+b, H <= 256: torch / fastlstm', 2.5, '2,3,2,8 at 1 thr', True)
    >>> large["worst"], large["met"]  # no H > 256 case in this run
    (None, None)
    """
    out = []

    def add(target: str, required: str, values: list[tuple[float, str]], higher: bool,
            bound: float) -> None:
        value, where = _worst(values, min if higher else max)
        met = None if value is None else (value >= bound if higher else value <= bound)
        out.append({"target": target, "required": required, "worst": value, "where": where,
                    "met": met})

    small, large = [], []
    for rec in data.get("dense", []):
        r = (rec.get("torch") or {}).get("train_ratio")
        if r is None:
            continue
        c = rec["case"]
        where = f"{c['B']},{c['T']},{c['I']},{c['H']} at {rec['threads']} thr"
        (small if c["H"] <= DENSE_SMALL_H else large).append((r, where))
    add(f"dense f+b, H <= {DENSE_SMALL_H}: torch / fastlstm", f">= {DENSE_SMALL_RATIO:g}x",
        small, True, DENSE_SMALL_RATIO)
    add(f"dense f+b, H > {DENSE_SMALL_H}: torch / fastlstm", f">= {DENSE_LARGE_RATIO:g}x",
        large, True, DENSE_LARGE_RATIO)

    ragged = data.get("ragged") or {}
    from fastlstm._bench._ragged import TARGET_PADDED, TARGET_TORCH

    res = ragged.get("results", [])
    add("ragged f+b: torch packed / fastlstm lengths", f">= {TARGET_TORCH:g}x",
        [(r["torch_ratio"], f"{r['threads']} thr") for r in res
         if r.get("torch_ratio") is not None], True, TARGET_TORCH)
    mean = ragged.get("mean_over_t_max")
    add("ragged f+b: fastlstm lengths / fastlstm padded"
        + (f" (mean length {mean:.2f} T_max)" if mean is not None else ""),
        f"<= {TARGET_PADDED:.2f}",
        [(r["lengths_over_padded"], f"{r['threads']} thr") for r in res
         if r.get("lengths_over_padded") is not None], False, TARGET_PADDED)

    fit = data.get("fit") or {}
    from fastlstm._bench._fit import SCORE_TOL, TARGET_RATIO

    fits = fit.get("results", [])
    add("whole fit: torch loop / fastlstm fit", f">= {TARGET_RATIO:g}x",
        [(r["ratio"], f"{r['task']} at {r['threads']} thr") for r in fits
         if r.get("ratio") is not None], True, TARGET_RATIO)
    add("whole fit: test score difference (absolute)", f"<= {SCORE_TOL:g}",
        [(abs(r["score_diff"]), f"{r['task']} at {r['threads']} thr") for r in fits
         if r.get("score_diff") is not None], False, SCORE_TOL)

    memory = data.get("memory") or {}
    over = memory.get("fastlstm_over_torch") or {}
    add("training step peak memory: fastlstm / torch", "<= 1",
        [(v, phase) for phase, v in over.items() if v is not None], False, 1.0)
    return out


def targets_section(report: Report) -> None:
    """Append the targets table (``report.data["targets"]``) to ``report``."""
    records = check_targets(report.data)
    report.data["targets"] = records
    rows = [[r["target"], r["required"],
             "n/a" if r["worst"] is None else fmt(r["worst"], 3 if r["worst"] < 0.1 else 2) + (
                 "x" if r["required"].endswith("x") else ""),
             r["where"] or "-", "n/a" if r["met"] is None else ("yes" if r["met"] else "NO")]
            for r in records]
    report.sections.append(
        "### Targets (issue 9), checked on this run\n\n"
        "Worst value over the cases and thread counts each target covers (float32). n/a: "
        "not measured in this run (section skipped or peer absent).\n\n"
        + table(["target", "required", "worst measured", "where", "met"], rows))
