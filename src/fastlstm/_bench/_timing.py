"""Timing for the benchmarks: a median-of-repeats timer, thread limits, peaks.

Two peaks put the timings on a scale, both measured in the same run as the
timings: the sgemm peak of the BLAS scipy ships (what a GEMM-bound kernel can
reach) and the FMA peak of the CPU's vector units (a register-only loop of
fused multiply-adds from the compiled kernels, the ceiling of any float32
kernel at that vector width).
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Timer", "fma_peak", "forward_flops", "log", "sgemm_peak", "thread_limit"]


def log(msg: str) -> None:
    """Progress to stderr (stdout carries the report)."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Timer:
    """Warm up, then the median of enough ``time.perf_counter`` repeats.

    Examples
    --------
    >>> timer = Timer(budget=0.0, min_reps=3, settle=0.0)
    >>> timer(lambda: sum(range(100))) > 0
    True
    >>> timer.count
    1
    """

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
        if med > 0 and (q75 - q25) / med > self.noisy_limit:
            self.noisy.append(float((q75 - q25) / med))
        return med


def forward_flops(b: int, t: int, i: int, h: int, gates: int = 4) -> float:
    """FLOPs of one single-layer forward: ``2*B*T*G*H*(I+H)`` (G = 4: the LSTM).

    The input projection and the recurrence (one fused kernel) together; the
    gate nonlinearities are not counted.

    Examples
    --------
    >>> forward_flops(1, 1, 1, 1)
    16.0
    >>> forward_flops(1, 1, 1, 1, gates=3)
    12.0
    """
    return 2.0 * t * b * gates * h * (i + h)


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


def fma_kernels() -> tuple[Any, str] | None:
    """(kernel module, variant) whose register-only FMA loop gives the peak.

    The variant in use if it has vector kernels, else the widest one built and
    supported here; None if no variant has an FMA loop.
    """
    from fastlstm import _kernels

    try:
        picked = _kernels.load()
    except (ImportError, ValueError):
        return None
    if picked.packed_width() > 0:
        return picked, picked.__name__.rsplit("_", 1)[-1]
    for name in reversed(_kernels.available_variants()):
        mod = _kernels.load(name)
        if mod.packed_width() > 0:
            return mod, name
    return None


def fma_peak(threads: int, seconds: float = 0.2, repeats: int = 3) -> float | None:
    """GFLOP/s of the FMA loop on ``threads`` Python threads at once (best of repeats).

    Each thread runs :func:`fma_kernels`' ``fma_peak_flops`` with the GIL
    released for about ``seconds``; the result is all threads' flops over the
    wall time. None if no kernel variant has the loop.
    """
    found = fma_kernels()
    if found is None:
        return None
    fma = found[0].fma_peak_flops
    # calibrate the iteration count to ~seconds per call
    probe = 100_000
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        fma(probe)
        best = min(best, time.perf_counter() - t0)
    iters = max(probe, int(probe * seconds / max(best, 1e-9)))
    peak = 0.0
    for _ in range(repeats):
        done = [0.0] * threads

        def work(k: int, done: list[float] = done) -> None:
            done[k] = fma(iters)

        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        t0 = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        wall = time.perf_counter() - t0
        peak = max(peak, sum(done) / wall / 1e9)
    return peak


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools (threadpoolctl) and torch to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    torch_prev = None
    torch = sys.modules.get("torch")
    if torch is not None:
        torch_prev = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch_prev is not None:
            torch.set_num_threads(torch_prev)
