"""LSTM against a plain RNN on two long-gap tasks, gap lengths 10 to 400.

The adding problem (regression) and the copy-memory task (classification)
are trained with ``LSTMRegressor`` / ``LSTMClassifier`` for ``cell="lstm"``
and ``cell="rnn"``, at equal parameter count (the RNN's hidden size is
chosen so its network has as many parameters as the LSTM's) and an equal
budget of training CPU time per gap length. Each model trains online, one
``partial_fit`` epoch per fresh chunk of data, until its budget is spent, and
is scored on a held-out test set.

Run: ``python docs/examples/long_gaps.py [--quick] [--out DIR]``; ``--replot``
redraws the plot from the results a previous run saved in ``DIR``.
"""

from __future__ import annotations

import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np
from _common import (
    adding_problem,
    copy_memory,
    matched_rnn_size,
    parse_args,
    publish,
)

import fastlstm

LSTM_HIDDEN = 32
LEARNING_RATE = {"lstm": 1e-2, "rnn": 1e-3}  # each cell's better of 1e-2 and 1e-3 in pilots
N_SYMBOLS, N_RECALL = 8, 3
CHUNK = 512            # fresh sequences per partial_fit call
SEED = 0


def budget_seconds(gap: int, quick: bool) -> float:
    """Training CPU seconds per model: longer gaps cost more per sequence."""
    return 2.0 if quick else 10.0 + 0.2 * gap


def make_task(task: str, gap: int, n: int, rng: np.random.Generator,
              train: bool) -> tuple[Any, np.ndarray]:
    if task == "adding":
        return adding_problem(n, gap, rng)
    # training sees every gap up to ``gap``; the test asks across exactly ``gap``
    gaps = rng.integers(1, gap + 1, size=n) if train else gap
    X, y = copy_memory(n, gaps, rng, n_symbols=N_SYMBOLS, n_recall=N_RECALL)
    return (X if train else np.stack(X)), y


def score(task: str, model: Any, X: Any, y: np.ndarray) -> float:
    """Test MSE (adding) or accuracy (copy memory)."""
    if task == "adding":
        return float(np.mean((model.predict(X) - y) ** 2))
    return float(np.mean(model.predict(X) == y))


def run_one(task: str, cell: str, gap: int, quick: bool) -> dict[str, Any]:
    """Train one model within its CPU budget and score it."""
    task_id = 0 if task == "adding" else 1
    n_in, n_out = (2, 1) if task == "adding" else (N_SYMBOLS + N_RECALL, N_SYMBOLS)
    hidden = LSTM_HIDDEN if cell == "lstm" else matched_rnn_size(LSTM_HIDDEN, n_in, n_out)
    Est = fastlstm.LSTMRegressor if task == "adding" else fastlstm.LSTMClassifier
    model = Est(cell=cell, hidden_size=hidden, learning_rate=LEARNING_RATE[cell],
                batch_size=32, n_jobs=1, random_state=SEED)
    fit_kwargs = {} if task == "adding" else {"classes": np.arange(N_SYMBOLS)}
    # the same training stream and test set for both cells
    train_rng = np.random.default_rng([SEED, task_id, gap, 1])
    X_test, y_test = make_task(task, gap, 200 if quick else 1000,
                               np.random.default_rng([SEED, task_id, gap, 2]), train=False)
    budget = budget_seconds(gap, quick)
    cpu, seen, wall0, curve = 0.0, 0, time.perf_counter(), []
    next_check = budget / 10
    while cpu < budget:
        X, y = make_task(task, gap, CHUNK, train_rng, train=True)
        start = time.process_time()
        model.partial_fit(X, y, **fit_kwargs)
        cpu += time.process_time() - start
        seen += CHUNK
        if cpu >= next_check or cpu >= budget:
            curve.append((round(cpu, 2), score(task, model, X_test, y_test)))
            next_check += budget / 10
    return {
        "task": task, "cell": cell, "gap": gap, "hidden_size": hidden,
        "parameters": int(sum(p.size for p in model.network_.parameters())),
        "learning_rate": LEARNING_RATE[cell], "budget_s": budget,
        "cpu_s": round(cpu, 2), "wall_s": round(time.perf_counter() - wall0, 2),
        "sequences": seen, "updates": seen // 32, "score": curve[-1][1], "curve": curve,
    }


def _run(args: tuple[str, str, int, bool]) -> dict[str, Any]:
    warnings.simplefilter("ignore")  # partial_fit on a plateau is expected here
    return run_one(*args)


def plot(results: list[dict[str, Any]], gaps: list[int], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    style = {"lstm": dict(color="C0", marker="o", label="LSTM"),
             "rnn": dict(color="C3", marker="s", label="RNN (tanh)")}
    for ax, task in zip(axes, ("adding", "copy"), strict=True):
        for cell in ("lstm", "rnn"):
            rows = sorted((r for r in results if r["task"] == task and r["cell"] == cell),
                          key=lambda r: r["gap"])
            p = rows[0]["parameters"]
            ax.plot([r["gap"] for r in rows], [r["score"] for r in rows],
                    **{**style[cell], "label": f"{style[cell]['label']}, {p} parameters"})
        ax.set_xscale("log")
        ax.set_xticks(gaps, [str(g) for g in gaps])
        ax.minorticks_off()
        ax.set_xlabel("gap length T (time steps)")
        if task == "adding":
            ax.axhline(1 / 6, color="gray", ls="--", label="chance (predict the mean)")
            ax.set_ylabel("test MSE (lower is better, log scale)")
            ax.set_title("Adding problem")
            ax.set_yscale("log")
        else:
            ax.axhline(1 / N_SYMBOLS, color="gray", ls="--", label=f"chance (1/{N_SYMBOLS})")
            for held in (1, 2):  # the others guessed: a model stuck holding some symbols
                ax.axhline(held / N_RECALL + (1 - held / N_RECALL) / N_SYMBOLS, color="gray",
                           ls=":", lw=0.8, label="1 or 2 of 3 symbols held" if held == 1 else None)
            ax.set_ylabel("test accuracy per recalled symbol")
            ax.set_title(f"Copy memory ({N_RECALL} symbols, recall one)")
            ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        ax.grid(alpha=0.3)
    fig.suptitle("Equal parameters, equal training CPU time per gap length")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], replot=True)
    if args.replot:  # redraw from the saved results, without training
        saved = json.loads((args.out / "long_gaps.json").read_text())
        gaps = sorted({r["gap"] for r in saved["runs"]})
        plot(saved["runs"], gaps, args.out / "long_gaps.png")
        print(f"redrew {args.out / 'long_gaps.png'} from {args.out / 'long_gaps.json'}")
        return
    gaps = [10, 50] if args.quick else [10, 25, 50, 100, 200, 400]
    jobs = [(task, cell, gap, args.quick) for gap in sorted(gaps, reverse=True)
            for task in ("adding", "copy") for cell in ("lstm", "rnn")]
    start = time.perf_counter()
    # two models train at a time, one thread each; budgets are CPU time, so a
    # busy machine slows the run down but does not change what a model gets
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(_run, jobs))
    wall = time.perf_counter() - start
    lines = [f"{'task':7s} {'T':>4s} {'cell':4s} {'H':>3s} {'params':>6s} {'CPU s':>6s} "
             f"{'sequences':>9s} {'updates':>7s}  score (adding: test MSE, copy: accuracy)"]
    for r in sorted(results, key=lambda r: (r["task"], r["gap"], r["cell"])):
        lines.append(f"{r['task']:7s} {r['gap']:4d} {r['cell']:4s} {r['hidden_size']:3d} "
                     f"{r['parameters']:6d} {r['cpu_s']:6.1f} {r['sequences']:9d} "
                     f"{r['updates']:7d}  {r['score']:.4f}")
    lines.append(f"chance: adding MSE 1/6 = 0.1667 (predict the mean), copy accuracy "
                 f"1/{N_SYMBOLS} = {1 / N_SYMBOLS:.4f}; wall time {wall:.0f} s")
    plot(results, gaps, args.out / "long_gaps.png")
    info = {"lstm_hidden": LSTM_HIDDEN, "learning_rate": LEARNING_RATE, "chunk": CHUNK,
            "n_symbols": N_SYMBOLS, "n_recall": N_RECALL}
    publish(args.out, "long_gaps", {"quick": args.quick, "wall_s": round(wall, 1),
                                    "config": info, "runs": results}, lines)


if __name__ == "__main__":
    main()
