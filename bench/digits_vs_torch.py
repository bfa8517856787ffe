"""The demo's model trained by fastlstm and by a plain PyTorch loop, in one run.

Same data (scikit-learn's digits as 8 steps of 8 pixels, the demo's split),
same architecture (one LSTM layer, hidden 64, linear readout on the last
hidden state), same optimizer (Adam, lr 0.01, batch 32, clipping at 5), same
number of epochs, same thread count. Prints test accuracy and fit time.
The ``digits`` task of ``fit_vs_torch.py`` (which also has a long-sequence
and a ragged task), with this script's options.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/digits_vs_torch.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_vs_torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(fit_vs_torch.run_tasks(
        ["digits"], quick=False, threads=args.threads, seed=args.seed, epochs=args.epochs,
        overrides={"hidden_size": args.hidden_size, "learning_rate": args.lr,
                   "batch_size": args.batch_size}), end="")


if __name__ == "__main__":
    main()
