"""Forecasting a real series: yearly sunspot numbers, one year ahead.

The series (1700-2008) ships with statsmodels, an optional dependency of this
example: without it the script says so and exits. Each sample is a window of
the previous ``WINDOW`` years, a 2D array of univariate series, and the target
is the next year. An ``LSTMRegressor`` is fitted on the windows that end
before ``SPLIT_YEAR`` and predicts the years after it, one step ahead from the
true history, against two baselines: persistence (next year = this year) and
a linear autoregression on the same window (ridge regression).

Run: ``python docs/examples/forecasting.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import numpy as np
from _common import parse_args, publish
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV

from fastlstm import LSTMRegressor

WINDOW = 20
SPLIT_YEAR = 1950
SEED = 0


def windows(series: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``width`` consecutive values and the value after each."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], width)
    return np.ascontiguousarray(X), series[width:]


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def plot(years: np.ndarray, truth: np.ndarray, preds: dict[str, np.ndarray],
         scores: dict[str, float], history: tuple[np.ndarray, np.ndarray], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.plot(*history, color="0.6", lw=1, label="training years")
    ax.plot(years, truth, color="black", lw=1.5, label="observed")
    styles = {"LSTMRegressor": dict(color="C0", lw=1.8),
              "linear AR (ridge)": dict(color="C2", lw=1, ls="--"),
              "persistence": dict(color="C3", lw=1, ls=":")}
    for name, pred in preds.items():
        ax.plot(years, pred, **styles[name], label=f"{name}, RMSE {scores[name]:.1f}")
    ax.axvline(SPLIT_YEAR, color="gray", ls="--", lw=0.8)
    ax.set_xlim(years[0] - 60, years[-1] + 1)
    ax.set_xlabel("year")
    ax.set_ylabel("yearly mean sunspot number")
    ax.set_title(f"One-year-ahead forecasts from the previous {WINDOW} years "
                 f"(test: {years[0]}-{years[-1]})")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    try:
        from statsmodels.datasets import sunspots
    except ImportError:
        print("forecasting.py needs statsmodels for its data set: pip install statsmodels")
        sys.exit(0)
    data = sunspots.load_pandas().data
    years = data["YEAR"].to_numpy().astype(int)
    series = data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    scale = series[years < SPLIT_YEAR].max()
    X, y = windows(series / scale, WINDOW)
    target_years = years[WINDOW:]
    train = target_years < SPLIT_YEAR
    X_train, y_train, X_test = X[train], y[train], X[~train]

    seeds = [SEED] if args.quick else list(range(SEED, SEED + 5))
    lstm_preds, fits = [], []
    for seed in seeds:
        model = LSTMRegressor(hidden_size=32, learning_rate=0.01, batch_size=16,
                              max_epochs=3 if args.quick else 300, early_stopping=True,
                              validation_fraction=0.15, n_iter_no_change=30, random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train, y_train)
        fits.append({"seed": seed, "epochs": model.n_iter_,
                     "fit_s": round(time.perf_counter() - start, 2)})
        lstm_preds.append(model.predict(X_test) * scale)
    ridge = RidgeCV(alphas=np.logspace(-4, 2, 13)).fit(X_train, y_train)
    truth = series[WINDOW:][~train]
    preds = {"LSTMRegressor": lstm_preds[0],
             "linear AR (ridge)": ridge.predict(X_test) * scale,
             "persistence": X_test[:, -1] * scale}
    scores = {name: rmse(p, truth) for name, p in preds.items()}
    mae = {name: float(np.mean(np.abs(p - truth))) for name, p in preds.items()}
    seed_rmse = [rmse(p, truth) for p in lstm_preds]
    lines = [f"{len(X_train)} training windows ({years[WINDOW]}-{SPLIT_YEAR - 1}), "
             f"{len(X_test)} test years ({SPLIT_YEAR}-{years[-1]}), window {WINDOW} years"]
    for name in preds:
        lines.append(f"{name:18s} test RMSE {scores[name]:6.2f}  MAE {mae[name]:6.2f}"
                     + ("  (seed 0, plotted)" if name == "LSTMRegressor" else ""))
    lines.append(f"LSTMRegressor over seeds {seeds}: test RMSE "
                 + ", ".join(f"{v:.2f}" for v in seed_rmse)
                 + f" (mean {np.mean(seed_rmse):.2f}); epochs "
                 + ", ".join(str(f["epochs"]) for f in fits)
                 + f"; fit time {sum(f['fit_s'] for f in fits) / len(fits):.1f} s on average")
    history = (years[years < SPLIT_YEAR], series[years < SPLIT_YEAR])
    plot(target_years[~train], truth, preds, scores, history, args.out / "forecasting.png")
    publish(args.out, "forecasting", {
        "quick": args.quick, "window": WINDOW, "split_year": SPLIT_YEAR,
        "n_train": int(train.sum()), "n_test": int((~train).sum()), "fits": fits,
        "rmse": scores, "mae": mae, "lstm_rmse_per_seed": seed_rmse}, lines)


if __name__ == "__main__":
    main()
