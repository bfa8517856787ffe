"""Scaling out: a grid search and a fleet of per-series models, local and on Dask.

Times the same work run four ways: sequentially (each fit on every core), on
two local processes through joblib (each fit on one thread, its worker's
share), the same with the fits forced onto every core (``n_jobs=-1``, what
``n_jobs=None`` meant before fastlstm respected the worker's budget), and on a
``dask.distributed.LocalCluster`` of two single-threaded worker processes.
The cluster listens on 127.0.0.1 only and is closed at the end.

Run: ``python docs/examples/scaling.py [--quick] [--out DIR]`` (needs
``pip install "fastlstm[dask]"``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
from _common import parse_args, publish
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from fastlstm import LSTMClassifier, LSTMRegressor

WINDOW = 8
GRID = {"hidden_size": [16, 32], "learning_rate": [0.01, 0.003]}


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """``fn()`` and its best wall-clock time over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return result, best


def search(X: np.ndarray, y: np.ndarray, epochs: int, fit_n_jobs: int | None,
           n_jobs: int | None) -> GridSearchCV:
    """The grid search: 4 settings x 3 folds = 12 fits (and a refit)."""
    est = LSTMClassifier(max_epochs=epochs, batch_size=32, n_jobs=fit_n_jobs, random_state=0)
    return GridSearchCV(est, GRID, cv=3, n_jobs=n_jobs).fit(X, y)


def make_series(n_series: int, length: int = 64, seed: int = 0) -> np.ndarray:
    """Noisy sine waves of different periods and phases, one per row."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    period = rng.uniform(6, 20, size=(n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    return np.sin(2 * np.pi * t / period + phase) + 0.05 * rng.standard_normal((n_series, length))


def fit_one(series: np.ndarray, seed: int, epochs: int) -> LSTMRegressor:
    """One small model on one series' sliding windows (next value from the last 8)."""
    windows = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LSTMRegressor(hidden_size=8, max_epochs=epochs, batch_size=16,
                             random_state=seed).fit(windows[..., None], series[WINDOW:])


def plot(times: dict[str, dict[str, float]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for ax, (title, row) in zip(axes, times.items(), strict=True):
        names = list(row)
        ax.barh(names, [row[n] for n in names], color=[f"C{i}" for i in range(len(names))])
        for i, n in enumerate(names):
            ax.text(row[n], i, f" {row[n]:.1f} s", va="center")
        ax.invert_yaxis()
        ax.set_xlabel("wall-clock seconds (lower is better)")
        ax.set_title(title)
        ax.set_xlim(0, 1.25 * max(row.values()))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    from distributed import Client, LocalCluster

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    epochs, n_series, fleet_epochs = (10, 300, 20) if not args.quick else (1, 24, 2)
    repeat = 1 if args.quick else 2  # the searches are short: best of two
    if args.quick:
        X, y = X[:300], y[:300]
    fleet = make_series(n_series)

    warnings.simplefilter("ignore", ConvergenceWarning)
    # start joblib's two local processes before timing, as the cluster is, and
    # run a tiny search there first so that the imports are not timed
    search(X[:60], y[:60], 1, None, 2)

    search_s, fleet_s = {}, {}
    seq, search_s["sequential"] = timed(lambda: search(X, y, epochs, None, None), repeat)
    _, search_s["joblib, 2 processes"] = timed(lambda: search(X, y, epochs, None, 2), repeat)
    _, search_s["joblib, 2 processes, fits n_jobs=-1"] = timed(
        lambda: search(X, y, epochs, -1, 2), repeat)
    models, fleet_s["sequential"] = timed(
        lambda: [fit_one(s, i, fleet_epochs) for i, s in enumerate(fleet)])
    _, fleet_s["joblib, 2 processes"] = timed(lambda: joblib.Parallel(n_jobs=2)(
        joblib.delayed(fit_one)(s, i, fleet_epochs) for i, s in enumerate(fleet)))

    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster, \
            Client(cluster) as client:
        startup_s = time.perf_counter() - start

        def on_dask(X: np.ndarray, y: np.ndarray, epochs: int) -> GridSearchCV:
            with joblib.parallel_backend("dask"):
                return search(X, y, epochs, None, -1)

        on_dask(X[:60], y[:60], 1)  # the same warm-up as for joblib's processes

        remote, search_s["Dask, 2 workers"] = timed(lambda: on_dask(X, y, epochs), repeat)
        remote_models, fleet_s["Dask, 2 workers"] = timed(lambda: client.gather(
            client.map(fit_one, list(fleet), range(n_series), epochs=fleet_epochs)))

    last = fleet[:, -WINDOW:, None]
    forecasts = np.array([m.predict(last[i:i + 1])[0] for i, m in enumerate(models)])
    remote_forecasts = np.array([m.predict(last[i:i + 1])[0]
                                 for i, m in enumerate(remote_models)])
    times = {f"grid search: {len(seq.cv_results_['params']) * 3} fits + refit, "
             f"best of {repeat}": search_s,
             f"fleet: {n_series} models, one per series": fleet_s}
    results = {
        "quick": args.quick, "search_repeat": repeat, "search_s": search_s, "fleet_s": fleet_s,
        "cluster_startup_s": round(startup_s, 2), "search_epochs": epochs,
        "fleet_epochs": fleet_epochs, "best_params_local": seq.best_params_,
        "best_params_dask": remote.best_params_,
        "fleet_forecast_max_difference": float(np.max(np.abs(forecasts - remote_forecasts))),
    }
    lines = [f"{title}" + "".join(f"\n  {name:38s} {t:6.1f} s" for name, t in row.items())
             for title, row in times.items()]
    lines += [f"cluster start (2 worker processes, not in the times above): {startup_s:.1f} s",
              f"best parameters: {seq.best_params_} (local), {remote.best_params_} (Dask)",
              "largest difference of a fleet forecast, local against Dask: "
              f"{results['fleet_forecast_max_difference']:.2g}"]
    plot(times, args.out / "scaling.png")
    publish(args.out, "scaling", results, lines)


if __name__ == "__main__":
    main()
