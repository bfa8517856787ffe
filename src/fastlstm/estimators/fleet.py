"""Fleets: one small independent forecasting model per series, fitted concurrently.

Each member is an :class:`LSTMRegressor` on its own series' windows with
its own per-window scaling, exactly what a single :class:`LSTMForecaster`
fitted on that series alone (with the member's seed) holds.  Members run
one per thread (the kernels release the GIL, members share nothing) or, with
``backend="dask"``, in chunks on the workers of the current
``dask.distributed`` client.  Each member trains with one thread and its own
seed, derived from ``random_state`` and its position only, so the result is
the same bit for bit at any ``n_jobs`` and on any backend.  With
``backend="processes"`` the chunks go to joblib's process workers (loky)
instead of threads: the Python work between kernel calls holds the GIL, so
processes scale further across cores than threads do.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from fastlstm.estimators.forecaster_core import WindowSpec, fit_regressor, forecast
from fastlstm.estimators.regressor import LSTMRegressor
from fastlstm.runtime.parallel import blas_single_threaded, effective_n_jobs
from fastlstm.runtime.warn import warn_user
from fastlstm.train.windows import WindowScaling

__all__ = ["derive_seeds", "fit_fleet", "fit_members", "forecast_fleet"]

_INT32_MAX = np.iinfo(np.int32).max


def derive_seeds(random_state: Any, n: int) -> list[int]:
    """The seed of each member: from ``random_state`` and the member's position.

    An int ``random_state`` gives ``SeedSequence([random_state, i])``'s
    first word for member ``i``; a ``RandomState`` (or None: NumPy's global
    one) gives one base number drawn from it, then the same.  A member
    fitted alone as ``LSTMForecaster(random_state=seed)`` is identical to
    the member.

    Examples
    --------
    >>> from fastlstm.estimators.fleet import derive_seeds
    >>> derive_seeds(0, 3) == derive_seeds(0, 3), len(set(derive_seeds(0, 3)))
    (True, 3)
    """
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        base = int(random_state)
    else:
        from sklearn.utils import check_random_state

        base = int(check_random_state(random_state).randint(_INT32_MAX))
    return [int(np.random.SeedSequence([base, i]).generate_state(1)[0] % _INT32_MAX)
            for i in range(n)]


def fit_members(params: dict, series: list[np.ndarray], spec: WindowSpec, seeds: list[int],
                fraction: float | None, scaling: str, old: list | None = None,
                quiet: bool = False) -> list[tuple[LSTMRegressor, WindowScaling]]:
    """Fit members one after the other in this thread (a Dask task runs this).

    Parameters
    ----------
    params : dict
        The inner regressor's parameters (``n_jobs=1``).
    series : list of ndarray
        One member's series each.
    spec : WindowSpec
    seeds : list of int
    fraction : float or None
        Validation fraction (early stopping) or None.
    scaling : str
        The per-window scaling method.
    old : list of (regressor, scaling), optional
        Members to continue (warm start).
    quiet : bool, default=False
        Silence the members' ConvergenceWarnings here (in a worker process:
        the fleet reports them once, counted).

    Returns
    -------
    members : list of (LSTMRegressor, WindowScaling)
    """
    out = []
    # (catch_warnings changes process-wide state: only where one task runs at a time)
    with blas_single_threaded(), warnings.catch_warnings() if quiet else nullcontext():
        if quiet:
            warnings.simplefilter("ignore", ConvergenceWarning)
        for i, (s, seed) in enumerate(zip(series, seeds, strict=True)):
            if old is not None:
                inner, sc = old[i]
                inner.set_params(**params, warm_start=True)
            else:
                rs = np.random.RandomState(seed)
                inner = LSTMRegressor(**params, random_state=rs.randint(_INT32_MAX),
                                      validation_split="last")
                sc = None
            out.append(fit_regressor(inner, [s], spec, sc, scaling, fraction))
    return out


class _FleetProgress:
    """One progress line for the whole fleet (stderr), at most about once a second."""

    def __init__(self, verbose: int, total: int) -> None:
        self.verbose, self.total, self.done = verbose, total, 0
        self.start = self.last = time.perf_counter()
        self.lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        if not self.verbose:
            return
        with self.lock:
            self.done += n
            now = time.perf_counter()
            if self.done == self.total or now - self.last >= 1.0:
                self.last = now
                print(f"fleet: {self.done}/{self.total} models fitted in "
                      f"{now - self.start:.1f} s", file=sys.stderr, flush=True)


def _params(est: Any) -> dict:
    inner = est._inner(n_jobs=1)
    return {k: v for k, v in inner.get_params(deep=False).items()
            if k not in ("random_state", "validation_split", "warm_start")}


def fit_fleet(est: Any, series: list[np.ndarray], spec: WindowSpec, seeds: list[int],
              fraction: float | None, old: list | None) -> tuple[list, list]:
    """Fit one member per series with ``est``'s backend; returns (models, scalings).

    A failure of any member raises after the others stop, and nothing of
    ``est`` has been changed (members being continued are copies).
    """
    import copy

    params = _params(est)
    if old is not None:  # continue copies: a failed fit leaves the fleet as it was
        old = [copy.deepcopy(m) for m in old]
    progress = _FleetProgress(est.verbose, len(series))
    before = [0] * len(series) if old is None else [m.n_iter_ for m, _ in old]
    with warnings.catch_warnings():  # one warning for the fleet, below
        warnings.simplefilter("ignore", ConvergenceWarning)
        members = _run(est, params, series, spec, seeds, fraction, old, progress)
    at_limit = sum(m.n_iter_ - b >= est.max_epochs
                   for (m, _), b in zip(members, before, strict=True))
    if at_limit:
        warn_user(f"{at_limit} of the fleet's {len(series)} models reached max_epochs "
                  f"({est.max_epochs}) before their optimization converged.",
                  ConvergenceWarning)
    return [m for m, _ in members], [s for _, s in members]


def _run(est: Any, params: dict, series: list, spec: WindowSpec, seeds: list, fraction: Any,
         old: list | None, progress: _FleetProgress) -> list:
    if est.backend == "dask":
        members = _fit_dask(params, series, spec, seeds, fraction, est.scaling, old, progress)
    elif est.backend == "processes":
        members = _fit_processes(params, series, spec, seeds, fraction, est.scaling, old,
                                 progress, min(effective_n_jobs(est.n_jobs), len(series)))
    else:
        n_workers = min(effective_n_jobs(est.n_jobs), len(series))

        def one(i: int) -> tuple:
            member = fit_members(params, [series[i]], spec, [seeds[i]], fraction, est.scaling,
                                 None if old is None else [old[i]])[0]
            progress.advance()
            return member

        with blas_single_threaded():
            if n_workers <= 1:
                members = [one(i) for i in range(len(series))]
            else:
                pool = ThreadPoolExecutor(n_workers)
                try:
                    members = list(pool.map(one, range(len(series))))
                finally:
                    # on a failure or Ctrl-C the members not started are dropped: the
                    # running ones end their fit, the rest never start
                    pool.shutdown(wait=True, cancel_futures=True)
    return members


def _chunks(n: int, n_workers: int) -> list[tuple[int, int]]:
    """Consecutive chunks of at most 32 members, about four per worker."""
    chunk = max(1, min(32, -(-n // (4 * n_workers))))
    return [(start, min(n, start + chunk)) for start in range(0, n, chunk)]


def _fit_processes(params: dict, series: list, spec: WindowSpec, seeds: list, fraction: Any,
                   scaling: str, old: list | None, progress: _FleetProgress,
                   n_workers: int) -> list:
    from joblib import Parallel, delayed

    chunks = _chunks(len(series), n_workers)
    # the chunks are sent as workers need them (two per worker ahead) and come back in order
    results = Parallel(n_jobs=n_workers, backend="loky", return_as="generator",
                       pre_dispatch="2*n_jobs")(
        delayed(fit_members)(params, series[a:b], spec, seeds[a:b], fraction, scaling,
                             None if old is None else old[a:b], True) for a, b in chunks)
    members = []
    for part in results:
        members.extend(part)
        progress.advance(len(part))
    return members


def _fit_dask(params: dict, series: list, spec: WindowSpec, seeds: list, fraction: Any,
              scaling: str, old: list | None, progress: _FleetProgress) -> list:
    try:
        from distributed import as_completed, get_client
    except ImportError:
        raise ImportError("backend='dask' needs dask.distributed "
                          "(pip install 'dask[distributed]').") from None
    try:
        client = get_client()
    except ValueError:
        raise ValueError("backend='dask' fits on the current dask.distributed client: "
                         "create one first (distributed.Client(...)).") from None
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    chunks = _chunks(len(series), n_workers)
    starts = [a for a, _ in chunks]
    results: dict[int, list] = {}
    pending = iter(chunks)
    futures = as_completed()
    submitted: list = []

    def submit() -> bool:
        start, stop = next(pending, (None, None))
        if start is None:
            return False
        fut = client.submit(fit_members, params, series[start:stop], spec, seeds[start:stop],
                            fraction, scaling, None if old is None else old[start:stop], True,
                            pure=False)
        fut.start = start  # type: ignore[attr-defined]
        futures.add(fut)
        submitted.append(fut)
        return True

    # at most two chunks per worker in flight: the series stream to the workers
    try:
        for _ in range(2 * n_workers):
            if not submit():
                break
        for fut in futures:
            results[fut.start] = fut.result()
            progress.advance(len(results[fut.start]))
            submit()
    except BaseException:  # a failed chunk or Ctrl-C: stop the rest on the cluster
        client.cancel(submitted)
        raise
    return [m for start in starts for m in results[start]]


def forecast_fleet(est: Any, tails: np.ndarray, future: np.ndarray | None, horizon: int
                   ) -> np.ndarray:
    """Each series' forecast by its own member: ``(n_series, horizon, n_targets)``."""
    out = np.empty((len(tails), horizon, est.spec_.n_targets))
    for i, (model, scaling) in enumerate(zip(est.models_, est.scalings_, strict=True)):
        out[i] = forecast(model, scaling, est.spec_, tails[i:i + 1],
                          None if future is None else future[i:i + 1], horizon,
                          est.strategy)[0]
    return out
