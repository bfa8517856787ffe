"""Command line: ``fastlstm demo``, ``fastlstm bench``, ``--version``, ``--help``.

Also runs as ``python -m fastlstm``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastlstm


def _digits_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # each 8x8 image is read row by row: 8 time steps of 8 pixels in [0, 1]
    X = (digits.images / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    epochs = 3 if args.quick else args.epochs
    clf = fastlstm.LSTMClassifier(
        hidden_size=args.hidden_size, max_epochs=epochs, learning_rate=args.learning_rate,
        batch_size=32, n_iter_no_change=epochs, random_state=args.seed, n_jobs=args.n_jobs,
        verbose=0 if args.quiet else 1,
    )
    print(
        f"fastlstm {fastlstm.__version__} demo: LSTMClassifier on scikit-learn's digits, "
        "each image read as 8 time steps of 8 pixels"
    )
    print(
        f"{len(X_train)} training and {len(X_test)} test sequences; hidden_size="
        f"{args.hidden_size}, up to {epochs} epochs, n_jobs={args.n_jobs}"
    )
    sys.stdout.flush()
    start = time.perf_counter()
    with warnings.catch_warnings():
        # a demo run stops at its epoch limit on purpose
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        try:
            clf.fit(X_train, y_train)
        except KeyboardInterrupt:
            # a Ctrl-C in the training loop (the model is then published, with
            # its loss curve) was reported by the progress output: one line
            if args.quiet or not hasattr(clf, "loss_curve_"):
                _say_interrupted()
            return 130
    fit_time = time.perf_counter() - start
    accuracy = clf.score(X_test, y_test)
    print(f"test accuracy: {accuracy:.4f}")
    print(f"fit time: {fit_time:.2f} s ({clf.n_iter_} epochs)")
    print(f"training throughput: {clf.t_ / fit_time:,.0f} sequences/s")
    return 0


def _say_interrupted() -> None:
    print("fastlstm: interrupted", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastlstm",
        description="Fast LSTM training and inference on ordinary CPUs.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fastlstm {fastlstm.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train an LSTMClassifier on scikit-learn's digits and report accuracy and speed",
        description=(
            "Train an LSTMClassifier on scikit-learn's digits (8 time steps of 8 pixels), "
            "with a progress bar on stderr, then print the test accuracy, the fit time and "
            "the training throughput."
        ),
    )
    demo.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    demo.add_argument("--quick", action="store_true", help="3 epochs only, for a smoke test")
    demo.add_argument("--hidden-size", type=int, default=64,
                      help="LSTM hidden units (default: 64)")
    demo.add_argument("--learning-rate", type=float, default=1e-2,
                      help="Adam step size (default: 0.01)")
    demo.add_argument("--n-jobs", type=int, default=None,
                      help="threads (default: all usable cores)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    bench = sub.add_parser(
        "bench",
        help="time fastlstm against the peers installed here (PyTorch, ONNX Runtime)",
        description=(
            "Print the machine (CPU, kernel variant, BLAS), the sgemm and FMA peaks, and "
            "fastlstm's times, GFLOP/s and ratios against PyTorch and ONNX Runtime where "
            "installed, as markdown (or JSON with --json). Progress goes to stderr."
        ),
    )
    from fastlstm._bench._run import add_arguments

    add_arguments(bench, quick_cases=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fastlstm`` command line.

    Parameters
    ----------
    argv : sequence of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        The exit status.

    Examples
    --------
    >>> from fastlstm.__main__ import main
    >>> main([])
    usage: fastlstm [-h] [--version] COMMAND ...
    ...
    0
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.epochs < 1:
            parser.error("--epochs must be at least 1")
        try:
            return _digits_demo(args)
        except KeyboardInterrupt:
            _say_interrupted()
            return 130  # the shell's status for SIGINT
    if args.command == "bench":
        from fastlstm._bench._run import execute

        return execute(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
