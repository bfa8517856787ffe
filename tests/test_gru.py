"""fastlstm.GRU against the float64 NumPy reference, finite differences and torch.nn.GRU.

Runs once per kernel variant this CPU has (the ``kernel`` fixture).  float64
runs the reference's math with libm: held to rtol 1e-10; float32 to its
rounding.  Then the GRU through the rest of the package: streaming steps,
save/load and pickle, ONNX Runtime, torch, the estimators.
"""

import pickle

import numpy as np
import pytest
import reference
from gru_cases import CONFIG_IDS, CONFIG_KW, make_case, run_reference, run_torch

import fastlstm

pytestmark = [pytest.mark.usefixtures("kernel"),
              pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")]

F64 = dict(rtol=1e-10, atol=1e-12)


def run_layer(case, dtype="float64", n_jobs=1, dropout=0.0, random_state=0):
    """fastlstm.GRU forward + backward on a case; keys as ``reference.gru_run``."""
    params = case["params"]
    num_layers, d, hidden = reference._structure(params)
    layer = fastlstm.GRU(case["x"].shape[2], hidden, num_layers=num_layers,
                         bidirectional=d == 2, dtype=dtype, n_jobs=n_jobs, dropout=dropout,
                         random_state=random_state)
    layer.load_state_dict({k: v.astype(dtype) for k, v in params.items()})
    out, h_n = layer.forward(case["x"], lengths=case["lengths"],
                             initial_state=case["initial_state"], training=True)
    grads, dx, dh0 = layer.backward(case["d_out"], case["d_h_n"], return_state_grads=True)
    result = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    result.update({f"grad_{k}": v for k, v in grads.items()})
    return result


def assert_close(got, want, **tol):
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **tol)


@pytest.mark.parametrize("kw", CONFIG_KW, ids=CONFIG_IDS)
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_float64_matches_the_reference(rng, kw, n_jobs):
    case = make_case(rng, **kw)
    assert_close(run_layer(case, n_jobs=n_jobs), run_reference(case), **F64)


@pytest.mark.parametrize("kw", CONFIG_KW[::3], ids=CONFIG_IDS[::3])
def test_float32_matches_the_reference_to_its_rounding(rng, kw):
    case = make_case(rng, **kw)
    rounded = dict(case, params={k: v.astype(np.float32).astype(np.float64)
                                 for k, v in case["params"].items()})
    for key in ("x", "initial_state", "d_out", "d_h_n"):
        if rounded[key] is not None:
            rounded[key] = rounded[key].astype(np.float32).astype(np.float64)
    want = run_reference(rounded)
    got = run_layer(rounded, dtype="float32")
    for key in want:
        assert got[key].dtype == np.float32, key
        scale = max(1.0, float(np.abs(want[key]).max()))
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=2e-5 * scale, err_msg=key)


def test_gradients_match_finite_differences_of_the_layer(rng):
    """The layer's own forward, differentiated numerically (no reference involved)."""
    case = make_case(rng, batch=3, time=4, input_size=2, hidden_size=3, num_layers=2,
                     bidirectional=True, lengths=[4, 2, 3], initial_state=True)
    got = run_layer(case)
    layer = fastlstm.GRU(2, 3, num_layers=2, bidirectional=True, dtype="float64")

    def loss(params, x, h0):
        layer.load_state_dict(params)
        out, h_n = layer.forward(x, lengths=case["lengths"], initial_state=h0)
        return float(np.sum(out * case["d_out"]) + np.sum(h_n * case["d_h_n"]))

    eps = 1e-6
    params = {k: v.copy() for k, v in case["params"].items()}
    for name in ("weight_hh_l0", "bias_hh_l1_reverse", "bias_ih_l0", "weight_ih_l1"):
        grad = np.zeros_like(params[name])
        for i in np.ndindex(grad.shape):
            keep = params[name][i]
            params[name][i] = keep + eps
            up = loss(params, case["x"], case["initial_state"])
            params[name][i] = keep - eps
            down = loss(params, case["x"], case["initial_state"])
            params[name][i] = keep
            grad[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(got[f"grad_{name}"], grad, rtol=1e-6, atol=1e-8,
                                   err_msg=name)
    x = case["x"].copy()
    dx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        keep = x[i]
        x[i] = keep + eps
        up = loss(params, x, case["initial_state"])
        x[i] = keep - eps
        down = loss(params, x, case["initial_state"])
        x[i] = keep
        dx[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(got["dx"], dx, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kw", [CONFIG_KW[CONFIG_IDS.index(i)] for i in
                                ("2layers-bi", "lengths-bi-2layers-init", "long")],
                         ids=["2layers-bi", "packed-sequence", "long"])
def test_matches_torch_gru_including_packed_sequences(rng, kw):
    case = make_case(rng, **kw)
    want = run_torch(case)
    assert_close(run_layer(case), want, rtol=1e-9, atol=1e-11)


def test_b_hn_is_not_folded_into_b_in(rng):
    """Moving b_hn into b_in changes the output (r scales it): the layer keeps them apart."""
    case = make_case(rng, hidden_size=4, initial_state=True)
    base = run_layer(case)["out"]
    moved = dict(case, params=dict(case["params"]))
    b_ih, b_hh = moved["params"]["bias_ih_l0"].copy(), moved["params"]["bias_hh_l0"].copy()
    b_ih[8:] += b_hh[8:]
    b_hh[8:] = 0
    moved["params"]["bias_ih_l0"], moved["params"]["bias_hh_l0"] = b_ih, b_hh
    assert not np.allclose(run_layer(moved)["out"], base, rtol=1e-6)
    # and bias_hh's gradient is its own, not bias_ih's
    got = run_layer(case)
    assert not np.allclose(got["grad_bias_hh_l0"], got["grad_bias_ih_l0"])


def _recover_masks(case, p, seed):
    """The dropout mask a seeded 2-layer GRU applies to layer 1's input, read exactly.

    A probe layer 1 makes each output unit h_j = tanh(z_j) of one input unit:
    W_hh = 0 and z = 0 exactly (bias -800 saturates the float64 sigmoid), the
    n rows of W_ih select input j; so h_j == 0 exactly where z_j was dropped.
    """
    params = case["params"]
    num_layers, d, hidden = reference._structure(params)
    keep = np.zeros(case["x"].shape[:2] + (d * hidden,), dtype=bool)
    for part in range(d):
        probe = dict(params)
        w = np.zeros((3 * hidden, d * hidden))
        w[2 * hidden:, part * hidden:(part + 1) * hidden] = np.eye(hidden)
        b = np.concatenate([np.zeros(hidden), np.full(hidden, -800.0), np.zeros(hidden)])
        for sfx in ["", "_reverse"][:d]:
            probe[f"weight_ih_l1{sfx}"] = w
            probe[f"weight_hh_l1{sfx}"] = np.zeros((3 * hidden, hidden))
            probe[f"bias_ih_l1{sfx}"] = b
            probe[f"bias_hh_l1{sfx}"] = np.zeros(3 * hidden)
        layer = fastlstm.GRU(case["x"].shape[2], hidden, num_layers=2, bidirectional=d == 2,
                             dropout=p, dtype="float64", n_jobs=2, random_state=seed)
        layer.load_state_dict(probe)
        out, _ = layer.forward(case["x"], case["lengths"], case["initial_state"],
                               training=True)
        keep[..., part * hidden:(part + 1) * hidden] = out[..., :hidden] != 0
    return keep


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_matches_the_reference_with_the_drawn_mask(rng, bidirectional):
    p, seed = 0.4, 123
    case = make_case(rng, batch=5, time=6, input_size=3, hidden_size=4, num_layers=2,
                     bidirectional=bidirectional, lengths=[6, 2, 5, 1, 6], initial_state=True)
    keep = _recover_masks(case, p, seed)
    valid = np.arange(6)[None, :] < case["lengths"][:, None]
    assert 0.15 < (~keep[valid]).mean() < 0.65  # a real mask
    want = run_reference(case, [keep / (1 - p)])
    got = run_layer(case, n_jobs=2, dropout=p, random_state=seed)
    assert_close(got, want, **F64)
    assert not np.allclose(got["out"], run_reference(case)["out"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_by_step_equals_forward(rng, dtype):
    layer = fastlstm.GRU(3, 6, num_layers=2, dtype=dtype, random_state=0)
    x = rng.standard_normal((4, 9, 3))
    out, h_n = layer.forward(x)
    state, steps = None, []
    for t in range(9):
        h_t, state = layer.step(x[:, t], state)
        steps.append(h_t)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else F64
    np.testing.assert_allclose(np.stack(steps, axis=1), out, **tol)
    np.testing.assert_allclose(state, h_n, **tol)
    with pytest.raises(ValueError, match="bidirectional"):
        fastlstm.GRU(3, 6, bidirectional=True).step(x[:, 0])
    with pytest.raises(ValueError, match="x_t must have shape"):
        layer.step(x[:, :2, 0])


def test_threads_change_speed_not_results(rng):
    x = rng.standard_normal((64, 12, 5)).astype(np.float32)
    lengths = rng.integers(1, 13, size=64)
    one = fastlstm.GRU(5, 16, num_layers=2, bidirectional=True, n_jobs=1, random_state=3)
    two = fastlstm.GRU(5, 16, num_layers=2, bidirectional=True, n_jobs=2, random_state=3)
    a = one.forward(x, lengths=lengths, training=True)
    b = two.forward(x, lengths=lengths, training=True)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-7)
    ga = one.backward(np.ones_like(a[0]))[0]
    gb = two.backward(np.ones_like(b[0]))[0]
    for name in ga:
        np.testing.assert_allclose(ga[name], gb[name], rtol=1e-4, atol=1e-5, err_msg=name)
    again = fastlstm.GRU(5, 16, num_layers=2, bidirectional=True, n_jobs=1, random_state=3)
    assert np.array_equal(again.forward(x, lengths=lengths)[0], one.forward(x, lengths=lengths)[0])


def test_save_load_and_pickle_keep_the_layer(tmp_path, rng):
    layer = fastlstm.GRU(3, 5, num_layers=2, bidirectional=True, random_state=0)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    out = layer.forward(x)[0]
    fastlstm.save(layer, tmp_path / "gru.fastlstm")
    loaded = fastlstm.load(tmp_path / "gru.fastlstm")
    assert type(loaded) is fastlstm.GRU
    assert np.array_equal(loaded.forward(x)[0], out)
    assert np.array_equal(pickle.loads(pickle.dumps(layer)).forward(x)[0], out)


def test_onnx_export_is_the_standard_gru_op(rng):
    ort = pytest.importorskip("onnxruntime")
    layer = fastlstm.GRU(3, 5, num_layers=2, bidirectional=True, random_state=0)
    model = layer.to_onnx(lengths=True)
    ops = [n for n in model.graph.node if n.op_type == "GRU"]
    assert len(ops) == 2
    assert {a.name: a.i for a in ops[0].attribute}["linear_before_reset"] == 1
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4, 1], dtype=np.int64)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x_in, lengths_in = sess.get_inputs()
    int_type = np.int32 if lengths_in.type == "tensor(int32)" else np.int64
    got = sess.run(None, {x_in.name: x, lengths_in.name: lengths.astype(int_type)})
    out, h_n = layer.forward(x, lengths=lengths)
    np.testing.assert_allclose(got[0], out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], h_n, rtol=1e-5, atol=1e-6)


def test_to_and_from_torch(rng):
    torch = pytest.importorskip("torch")
    layer = fastlstm.GRU(3, 5, num_layers=2, bidirectional=True, random_state=0)
    module = layer.to_torch()
    assert isinstance(module, torch.nn.GRU)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(layer.forward(x)[0], want, rtol=1e-5, atol=1e-6)
    back = fastlstm.GRU.from_torch(module)
    assert np.array_equal(back.forward(x)[0], layer.forward(x)[0])
    with pytest.raises(TypeError, match="torch.nn.GRU"):
        fastlstm.GRU.from_torch(torch.nn.LSTM(3, 5))


@pytest.mark.parametrize("cls", [fastlstm.LSTMClassifier, fastlstm.LSTMRegressor])
def test_estimators_take_cell_gru(tmp_path, rng, cls):
    X = rng.standard_normal((48, 7, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    if cls is fastlstm.LSTMRegressor:
        y = X[:, :, 1].sum(axis=1)
    est = cls(cell="gru", hidden_size=6, max_epochs=3, random_state=0).fit(X, y)
    assert type(est.network_.layer) is fastlstm.GRU
    pred = est.predict(X)
    fastlstm.save(est, tmp_path / "est.fastlstm")
    assert np.array_equal(fastlstm.load(tmp_path / "est.fastlstm").predict(X), pred)
    # streaming: step t predicts as the sequences cut after t
    state, last = None, None
    for t in range(7):
        last, state = est.predict_step(X[:5, t], state)
    full = est.predict_proba(X[:5]) if cls is fastlstm.LSTMClassifier else est.predict(X[:5])
    np.testing.assert_allclose(last, full, rtol=1e-4, atol=1e-5)
    # the same seed, the same model
    again = cls(cell="gru", hidden_size=6, max_epochs=3, random_state=0).fit(X, y)
    assert np.array_equal(again.predict(X), pred)
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(est.to_onnx().SerializeToString(),
                                providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: X})
    if cls is fastlstm.LSTMClassifier:
        np.testing.assert_allclose(got[1], est.predict_proba(X), rtol=1e-4, atol=1e-5)
    else:
        np.testing.assert_allclose(got[0].ravel(), pred, rtol=1e-4, atol=1e-4)
