"""Benchmark shapes, seeded inputs and the fastlstm layer under test."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastlstm._bench import _peers

__all__ = ["DEFAULT_CASES", "PARITY_TOL", "SEED", "Shape", "fastlstm_error", "fl_train_step",
           "inputs", "make_layer", "parse_case", "weights"]

Shape = tuple[int, int, int, int]  # B, T, I, H

DEFAULT_CASES: list[Shape] = [
    (32, 50, 16, 64),
    (64, 100, 64, 128),
    (128, 100, 128, 256),
    (64, 100, 256, 512),
    (16, 200, 32, 128),
    (1, 100, 32, 128),
]
QUICK_CASES: list[Shape] = [(32, 50, 16, 64), (64, 100, 64, 128), (1, 100, 32, 128)]
PARITY_TOL = 1e-4
SEED = 1234


def parse_case(text: str) -> Shape:
    """'B,T,I,H' (or 'BxTxIxH') -> a tuple of four positive ints.

    Examples
    --------
    >>> parse_case("2,3,2,8")
    (2, 3, 2, 8)
    >>> parse_case("2,3")
    Traceback (most recent call last):
    ...
    ValueError: a case is B,T,I,H (four positive integers), got '2,3'
    """
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or min(parts) < 1:
        raise ValueError(f"a case is B,T,I,H (four positive integers), got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def fastlstm_error() -> str | None:
    """None if fastlstm's kernels load, else why not (peers still run)."""
    try:
        from fastlstm import _kernels

        _kernels.load()
    except Exception as exc:  # not built, or a bad FASTLSTM_KERNEL
        return f"fastlstm kernels not usable ({type(exc).__name__}: {exc})"
    return None


def make_layer(i: int, h: int, threads: int, cell: str = "lstm") -> Any:
    """A seeded single-layer fastlstm layer of ``cell`` (default: the LSTM) on ``threads``."""
    from fastlstm.nn import registry

    return registry.layer_class(cell)(i, h, n_jobs=threads, random_state=SEED)


def weights(i: int, h: int, threads: int, cell: str = "lstm"
            ) -> tuple[Any, dict[str, np.ndarray]]:
    """(fastlstm layer or None, its state dict as NumPy) for one shape."""
    if fastlstm_error() is None:
        layer = make_layer(i, h, threads, cell)
        return layer, _peers.state_dict_numpy(layer.state_dict())
    if cell != "lstm":
        raise RuntimeError(f"no {cell} weights without fastlstm's kernels")
    return None, _peers.random_state_dict(i, h, seed=SEED)


def inputs(b: int, t: int, i: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded input (B, T, I) and output gradient (B, T, H), float32."""
    rng = np.random.default_rng(SEED + b + t + i + h)
    x = rng.standard_normal((b, t, i), dtype=np.float32)
    d_out = rng.standard_normal((b, t, h), dtype=np.float32)
    return x, d_out


def fl_train_step(layer: Any, x: np.ndarray, d_out: np.ndarray, lengths: Any = None) -> None:
    """One fastlstm forward(training=True) + backward."""
    layer.forward(x, lengths=lengths, training=True)
    layer.backward(d_out)
