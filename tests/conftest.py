"""Shared fixtures: seeded data, random problems, and running fastlstm like the reference.

pytest runs with ``--import-mode=importlib``, so test modules cannot import
each other; the NumPy reference is made importable by putting this directory
on ``sys.path``, and helpers that need fastlstm are handed out as fixtures.
"""

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference  # noqa: E402

# float64 runs the same math as the reference with libm; only summation order
# differs, so it is held to rtol 1e-10 (atol for entries that are ~0).
F64_TOL = dict(rtol=1e-10, atol=1e-12)


@dataclass
class Problem:
    """One forward/backward case: parameters, inputs and the loss's cotangents.

    The scalar loss is ``sum(out * d_out) + sum(h_n * d_h_n) + sum(c_n * d_c_n)``
    (None terms left out), so the cotangents are its gradients wrt the outputs.
    """

    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    params: dict
    x: np.ndarray
    lengths: np.ndarray | None = None
    initial_state: tuple | None = None
    d_out: np.ndarray | None = None
    d_h_n: np.ndarray | None = None
    d_c_n: np.ndarray | None = None

    def rounded(self, dtype):
        """The same problem with every array rounded to ``dtype`` (kept as float64).

        Comparing a float32 layer against the reference on the rounded problem
        measures only the layer's arithmetic error, not the input rounding.
        """

        def r(a):
            return None if a is None else a.astype(dtype).astype(np.float64)

        return replace(
            self,
            params={k: r(v) for k, v in self.params.items()},
            x=r(self.x),
            initial_state=None if self.initial_state is None
            else tuple(r(a) for a in self.initial_state),
            d_out=r(self.d_out), d_h_n=r(self.d_h_n), d_c_n=r(self.d_c_n),
        )

    def loss(self, out, h_n, c_n):
        """The scalar loss whose gradients the cotangents are."""
        total = 0.0
        for value, weight in ((out, self.d_out), (h_n, self.d_h_n), (c_n, self.d_c_n)):
            if weight is not None:
                total += float(np.sum(value * weight))
        return total


def make_problem(rng, batch=3, time=4, input_size=3, hidden_size=2, num_layers=1,
                 bidirectional=False, lengths=None, initial_state=False, d_out=True,
                 d_h_n=True, d_c_n=True, x_scale=1.0):
    """Build a random Problem; ``lengths="random"`` draws lengths in [1, time]."""
    d = 2 if bidirectional else 1
    state_shape = (num_layers * d, batch, hidden_size)
    if isinstance(lengths, str):
        lengths = rng.integers(1, time + 1, size=batch)
    elif lengths is not None:
        lengths = np.asarray(lengths, dtype=np.int64)
    return Problem(
        input_size, hidden_size, num_layers, bidirectional,
        params=reference.init_params(input_size, hidden_size, num_layers, bidirectional, rng),
        x=x_scale * rng.standard_normal((batch, time, input_size)),
        lengths=lengths,
        initial_state=(rng.standard_normal(state_shape), rng.standard_normal(state_shape))
        if initial_state else None,
        d_out=rng.standard_normal((batch, time, d * hidden_size)) if d_out else None,
        d_h_n=rng.standard_normal(state_shape) if d_h_n else None,
        d_c_n=rng.standard_normal(state_shape) if d_c_n else None,
    )


def new_layer(problem, dtype="float64", **kwargs):
    """A fastlstm.LSTM shaped for ``problem`` holding its parameters."""
    import fastlstm

    kwargs.setdefault("n_jobs", 1)
    layer = fastlstm.LSTM(problem.input_size, problem.hidden_size,
                          num_layers=problem.num_layers, bidirectional=problem.bidirectional,
                          dtype=dtype, **kwargs)
    layer.load_state_dict({k: v.astype(dtype) for k, v in problem.params.items()})
    return layer


def _cast(a, dtype):
    return None if a is None else np.asarray(a).astype(dtype)


def run_fastlstm(problem, dtype="float64", layer=None, **kwargs):
    """Training forward then backward on fastlstm; results keyed as ``reference.run``."""
    layer = new_layer(problem, dtype, **kwargs) if layer is None else layer
    init = problem.initial_state
    out, (h_n, c_n) = layer.forward(
        _cast(problem.x, dtype), lengths=problem.lengths,
        initial_state=None if init is None else (_cast(init[0], dtype), _cast(init[1], dtype)),
        training=True)
    grads, dx, (dh0, dc0) = layer.backward(
        _cast(problem.d_out, dtype), _cast(problem.d_h_n, dtype), _cast(problem.d_c_n, dtype),
        return_state_grads=True)
    result = dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    result.update({f"grad_{k}": v for k, v in grads.items()})
    return result


def run_reference(problem, dropout_masks=None):
    """``reference.run`` on a Problem."""
    return reference.run(problem.params, problem.x, problem.lengths, problem.initial_state,
                         problem.d_out, problem.d_h_n, problem.d_c_n, dropout_masks)


def assert_results_close(actual, expected, rtol, atol):
    """Same keys, same shapes, every array close; the failing key is named."""
    assert sorted(actual) == sorted(expected)
    for key, want in expected.items():
        got = actual[key]
        assert got.shape == want.shape, key
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=key)


def numerical_results(problem, forward_fn, eps=1e-6):
    """Central finite differences of ``problem.loss`` wrt every parameter, x and h0/c0.

    ``forward_fn(problem) -> (out, h_n, c_n)`` evaluates the model; entries are
    perturbed in place and restored.  Keys as ``reference.run`` (dh0/dc0 only
    when the problem has an initial state).
    """

    def loss():
        return problem.loss(*forward_fn(problem))

    def grad(a):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = loss()
            a[idx] = old - eps
            down = loss()
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        return g

    result = {f"grad_{k}": grad(v) for k, v in problem.params.items()}
    result["dx"] = grad(problem.x)
    if problem.initial_state is not None:
        result["dh0"] = grad(problem.initial_state[0])
        result["dc0"] = grad(problem.initial_state[1])
    return result


def max_abs_error(actual, expected):
    """The largest absolute difference over every array of two results."""
    return max(float(np.max(np.abs(actual[k] - expected[k]))) for k in expected)


class Helpers:
    """Namespace handed to tests through the ``h`` fixture."""

    Problem = Problem
    F64_TOL = F64_TOL
    make_problem = staticmethod(make_problem)
    new_layer = staticmethod(new_layer)
    run_fastlstm = staticmethod(run_fastlstm)
    run_reference = staticmethod(run_reference)
    assert_results_close = staticmethod(assert_results_close)
    max_abs_error = staticmethod(max_abs_error)
    numerical_results = staticmethod(numerical_results)


@pytest.fixture(scope="session")
def h():
    """Test helpers (session scoped, so Hypothesis tests may use them)."""
    return Helpers


@pytest.fixture
def rng():
    """A fresh, fixed-seed generator per test, so every test is reproducible."""
    return np.random.default_rng(20240611)


def kernel_variants():
    """Kernel builds runnable on this CPU (``FASTLSTM_KERNEL`` picks one per layer)."""
    try:
        from fastlstm import _kernels
    except ImportError:
        return ["default"]
    return _kernels.available_variants()


@pytest.fixture(params=kernel_variants())
def kernel(request, monkeypatch):
    """Run the test once per kernel variant; layers read the variant when built."""
    if request.param != "default":
        monkeypatch.setenv("FASTLSTM_KERNEL", request.param)
    return request.param


@pytest.fixture(scope="module")
def client():
    """A Dask client of two single-threaded worker processes on 127.0.0.1,
    closed after the module (the modules that ask for it need dask[distributed]).

    Tasks may only use functions the workers can import (fastlstm's, NumPy's):
    test modules are imported by path and are not importable on the workers.
    """
    distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, protocol="tcp", silence_logs=40)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
