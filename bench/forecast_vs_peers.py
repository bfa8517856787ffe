"""fastlstm.LSTMForecaster against darts' BlockRNNModel(model="LSTM"): accuracy (MASE) and fit time.

Two tasks, the same data, windows, network and epochs for both libraries, and
the mean over seeds (default 0, 1, 2):

- **airline**: the monthly airline passengers of 1949-1960 (Box and Jenkins;
  sktime's ``load_airline``), the last 24 months held out and forecast in one
  24-step direct forecast; baseline: seasonal naive (the last year repeated);
  MASE scaled by the in-sample seasonal-naive error (m = 12).
- **sunspots**: the yearly sunspot numbers of 1700-2008 (statsmodels), the
  last 60 years held out and forecast 12 years at a time from the five origins
  1949, 1961, ..., 1997, each from the true history (the model is fitted
  once); baseline: naive (the last value); MASE scaled by the in-sample naive
  error (m = 1).

Both models: window 24, direct output of the whole horizon, one LSTM layer
of 32 units, Adam at 5e-3, batches of 32, ``--epochs`` epochs, no early
stopping, one thread (``n_jobs=1``; ``torch.set_num_threads(1)``). Each
library scales as it recommends: fastlstm relative to each window
(``scaling="last"`` for the trending airline, ``"mean"`` for sunspots),
darts with its ``Scaler`` (min-max on the training part). The fit time is
the wall and CPU time of ``fit`` (means over the seeds) after one warm-up
fit of one epoch in the same process; darts runs in its own interpreter (``--peer-python``, or the
environment variable ``FASTLSTM_DARTS_PYTHON``), which needs
``darts[torch]``, statsmodels and (for the airline data) sktime. Without it
the darts rows are reported as absent.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/forecast_vs_peers.py \\
        --peer-python PATH/TO/DARTS/VENV/bin/python [--epochs 100] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

WINDOW = 24
HIDDEN = 32
BATCH = 32
LR = 5e-3
TASKS = {
    # name: horizon, held-out length, seasonal period of the baseline and MASE, fastlstm scaling
    "airline": {"horizon": 24, "held_out": 24, "m": 12, "scaling": "last"},
    "sunspots": {"horizon": 12, "held_out": 60, "m": 1, "scaling": "mean"},
}


# ------------------------------------------------------------------ data
def load_data(peer: str | None) -> dict[str, list[float]]:
    """The two series as plain lists (the same values go to both libraries)."""
    from statsmodels.datasets import sunspots

    data = {"sunspots": sunspots.load_pandas().data["SUNACTIVITY"].astype(float).tolist()}
    airline = _airline_here()
    if airline is None and peer is not None:
        out = subprocess.run([peer, __file__, "--print-airline"], capture_output=True,
                             text=True, timeout=300)
        if out.returncode == 0:
            airline = json.loads(out.stdout.strip().splitlines()[-1])
    if airline is not None:
        data["airline"] = airline
    return data


def _airline_here() -> list[float] | None:
    try:
        from sktime.datasets import load_airline
    except ImportError:
        return None
    return load_airline().astype(float).tolist()


def origins(task: str, n: int) -> list[int]:
    """Where each forecast starts (index of its first forecast value)."""
    spec = TASKS[task]
    return list(range(n - spec["held_out"], n, spec["horizon"]))


def scores(task: str, y: np.ndarray, forecasts: list[np.ndarray]) -> float:
    """MASE of the forecasts made from ``origins``, scaled on the training part."""
    m, h = TASKS[task]["m"], TASKS[task]["horizon"]
    starts = origins(task, len(y))
    train = y[:starts[0]]
    scale = np.mean(np.abs(train[m:] - train[:-m]))
    errors = np.concatenate([np.abs(f - y[t:t + h])
                             for f, t in zip(forecasts, starts, strict=True)])
    return float(errors.mean() / scale)


def baseline(task: str, y: np.ndarray) -> list[np.ndarray]:
    """Seasonal naive (period m) from each origin: the last m values repeated."""
    m, h = TASKS[task]["m"], TASKS[task]["horizon"]
    return [np.resize(y[t - m:t], h) for t in origins(task, len(y))]


# ------------------------------------------------------------------ fastlstm
def run_fastlstm(task: str, y: np.ndarray, seed: int, epochs: int) -> tuple[list, float]:
    from sklearn.exceptions import ConvergenceWarning

    from fastlstm import LSTMForecaster

    spec = TASKS[task]
    starts = origins(task, len(y))

    def model(n_epochs: int) -> Any:
        return LSTMForecaster(window=WINDOW, horizon=spec["horizon"], scaling=spec["scaling"],
                              hidden_size=HIDDEN, batch_size=BATCH, learning_rate=LR,
                              max_epochs=n_epochs, n_jobs=1, random_state=seed)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model(1).fit(y[:starts[0]])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        fitted = model(epochs).fit(y[:starts[0]])
        fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return [np.asarray(fitted.predict(y=y[:t]), dtype=float) for t in starts], fit_s, cpu_s


# ------------------------------------------------------------------ darts
def run_darts(task: str, y: np.ndarray, seed: int, epochs: int) -> tuple[list, float]:
    import logging

    import torch
    from darts import TimeSeries
    from darts.dataprocessing.transformers import Scaler
    from darts.models import BlockRNNModel

    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    spec = TASKS[task]
    starts = origins(task, len(y))
    series = TimeSeries.from_values(y.astype(np.float32))
    trainer = {"accelerator": "cpu", "enable_progress_bar": False,
               "enable_model_summary": False, "logger": False, "enable_checkpointing": False}

    def model(n_epochs: int) -> Any:
        return BlockRNNModel(input_chunk_length=WINDOW, output_chunk_length=spec["horizon"],
                             model="LSTM", hidden_dim=HIDDEN, n_rnn_layers=1, dropout=0.0,
                             batch_size=BATCH, n_epochs=n_epochs, optimizer_kwargs={"lr": LR},
                             random_state=seed, pl_trainer_kwargs=trainer)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = Scaler().fit(series[:starts[0]])
        scaled = scaler.transform(series)
        model(1).fit(scaled[:starts[0]], verbose=False)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        fitted = model(epochs)
        fitted.fit(scaled[:starts[0]], verbose=False)
        fit_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        out = [scaler.inverse_transform(fitted.predict(spec["horizon"], series=scaled[:t],
                                                       verbose=False)).values().ravel()
               for t in starts]
    return [np.asarray(f, dtype=float) for f in out], fit_s, cpu_s


def darts_worker() -> None:
    """Read a job from stdin, print the forecasts and fit times as JSON."""
    job = json.loads(sys.stdin.read())
    results = {}
    for task, values in job["data"].items():
        y = np.asarray(values, dtype=float)
        results[task] = []
        for seed in job["seeds"]:
            forecasts, fit_s, cpu_s = run_darts(task, y, seed, job["epochs"])
            results[task].append({"seed": seed, "fit_s": fit_s, "cpu_s": cpu_s,
                                  "forecasts": [f.tolist() for f in forecasts]})
    print(json.dumps(results))


def call_darts(peer: str, data: dict, seeds: list[int], epochs: int) -> dict | str:
    job = json.dumps({"data": data, "seeds": seeds, "epochs": epochs})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([peer, __file__, "--darts-worker"], input=job, capture_output=True,
                         text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return "darts failed: " + out.stderr.strip().splitlines()[-1] if out.stderr.strip() \
            else f"darts exited with status {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ report
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=os.environ.get("FASTLSTM_DARTS_PYTHON"),
                        help="a Python interpreter with darts[torch] (and sktime for airline)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--darts-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--print-airline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.darts_worker:
        return darts_worker()
    if args.print_airline:
        print(json.dumps(_airline_here()))
        return None

    peer = args.peer_python
    if peer is not None and not Path(peer).exists():
        print(f"--peer-python {peer} does not exist; the darts rows are left out.")
        peer = None
    data = load_data(peer)
    if "airline" not in data:
        print("The airline series comes from sktime's load_airline, installed neither here nor "
              "in the peer interpreter: the airline task is left out.")
    ours = {task: [] for task in data}
    for task, values in data.items():
        y = np.asarray(values, dtype=float)
        for seed in args.seeds:
            forecasts, fit_s, cpu_s = run_fastlstm(task, y, seed, args.epochs)
            ours[task].append({"seed": seed, "fit_s": fit_s, "cpu_s": cpu_s,
                               "mase": scores(task, y, forecasts)})
    darts: dict | str = ("no darts interpreter given (--peer-python or FASTLSTM_DARTS_PYTHON)"
                         if peer is None else call_darts(peer, data, args.seeds, args.epochs))
    if isinstance(darts, dict):
        for task, runs in darts.items():
            y = np.asarray(data[task], dtype=float)
            for run in runs:
                run["mase"] = scores(task, y, [np.asarray(f) for f in run.pop("forecasts")])

    print(f"window {WINDOW}, hidden {HIDDEN}, {args.epochs} epochs, batch {BATCH}, Adam {LR}, "
          f"1 thread, seeds {args.seeds}\n")
    print("| task | model | MASE per seed | mean MASE | fit s | fit CPU s | "
          "fit time / fastlstm's (wall, CPU) |")
    print("|---|---|---|---|---|---|---|")
    report: dict[str, Any] = {"epochs": args.epochs, "seeds": args.seeds, "tasks": {}}
    for task, values in data.items():
        y = np.asarray(values, dtype=float)
        base = scores(task, y, baseline(task, y))
        rows = {"fastlstm LSTMForecaster": ours[task]}
        if isinstance(darts, dict):
            rows["darts BlockRNNModel(LSTM)"] = darts[task]
        ref_fit = float(np.mean([r["fit_s"] for r in ours[task]]))
        ref_cpu = float(np.mean([r["cpu_s"] for r in ours[task]]))
        for name, runs in rows.items():
            mase = [r["mase"] for r in runs]
            fit = float(np.mean([r["fit_s"] for r in runs]))
            cpu = float(np.mean([r["cpu_s"] for r in runs]))
            print(f"| {task} | {name} | {', '.join(f'{v:.3f}' for v in mase)} | "
                  f"{np.mean(mase):.3f} | {fit:.2f} | {cpu:.2f} | "
                  f"{fit / ref_fit:.1f}x, {cpu / ref_cpu:.1f}x |")
        naive = "seasonal naive (m=12)" if TASKS[task]["m"] > 1 else "naive"
        print(f"| {task} | {naive} | | {base:.3f} | | | |")
        report["tasks"][task] = {"baseline_mase": base, **rows}
    if isinstance(darts, str):
        print(f"\ndarts: absent ({darts})")
        report["darts"] = darts
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return None


if __name__ == "__main__":
    main()
