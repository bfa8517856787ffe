"""Central finite differences of fastlstm's own forward against its backward (float64).

The loss is ``sum(out * R) + sum(h_n * S) + sum(c_n * U)`` with random R, S, U
(``Problem.loss``); every parameter entry, every x entry and the initial
state are perturbed by +-1e-6.  Truncation error ~eps^2 and cancellation
~1e-16/eps put the finite differences within ~1e-9 of the truth.
"""

import numpy as np
import pytest

import fastlstm

# every exactness test runs once per kernel variant this CPU supports (the
# SIMD variants run float32 on the packed kernels, float64 through BLAS)
pytestmark = pytest.mark.usefixtures("kernel")

FD_TOL = dict(rtol=1e-6, atol=1e-8)

CASES = [
    ("1layer", dict()),
    ("1layer-bi-lengths", dict(bidirectional=True, lengths=[3, 1, 2])),
    ("2layers-lengths-init", dict(num_layers=2, lengths=[2, 3, 3], initial_state=True)),
    ("2layers-bi-lengths-init", dict(num_layers=2, bidirectional=True, lengths=[1, 3, 2],
                                     initial_state=True)),
    ("states-only", dict(num_layers=2, bidirectional=True, lengths=[3, 2, 1], d_out=False,
                         initial_state=True)),
]


def _layer_forward(dtype="float64", **kwargs):
    """problem -> (out, h_n, c_n) through a freshly built fastlstm layer."""

    def forward(problem):
        layer = fastlstm.LSTM(problem.input_size, problem.hidden_size,
                              num_layers=problem.num_layers,
                              bidirectional=problem.bidirectional, dtype=dtype, **kwargs)
        layer.load_state_dict(problem.params)
        out, (h_n, c_n) = layer.forward(problem.x, problem.lengths, problem.initial_state,
                                        training=True)
        return out, h_n, c_n

    return forward


def _analytic(h, problem, **kwargs):
    """Backward's gradients, for the entries that finite differences cover."""
    result = h.run_fastlstm(problem, "float64", **kwargs)
    for key in ("out", "h_n", "c_n") + (("dh0", "dc0") if problem.initial_state is None else ()):
        del result[key]
    return result


@pytest.mark.parametrize("kw", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_gradients_match_finite_differences(rng, h, kw):
    problem = h.make_problem(rng, batch=3, time=3, input_size=2, hidden_size=2, **kw)
    numerical = h.numerical_results(problem, _layer_forward(n_jobs=1))
    h.assert_results_close(_analytic(h, problem), numerical, **FD_TOL)


def test_gradients_match_finite_differences_with_threads(rng, h):
    """Sharded batch (n_jobs=2, 8 rows) still differentiates right."""
    problem = h.make_problem(rng, batch=8, time=3, input_size=1, hidden_size=1, num_layers=2,
                             lengths=[3, 1, 2, 3, 1, 2, 2, 3], initial_state=True)
    numerical = h.numerical_results(problem, _layer_forward(n_jobs=2))
    h.assert_results_close(_analytic(h, problem, n_jobs=2), numerical, **FD_TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_gradients_match_finite_differences_with_the_same_mask(rng, h, bidirectional):
    """With dropout, backward differentiates the forward that drew the mask.

    Each evaluation builds a new layer with the same random_state, so every
    forward (perturbed or not) draws the same mask as the one backpropagated.
    """
    p, seed = 0.5, 7
    problem = h.make_problem(rng, batch=3, time=3, input_size=2, hidden_size=2, num_layers=2,
                             bidirectional=bidirectional, lengths=[3, 1, 2],
                             initial_state=True)
    kwargs = dict(dropout=p, random_state=seed, n_jobs=1)
    numerical = h.numerical_results(problem, _layer_forward(**kwargs))
    analytic = _analytic(h, problem, **kwargs)
    h.assert_results_close(analytic, numerical, **FD_TOL)

    # the mask really acts: training differs from inference, and the
    # gradients differ from those without dropout
    layer = h.new_layer(problem, **kwargs)
    eval_out, _ = layer.forward(problem.x, problem.lengths, problem.initial_state)
    assert not np.allclose(_layer_forward(**kwargs)(problem)[0], eval_out)
    no_dropout = _analytic(h, problem)
    assert not np.allclose(analytic["grad_weight_ih_l0"], no_dropout["grad_weight_ih_l0"])
