"""Thread count, the shared thread pool, and BLAS thread control.

Kernels release the GIL, so plain Python threads run them in parallel; no
OpenMP runtime is shipped.  While our threads run, BLAS is held to one thread
so that the two never multiply.
"""

from __future__ import annotations

import numbers
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from threadpoolctl import ThreadpoolController

from fastlstm._config import get_config, thread_budget

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_controller: ThreadpoolController | None = None


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
    if n_jobs is None:
        n_jobs = get_config()["n_jobs"]
    if n_jobs is None:
        budget = thread_budget()
        return usable_cores() if budget is None else min(budget, usable_cores())
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}")
    n_jobs = int(n_jobs)
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None or -1 for all cores, or k > 0")
    if n_jobs < 0:
        return max(1, usable_cores() + 1 + n_jobs)
    return n_jobs


def run_parallel(tasks: Sequence[Callable[[], None]]) -> None:
    """Run ``tasks`` on the shared pool, the first one in the calling thread.

    Every task is waited for; the first exception raised is re-raised.
    """
    global _pool, _pool_size
    if len(tasks) == 1:
        tasks[0]()
        return
    with _lock:
        if _pool is None or _pool_size < len(tasks) - 1:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool_size = len(tasks) - 1
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="fastlstm")
        pool = _pool
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


def blas_single_threaded():
    """Context manager holding every loaded BLAS to one thread.

    Examples
    --------
    >>> with blas_single_threaded():
    ...     pass
    """
    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


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
    reproducible.  ``FASTLSTM_STEP_ROWS`` overrides it (0 disables).

    Examples
    --------
    >>> blas_small_matrix_rows(512, 128) in (0, 15)
    True
    """
    global _small_matrix, _controller
    override = os.environ.get("FASTLSTM_STEP_ROWS")
    if override is not None:
        return max(0, int(override))
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
