"""Property-based: random small shapes and options never crash and match the reference."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastlstm

# every exactness test runs once per kernel variant this CPU supports (the
# SIMD variants run float32 on the packed kernels, float64 through BLAS)
pytestmark = pytest.mark.usefixtures("kernel")


@st.composite
def problems(draw):
    """Sizes 1..6, 1-2 layers, either direction mode, optional lengths and states.

    The batch is sometimes 8..12, where n_jobs > 1 splits it into shards.
    """
    batch = draw(st.one_of(st.integers(1, 6), st.integers(8, 12)))
    time = draw(st.integers(1, 6))
    kw = dict(
        batch=batch, time=time,
        input_size=draw(st.integers(1, 6)),
        hidden_size=draw(st.integers(1, 6)),
        num_layers=draw(st.integers(1, 2)),
        bidirectional=draw(st.booleans()),
        initial_state=draw(st.booleans()),
        d_out=draw(st.booleans()),
        d_h_n=draw(st.booleans()),
        d_c_n=draw(st.booleans()),
        x_scale=draw(st.sampled_from([0.1, 1.0, 5.0])),
    )
    if draw(st.booleans()):
        kw["lengths"] = draw(st.lists(st.integers(1, time), min_size=batch, max_size=batch))
    n_jobs = draw(st.sampled_from([1, 2, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    return kw, n_jobs, seed


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems())
def test_random_problems_match_reference(h, spec):
    kw, n_jobs, seed = spec
    problem = h.make_problem(np.random.default_rng(seed), **kw)
    got = h.run_fastlstm(problem, "float64", n_jobs=n_jobs)
    want = h.run_reference(problem)
    # shapes follow the API, not just the reference
    d = 2 if kw["bidirectional"] else 1
    state = (kw["num_layers"] * d, kw["batch"], kw["hidden_size"])
    assert got["out"].shape == (kw["batch"], kw["time"], d * kw["hidden_size"])
    assert got["h_n"].shape == got["c_n"].shape == got["dh0"].shape == state
    assert got["dx"].shape == problem.x.shape
    for key, value in got.items():
        assert np.isfinite(value).all(), key
    h.assert_results_close(got, want, **h.F64_TOL)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(problems(), st.sampled_from(["float32", "float64"]))
def test_inference_forward_is_finite_and_matches_training_forward(h, spec, dtype):
    """The inference path (no cache) gives what the training path gives."""
    kw, n_jobs, seed = spec
    problem = h.make_problem(np.random.default_rng(seed), **kw)
    layer = h.new_layer(problem, dtype, n_jobs=n_jobs)
    args = (problem.x, problem.lengths, problem.initial_state)
    out, (h_n, c_n) = layer.forward(*args)
    assert np.isfinite(out).all() and np.isfinite(h_n).all() and np.isfinite(c_n).all()
    t_out, (t_h, t_c) = layer.forward(*args, training=True)
    np.testing.assert_array_equal(out, t_out)
    np.testing.assert_array_equal(h_n, t_h)
    np.testing.assert_array_equal(c_n, t_c)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_extreme_inputs_stay_finite_and_bounded(dtype, batch, hidden, seed):
    """Saturated gates (huge |x| and weights) give |h| <= 1 and finite gradients."""
    rng = np.random.default_rng(seed)
    layer = fastlstm.LSTM(2, hidden, num_layers=2, bidirectional=True, dtype=dtype,
                          n_jobs=1, random_state=seed)
    for value in layer.named_parameters().values():
        value *= 50
    x = 1e4 * rng.standard_normal((batch, 4, 2))
    out, (h_n, c_n) = layer.forward(x, training=True)
    assert np.all(np.abs(out) <= 1) and np.all(np.abs(h_n) <= 1)
    assert np.isfinite(c_n).all()
    grads, dx = layer.backward(rng.standard_normal(out.shape))
    assert np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in grads.values())
