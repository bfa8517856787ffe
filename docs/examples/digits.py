"""Sequence classification: scikit-learn's digits read row by row.

Each 8x8 image becomes a sequence of 8 time steps with 8 pixel features. An
``LSTMClassifier`` with early stopping learns it; the plot shows the training
and validation loss and the validation accuracy per epoch (from ``history_``),
and the confusion matrix on the held-out test set.

Run: ``python docs/examples/digits.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from _common import parse_args, publish
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

from fastlstm import LSTMClassifier

SEED = 0


def plot(clf: LSTMClassifier, cm: np.ndarray, accuracy: float, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    history = clf.history_  # one record per epoch
    # training and validation loss (both cross-entropy) from the history
    history.plot(ax=ax1, log=True)
    ax1.set_ylabel("loss (cross-entropy)")
    twin = ax1.twinx()
    twin.plot(history["epoch"], history["validation_score"], color="C2",
              label="validation accuracy")
    twin.set_ylabel("validation accuracy", color="C2")
    best = int(np.argmax(history["validation_score"])) + 1
    twin.axvline(best, color="gray", ls=":", label=f"best epoch ({best}), weights restored")
    lines = ax1.get_lines() + twin.get_lines()
    ax1.legend(lines, [ln.get_label() for ln in lines], loc="center right", fontsize=8)
    ax1.set_title("Training with early_stopping=True")
    ax2.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax2.text(j, i, str(v), ha="center", va="center", fontsize=7,
                 color="white" if v > cm.max() / 2 else "black")
    ax2.set_xticks(range(10))
    ax2.set_yticks(range(10))
    ax2.set_xlabel("predicted digit")
    ax2.set_ylabel("true digit")
    ax2.set_title(f"Test set: accuracy {accuracy:.3f} ({cm.sum()} images)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (n, 8 time steps, 8 pixels)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, stratify=digits.target, random_state=SEED)
    clf = LSTMClassifier(hidden_size=64, learning_rate=0.01, batch_size=32,
                         max_epochs=5 if args.quick else 200, early_stopping=True,
                         validation_fraction=0.1, n_iter_no_change=15, random_state=SEED)
    start = time.perf_counter()
    with warnings.catch_warnings():
        if args.quick:  # stops at max_epochs on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = clf.predict(X_test)
    predict_s = time.perf_counter() - start
    accuracy = float(np.mean(predicted == y_test))
    cm = confusion_matrix(y_test, predicted, labels=np.arange(10))
    results = {
        "quick": args.quick, "n_train": len(X_train), "n_test": len(X_test),
        "epochs": clf.n_iter_, "best_epoch": int(np.argmax(clf.validation_scores_)) + 1,
        "best_validation_accuracy": clf.best_validation_score_, "test_accuracy": accuracy,
        "fit_s": round(fit_s, 2), "train_sequences_per_s": round(clf.t_ / fit_s),
        "predict_s": round(predict_s, 4), "confusion_matrix": cm.tolist(),
    }
    lines = [f"{clf.n_iter_} epochs (best {results['best_epoch']}, validation accuracy "
             f"{clf.best_validation_score_:.4f}) in {fit_s:.1f} s, "
             f"{results['train_sequences_per_s']} training sequences/s",
             f"test accuracy {accuracy:.4f} on {len(X_test)} images; predicting them took "
             f"{predict_s * 1e3:.1f} ms"]
    plot(clf, cm, accuracy, args.out / "digits.png")
    publish(args.out, "digits", results, lines)


if __name__ == "__main__":
    main()
