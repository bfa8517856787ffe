"""The data sets of the whole-fit benchmark (``fastlstm._bench._fit``): train/test splits."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Split", "adding_data", "digits_data", "drift_data", "pixel_digits_data",
           "ragged_data", "sine_data"]

Split = tuple[Any, Any, np.ndarray, np.ndarray]  # X_train, X_test, y_train, y_test


def _split(X: Any, y: np.ndarray, seed: int, stratify: bool) -> Split:
    from sklearn.model_selection import train_test_split

    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.25, random_state=seed,
                                           stratify=y if stratify else None)
    if isinstance(X, list):
        return [X[i] for i in idx_train], [X[i] for i in idx_test], y[idx_train], y[idx_test]
    return X[idx_train], X[idx_test], y[idx_train], y[idx_test]


def digits_data(seed: int, n_samples: int | None = None) -> Split:
    """The demo's split: 8x8 images read row by row (8 steps of 8 pixels), in [0, 1].

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = digits_data(0, n_samples=40)
    >>> X_train.shape, X_test.shape, X_train.dtype.name
    ((30, 8, 8), (10, 8, 8), 'float32')
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    y = digits.target
    if n_samples is not None:  # the images cycle through the classes: all present
        X, y = X[:n_samples], y[:n_samples]
    return _split(X, y, seed, stratify=n_samples is None)


def pixel_digits_data(seed: int, n_samples: int | None = None) -> Split:
    """The digits read pixel by pixel: 64 steps of one pixel, in [0, 1].

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = pixel_digits_data(0, n_samples=40)
    >>> X_train.shape, X_train.dtype.name
    ((30, 64, 1), 'float32')
    """
    X_train, X_test, y_train, y_test = digits_data(seed, n_samples)
    return (X_train.reshape(len(X_train), 64, 1), X_test.reshape(len(X_test), 64, 1),
            y_train, y_test)


def sine_data(seed: int, n_samples: int | None = None) -> Split:
    """Noisy sines of 128 steps, class = frequency (1/16 or 1/12 cycles per step)."""
    rng = np.random.default_rng(seed)
    n, steps = n_samples or 3000, 128
    y = rng.integers(0, 2, size=n)
    freq = np.where(y == 1, 1 / 12, 1 / 16)
    phase = rng.uniform(0, 2 * np.pi, size=n)
    t = np.arange(steps)
    X = np.sin(2 * np.pi * freq[:, None] * t + phase[:, None]) + rng.normal(size=(n, steps))
    return _split(X.astype(np.float32)[..., None], y, seed, stratify=n_samples is None)


def drift_data(seed: int, n_samples: int | None = None) -> Split:
    """128 steps of N(+-0.3, 1) noise, class = the sign of the mean."""
    rng = np.random.default_rng(seed)
    n, steps = n_samples or 3000, 128
    y = rng.integers(0, 2, size=n)
    X = np.where(y == 1, 0.3, -0.3)[:, None] + rng.normal(size=(n, steps))
    return _split(X.astype(np.float32)[..., None], y, seed, stratify=n_samples is None)


def ragged_data(seed: int, n_samples: int | None = None) -> Split:
    """Noisy 4-channel oscillations, class = frequency, lengths uniform in [20, 60]."""
    rng = np.random.default_rng(seed)
    n = n_samples or 3000
    freqs = np.array([0.05, 0.08, 0.12])  # cycles per step
    mix = rng.normal(size=(2, 4)).astype(np.float32)  # sin/cos -> 4 channels
    X, y = [], rng.integers(0, 3, size=n)
    for k in range(n):
        t = np.arange(rng.integers(20, 61))
        phase = rng.uniform(0, 2 * np.pi)
        base = np.stack([np.sin(2 * np.pi * freqs[y[k]] * t + phase),
                         np.cos(2 * np.pi * freqs[y[k]] * t + phase)], axis=1)
        X.append((base @ mix + 0.5 * rng.normal(size=(len(t), 4))).astype(np.float32))
    return _split(X, y, seed, stratify=n_samples is None)


def adding_data(seed: int, n_samples: int | None = None) -> Split:
    """The adding problem: values in [0, 1], two marked steps, target their sum."""
    rng = np.random.default_rng(seed)
    n, steps = n_samples or 4000, 100
    X = np.zeros((n, steps, 2), dtype=np.float32)
    X[:, :, 0] = rng.uniform(size=(n, steps))
    first = rng.integers(0, steps // 2, size=n)
    second = rng.integers(steps // 2, steps, size=n)
    rows = np.arange(n)
    X[rows, first, 1] = 1.0
    X[rows, second, 1] = 1.0
    y = X[rows, first, 0].astype(np.float64) + X[rows, second, 0]
    return _split(X, y, seed, stratify=False)
