"""Compare fastlstm with PyTorch and ONNX Runtime on this machine.

Run (see bench/README.md for why the environment variables are unset)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py --quick \\
        --markdown results.md --plot results.png

Prints a markdown report: machine and library facts, the dense-shape table
(forward and forward+backward times, GFLOP/s and % of this run's measured
sgemm peak, peer ratios > 1 meaning fastlstm is faster), ragged batches,
streaming single steps and the memory of one training step.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _peers  # noqa: E402

try:
    import fastlstm

    FL_ERROR: str | None = None if hasattr(fastlstm, "LSTM") else "fastlstm.LSTM missing"
except Exception as exc:  # fastlstm not built yet: peers still run
    fastlstm = None  # type: ignore[assignment]
    FL_ERROR = f"fastlstm not importable ({type(exc).__name__}: {exc})"

Shape = tuple[int, int, int, int]  # B, T, I, H

DEFAULT_CASES: list[Shape] = [
    (32, 50, 16, 64),
    (64, 100, 64, 128),
    (128, 100, 128, 256),
    (64, 100, 256, 512),
    (16, 200, 32, 128),
    (1, 100, 32, 128),
]
PLOT_HIDDEN = [32, 64, 128, 256, 512]  # B=64, T=100, I=64
PLOT_BATCH = [1, 4, 16, 64, 256]  # T=100, I=64, H=128
RAGGED = (64, 100, 64, 128)  # B, T_max, I, H; lengths uniform in [25, 100]
STREAM = (1, 32, 128)  # B, I, H
STREAM_STEPS = 200
MEMORY_SHAPE: Shape = (128, 100, 128, 256)
PARITY_TOL = 1e-4
SEED = 1234


# --------------------------------------------------------------------------- timing


@dataclass
class Timer:
    """Warm up, then the median of enough ``time.perf_counter`` repeats."""

    budget: float  # seconds of timed repeats per measurement (at least min_reps)
    min_reps: int
    max_reps: int = 500
    # Idle time when the timed library changes: OpenBLAS and OpenMP workers of
    # the previous one spin for ~0.1-0.2 s after their last call, and on a
    # 2-core machine that spinning steals a core from the next library.
    settle: float = 0.25
    noisy_limit: float = 0.25  # interquartile range / median above this counts as noisy
    count: int = 0
    noisy: list[float] = field(default_factory=list)
    _last_lib: str = ""

    def used(self, lib: str) -> None:
        """Record that ``lib`` ran outside the timer (the next timing settles first)."""
        self._last_lib = lib

    def times(self, fn: Callable[[], Any], lib: str = "") -> list[float]:
        """Seconds of each timed call of ``fn`` after one warm-up call."""
        if lib != self._last_lib:
            time.sleep(self.settle)
            self._last_lib = lib
        fn()  # first call: lazy allocation, JIT, thread-pool start-up
        times: list[float] = []
        total = 0.0
        while len(times) < self.max_reps and (len(times) < self.min_reps or total < self.budget):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
            total += times[-1]
        return times

    def __call__(self, fn: Callable[[], Any], lib: str = "") -> float:
        """Median seconds per call of ``fn``; ``lib`` names the library timed."""
        times = self.times(fn, lib)
        med = statistics.median(times)
        q25, q75 = np.percentile(times, [25, 75])
        self.count += 1
        if (q75 - q25) / med > self.noisy_limit:
            self.noisy.append(float((q75 - q25) / med))
        return med


def timed(timer: Timer, report: Report, what: str, fn: Callable[[], Any],
          lib: str) -> float | None:
    """``timer(fn, lib)``, or None with a note if ``fn`` raises (one broken case
    must not end the whole run)."""
    try:
        return timer(fn, lib)
    except Exception as exc:  # reported in the notes, the run goes on
        report.note(f"{what} failed: {type(exc).__name__}: {exc}")
        return None


def forward_flops(b: int, t: int, i: int, h: int) -> float:
    """GEMM FLOPs of one single-layer forward: 2*T*B*4H*(I+H)."""
    return 2.0 * t * b * 4 * h * (i + h)


def sgemm_peak(timer: Timer, n: int = 2048) -> float:
    """GFLOP/s of an n^3 sgemm through scipy's BLAS at the current thread limit."""
    from scipy.linalg.blas import sgemm

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    c = np.asfortranarray(np.zeros((n, n), dtype=np.float32))
    # Best, not median: a peak, and robust to other processes' bursts.
    sec = min(timer.times(lambda: sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True), "blas"))
    return 2.0 * n**3 / sec / 1e9


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and torch to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    torch_prev = None
    with contextlib.suppress(ImportError):
        import torch

        torch_prev = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch_prev is not None:
            import torch

            torch.set_num_threads(torch_prev)


# --------------------------------------------------------------------------- helpers


def make_layer(i: int, h: int, threads: int) -> Any:
    """A seeded single-layer fastlstm.LSTM using ``threads`` threads."""
    return fastlstm.LSTM(i, h, n_jobs=threads, random_state=SEED)


def weights(i: int, h: int, threads: int) -> tuple[Any, dict[str, np.ndarray]]:
    """(fastlstm layer or None, its state dict as NumPy) for one shape."""
    if FL_ERROR is None:
        layer = make_layer(i, h, threads)
        return layer, _peers.state_dict_numpy(layer.state_dict())
    return None, _peers.random_state_dict(i, h, seed=SEED)


def inputs(b: int, t: int, i: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded input (B, T, I) and output gradient (B, T, H), float32."""
    rng = np.random.default_rng(SEED + b + t + i + h)
    x = rng.standard_normal((b, t, i), dtype=np.float32)
    d_out = rng.standard_normal((b, t, h), dtype=np.float32)
    return x, d_out


def fl_train_step(layer: Any, x: np.ndarray, d_out: np.ndarray, lengths: Any = None) -> None:
    """One fastlstm forward(training=True) + backward."""
    layer.forward(x, lengths=lengths, training=True)
    layer.backward(d_out)


def fmt(v: float | None, digits: int = 2) -> str:
    """Number or 'n/a'."""
    if v is None or not np.isfinite(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def ratio(peer: float | None, ours: float | None) -> str:
    """``peer / ours`` as e.g. '1.85x' (> 1: fastlstm faster)."""
    if peer is None or ours is None:
        return "n/a"
    return f"{peer / ours:.2f}x"


@dataclass
class Report:
    """Collected results and notes, rendered as markdown at the end."""

    header: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parity: list[str] = field(default_factory=list)

    def note(self, msg: str) -> None:
        """Record a note and echo it to stderr."""
        if msg not in self.notes:
            self.notes.append(msg)
            log(f"note: {msg}")

    def render(self) -> str:
        """The whole report as markdown."""
        parts = ["\n".join(self.header), *self.sections]
        if self.parity:
            parts.append("### Parity checks (max abs difference vs fastlstm)\n\n"
                         + "\n".join(self.parity))
        if self.notes:
            parts.append("### Notes\n\n" + "\n".join(f"- {n}" for n in self.notes))
        return "\n\n".join(parts) + "\n"


def log(msg: str) -> None:
    """Progress to stderr (stdout carries the report)."""
    print(msg, file=sys.stderr, flush=True)


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- environment


def environment(threads: Sequence[int]) -> list[str]:
    """Machine, versions and BLAS facts for the top of the report."""
    import scipy
    import scipy.linalg  # noqa: F401 - loads scipy's OpenBLAS for threadpool_info
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "scipy": scipy.__version__}
    for mod in ("torch", "onnxruntime", "onnx"):
        try:
            versions[mod] = importlib_version(mod)
        except Exception:
            versions[mod] = "not installed"
    versions["fastlstm"] = getattr(fastlstm, "__version__", "?") if fastlstm else "not importable"
    lines = [
        "## fastlstm benchmark",
        "",
        f"- CPU: {cpu}; {os.cpu_count()} logical cores, {usable} usable; "
        f"threads compared: {', '.join(map(str, threads))}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
    ]
    with contextlib.suppress(Exception):
        from fastlstm._kernels import _cpu

        level = _cpu.cpu_level()
        lines.append(f"- fastlstm kernel level: {level} "
                     f"({['portable', 'AVX2+FMA', 'AVX-512'][level]})")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        val = os.environ.get(var)
        lines.append(f"- {var}: " + (f"**set** ({val!r})" if val is not None else "not set"))
    if os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE"):
        lines.append("- **warning**: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; sgemm runs "
                     "old kernels. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.")
    lines.append("- BLAS / thread pools (threadpoolctl):")
    for info in threadpool_info():
        lines.append(
            f"  - {info.get('internal_api')} {info.get('version')} "
            f"arch={info.get('architecture', '-')} num_threads={info.get('num_threads')} "
            f"({Path(info.get('filepath', '')).name})"
        )
    if hasattr(os, "getloadavg"):
        lines.append(f"- load average at start: {os.getloadavg()[0]:.2f} "
                     "(the machine may be shared: > 0.5 means contention)")
    return lines


def importlib_version(mod: str) -> str:
    """Version of an importable module."""
    import importlib

    m = importlib.import_module(mod)
    return str(getattr(m, "__version__", "?"))


# --------------------------------------------------------------------------- dense shapes


@dataclass
class ShapeResult:
    """Seconds per call for one shape and thread count (None: not measured)."""

    fl_fwd: float | None = None
    fl_fb: float | None = None
    torch_fwd: float | None = None
    torch_fb: float | None = None
    ort_fwd: float | None = None
    mismatch: set[str] = field(default_factory=set)  # peers failing the parity check


def check_parity(shape: Shape, layer: Any, peers: dict[str, Any], x: np.ndarray,
                 d_out: np.ndarray, report: Report) -> dict[str, bool]:
    """Compare peers with fastlstm (or torch with ORT); return which peers pass."""
    ok: dict[str, bool] = {}
    label = "B,T,I,H=" + ",".join(map(str, shape))
    ref = None
    if layer is not None:
        out, (h, c) = layer.forward(x)
        ref = ("fastlstm", np.asarray(out), np.asarray(h), np.asarray(c))
    parts = []
    if "torch" in peers:
        t = peers["torch"]
        tout, th, tc = (a.numpy() for a in t.forward(t.tensor(x)))
        if ref is None:
            ref = ("torch", tout, th, tc)
        else:
            err = max(_peers.max_abs_diff(ref[1], tout), _peers.max_abs_diff(ref[2], th),
                      _peers.max_abs_diff(ref[3], tc))
            ok["torch"] = err <= PARITY_TOL
            parts.append(f"torch fwd {err:.1e}")
            if layer is not None:
                parts.append(_grad_parity(layer, t, x, d_out))
    if "ort" in peers and ref is not None:
        o = peers["ort"]
        y, oh, oc = o.forward(x)
        err = max(_peers.max_abs_diff(ref[1], y), _peers.max_abs_diff(ref[2], oh),
                  _peers.max_abs_diff(ref[3], oc))
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
                  check: bool = True) -> ShapeResult:
    """Time fastlstm and the peers on one dense shape at ``threads`` threads."""
    b, t, i, h = shape
    layer, sd = weights(i, h, threads)
    peers = _peers.build_peers(sd, threads, report.notes)
    x, d_out = inputs(b, t, i, h)
    ok: dict[str, bool] = {}
    if check:
        try:
            ok = check_parity(shape, layer, peers, x, d_out, report)
        except Exception as exc:  # reported; timings still run
            report.note(f"parity check {shape} failed: {type(exc).__name__}: {exc}")
        timer.used("parity check")
    res = ShapeResult()
    what = f"{shape} at {threads} thread(s)"
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


def dense_section(cases: Sequence[Shape], thread_counts: Sequence[int], timer: Timer,
                  report: Report, cache: dict[tuple[Shape, int], ShapeResult]) -> None:
    """The main table: every case at every thread count."""
    rows = []
    peaks = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] sgemm peak ...")
            peak = sgemm_peak(Timer(budget=timer.budget, min_reps=3, max_reps=10,
                                    settle=timer.settle))
            peaks.append(f"{n} thread(s): {peak:.0f} GFLOP/s")
            for shape in cases:
                log(f"[{n} thread(s)] {shape} ...")
                r = measure_shape(shape, n, timer, report, check=(n == thread_counts[0]))
                cache[(shape, n)] = r
                rows.append(_dense_row(shape, n, r, peak))
    head = ["B,T,I,H", "thr", "fl fwd ms", "fl f+b ms", "fl fwd GF/s (%pk)",
            "fl f+b GF/s (%pk)", "torch fwd ms", "torch f+b ms", "ORT fwd ms",
            "torch/fl fwd", "torch/fl f+b", "ORT/fl fwd"]
    text = ("### Dense batches (median ms; ratios = peer / fastlstm, > 1: fastlstm faster)\n\n"
            "sgemm 2048^3 peak (best of repeats) through scipy.linalg.blas.sgemm, "
            f"this run: {'; '.join(peaks)}. "
            "FLOPs: forward 2*T*B*4H*(I+H), forward+backward 3x that. fastlstm forward is "
            "`training=False`; torch forward under `inference_mode`, torch f+b includes "
            "dx; ORT gets time-major input (its native layout).\n\n" + table(head, rows))
    report.sections.append(text)


def _dense_row(shape: Shape, n: int, r: ShapeResult, peak: float) -> list[str]:
    f = forward_flops(*shape)
    bad = r.mismatch

    def gf(sec: float | None, flops: float) -> str:
        if sec is None:
            return "n/a"
        g = flops / sec / 1e9
        return f"{g:.1f} ({100 * g / peak:.0f}%)"

    def ms(sec: float | None, peer: str = "") -> str:
        return fmt(None if sec is None else 1e3 * sec) + ("!" if peer in bad else "")

    return [",".join(map(str, shape)), str(n), ms(r.fl_fwd), ms(r.fl_fb),
            gf(r.fl_fwd, f), gf(r.fl_fb, 3 * f), ms(r.torch_fwd, "torch"),
            ms(r.torch_fb, "torch"), ms(r.ort_fwd, "ort"), ratio(r.torch_fwd, r.fl_fwd),
            ratio(r.torch_fb, r.fl_fb), ratio(r.ort_fwd, r.fl_fwd)]


# --------------------------------------------------------------------------- ragged


def ragged_section(thread_counts: Sequence[int], timer: Timer, report: Report) -> None:
    """Variable lengths: fastlstm with lengths vs padded vs torch PackedSequence."""
    b, t, i, h = RAGGED
    rng = np.random.default_rng(SEED)
    lengths = rng.integers(25, t + 1, size=b)  # uniform in [25, 100]
    x, d_out = inputs(b, t, i, h)
    mask = (np.arange(t)[None, :] < lengths[:, None])[..., None]
    x = np.where(mask, x, 0).astype(np.float32)
    rows = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] ragged ...")
            res = _ragged_one(n, x, d_out, lengths, timer, report,
                              check=(n == thread_counts[0]))
        for key, label in (("lengths", "fastlstm, lengths="), ("padded", "fastlstm, padded"),
                           ("torch", "torch PackedSequence")):
            sec = res[key]
            rows.append([label, str(n), fmt(None if sec is None else 1e3 * sec),
                         ratio(sec, res["lengths"])])
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


# --------------------------------------------------------------------------- streaming


def streaming_section(thread_counts: Sequence[int], timer: Timer, report: Report) -> None:
    """One step at B=1 with carried state: fastlstm.step vs nn.LSTMCell, µs/step."""
    b, i, h = STREAM
    xs = np.random.default_rng(SEED).standard_normal((STREAM_STEPS, b, i), dtype=np.float32)
    rows = []
    for n in thread_counts:
        with thread_limit(n):
            log(f"[{n} thread(s)] streaming ...")
            fl_us, fl_note, t_us = _stream_one(n, xs, timer, report,
                                               check=(n == thread_counts[0]))
        rows.append([str(n), fmt(fl_us) if fl_us is not None else fl_note, fmt(t_us),
                     ratio(t_us, fl_us)])
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
        fl_note = "n/a (fastlstm not importable)"
    elif not hasattr(layer, "step"):
        fl_note = "n/a (no LSTM.step yet)"
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


# --------------------------------------------------------------------------- memory


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


def memory_section(threads: int, report: Report) -> None:
    """Run :func:`memory_child` for each library in a fresh subprocess."""
    b, t, i, h = MEMORY_SHAPE
    rows = []
    libs = []
    if FL_ERROR is None:
        libs.append("fastlstm")
    if _peers.peer_status()["torch"] is None:
        libs.append("torch")
    method = "?"
    for lib in libs:
        log(f"memory: {lib} ...")
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", lib, "--threads", str(threads)],
            capture_output=True, text=True, timeout=600,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            report.note(f"memory child for {lib} failed: {last}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        method = res.get("method", method)
        rows.append([lib, *(fmt(None if res[p] is None else res[p] / 1024, 1)
                            for p in ("cold", "warm"))])
    activ = 4 * t * b * (4 * h + 2 * h) / 2**20
    text = (f"### Peak memory of one training step (B,T,I,H={b},{t},{i},{h}, {threads} "
            f"thread(s); fresh process each; {method})\n\n"
            f"RSS growth in MiB during forward+backward; cold = first step in the process, "
            f"warm = second step. For scale: gates + cell states + outputs in float32 "
            f"take {activ:.0f} MiB.\n\n"
            + table(["library", "cold step MiB", "warm step MiB"], rows))
    report.sections.append(text)


# --------------------------------------------------------------------------- plot


def plot(path: str, threads: int, timer: Timer, report: Report,
         cache: dict[tuple[Shape, int], ShapeResult]) -> None:
    """Two panels: time vs hidden size and vs batch size, at ``threads`` threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [("hidden size H (B=64, T=100, I=64)", [(64, 100, 64, hh) for hh in PLOT_HIDDEN],
               PLOT_HIDDEN),
              ("batch size B (T=100, I=64, H=128)", [(bb, 100, 64, 128) for bb in PLOT_BATCH],
               PLOT_BATCH)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    with thread_limit(threads):
        for ax, (xlabel, shapes, xs) in zip(axes, sweeps, strict=True):
            results = []
            for shape in shapes:
                if (shape, threads) not in cache:
                    log(f"[plot, {threads} thread(s)] {shape} ...")
                    cache[(shape, threads)] = measure_shape(shape, threads, timer, report,
                                                            check=False)
                results.append(cache[(shape, threads)])
            series = [("fastlstm fwd+bwd", "fl_fb", "C0", "-"),
                      ("torch fwd+bwd", "torch_fb", "C1", "-"),
                      ("fastlstm fwd", "fl_fwd", "C0", "--"),
                      ("torch fwd", "torch_fwd", "C1", "--"),
                      ("ORT fwd", "ort_fwd", "C2", "--")]
            for label, attr, color, style in series:
                ys = [getattr(r, attr) for r in results]
                if all(y is None for y in ys):
                    continue
                ax.plot(xs, [np.nan if y is None else 1e3 * y for y in ys], style,
                        color=color, marker="o", label=label)
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(v) for v in xs])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("ms (median)")
            ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fastlstm vs peers, {threads} thread(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    report.sections.append(f"Plot written to `{path}` ({threads} thread(s)).")


# --------------------------------------------------------------------------- main


def parse_case(text: str) -> Shape:
    """'B,T,I,H' -> tuple."""
    parts = [int(p) for p in text.replace("x", ",").split(",")]
    if len(parts) != 4 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"case must be B,T,I,H positive ints, got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help=f"thread counts (default: 1 and all usable cores = {usable})")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (< ~2 minutes)")
    ap.add_argument("--cases", type=parse_case, nargs="+", default=None,
                    help="dense shapes as B,T,I,H (default: the six standard cases)")
    ap.add_argument("--markdown", help="also write the report to this file")
    ap.add_argument("--plot", help="write a PNG of time vs hidden size and batch size")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["dense", "ragged", "streaming", "memory"],
                    help="sections to leave out")
    ap.add_argument("--memory-child", choices=["fastlstm", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    thread_counts = args.threads or sorted({1, usable or 1})

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, thread_counts[-1])))
        return 0

    start = time.perf_counter()
    timer = (Timer(budget=0.1, min_reps=3, max_reps=100) if args.quick
             else Timer(budget=0.5, min_reps=5, max_reps=500))
    report = Report()
    if FL_ERROR is not None:
        report.note(f"{FL_ERROR}: fastlstm columns are n/a; peers use random weights")
    for name, reason in _peers.peer_status().items():
        if reason is not None:
            report.note(f"peer {name} skipped: {reason}")
    report.header = environment(thread_counts)
    cache: dict[tuple[Shape, int], ShapeResult] = {}
    if "dense" not in args.skip:
        dense_section(args.cases or DEFAULT_CASES, thread_counts, timer, report, cache)
    if "ragged" not in args.skip:
        ragged_section(thread_counts, timer, report)
    if "streaming" not in args.skip:
        streaming_section(thread_counts, timer, report)
    if "memory" not in args.skip:
        memory_section(thread_counts[-1], report)
    if args.plot:
        plot(args.plot, thread_counts[-1], timer, report, cache)
    if timer.noisy:
        report.note(f"{len(timer.noisy)} of {timer.count} measurements were noisy "
                    f"(interquartile range > {timer.noisy_limit:.0%} of the median, worst "
                    f"{max(timer.noisy):.0%}): another process was probably using the cores")
    if hasattr(os, "getloadavg"):
        report.note(f"load average at end: {os.getloadavg()[0]:.2f}; total wall time "
                    f"{time.perf_counter() - start:.0f} s")
    text = report.render()
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
