"""LSTMForecaster on real series that ship with statsmodels, against naive baselines.

- co2 (Mauna Loa, weekly, forward-filled): the last 200 weeks held out;
  one-step-ahead forecasts from every origin in them (the true history as
  context), RMSE against persistence (the last value).
- sunspots (yearly): the last 60 years held out; 12-year forecasts from
  every origin in them, MAE against seasonal-naive with the 11-year cycle
  (the value 11 years before) and naive (the last value).

Each model is fitted on the training part only, with three seeds; the table
gives each seed's error and the mean.

    python bench/forecast_accuracy.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

try:
    from fastlstm import LSTMForecaster
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from fastlstm import LSTMForecaster

SEEDS = (0, 1, 2)


def co2_rows(sm) -> list[str]:
    y = sm.datasets.co2.load_pandas().data["co2"].ffill().to_numpy()
    n_test = 200
    truth = y[-n_test:]
    persistence = float(np.sqrt(np.mean((y[-n_test - 1:-1] - truth) ** 2)))
    rows = [f"| co2, 1 step, RMSE (ppm) | persistence | {persistence:.3f} | |"]
    for scaling in ("last", "none"):
        errors, seconds = [], []
        for seed in SEEDS:
            start = time.perf_counter()
            f = LSTMForecaster(window=52, hidden_size=32, max_epochs=30, scaling=scaling,
                               random_state=seed).fit(y[:-n_test])
            seconds.append(time.perf_counter() - start)
            preds = np.concatenate([f.predict(1, y=y[:len(y) - n_test + i])
                                    for i in range(n_test)])
            errors.append(float(np.sqrt(np.mean((preds - truth) ** 2))))
        rows.append(f"| co2, 1 step, RMSE (ppm) | LSTMForecaster(window=52, scaling="
                    f"'{scaling}') | {np.mean(errors):.3f} | "
                    f"{', '.join(f'{e:.3f}' for e in errors)} (fit {np.mean(seconds):.1f} s) |")
    return rows


def sunspot_rows(sm) -> list[str]:
    y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    horizon, n_test = 12, 60
    origins = range(len(y) - n_test, len(y) - horizon + 1)

    def mae(forecast_at) -> float:
        return float(np.mean([np.mean(np.abs(forecast_at(s) - y[s:s + horizon]))
                              for s in origins]))

    snaive = mae(lambda s: y[s - 11 + np.arange(horizon) % 11])
    naive = mae(lambda s: np.full(horizon, y[s - 1]))
    rows = [f"| sunspots, 12 years, MAE | seasonal-naive (11 years) | {snaive:.2f} | |",
            f"| sunspots, 12 years, MAE | naive | {naive:.2f} | |"]
    configs = [
        ("direct", dict(strategy="direct", scaling="none")),
        ("direct, GRU", dict(strategy="direct", scaling="none", cell="gru")),
        ("recursive", dict(strategy="recursive", scaling="none")),
    ]
    for name, params in configs:
        errors, seconds = [], []
        for seed in SEEDS:
            start = time.perf_counter()
            f = LSTMForecaster(window=30, horizon=horizon, hidden_size=32, max_epochs=300,
                               early_stopping=True, validation_fraction=0.2,
                               random_state=seed, **params).fit(y[:-n_test])
            seconds.append(time.perf_counter() - start)
            errors.append(mae(lambda s, f=f: f.predict(horizon, y=y[:s])))
        rows.append(f"| sunspots, 12 years, MAE | LSTMForecaster({name}, window=30, "
                    f"early stopping) | {np.mean(errors):.2f} | "
                    f"{', '.join(f'{e:.2f}' for e in errors)} (fit {np.mean(seconds):.1f} s) |")
    return rows


def main() -> int:
    """Entry point."""
    import statsmodels.api as sm

    warnings.simplefilter("ignore")  # ConvergenceWarning at the epoch limit
    print("| task | model | error (mean of 3 seeds) | per seed |")
    print("|---|---|---|---|")
    for row in co2_rows(sm) + sunspot_rows(sm):
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
