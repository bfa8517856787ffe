"""The forecasts of the forecasting page, against the truth, on data that ships with statsmodels.

Each section of ``docs/forecasting.md`` shows one block of this script (the
code between its ``# [name]`` and ``# [/name]`` markers): one series
(sunspots), a trending series with and without per-window scaling, known
future covariates (CO2 with the month of the year), many series with one
global model and with one model per series (US macroeconomic series), a
rolling-origin backtest, and, if sktime is installed, a backtest with
sktime's ``evaluate`` (airline passengers, the data set sktime ships). The
script prints the errors and draws one plot per section,
``forecast_NAME.png``, and an overview, ``forecast_plots.png``. statsmodels
is needed for the data.

Run: ``python docs/examples/forecast_plots.py [--out DIR]`` (``--quick`` is
accepted and changes nothing: the whole script takes seconds).
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import parse_args, publish

STATIC = Path(__file__).resolve().parent.parent / "_static"
RESULTS: dict[str, Any] = {}
LINES: list[str] = []


# [mae]
def mae(forecast, truth):
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(forecast) - np.asarray(truth))))
# [/mae]


def timed(fn: Any) -> Any:
    start = time.perf_counter()
    out = fn()
    RESULTS.setdefault("seconds", {})[fn.__name__] = round(time.perf_counter() - start, 2)
    return out


# ------------------------------------------------------------------ sections
def one_series() -> dict:
    # [one-series]
    import pandas as pd
    from statsmodels.datasets import sunspots

    from fastlstm import LSTMForecaster

    data = sunspots.load_pandas().data            # yearly, 1700-2008
    y = pd.Series(data["SUNACTIVITY"].to_numpy(), name="sunspots",
                  index=pd.period_range("1700", periods=len(data), freq="Y"))
    train, test = y[:-20], y[-20:]                # hold out 1989-2008

    model = LSTMForecaster(window=24, horizon=20, scaling="mean", hidden_size=32,
                           max_epochs=100, random_state=0)
    model.fit(train)
    forecast = model.predict()                    # a Series indexed 1989-2008
    # [/one-series]
    naive = np.repeat(train.iloc[-1], len(test))
    RESULTS["sunspots"] = {"lstm_mae": mae(forecast, test), "naive_mae": mae(naive, test)}
    LINES.append(f"sunspots 1989-2008, 20 years ahead: LSTMForecaster MAE "
                 f"{mae(forecast, test):.1f}, naive (last value) {mae(naive, test):.1f}")
    return {"train": train, "test": test, "forecasts": {"LSTMForecaster": forecast}}


def load_co2() -> Any:
    # [co2-data]
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]        # ppm, weekly, 1958-2001, gaps
    y = weekly.resample("MS").mean().ffill()      # monthly, gaps filled forward
    y.index = y.index.to_period("M")
    train, test = y[:-48], y[-48:]                # hold out 1998-2001
    # [/co2-data]
    return y, train, test


def trend() -> dict:
    y, train, test = load_co2()
    # [trend]
    from fastlstm import LSTMForecaster

    forecasts = {}
    for scaling in ("none", "last"):
        model = LSTMForecaster(window=36, horizon=48, scaling=scaling, hidden_size=16,
                               max_epochs=50, random_state=0).fit(train)
        forecasts[scaling] = model.predict()
    # [/trend]
    snaive = np.tile(train.iloc[-12:].to_numpy(), 4)
    scores = {k: mae(v, test) for k, v in forecasts.items()}
    RESULTS["co2_trend"] = {**{f"{k}_mae": v for k, v in scores.items()},
                            "seasonal_naive_mae": mae(snaive, test)}
    LINES.append(f"co2 1998-2001, 48 months ahead: scaling='none' MAE {scores['none']:.2f} ppm, "
                 f"scaling='last' {scores['last']:.2f}, seasonal naive (last year repeated) "
                 f"{mae(snaive, test):.2f}")
    return {"train": train, "test": test,
            "forecasts": {f"scaling={k!r}": v for k, v in forecasts.items()}}


def covariates() -> dict:
    y, train, test = load_co2()
    # [covariates]
    import pandas as pd

    from fastlstm import LSTMForecaster

    month = y.index.month.to_numpy()              # known for any future date
    X = pd.DataFrame({"sin": np.sin(2 * np.pi * month / 12),
                      "cos": np.cos(2 * np.pi * month / 12)}, index=y.index)
    X_train, X_future = X[:-48], X[-48:]

    model = LSTMForecaster(window=36, horizon=48, scaling="last", hidden_size=16,
                           max_epochs=50, random_state=0)
    model.fit(train, X_train, future_covariates=["sin", "cos"])
    forecast = model.predict(X=X_future)          # the 48 future rows of X
    # [/covariates]
    plain = LSTMForecaster(window=36, horizon=48, scaling="last", hidden_size=16,
                           max_epochs=50, random_state=0).fit(train).predict()
    RESULTS["co2_covariates"] = {"with_month_mae": mae(forecast, test),
                                 "without_mae": mae(plain, test)}
    LINES.append(f"co2 with the month as a known future covariate: MAE {mae(forecast, test):.2f} "
                 f"ppm (without: {mae(plain, test):.2f})")
    return {"train": train, "test": test,
            "forecasts": {"month as future covariate": forecast, "no covariates": plain}}


def load_macro() -> Any:
    # [macro-data]
    import pandas as pd
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data           # US, quarterly, 1959Q1-2009Q3
    index = pd.period_range("1959Q1", periods=len(data), freq="Q")
    names = ["realgdp", "realcons", "realinv", "realgovt", "realdpi", "cpi", "m1", "pop"]
    series = [pd.Series(np.log(data[n].to_numpy()), index=index, name=n) for n in names]
    train = [s[:"1999Q4"] for s in series]        # fit on 1959-1999
    # [/macro-data]
    return series, train


# [backtest]
def backtest(model, series, horizon=8, first="2000Q1", every=4):
    """Forecasts from rolling origins; each series' MAE relative to the naive forecast's."""
    start = series[0].index.get_loc(pd.Period(first))
    errors, naive_errors, forecasts = [], [], []
    for t in range(start, len(series[0]) - horizon + 1, every):
        f = model.predict(y=[s.iloc[:t] for s in series])    # each series up to t
        truth = [s.iloc[t:t + horizon] for s in series]
        errors.append([mae(a, b) for a, b in zip(f, truth, strict=True)])
        naive_errors.append([mae(np.repeat(s.iloc[t - 1], horizon), b)
                             for s, b in zip(series, truth, strict=True)])
        forecasts.append(f)
    relative = np.mean(errors, axis=0) / np.mean(naive_errors, axis=0)  # < 1: beats naive
    return relative, forecasts
# [/backtest]


def many_series() -> dict:
    series, train = load_macro()
    # [global]
    from fastlstm import LSTMForecaster

    global_model = LSTMForecaster(window=16, horizon=8, hidden_size=16, max_epochs=50,
                                  random_state=0).fit(train)       # one model, 8 series
    # [/global]
    start = time.perf_counter()
    # [fleet]
    fleet = LSTMForecaster(window=16, horizon=8, hidden_size=16, max_epochs=50,
                           per_series=True, random_state=0).fit(train)  # 8 models
    # [/fleet]
    fleet_s = time.perf_counter() - start
    out: dict = {"series": series, "train": train}
    for name, model in (("global", global_model), ("fleet", fleet)):
        relative, paths = backtest(model, series)
        out[name] = (relative, paths)
        RESULTS[f"macro_{name}"] = {n.name: round(float(r), 3)
                                    for n, r in zip(series, relative, strict=True)}
        label = "one global model" if name == "global" else "a fleet of 8 models"
        LINES.append(f"macro, {label}, MAE / naive MAE over 8 rolling origins "
                     f"(2000Q1-2007Q1, 8 quarters ahead): "
                     + ", ".join(f"{s.name} {r:.2f}" for s, r in zip(series, relative, strict=True))
                     + f"; mean {relative.mean():.2f}")
    LINES.append(f"the fleet of {len(fleet.models_)} models fitted in {fleet_s:.1f} s")
    # [save]
    import os
    import tempfile

    import fastlstm

    path = os.path.join(tempfile.mkdtemp(), "fleet.fastlstm")
    fastlstm.save(fleet, path)                    # all 8 models in one file
    same = fastlstm.load(path).predict()
    # [/save]
    assert all(np.array_equal(a, b) for a, b in zip(same, fleet.predict(), strict=True))
    return out


def past_covariates() -> dict:
    # [past-covariates]
    from statsmodels.datasets import macrodata

    from fastlstm import LSTMForecaster

    data = macrodata.load_pandas().data           # US, quarterly, 1959Q1-2009Q3
    index = pd.period_range("1959Q1", periods=len(data), freq="Q")
    consumption = pd.Series(np.log(data["realcons"].to_numpy()), index=index)
    income = pd.DataFrame({"income": np.log(data["realdpi"].to_numpy())}, index=index)
    y, X = consumption[:"1999Q4"], income[:"1999Q4"]

    model = LSTMForecaster(window=16, horizon=8, hidden_size=16, max_epochs=50,
                           random_state=0).fit(y, X)   # income: past only
    forecast = model.predict()                    # 2000Q1-2001Q4 from y and X up to 1999Q4
    # [/past-covariates]
    plain = LSTMForecaster(window=16, horizon=8, hidden_size=16, max_epochs=50,
                           random_state=0).fit(y).predict()
    truth = consumption["2000Q1":"2001Q4"]
    RESULTS["macro_past_covariate"] = {"with_income_mae": mae(forecast, truth),
                                       "without_mae": mae(plain, truth)}
    LINES.append(f"log realcons 2000Q1-2001Q4 with log realdpi as a past covariate: MAE "
                 f"{mae(forecast, truth):.4f} (without: {mae(plain, truth):.4f})")
    return {}


def sktime_backtest() -> dict | None:
    try:
        import sktime  # noqa: F401
    except ImportError:
        LINES.append("sktime is not installed: the backtest with sktime's evaluate is left out")
        return None
    # [sktime]
    from sktime.datasets import load_airline
    from sktime.forecasting.model_evaluation import evaluate
    from sktime.forecasting.naive import NaiveForecaster
    from sktime.split import ExpandingWindowSplitter

    from fastlstm.ecosystem.sktime import SktimeLSTMForecaster

    y = load_airline()                            # monthly passengers, 1949-1960
    cv = ExpandingWindowSplitter(initial_window=96, step_length=12, fh=list(range(1, 13)))
    lstm = SktimeLSTMForecaster(window=24, hidden_size=32, max_epochs=100, random_state=0)
    folds = evaluate(lstm, cv, y, return_data=True)    # a fit on each fold's past
    naive = evaluate(NaiveForecaster(strategy="last", sp=12), cv, y, return_data=True)
    # [/sktime]
    metric = "test_MeanAbsolutePercentageError"
    lstm_mape, naive_mape = folds[metric].to_numpy(), naive[metric].to_numpy()
    RESULTS["airline_sktime"] = {"lstm_mape": lstm_mape.tolist(),
                                 "seasonal_naive_mape": naive_mape.tolist()}
    LINES.append("airline, sktime's evaluate, 4 yearly folds after 1956, MAPE: "
                 f"SktimeLSTMForecaster {100 * lstm_mape.mean():.1f}% ("
                 + ", ".join(f"{100 * v:.1f}" for v in lstm_mape) + "), seasonal naive "
                 f"{100 * naive_mape.mean():.1f}% ("
                 + ", ".join(f"{100 * v:.1f}" for v in naive_mape) + ")")
    return {"y": y, "lstm": folds, "naive": naive}


# ------------------------------------------------------------------ plots
def draw_forecasts(ax: Any, part: dict, title: str, history: int) -> None:
    train, test = part["train"], part["test"]
    tail = train[-history:]
    ax.plot(tail.index.to_timestamp(), tail.to_numpy(), color="0.6", lw=1, label="training")
    ax.plot(test.index.to_timestamp(), test.to_numpy(), color="black", lw=1.5, label="truth")
    for i, (name, f) in enumerate(part["forecasts"].items()):
        ax.plot(f.index.to_timestamp(), np.asarray(f), color=f"C{i}", lw=1.6,
                label=f"{name} (MAE {mae(f, test):.2f})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def draw_macro(ax: Any, part: dict, which: str, name: str) -> None:
    series = part["series"]
    i = [s.name for s in series].index(name)
    s = series[i]["1990Q1":]
    ax.plot(s.index.to_timestamp(), s.to_numpy(), color="black", lw=1.2, label="truth")
    relative, paths = part[which]
    for k, forecasts in enumerate(paths):
        f = forecasts[i]
        ax.plot(f.index.to_timestamp(), f.to_numpy(), color="C0" if which == "global" else "C2",
                lw=1.4, label=f"forecasts, 8 quarters ({relative[i]:.2f} x naive MAE)"
                if k == 0 else None)
    ax.axvline(pd.Period("2000Q1").to_timestamp(), color="gray", ls="--", lw=0.8)
    ax.set_title(f"log {name}, {which} model", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def draw_backtest(ax: Any, part: dict) -> None:
    y = part["y"]
    ax.plot(y.index.to_timestamp(), y.to_numpy(), color="black", lw=1.2, label="truth")
    for name, color in (("lstm", "C0"), ("naive", "C3")):
        mape = 100 * part[name]["test_MeanAbsolutePercentageError"].mean()
        label = ("SktimeLSTMForecaster" if name == "lstm" else "seasonal naive")
        for k, f in enumerate(part[name]["y_pred"]):
            ax.plot(f.index.to_timestamp(), f.to_numpy(), color=color, lw=1.4,
                    ls="-" if name == "lstm" else ":",
                    label=f"{label}, one fit per fold (MAPE {mape:.1f}%)" if k == 0 else None)
    for cutoff in part["lstm"]["cutoff"]:
        ax.axvline(pd.Period(cutoff, freq="M").to_timestamp(), color="gray", ls="--", lw=0.6)
    ax.set_title("Airline passengers: sktime's evaluate, 4 folds, 12 months ahead",
                 fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if args.out == STATIC / "examples":
        args.out = STATIC  # this page's plots live in docs/_static
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        print("forecast_plots.py needs statsmodels for its data sets: pip install statsmodels")
        sys.exit(0)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # sktime's notices of coming changes
        parts = {"sunspots": timed(one_series), "trend": timed(trend),
                 "covariates": timed(covariates), "macro": timed(many_series),
                 "past": timed(past_covariates), "sktime": timed(sktime_backtest)}

    titles = {"sunspots": "Yearly sunspots, 20 years ahead",
              "trend": "Monthly CO2 (ppm), 48 months ahead: per-window scaling",
              "covariates": "Monthly CO2, 48 months ahead: the month as a known covariate"}
    history = {"sunspots": 80, "trend": 120, "covariates": 120}
    grid, axes = plt.subplots(3, 2, figsize=(12, 11))
    for key, ax in zip(titles, axes.flat[:3], strict=True):
        fig, own = plt.subplots(figsize=(9, 3.8))
        for target in (own, ax):
            draw_forecasts(target, parts[key], titles[key], history[key])
        save(fig, args.out / f"forecast_{key}.png")
        plt.close(fig)
    macro_axes = list(axes.flat[3:])
    for which, names in (("global", ("realgdp", "cpi")), ("fleet", ("realgdp", "realinv"))):
        fig, own = plt.subplots(1, 2, figsize=(11, 3.8))
        for j, name in enumerate(names):
            draw_macro(own[j], parts["macro"], which, name)
        save(fig, args.out / f"forecast_{which}.png")
        plt.close(fig)
    for ax, (which, name) in zip(macro_axes, (("global", "realgdp"), ("global", "cpi"),
                                              ("fleet", "realinv")), strict=True):
        draw_macro(ax, parts["macro"], which, name)
    if parts["sktime"] is not None:
        fig, own = plt.subplots(figsize=(9, 3.8))
        draw_backtest(own, parts["sktime"])
        save(fig, args.out / "forecast_backtest.png")
        plt.close(fig)
    save(grid, args.out / "forecast_plots.png")
    plt.close(grid)
    publish(args.out, "forecast_plots", {"quick": args.quick, **RESULTS}, LINES)


if __name__ == "__main__":
    main()
