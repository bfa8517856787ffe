"""Thread count, the shared thread pool, and BLAS thread control.

Kernels release the GIL, so plain Python threads run them in parallel; no
OpenMP runtime is shipped.  While our threads run, BLAS is held to one thread
so that the two never multiply.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from threadpoolctl import ThreadpoolController

from fastlstm.runtime.config import check_n_jobs, get_config, thread_budget

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_controller: ThreadpoolController | None = None
_caps = threading.local()  # thread_cap's limit, per calling thread


def usable_cores() -> int:
    """Return the number of cores this process may run on.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def effective_n_jobs(n_jobs: int | None) -> int:
    """Resolve an ``n_jobs`` setting to a thread count.

    ``-1`` means all usable cores, ``k > 0`` means ``k`` threads, ``-k``
    means all cores but ``k - 1`` (at least one), ``0`` is an error.  ``None``
    means ``get_config()["n_jobs"]`` if set, else the worker's thread budget
    inside a joblib or Dask worker, else all usable cores (see ``_config``).

    Examples
    --------
    >>> effective_n_jobs(3)
    3
    >>> effective_n_jobs(-1) == usable_cores()
    True
    """
    cap = getattr(_caps, "limit", None)
    if n_jobs is None:
        n_jobs = get_config()["n_jobs"]
    if n_jobs is None:
        budget = thread_budget()
        n = usable_cores() if budget is None else min(budget, usable_cores())
    else:
        n = check_n_jobs(n_jobs)
        if n < 0:
            n = max(1, usable_cores() + 1 + n)
    return n if cap is None else min(n, cap)


@contextlib.contextmanager
def thread_cap(limit: int | None) -> Iterator[None]:
    """At most ``limit`` threads for what this thread runs inside (None: no cap).

    :func:`effective_n_jobs` resolves any setting to at most ``limit`` while
    the block runs, in the calling thread only (other threads keep theirs);
    caps nest, the smallest wins.

    Examples
    --------
    >>> with thread_cap(1):
    ...     effective_n_jobs(4)
    1
    >>> effective_n_jobs(4)
    4
    """
    previous = getattr(_caps, "limit", None)
    if limit is not None:
        _caps.limit = max(1, limit) if previous is None else min(previous, max(1, limit))
    try:
        yield
    finally:
        _caps.limit = previous


def _pool_for(n_workers: int) -> ThreadPoolExecutor | None:
    """The shared pool, resized for ``n_workers`` workers; call with ``_lock`` held.

    The pool grows to what a call needs and shrinks back when a later call
    needs fewer workers than it has beyond the usable cores, so that one
    call with a huge ``n_jobs`` does not leave hundreds of idle threads.
    """
    global _pool, _pool_size
    grow = _pool is None or _pool_size < n_workers
    shrink = _pool is not None and _pool_size > max(n_workers, usable_cores())
    if grow or shrink:
        if _pool is not None:
            _pool.shutdown(wait=False)  # running tasks finish; idle workers exit
        _pool, _pool_size = None, 0
        if n_workers > 0:
            _pool_size = n_workers
            _pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="fastlstm")
    return _pool


def run_parallel(tasks: Sequence[Callable[[], None]]) -> None:
    """Run ``tasks`` on the shared pool, the first one in the calling thread.

    Every task is waited for; the first exception raised is re-raised.
    """
    if len(tasks) == 1:
        if _pool_size > usable_cores():  # a past call's extra threads: let them go
            with _lock:
                _pool_for(0)
        tasks[0]()
        return
    with _lock:  # submitted under the lock: a pool is never shut down between
        pool = _pool_for(len(tasks) - 1)
        futures = [pool.submit(task) for task in tasks[1:]]
    error: BaseException | None = None
    try:
        tasks[0]()
    except BaseException as exc:  # noqa: BLE001 - re-raised after the others finish
        error = exc
    for future in futures:
        try:
            future.result()
        except BaseException as exc:  # noqa: BLE001
            error = error or exc
    if error is not None:
        raise error


def run_grouped(tasks: Sequence[Callable[[], None]], n_threads: int) -> None:
    """Run ``tasks`` on at most ``n_threads`` threads, each a contiguous group in order.

    The tasks are fixed by the data (one per row chunk or GEMM block) and
    write disjoint outputs, so how many threads share them changes speed,
    never results.

    Examples
    --------
    >>> done = []
    >>> run_grouped([lambda i=i: done.append(i) for i in range(5)], 1)
    >>> done
    [0, 1, 2, 3, 4]
    """
    groups = max(1, min(int(n_threads), len(tasks)))
    if groups >= len(tasks):
        run_parallel(tasks)
        return
    cut = [len(tasks) * g // groups for g in range(groups + 1)]

    def group(lo: int, hi: int) -> None:
        for task in tasks[lo:hi]:
            task()

    run_parallel([lambda lo=lo, hi=hi: group(lo, hi)
                  for lo, hi in zip(cut[:-1], cut[1:], strict=True)])


_blas_lock = threading.Lock()
_blas_holders = 0
_blas_saved: list[tuple[Any, int]] = []  # (library, its thread count before the first holder)


def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded in the process."""
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return [lib for lib in _controller.lib_controllers if lib.user_api == "blas"]


@contextlib.contextmanager
def blas_single_threaded() -> Iterator[None]:
    """Context manager holding every loaded BLAS to one thread.

    Reference-counted across threads: the first holder sets the limit and
    the last one to leave restores exactly the limits found by the first, so
    concurrent or nested holders never restore each other's limits in the
    wrong order (which could leave the process's BLAS at one thread).
    Entering while already held costs a lock and a counter; a first entry
    reads and sets each library's thread count directly (a few microseconds,
    where threadpoolctl's ``limit`` takes tens: it queries every library's
    full description).

    Examples
    --------
    >>> with blas_single_threaded():
    ...     with blas_single_threaded():  # nested: nothing more to do
    ...         pass
    """
    global _blas_holders, _blas_saved
    with _blas_lock:
        if _blas_holders == 0:
            _claim_openblas_control(True)
            try:
                _blas_saved = [(lib, lib.get_num_threads()) for lib in _blas_libraries()]
                for lib, n in _blas_saved:
                    if n != 1:
                        lib.set_num_threads(1)
            finally:
                _claim_openblas_control(False)
        _blas_holders += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_holders -= 1
            if _blas_holders == 0:
                saved, _blas_saved = _blas_saved, []
                _claim_openblas_control(True)
                try:
                    for lib, n in saved:
                        if n != 1 and n is not None:
                            lib.set_num_threads(n)
                finally:
                    _claim_openblas_control(False)


def _claim_openblas_control(claim: bool) -> None:
    """Let this thread set OpenBLAS's process-wide limit (``claim``), or give it up.

    threadpoolctl (>= 3.8) lets only one "controlling" thread change a
    pthreads OpenBLAS's thread count and silently ignores the others; the
    thread that restores the limits here may not be the one that set them,
    so it takes control first (our lock serializes our own changes) and
    hands it back after.
    """
    try:
        from threadpoolctl import OpenBLASController
        clear = OpenBLASController.clear_controlling_thread
    except (ImportError, AttributeError):  # older threadpoolctl: any thread may set
        return
    clear(force=claim)


_bad_step_rows: str | None = None


def _step_rows_override() -> int | None:
    """``FASTLSTM_STEP_ROWS`` as an int >= 0, or None (unset, or not an integer: warned once)."""
    global _bad_step_rows
    value = os.environ.get("FASTLSTM_STEP_ROWS")
    if value is None or not value.strip():
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        if value != _bad_step_rows:
            _bad_step_rows = value
            warnings.warn(f"FASTLSTM_STEP_ROWS={value!r} is not an integer and is ignored "
                          "(set it to a row count, 0 to disable blocking, or unset it)",
                          RuntimeWarning, stacklevel=2)
        return None


# OpenBLAS cores whose sgemm/dgemm have the unpacked "small matrix" kernels.
_SMALL_MATRIX_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
_small_matrix: bool | None = None


def blas_small_matrix_rows(n: int, k: int) -> int:
    """Rows per GEMM call that keep an (rows x k) @ (k x n) product on the unpacked path.

    OpenBLAS (>= 0.3.17, AVX-512 cores) multiplies small untransposed
    matrices without packing when rows * n * k <= 1e6; at recurrent-step
    sizes that is up to twice as fast.  Returns 0 (one call for all rows)
    where that path does not exist or blocks would be under 4 rows.  The
    answer depends only on the BLAS build, never on timing, so results stay
    reproducible.  ``FASTLSTM_STEP_ROWS`` overrides it (0 disables; a value
    that is not an integer is ignored, with a warning).

    Examples
    --------
    >>> blas_small_matrix_rows(512, 128) in (0, 15)
    True
    """
    global _small_matrix, _controller
    override = _step_rows_override()
    if override is not None:
        return override
    if _small_matrix is None:
        if _controller is None:
            _controller = ThreadpoolController()
        _small_matrix = False
        for info in _controller.info():
            # SciPy's LP64 OpenBLAS is the one behind scipy.linalg.cython_blas
            name = os.path.basename(info.get("filepath", ""))
            if info.get("internal_api") != "openblas" or "64_" in name:
                continue
            version = tuple(int(v) for v in re.findall(r"\d+", info.get("version") or "")[:3])
            core = (info.get("architecture") or "").lower()
            _small_matrix = core in _SMALL_MATRIX_CORES and version >= (0, 3, 17)
    if not _small_matrix:
        return 0
    rows = int(1e6 // (n * k))
    return rows if rows >= 4 else 0
