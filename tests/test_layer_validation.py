"""Bad input raises a ValueError/TypeError naming the problem, and the layer survives it.

After every rejected call the layer must still run a training forward and a
backward with the same results as before the failure (no half-updated
parameters, no stale cache).
"""

import re

import numpy as np
import pytest

import fastlstm

B, T, N_IN, H, L = 3, 5, 3, 4, 2  # bidirectional: D = 2
STATE = (2 * L, B, H)
# messages should quote the expected shapes/ranges; built from the sizes above
STATE_RE = re.escape(str(STATE))
OUT_RE = re.escape(str((B, T, 2 * H)))
LENGTH_RANGE = rf"lengths.*\[1, {T}\]"


@pytest.fixture
def case(rng):
    """A layer, a valid input, and what the layer returns for it before any failure."""
    layer = fastlstm.LSTM(N_IN, H, num_layers=L, bidirectional=True, dtype="float64", n_jobs=1,
                          random_state=0)
    x = rng.standard_normal((B, T, N_IN))
    out, (h_n, c_n) = layer.forward(x, training=True)
    d_out = rng.standard_normal(out.shape)
    grads, dx = layer.backward(d_out)
    return dict(layer=layer, x=x, d_out=d_out, out=out, h_n=h_n, grads=grads, dx=dx)


def assert_still_works(case):
    """The same forward/backward as before the failure gives the same results."""
    layer = case["layer"]
    out, (h_n, _) = layer.forward(case["x"], training=True)
    np.testing.assert_array_equal(out, case["out"])
    np.testing.assert_array_equal(h_n, case["h_n"])
    grads, dx = layer.backward(case["d_out"])
    np.testing.assert_array_equal(dx, case["dx"])
    for key, value in case["grads"].items():
        np.testing.assert_array_equal(grads[key], value, err_msg=key)


def _x(shape):
    return lambda x: dict(x=np.ones(shape))


def _with_nan(value, where):
    def make(x):
        x = x.copy()
        x[where] = value
        return dict(x=x)
    return make


def _lengths(lengths):
    return lambda x: dict(x=x, lengths=lengths)


def _state(h0, c0):
    return lambda x: dict(x=x, initial_state=(h0, c0))


FORWARD_ERRORS = [
    # (id, make forward kwargs from the valid x, exception, match)
    ("x-2d", _x((B, T)), ValueError, r"3D|ndim|dimension"),
    ("x-4d", _x((B, T, N_IN, 1)), ValueError, r"3D|ndim|dimension"),
    ("x-1d", _x((N_IN,)), ValueError, r"3D|ndim|dimension"),
    ("x-scalar", lambda x: dict(x=1.0), ValueError, r"3D|ndim|dimension"),
    ("x-none", lambda x: dict(x=None), TypeError, r"\bx\b"),
    ("x-strings", lambda x: dict(x=x.astype(str)), TypeError, r"\bx\b.*(dtype|real|numer)"),
    ("x-input_size", _x((B, T, N_IN + 1)), ValueError, r"input_size"),
    ("x-empty-batch", _x((0, T, N_IN)), ValueError, r"batch"),
    ("x-zero-steps", _x((B, 0, N_IN)), ValueError, r"time"),
    ("x-nan", _with_nan(np.nan, (1, 2, 0)), ValueError, r"NaN"),
    ("x-inf", _with_nan(np.inf, (0, 0, 2)), ValueError, r"inf"),
    ("x-neg-inf", _with_nan(-np.inf, (2, 4, 1)), ValueError, r"inf"),
    ("lengths-zero", _lengths([T, 0, 3]), ValueError, LENGTH_RANGE),
    ("lengths-negative", _lengths([5, -1, 3]), ValueError, LENGTH_RANGE),
    ("lengths-above-T", _lengths([T, T + 1, 3]), ValueError, LENGTH_RANGE),
    ("lengths-too-few", _lengths([5, 3]), ValueError, r"lengths.*one entry per sequence"),
    ("lengths-too-many", _lengths([5, 3, 2, 1]), ValueError,
     r"lengths.*one entry per sequence"),
    ("lengths-2d", _lengths([[5, 3, 2]]), ValueError, r"lengths"),
    ("lengths-scalar", _lengths(5), ValueError, r"lengths"),
    ("lengths-float", _lengths([5.0, 3.0, 2.0]), TypeError, r"lengths.*integer"),
    ("lengths-float-array", _lengths(np.array([5.0, 3.5, 2.0])), TypeError,
     r"lengths.*integer"),
    ("lengths-bool", _lengths([True, True, True]), TypeError, r"lengths.*integer"),
    ("lengths-str", _lengths(["5", "3", "2"]), TypeError, r"lengths.*integer"),
    ("h0-shape", _state(np.zeros((L, B, H)), np.zeros(STATE)), ValueError,
     rf"h0.*shape.*{STATE_RE}"),
    ("c0-shape", _state(np.zeros(STATE), np.zeros((2 * L, B + 1, H))), ValueError,
     rf"c0.*shape.*{STATE_RE}"),
    ("h0-2d", _state(np.zeros((B, H)), np.zeros(STATE)), ValueError, r"h0.*shape"),
    ("h0-nan", _state(np.full(STATE, np.nan), np.zeros(STATE)), ValueError, r"h0.*NaN"),
    ("state-not-pair", lambda x: dict(x=x, initial_state=np.zeros(STATE)), (TypeError,
                                                                            ValueError),
     r"initial_state"),
    ("state-triple", lambda x: dict(x=x, initial_state=(np.zeros(STATE),) * 3), (TypeError,
                                                                                 ValueError),
     r"initial_state"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in FORWARD_ERRORS],
                         ids=[c[0] for c in FORWARD_ERRORS])
@pytest.mark.parametrize("training", [False, True])
def test_forward_rejects_bad_input(case, make, exc, match, training):
    with pytest.raises(exc, match=match):
        case["layer"].forward(**make(case["x"]), training=training)
    assert_still_works(case)


def test_failed_forward_keeps_the_previous_training_cache(case):
    """A rejected forward changes nothing, so the pending backward still works."""
    layer = case["layer"]
    layer.forward(case["x"], training=True)
    with pytest.raises(ValueError, match="input_size"):
        layer.forward(np.ones((B, T, N_IN + 1)), training=True)
    grads, dx = layer.backward(case["d_out"])
    np.testing.assert_array_equal(dx, case["dx"])
    np.testing.assert_array_equal(grads["weight_hh_l1"], case["grads"]["weight_hh_l1"])


# NumPy warns about the overflowing cast before the layer's own check rejects it.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_float32_overflow_to_inf_is_rejected():
    """A float64 value too big for float32 becomes inf on the cast: still caught."""
    layer = fastlstm.LSTM(2, 3, dtype="float32", n_jobs=1, random_state=0)
    x = np.zeros((2, 3, 2))
    x[1, 1, 1] = 1e39
    with pytest.raises(ValueError, match=r"inf"):
        layer.forward(x)
    out, _ = layer.forward(np.zeros((2, 3, 2)))
    assert np.isfinite(out).all()


# ------------------------------------------------------------------- backward
def test_backward_without_forward(rng):
    layer = fastlstm.LSTM(N_IN, H, dtype="float64", random_state=0)
    with pytest.raises(ValueError, match=r"forward.*training=True"):
        layer.backward(np.zeros((B, T, H)))
    out, _ = layer.forward(rng.standard_normal((B, T, N_IN)), training=True)
    grads, dx = layer.backward(np.ones_like(out))
    assert np.isfinite(dx).all() and dx.any()


def test_backward_after_inference_forward(case):
    layer = case["layer"]
    layer.forward(case["x"])
    with pytest.raises(ValueError, match=r"forward.*training=True"):
        layer.backward(case["d_out"])
    assert_still_works(case)


def test_second_backward_needs_a_new_forward(case):
    layer = case["layer"]
    out, _ = layer.forward(case["x"], training=True)
    layer.backward(case["d_out"])
    with pytest.raises(ValueError, match=r"forward.*training=True"):
        layer.backward(case["d_out"])
    with pytest.raises(ValueError, match=r"forward.*training=True"):
        layer.backward(None, np.zeros(STATE), return_state_grads=True)
    assert_still_works(case)


BACKWARD_ERRORS = [
    ("d_out-one-direction", lambda: dict(d_out=np.zeros((B, T, H))), ValueError,
     rf"d_out.*{OUT_RE}"),
    ("d_out-time-major", lambda: dict(d_out=np.zeros((T, B, 2 * H))), ValueError,
     rf"d_out.*{OUT_RE}"),
    ("d_out-2d", lambda: dict(d_out=np.zeros((B, 2 * H))), ValueError, r"d_out"),
    ("d_out-strings", lambda: dict(d_out=np.full((B, T, 2 * H), "a")), TypeError, r"d_out"),
    ("d_h_n-shape", lambda: dict(d_out=None, d_h_n=np.zeros((L, B, H))), ValueError,
     rf"d_h_n.*{STATE_RE}"),
    ("d_h_n-batch", lambda: dict(d_out=None, d_h_n=np.zeros((2 * L, B + 1, H))), ValueError,
     rf"d_h_n.*{STATE_RE}"),
    ("d_c_n-shape", lambda: dict(d_out=None, d_c_n=np.zeros((2 * L, B, 2 * H))), ValueError,
     rf"d_c_n.*{STATE_RE}"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in BACKWARD_ERRORS],
                         ids=[c[0] for c in BACKWARD_ERRORS])
def test_backward_rejects_bad_gradients_and_keeps_the_cache(case, make, exc, match):
    """A rejected backward does not consume the forward: a correct retry works."""
    layer = case["layer"]
    layer.forward(case["x"], training=True)
    with pytest.raises(exc, match=match):
        layer.backward(**make())
    grads, dx = layer.backward(case["d_out"])
    np.testing.assert_array_equal(dx, case["dx"])
    for key, value in case["grads"].items():
        np.testing.assert_array_equal(grads[key], value, err_msg=key)
    assert_still_works(case)


# ----------------------------------------------------------------- state dict
def _drop(key):
    return lambda sd: {k: v for k, v in sd.items() if k != key}


def _add(key):
    return lambda sd: {**sd, key: np.zeros(3)}


def _reshape(key, shape):
    return lambda sd: {**sd, key: np.zeros(shape)}


STATE_DICT_ERRORS = [
    ("missing", _drop("bias_hh_l1_reverse"), ValueError, r"missing.*bias_hh_l1_reverse"),
    ("extra", _add("weight_ih_l2"), ValueError, r"unexpected.*weight_ih_l2"),
    ("extra-typo", lambda sd: {**_drop("bias_ih_l0")(sd), "bias_ih_10": sd["bias_ih_l0"]},
     ValueError, r"missing.*bias_ih_l0.*unexpected.*bias_ih_10"),
    ("transposed", _reshape("weight_ih_l0", (N_IN, 4 * H)), ValueError,
     rf"weight_ih_l0.*shape.*{re.escape(str((N_IN, 4 * H)))}.*{re.escape(str((4 * H, N_IN)))}"),
    ("wrong-layer-width", _reshape("weight_ih_l1_reverse", (4 * H, H)), ValueError,
     r"weight_ih_l1_reverse.*shape"),
    ("bias-2d", _reshape("bias_hh_l0", (1, 4 * H)), ValueError, r"bias_hh_l0.*shape"),
    ("not-a-mapping", lambda sd: list(sd.values()), TypeError, r"mapping"),
    ("non-numeric", lambda sd: {**sd, "bias_ih_l1": np.full(4 * H, "a")}, TypeError,
     r"bias_ih_l1"),
    ("nan", lambda sd: {**sd, "weight_hh_l1": np.full((4 * H, H), np.nan)}, ValueError,
     r"weight_hh_l1.*NaN"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in STATE_DICT_ERRORS],
                         ids=[c[0] for c in STATE_DICT_ERRORS])
def test_load_state_dict_rejects_mismatch_and_changes_nothing(case, rng, make, exc, match):
    layer = case["layer"]
    before = layer.state_dict()
    # every valid entry is new, so a partial load would show
    new = {k: rng.standard_normal(v.shape) for k, v in before.items()}
    with pytest.raises(exc, match=match):
        layer.load_state_dict(make(new))
    after = layer.state_dict()
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    assert_still_works(case)


# ---------------------------------------------------------------- constructor
CONSTRUCTOR_ERRORS = [
    ("hidden_size-0", dict(hidden_size=0), ValueError, r"hidden_size"),
    ("hidden_size-negative", dict(hidden_size=-3), ValueError, r"hidden_size"),
    ("hidden_size-float", dict(hidden_size=2.5), TypeError, r"hidden_size"),
    ("input_size-0", dict(input_size=0), ValueError, r"input_size"),
    ("num_layers-0", dict(num_layers=0), ValueError, r"num_layers"),
    ("num_layers-bool", dict(num_layers=True), TypeError, r"num_layers"),
    ("dropout-negative", dict(dropout=-0.1), ValueError, r"dropout.*\[0, 1\)"),
    ("dropout-1", dict(dropout=1.0), ValueError, r"dropout.*\[0, 1\)"),
    ("dropout-above-1", dict(dropout=1.5), ValueError, r"dropout.*\[0, 1\)"),
    ("dropout-nan", dict(dropout=float("nan")), ValueError, r"dropout"),
    ("dropout-str", dict(dropout="0.5"), TypeError, r"dropout"),
    ("dtype-int32", dict(dtype="int32"), ValueError, r"dtype.*float32.*float64"),
    ("dtype-float16", dict(dtype=np.float16), ValueError, r"dtype.*float32.*float64"),
    ("dtype-nonsense", dict(dtype="double-ish"), TypeError, r"dtype.*float32.*float64"),
    ("n_jobs-0", dict(n_jobs=0), ValueError, r"n_jobs"),
    ("n_jobs-str", dict(n_jobs="2"), TypeError, r"n_jobs"),
    ("n_jobs-float", dict(n_jobs=1.5), TypeError, r"n_jobs"),
    ("random_state-str", dict(random_state="seed"), TypeError, r"random_state"),
]


@pytest.mark.parametrize("kwargs, exc, match", [c[1:] for c in CONSTRUCTOR_ERRORS],
                         ids=[c[0] for c in CONSTRUCTOR_ERRORS])
def test_constructor_rejects_bad_arguments(kwargs, exc, match):
    args = dict(input_size=N_IN, hidden_size=H) | kwargs
    with pytest.raises(exc, match=match):
        fastlstm.LSTM(args.pop("input_size"), args.pop("hidden_size"), **args)


def test_keyword_only_options():
    """Everything past the two sizes is keyword-only, so positions cannot be mixed up."""
    with pytest.raises(TypeError):
        fastlstm.LSTM(N_IN, H, 2)


def test_error_messages_show_the_offending_value(case):
    """Messages carry what was received, not only what was expected."""
    layer = case["layer"]
    with pytest.raises(ValueError) as info:
        layer.forward(np.ones((B, T, 7)))
    assert "7" in str(info.value)
    with pytest.raises(ValueError) as info:
        layer.forward(case["x"], lengths=[5, 9, 3])
    assert "9" in str(info.value)
    with pytest.raises(ValueError) as info:
        fastlstm.LSTM(N_IN, H, dropout=1.25)
    assert re.search(r"1\.25", str(info.value))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("gate", [0, 1, 2, 3])  # i, f, g, o
def test_nan_parameters_show_up_in_the_output(kernel, dtype, gate):
    """The gate clamps let NaN through: a diverged model is visible, not silently finite."""
    layer = fastlstm.LSTM(2, 3, dtype=dtype, n_jobs=1, random_state=0)
    layer.named_parameters()["weight_ih_l0"][gate * 3] = np.nan
    out, (h_n, c_n) = layer.forward(np.ones((2, 4, 2)))
    assert np.isnan(out[:, :, 0]).all() and np.isnan(h_n[0, :, 0]).all()
    assert np.isnan(c_n[0, :, 0]).all() or gate == 3  # o does not feed c


# -------------------------------------------------------------------- step()
STEP_ERRORS = [
    ("x_t-3d", lambda x: dict(x_t=x), ValueError, r"x_t.*shape"),
    ("x_t-input_size", lambda x: dict(x_t=np.ones((B, N_IN + 1))), ValueError,
     rf"x_t.*input_size={N_IN}"),
    ("x_t-empty", lambda x: dict(x_t=np.ones((0, N_IN))), ValueError, r"x_t.*batch"),
    ("x_t-nan", lambda x: dict(x_t=np.full((B, N_IN), np.nan)), ValueError, r"NaN"),
    ("x_t-strings", lambda x: dict(x_t=np.full((B, N_IN), "a")), TypeError, r"x_t"),
    ("state-shape", lambda x: dict(x_t=x[:, 0], state=(np.zeros((1, B, H)),) * 2),
     ValueError, rf"state.*{re.escape(str((L, B, H)))}"),
    ("state-batch", lambda x: dict(x_t=x[:, 0], state=(np.zeros((L, B + 1, H)),) * 2),
     ValueError, rf"state.*{re.escape(str((L, B, H)))}"),
    ("state-not-pair", lambda x: dict(x_t=x[:, 0], state=np.zeros((L, B, H))), TypeError,
     r"state"),
]


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in STEP_ERRORS],
                         ids=[c[0] for c in STEP_ERRORS])
def test_step_rejects_bad_input(rng, make, exc, match):
    layer = fastlstm.LSTM(N_IN, H, num_layers=L, dtype="float64", n_jobs=1, random_state=0)
    x = rng.standard_normal((B, T, N_IN))
    h_t, state = layer.step(x[:, 0])
    with pytest.raises(exc, match=match):
        layer.step(**make(x))
    # still usable, and a failed call did not disturb anything
    again, _ = layer.step(x[:, 0])
    np.testing.assert_array_equal(again, h_t)
    out, _ = layer.forward(x)
    np.testing.assert_allclose(out[:, 0], h_t, rtol=1e-10, atol=1e-12)


def test_step_refuses_bidirectional(rng):
    layer = fastlstm.LSTM(N_IN, H, bidirectional=True, dtype="float64", random_state=0)
    with pytest.raises(ValueError, match=r"bidirectional"):
        layer.step(np.ones((B, N_IN)))
    out, _ = layer.forward(np.ones((B, T, N_IN)))
    assert out.shape == (B, T, 2 * H)
