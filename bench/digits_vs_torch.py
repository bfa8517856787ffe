"""The demo's model trained by fastlstm and by a plain PyTorch loop, in one run.

Same data (scikit-learn's digits as 8 steps of 8 pixels, the demo's split),
same architecture (one LSTM layer, hidden 64, linear readout on the last
hidden state), same optimizer (Adam, lr 0.01, batch 32, clipping at 5), same
number of epochs, same thread count. Prints test accuracy and fit time.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/digits_vs_torch.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

import fastlstm


def data(seed: int) -> tuple[np.ndarray, ...]:
    """The demo's split: 8x8 images read row by row, scaled to [0, 1]."""
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    return train_test_split(X, digits.target, test_size=0.25, random_state=seed,
                            stratify=digits.target)


def run_fastlstm(X_train, X_test, y_train, y_test, args) -> tuple[float, float]:
    """Fit fastlstm's LSTMClassifier; return (test accuracy, fit seconds)."""
    clf = fastlstm.LSTMClassifier(
        hidden_size=args.hidden_size, max_epochs=args.epochs, learning_rate=args.lr,
        batch_size=args.batch_size, clip_norm=5.0, n_iter_no_change=args.epochs,
        random_state=args.seed, n_jobs=args.threads)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    return clf.score(X_test, y_test), time.perf_counter() - start


def run_torch(X_train, X_test, y_train, y_test, args) -> tuple[float, float]:
    """The same model and schedule as a plain PyTorch training loop."""
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(8, args.hidden_size, batch_first=True)
            self.head = torch.nn.Linear(args.hidden_size, 10)

        def forward(self, x):
            _, (h_n, _) = self.lstm(x)
            return self.head(h_n[-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    xt, yt = torch.from_numpy(X_train), torch.from_numpy(y_train).long()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        order = torch.from_numpy(rng.permutation(len(xt)))
        for i in range(0, len(xt), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
    fit = time.perf_counter() - start
    with torch.no_grad():
        pred = net(torch.from_numpy(X_test)).argmax(1).numpy()
    return float((pred == y_test).mean()), fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    split = data(args.seed)
    print(f"digits, {len(split[0])} train / {len(split[1])} test sequences of 8x8; "
          f"LSTM({args.hidden_size}) + linear, Adam lr {args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {args.threads} threads")
    print("| trainer | test accuracy | fit time s | sequences/s |")
    print("|---|---|---|---|")
    rows = [("fastlstm LSTMClassifier", run_fastlstm)]
    try:
        import torch  # noqa: F401

        rows.append(("PyTorch loop (nn.LSTM)", run_torch))
    except ImportError:
        print("(torch not installed: PyTorch row skipped)")
    for name, fn in rows:
        acc, fit = fn(*split, args)
        print(f"| {name} | {acc:.4f} | {fit:.2f} | {args.epochs * len(split[0]) / fit:,.0f} |")


if __name__ == "__main__":
    main()
