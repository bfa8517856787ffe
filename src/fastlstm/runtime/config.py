"""Process-wide settings, and the thread budget that ``n_jobs=None`` resolves to.

``n_jobs=None`` (the default of the estimators and layers) does not always
mean "all cores": inside a worker of a parallel engine that already runs
several tasks on the machine, it means that worker's share.  In order:

1. the process-wide setting ``set_config(n_jobs=...)`` /
   ``config_context(n_jobs=...)``, when it is not None;
2. ``OMP_NUM_THREADS``, the per-process thread count that joblib's process
   workers (``cpu_count() // n_jobs``, or ``inner_max_num_threads``) and
   Dask's nannies (1 by default) set in their workers, capped at the usable
   cores;
3. one thread inside a joblib worker thread or a Dask worker thread, whose
   siblings are already using the other cores;
4. otherwise every usable core.

An explicit ``n_jobs`` on an estimator or a layer always wins.
"""

from __future__ import annotations

import numbers
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["config_context", "get_config", "set_config", "thread_budget"]

_lock = threading.Lock()
_settings: dict[str, Any] = {"n_jobs": None}


class _Unchanged:
    """Marker of an argument left out: the setting keeps its value."""

    def __repr__(self) -> str:
        return "<unchanged>"


_UNCHANGED: Any = _Unchanged()


def get_config() -> dict[str, Any]:
    """Return a copy of fastlstm's process-wide settings.

    Returns
    -------
    config : dict
        ``{"n_jobs": ...}``: the thread count that estimators and layers
        created with ``n_jobs=None`` use (None: decided per call, see
        :func:`set_config`).

    See Also
    --------
    set_config, config_context

    Examples
    --------
    >>> import fastlstm
    >>> fastlstm.get_config()
    {'n_jobs': None}
    """
    with _lock:
        return dict(_settings)


def set_config(*, n_jobs: int | None = _UNCHANGED) -> None:
    """Change fastlstm's process-wide settings.

    The settings are global to the process (all threads see them); they do
    not travel to other processes, such as joblib's or Dask's workers: there,
    call ``set_config`` in the worker (for Dask, ``client.run(set_config,
    n_jobs=1)``), or set ``OMP_NUM_THREADS`` in the workers' environment.

    Parameters
    ----------
    n_jobs : int or None, optional
        Threads used by estimators and layers whose own ``n_jobs`` is None:
        ``k > 0`` for ``k`` threads, ``-1`` for all usable cores, ``-k`` for
        all but ``k - 1``.  None (the initial value) picks per call: the
        worker's thread budget inside a joblib or Dask worker
        (``OMP_NUM_THREADS`` if set, else one thread in a worker thread),
        otherwise all usable cores.  Left out, the setting is unchanged.

    Raises
    ------
    TypeError
        If ``n_jobs`` is not an int or None.
    ValueError
        If ``n_jobs`` is 0.

    See Also
    --------
    get_config, config_context

    Examples
    --------
    >>> import fastlstm
    >>> fastlstm.set_config(n_jobs=1)
    >>> fastlstm.get_config()["n_jobs"]
    1
    >>> fastlstm.set_config(n_jobs=None)
    """
    if n_jobs is _UNCHANGED:
        return
    if n_jobs is not None:
        n_jobs = check_n_jobs(n_jobs)  # the same rules and errors as everywhere
    with _lock:
        _settings["n_jobs"] = n_jobs


def check_n_jobs(n_jobs: object) -> int:
    """An explicit ``n_jobs`` (not None) as an int: any int but 0.

    Examples
    --------
    >>> from fastlstm.runtime.config import check_n_jobs
    >>> check_n_jobs(-1)
    -1
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"n_jobs must be an int or None, got {n_jobs!r}")
    if int(n_jobs) == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None or -1 for all cores, or k > 0")
    return int(n_jobs)


@contextmanager
def config_context(*, n_jobs: int | None = _UNCHANGED) -> Iterator[None]:
    """Change fastlstm's settings inside a ``with`` block, then restore them.

    Like scikit-learn's ``config_context``, but the settings are process-wide
    rather than per thread: fastlstm's own worker threads, and every other
    thread of the process, see them while the block runs.

    Parameters
    ----------
    n_jobs : int or None, optional
        As for :func:`set_config`.

    See Also
    --------
    get_config, set_config

    Examples
    --------
    >>> import fastlstm
    >>> with fastlstm.config_context(n_jobs=1):
    ...     fastlstm.get_config()["n_jobs"]
    1
    >>> fastlstm.get_config()["n_jobs"] is None
    True
    """
    old = get_config()
    set_config(n_jobs=n_jobs)
    try:
        yield
    finally:
        set_config(**old)


def _omp_num_threads() -> int | None:
    """The first entry of ``OMP_NUM_THREADS`` if it is a positive integer."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        threads = int(value)
    except ValueError:
        return None
    return threads if threads > 0 else None


def _in_joblib_worker() -> bool:
    """Whether this thread runs a task of a joblib ``Parallel`` call."""
    parallel = sys.modules.get("joblib.parallel")
    if parallel is None:
        return False
    try:
        backend, _ = parallel.get_active_backend()
    except Exception:  # noqa: BLE001 - an unknown joblib: assume no worker
        return False
    return (getattr(backend, "nesting_level", None) or 0) >= 1


def _in_dask_worker() -> bool:
    """Whether this thread runs a task of a ``dask.distributed`` worker."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except (ValueError, AttributeError):
        return False
    return True


def thread_budget() -> int | None:
    """The thread count a parallel engine gave this worker, or None outside one.

    ``OMP_NUM_THREADS`` when it is set (joblib's process workers and Dask's
    nannies set it), else 1 inside a joblib or Dask worker thread, else None.

    Examples
    --------
    >>> budget = thread_budget()      # None here, in the main thread
    >>> budget is None or budget >= 1
    True
    """
    threads = _omp_num_threads()
    if threads is not None:
        return threads
    if _in_joblib_worker() or _in_dask_worker():
        return 1
    return None
