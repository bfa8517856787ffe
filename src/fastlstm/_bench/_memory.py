"""Peak memory of one training step, each library in a fresh process.

The parent runs ``python -m fastlstm._bench._memory LIB THREADS``; the child
prints one JSON line with the growth of its resident set's high-water mark.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastlstm._bench import _peers
from fastlstm._bench._report import Report, fmt, table
from fastlstm._bench._shapes import SEED, Shape, fastlstm_error, inputs, make_layer
from fastlstm._bench._timing import log

__all__ = ["MEMORY_SHAPE", "memory_child", "memory_ratios", "memory_section"]

MEMORY_SHAPE: Shape = (128, 100, 128, 256)


def _status_kib(key: str) -> int | None:
    with contextlib.suppress(OSError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(lib: str, threads: int) -> dict[str, Any]:
    """In a fresh process: RSS growth (KiB) of a cold and a warm training step."""
    import resource

    b, t, i, h = MEMORY_SHAPE
    x, d_out = inputs(b, t, i, h)
    if lib == "fastlstm":
        layer = make_layer(i, h, threads)

        def step() -> None:
            layer.forward(x, training=True)
            layer.backward(d_out)
    else:
        tp = _peers.TorchLSTM(_peers.random_state_dict(i, h, seed=SEED), threads)
        xg, dt = tp.tensor(x, requires_grad=True), tp.tensor(d_out)

        def step() -> None:
            tp.forward_backward(xg, dt)

    result: dict[str, Any] = {}
    for phase in ("cold", "warm"):
        gc.collect()
        if _reset_peak():
            before = _status_kib("VmRSS")
            step()
            after = _status_kib("VmHWM")
            result["method"] = "VmHWM after clear_refs"
        else:  # peak so far: only a lower bound if import-time peaks were higher
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            step()
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            result["method"] = "ru_maxrss delta"
        result[phase] = None if before is None or after is None else after - before
    result["rss_after"] = _status_kib("VmRSS")
    return result


def memory_ratios(records: list[dict[str, Any]]) -> dict[str, float | None]:
    """fastlstm's RSS growth over torch's, for the cold and the warm step.

    Examples
    --------
    >>> memory_ratios([{"library": "fastlstm", "cold_mib": 50.0, "warm_mib": 30.0},
    ...                {"library": "torch", "cold_mib": 100.0, "warm_mib": 0.0}])
    {'cold': 0.5, 'warm': None}
    >>> memory_ratios([{"library": "fastlstm", "cold_mib": 50.0, "warm_mib": 30.0}])
    {'cold': None, 'warm': None}
    """
    by_lib = {r["library"]: r for r in records}
    over: dict[str, float | None] = {"cold": None, "warm": None}
    if "fastlstm" in by_lib and "torch" in by_lib:
        for phase in over:
            ours, theirs = by_lib["fastlstm"][phase + "_mib"], by_lib["torch"][phase + "_mib"]
            if ours is not None and theirs is not None and theirs > 0:
                over[phase] = ours / theirs
    return over


def memory_section(threads: int, report: Report) -> None:
    """Run :func:`memory_child` for each library in a fresh subprocess."""
    b, t, i, h = MEMORY_SHAPE
    rows = []
    records = []
    libs = []
    if fastlstm_error() is None:
        libs.append("fastlstm")
    if _peers.peer_status()["torch"] is None:
        libs.append("torch")
    method = "?"
    # the child imports this very fastlstm, wherever it was imported from
    src = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    for lib in libs:
        log(f"memory: {lib} ...")
        proc = subprocess.run(
            [sys.executable, "-m", "fastlstm._bench._memory", lib, str(threads)],
            capture_output=True, text=True, timeout=600, env=env,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            report.note(f"memory child for {lib} failed: {last}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        method = res.get("method", method)
        mib = {p: None if res[p] is None else res[p] / 1024 for p in ("cold", "warm")}
        records.append({"library": lib, "cold_mib": mib["cold"], "warm_mib": mib["warm"]})
        rows.append([lib, fmt(mib["cold"], 1), fmt(mib["warm"], 1)])
    over = memory_ratios(records)
    if any(v is not None for v in over.values()):
        rows.append(["fastlstm / torch", fmt(over["cold"]), fmt(over["warm"])])
    activ = 4 * t * b * (4 * h + 2 * h) / 2**20
    report.data["memory"] = {"case": dict(zip("BTIH", MEMORY_SHAPE, strict=True)),
                             "threads": threads, "method": method, "results": records,
                             "fastlstm_over_torch": over}
    text = (f"### Peak memory of one training step (B,T,I,H={b},{t},{i},{h}, {threads} "
            f"thread(s); fresh process each; {method})\n\n"
            f"RSS growth in MiB during one forward+backward of the layer (training mode, "
            f"input gradient included); cold = first step in the process, "
            f"warm = second step. For scale: gates + cell states + outputs in float32 "
            f"take {activ:.0f} MiB.\n\n"
            + table(["library", "cold step MiB", "warm step MiB"], rows))
    report.sections.append(text)


if __name__ == "__main__":
    print(json.dumps(memory_child(sys.argv[1], int(sys.argv[2]))))
