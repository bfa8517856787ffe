"""Whole fits: fastlstm's estimator against a plain PyTorch loop, same model and schedule.

The whole-fit section of ``bench/compare.py`` on its own (the machinery is
the package's private ``fastlstm._bench._fit``, see its docstring): for each
task the same data and split, the same model (one LSTM layer and a linear
readout of the final hidden state) starting from the same weights, the same
loss, optimizer (Adam, learning rate, gradient norm clipped at 5), the same
mini-batches in the same order, epochs and threads:

- ``digits``: scikit-learn's digits, 8 steps of 8 pixels, 10 classes;
- ``drift``: T=128 steps of 1 noisy feature, 2 classes by the sign of its mean;
- ``sine`` (on request): noisy sines, T=128 steps of 1 feature, 2 classes;
- ``ragged``: 4-channel oscillations of 3 classes, lengths uniform in
  [20, 60]; PyTorch gets a ``PackedSequence`` per mini-batch;
- ``adding`` (``--tasks adding``): the adding problem, T=100, regression (R^2).

Prints a markdown table: fit time of each trainer, the speed ratio (PyTorch
time / fastlstm time, > 1: fastlstm faster), the test score of each and
whether they agree within 0.01.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/fit_vs_torch.py [--quick]
    python bench/fit_vs_torch.py --tasks adding --epochs 5 --threads 1
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import fastlstm._bench._fit as _fit
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastlstm._bench._fit as _fit

from fastlstm._bench._machine import usable_cores  # noqa: E402


def run_tasks(names: Sequence[str], quick: bool, threads: int | Sequence[int], seed: int,
              epochs: int | None = None, overrides: dict[str, Any] | None = None) -> str:
    """Fit every task with both trainers; the markdown report."""
    return _fit.fit_markdown(names, quick, threads, seed, epochs, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    usable = usable_cores()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=list(_fit.TASKS),
                    default=list(_fit.DEFAULT_TASKS))
    ap.add_argument("--quick", action="store_true",
                    help="fewer epochs and smaller synthetic sets")
    ap.add_argument("--epochs", type=int, default=None, help="epochs for every task")
    ap.add_argument("--threads", type=int, nargs="+", default=[usable],
                    help=f"thread counts for both trainers (default: {usable})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        ap.error("--epochs must be at least 1")
    if min(args.threads) < 1:
        ap.error("--threads must be at least 1")
    text = run_tasks(args.tasks, args.quick, args.threads, args.seed, args.epochs)
    print(text, end="")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
