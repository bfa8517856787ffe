"""pytest-benchmark timings of fastlstm alone (peers: see bench/compare.py).

Run with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/ --benchmark-only``.
Not collected by the plain ``pytest`` run (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

fastlstm = pytest.importorskip("fastlstm")

# (B, T, I, H): the reference shape of docs/performance.md and a larger one.
SHAPES = [(64, 100, 64, 128), (128, 100, 128, 256)]
THREADS = [1, None]  # None: all usable cores


def _ids(shape: tuple[int, ...]) -> str:
    return "B{}-T{}-I{}-H{}".format(*shape)


def _setup(shape: tuple[int, int, int, int], n_jobs: int | None) -> tuple[Any, Any, Any]:
    b, t, i, h = shape
    rng = np.random.default_rng(0)
    layer = fastlstm.LSTM(i, h, n_jobs=n_jobs, random_state=0)
    x = rng.standard_normal((b, t, i), dtype=np.float32)
    d_out = rng.standard_normal((b, t, h), dtype=np.float32)
    return layer, x, d_out


def _gflops(shape: tuple[int, int, int, int], passes: int) -> float:
    """GEMM GFLOP of ``passes`` forward-equivalents (forward 1, forward+backward 3)."""
    b, t, i, h = shape
    return passes * 2.0 * t * b * 4 * h * (i + h) / 1e9


@pytest.mark.parametrize("n_jobs", THREADS, ids=lambda n: f"jobs{n or 'all'}")
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_forward(benchmark: Any, shape: tuple[int, int, int, int], n_jobs: int | None) -> None:
    """Inference forward."""
    layer, x, _ = _setup(shape, n_jobs)
    benchmark.extra_info["gflop"] = _gflops(shape, 1)
    out, _ = benchmark(layer.forward, x)
    assert out.shape == (*shape[:2], shape[3])


@pytest.mark.parametrize("n_jobs", THREADS, ids=lambda n: f"jobs{n or 'all'}")
@pytest.mark.parametrize("shape", SHAPES, ids=_ids)
def test_forward_backward(benchmark: Any, shape: tuple[int, int, int, int],
                          n_jobs: int | None) -> None:
    """One training step: forward(training=True) + backward."""
    layer, x, d_out = _setup(shape, n_jobs)

    def step() -> Any:
        layer.forward(x, training=True)
        return layer.backward(d_out)

    benchmark.extra_info["gflop"] = _gflops(shape, 3)
    grads, dx = benchmark(step)
    assert dx.shape == x.shape
    assert set(grads) >= {"weight_ih_l0", "weight_hh_l0"}


def test_classifier_epoch(benchmark: Any) -> None:
    """One epoch of ``LSTMClassifier.fit`` on 512 sequences (T=50, 8 features, H=64)."""
    clf_cls = getattr(fastlstm, "LSTMClassifier", None)
    if clf_cls is None:
        pytest.skip("fastlstm.LSTMClassifier does not exist yet")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 50, 8), dtype=np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)

    def epoch() -> Any:
        clf = clf_cls(hidden_size=64, batch_size=32, max_epochs=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_epochs=1
            return clf.fit(X, y)

    clf = benchmark(epoch)
    assert clf.predict(X[:4]).shape == (4,)
