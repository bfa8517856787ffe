"""Peaks and dense batches: fastlstm vs PyTorch and ONNX Runtime at equal weights, per cell."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastlstm._bench import _peers
from fastlstm._bench._report import Report, fmt, ratio, table
from fastlstm._bench._shapes import PARITY_TOL, Shape, fl_train_step, inputs, weights
from fastlstm._bench._timing import (
    Timer,
    fma_kernels,
    fma_peak,
    forward_flops,
    log,
    sgemm_peak,
    thread_limit,
)

__all__ = ["ShapeResult", "dense_section", "measure_shape", "peaks_section"]


# --------------------------------------------------------------------------- peaks


def peaks_section(thread_counts: Sequence[int], timer: Timer, report: Report,
                  sgemm_n: int = 2048) -> dict[int, dict[str, Any]]:
    """sgemm and FMA peaks at each thread count; returns them by thread count."""
    found = fma_kernels()
    fma_variant = found[1] if found else None
    peaks: dict[int, dict[str, Any]] = {}
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] sgemm and FMA peaks ...")
            sg = sgemm_peak(Timer(budget=timer.budget, min_reps=3, max_reps=10,
                                  settle=timer.settle), n=sgemm_n)
            timer.used("blas")
            fma = fma_peak(n)
        peaks[n] = {"threads": n, "sgemm_gflops": sg, "fma_gflops": fma,
                    "fma_variant": fma_variant}
    report.data["peaks"] = list(peaks.values())
    report.data["sgemm_n"] = sgemm_n
    rows = [[str(n), fmt(p["sgemm_gflops"]), fmt(p["fma_gflops"])] for n, p in peaks.items()]
    how = (f"register-only FMA loop of the {fma_variant} kernels on n Python threads"
           if fma_variant else "n/a: no kernel variant with vector FMA is built")
    report.sections.append(
        "### Peaks (GFLOP/s, best of repeats, this run)\n\n"
        f"sgemm: {sgemm_n}^3 `scipy.linalg.blas.sgemm`; FMA: {how}.\n\n"
        + table(["thr", "sgemm GFLOP/s", "FMA peak GFLOP/s"], rows))
    if not fma_variant:
        report.note("no FMA peak: the kernels in use have no vector FMA loop")
    return peaks


# --------------------------------------------------------------------------- one shape


@dataclass
class ShapeResult:
    """Seconds per call for one shape and thread count (None: not measured)."""

    fl_fwd: float | None = None
    fl_fb: float | None = None
    torch_fwd: float | None = None
    torch_fb: float | None = None
    ort_fwd: float | None = None
    peers: set[str] = field(default_factory=set)  # peers that were built
    mismatch: set[str] = field(default_factory=set)  # peers failing the parity check


def timed(timer: Timer, report: Report, what: str, fn: Any, lib: str) -> float | None:
    """``timer(fn, lib)``, or None with a note if ``fn`` raises (one broken case
    must not end the whole run)."""
    try:
        return timer(fn, lib)
    except Exception as exc:  # reported in the notes, the run goes on
        report.note(f"{what} failed: {type(exc).__name__}: {exc}")
        return None


def check_parity(shape: Shape, layer: Any, peers: dict[str, Any], x: np.ndarray,
                 d_out: np.ndarray, report: Report, cell: str = "lstm") -> dict[str, bool]:
    """Compare peers with fastlstm (or ORT with torch); return which peers pass."""
    ok: dict[str, bool] = {}
    label = f"{cell} B,T,I,H=" + ",".join(map(str, shape))
    ref: Any = None
    if layer is not None:
        out, state = layer.forward(x)
        ref = ("fastlstm", out, *(state if isinstance(state, tuple) else (state,)))
    parts = []

    def err_vs_ref(arrays: Any) -> float:
        return max(_peers.max_abs_diff(a, b) for a, b in zip(ref[1:], arrays, strict=True))

    if "torch" in peers:
        t = peers["torch"]
        touts = [a.numpy() for a in t.forward(t.tensor(x))]
        if ref is None:
            ref = ("torch", *touts)
        else:
            err = err_vs_ref(touts)
            ok["torch"] = err <= PARITY_TOL
            parts.append(f"torch fwd {err:.1e}")
            if layer is not None:
                parts.append(_grad_parity(layer, t, x, d_out))
    if "ort" in peers and ref is not None:
        err = err_vs_ref(peers["ort"].forward(x))
        ok["ort"] = err <= PARITY_TOL
        parts.append(f"ORT fwd {err:.1e}" + ("" if ref[0] == "fastlstm" else " (vs torch)"))
        if err > PARITY_TOL:
            report.note(f"ORT output differs from {ref[0]} by {err:.2e} > {PARITY_TOL} at "
                        f"{label}; its timings are marked with '!'")
    if ok.get("torch") is False:
        report.note(f"torch output differs from fastlstm by more than {PARITY_TOL} at {label}; "
                    "its timings are marked with '!'")
    report.parity.append(f"- {label}: " + ("; ".join(parts) if parts else "no peers"))
    return ok


def _grad_parity(layer: Any, t: _peers.TorchLSTM, x: np.ndarray, d_out: np.ndarray) -> str:
    """Relative max error of fastlstm's dx and weight gradients vs torch."""
    try:
        layer.forward(x, training=True)
        grads, dx = layer.backward(d_out)
        xt = t.tensor(x, requires_grad=True)
        tdx = t.forward_backward(xt, t.tensor(d_out)).numpy()
        tg = t.grads()

        def rel(a: Any, b: np.ndarray) -> float:
            return _peers.max_abs_diff(a, b) / max(float(np.max(np.abs(b))), 1e-30)

        worst = {"dx": rel(dx, tdx)}
        if isinstance(grads, dict):
            for k, v in tg.items():
                if k in grads:
                    worst[k] = rel(grads[k], v)
        name = max(worst, key=lambda k: worst[k])
        return f"torch grads rel {worst[name]:.1e} (worst: {name})"
    except Exception as exc:  # report, don't abort the benchmark
        return f"torch grads not compared ({type(exc).__name__}: {exc})"


def measure_shape(shape: Shape, threads: int, timer: Timer, report: Report,
                  check: bool = True, cell: str = "lstm") -> ShapeResult:
    """Time fastlstm and the peers on one dense shape of ``cell`` at ``threads`` threads."""
    b, t, i, h = shape
    layer, sd = weights(i, h, threads, cell)
    skipped: list[str] = []
    peers = _peers.build_peers(sd, threads, skipped, cell=cell)
    for msg in skipped:
        report.note(msg)
    x, d_out = inputs(b, t, i, h)
    ok: dict[str, bool] = {}
    if check:
        try:
            ok = check_parity(shape, layer, peers, x, d_out, report, cell)
        except Exception as exc:  # reported; timings still run
            report.note(f"parity check {shape} failed: {type(exc).__name__}: {exc}")
        timer.used("parity check")
    res = ShapeResult(peers=set(peers))
    what = f"{cell} {shape} at {threads} thread(s)"
    if layer is not None:
        res.fl_fwd = timed(timer, report, f"fastlstm forward {what}",
                           lambda: layer.forward(x), "fastlstm")
        res.fl_fb = timed(timer, report, f"fastlstm forward+backward {what}",
                          lambda: fl_train_step(layer, x, d_out), "fastlstm")
    if "torch" in peers:
        tp: _peers.TorchLSTM = peers["torch"]
        xt, xg, dt = tp.tensor(x), tp.tensor(x, requires_grad=True), tp.tensor(d_out)
        res.torch_fwd = timed(timer, report, f"torch forward {what}",
                              lambda: tp.forward(xt), "torch")
        res.torch_fb = timed(timer, report, f"torch forward+backward {what}",
                             lambda: tp.forward_backward(xg, dt), "torch")
    if "ort" in peers:
        op: _peers.OrtLSTM = peers["ort"]
        x_tm = op.time_major(x)
        res.ort_fwd = timed(timer, report, f"ORT forward {what}", lambda: op.run(x_tm), "ort")
    res.mismatch = {k for k, v in ok.items() if not v}
    return res


# --------------------------------------------------------------------------- section


def dense_section(cases: Sequence[Shape], thread_counts: Sequence[int], timer: Timer,
                  report: Report, cache: dict[tuple[Shape, int], ShapeResult],
                  peaks: dict[int, dict[str, Any]], cells: Sequence[str] = ("lstm",)) -> None:
    """The main table: every cell and case at every thread count (the first
    cell's results go into ``cache``, for the plot)."""
    from fastlstm.nn import registry

    rows = []
    records = []
    for n in thread_counts:
        with thread_limit(n):
            for cell in cells:
                gates = registry.spec(cell).gates
                for shape in cases:
                    log(f"[{n} thread(s)] {cell} {shape} ...")
                    r = measure_shape(shape, n, timer, report, check=(n == thread_counts[0]),
                                      cell=cell)
                    if cell == cells[0]:
                        cache[(shape, n)] = r
                    rec = dense_record(shape, n, r, peaks.get(n, {}), cell, gates)
                    records.append(rec)
                    rows.append(_dense_row(rec, r.mismatch))
    report.data["dense"] = records
    head = ["cell", "B,T,I,H", "thr", "fl fwd ms", "fl f+b ms", "fl fwd GF/s", "fwd %sgemm",
            "fwd %FMA", "fl f+b GF/s (%sgemm)", "torch fwd ms", "torch f+b ms",
            "ORT fwd ms", "torch/fl fwd", "torch/fl f+b", "ORT/fl fwd"]
    text = ("### Dense batches (median ms; ratios = peer / fastlstm, > 1: fastlstm faster)\n\n"
            "FLOPs: forward 2*B*T*G*H*(I+H) (G gate blocks: LSTM 4, GRU 3; input "
            "projection and recurrence, one fused kernel), forward+backward 3x that; % of "
            "the peaks above at the same thread count. Peers run the same cell "
            "(torch.nn.LSTM / GRU; ONNX LSTM / GRU with linear_before_reset=1). fastlstm "
            "forward is `training=False`; torch forward under "
            "`inference_mode`, torch f+b includes dx; ORT gets time-major input (its "
            "native layout). n/a: peer absent or failed (see notes).\n\n"
            + table(head, rows))
    report.sections.append(text)


def _pct(gflops: float | None, peak: float | None) -> float | None:
    if gflops is None or not peak:
        return None
    return 100.0 * gflops / peak


def dense_record(shape: Shape, n: int, r: ShapeResult, peak: dict[str, Any],
                 cell: str = "lstm", gates: int = 4) -> dict[str, Any]:
    """One dense measurement as JSON-ready data (ms, GFLOP/s, % of peaks, ratios)."""
    f = forward_flops(*shape, gates=gates)

    def ms(sec: float | None) -> float | None:
        return None if sec is None else 1e3 * sec

    def gf(sec: float | None, flops: float) -> float | None:
        return None if sec is None or sec <= 0 else flops / sec / 1e9

    fwd_gf, fb_gf = gf(r.fl_fwd, f), gf(r.fl_fb, 3 * f)
    sg, fma = peak.get("sgemm_gflops"), peak.get("fma_gflops")
    rec: dict[str, Any] = {
        "cell": cell,
        "case": dict(zip("BTIH", shape, strict=True)),
        "threads": n,
        "forward_flops": f,
        "fastlstm": {
            "forward_ms": ms(r.fl_fwd), "train_ms": ms(r.fl_fb),
            "forward_gflops": fwd_gf, "train_gflops": fb_gf,
            "forward_pct_sgemm_peak": _pct(fwd_gf, sg), "forward_pct_fma_peak": _pct(fwd_gf, fma),
            "train_pct_sgemm_peak": _pct(fb_gf, sg), "train_pct_fma_peak": _pct(fb_gf, fma),
        },
        "torch": None,
        "onnxruntime": None,
    }
    if "torch" in r.peers:
        rec["torch"] = {"forward_ms": ms(r.torch_fwd), "train_ms": ms(r.torch_fb),
                        "parity_ok": "torch" not in r.mismatch,
                        "forward_ratio": _div(r.torch_fwd, r.fl_fwd),
                        "train_ratio": _div(r.torch_fb, r.fl_fb)}
    if "ort" in r.peers:
        rec["onnxruntime"] = {"forward_ms": ms(r.ort_fwd), "parity_ok": "ort" not in r.mismatch,
                              "forward_ratio": _div(r.ort_fwd, r.fl_fwd)}
    return rec


def _div(peer: float | None, ours: float | None) -> float | None:
    return None if peer is None or ours is None or ours <= 0 else peer / ours


def _dense_row(rec: dict[str, Any], bad: set[str]) -> list[str]:
    fl = rec["fastlstm"]
    tp = rec["torch"] or {}
    ort = rec["onnxruntime"] or {}

    def ms(v: float | None, peer: str = "") -> str:
        return fmt(v) + ("!" if peer in bad and v is not None else "")

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{fmt(v)}%"

    fb = ("n/a" if fl["train_gflops"] is None
          else f"{fmt(fl['train_gflops'])} ({pct(fl['train_pct_sgemm_peak'])})")
    return [rec["cell"], ",".join(str(v) for v in rec["case"].values()), str(rec["threads"]),
            ms(fl["forward_ms"]), ms(fl["train_ms"]), fmt(fl["forward_gflops"]),
            pct(fl["forward_pct_sgemm_peak"]), pct(fl["forward_pct_fma_peak"]), fb,
            ms(tp.get("forward_ms"), "torch"), ms(tp.get("train_ms"), "torch"),
            ms(ort.get("forward_ms"), "ort"),
            ratio(tp.get("forward_ms"), fl["forward_ms"]),
            ratio(tp.get("train_ms"), fl["train_ms"]),
            ratio(ort.get("forward_ms"), fl["forward_ms"])]
