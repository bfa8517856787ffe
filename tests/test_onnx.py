"""ONNX export: every model kind runs in ONNX Runtime and matches predict / predict_proba."""

import sys

import numpy as np
import pytest

import fastlstm

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx_session import run_onnx  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)


# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _x(seed, batch, steps, features):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, steps, features)).astype(np.float32)


LAYERS = [
    (fastlstm.LSTM, dict()),
    (fastlstm.LSTM, dict(num_layers=2)),
    (fastlstm.LSTM, dict(bidirectional=True)),
    (fastlstm.LSTM, dict(num_layers=3, bidirectional=True, dtype="float64")),
    (fastlstm.RNN, dict()),
    (fastlstm.RNN, dict(num_layers=2, bidirectional=True)),
]


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_layer_matches_forward(cls, kwargs, with_lengths):
    layer = cls(3, 5, random_state=0, **kwargs)
    model = layer.to_onnx(lengths=with_lengths)
    for batch, steps in ((4, 7), (1, 2), (9, 11)):  # dynamic batch and time
        x = _x(batch, batch, steps, 3)
        lengths = np.random.default_rng(steps).integers(1, steps + 1, size=batch)
        feeds = {"x": x, "lengths": lengths} if with_lengths else {"x": x}
        got = run_onnx(model, **feeds)
        out, state = layer.forward(x, lengths=lengths if with_lengths else None)
        states = state if isinstance(state, tuple) else (state,)
        np.testing.assert_allclose(got["output"], out, **TOL)
        np.testing.assert_allclose(got["h_n"], states[0], **TOL)
        if cls is fastlstm.LSTM:
            np.testing.assert_allclose(got["c_n"], states[1], **TOL)
        else:
            assert "c_n" not in got


def test_onnx_gate_order_is_i_o_f_c():
    layer = fastlstm.LSTM(2, 3, random_state=0)
    model = layer.to_onnx()
    init = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    w = next(v for k, v in init.items() if k.startswith("W0"))
    w_ih = layer.state_dict()["weight_ih_l0"]  # i, f, g, o blocks of 3 rows
    np.testing.assert_array_equal(w[0, 3:6], w_ih[9:12])   # ONNX's o = PyTorch's o
    np.testing.assert_array_equal(w[0, 6:9], w_ih[3:6])    # ONNX's f
    np.testing.assert_array_equal(w[0, 9:12], w_ih[6:9])   # ONNX's c = PyTorch's g
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("LSTM") == 1
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:2] == ["batch", "time"]


ESTIMATORS = {
    "clf": (fastlstm.LSTMClassifier, dict(), "labels"),
    "clf-2layers-bi": (fastlstm.LSTMClassifier, dict(num_layers=2, bidirectional=True),
                       "labels"),
    "clf-rnn-ints-3": (fastlstm.LSTMClassifier, dict(cell="rnn"), "ints"),
    "clf-f64": (fastlstm.LSTMClassifier, dict(dtype="float64"), "labels"),
    "reg": (fastlstm.LSTMRegressor, dict(), "values"),
    "reg-multi-bi-rnn": (fastlstm.LSTMRegressor, dict(cell="rnn", bidirectional=True),
                         "multi"),
    "reg-2layers-f64": (fastlstm.LSTMRegressor, dict(num_layers=2, dtype="float64"), "values"),
    "reg-sequence": (fastlstm.LSTMRegressor, dict(sequence_output=True), "per-step"),
    "reg-sequence-multi": (fastlstm.LSTMRegressor, dict(sequence_output=True), "per-step-2"),
}


def _fitted(name):
    cls, kwargs, kind = ESTIMATORS[name]
    X = _x(0, 48, 6, 2).astype(np.float64)
    y = {
        "labels": lambda: np.where(X[:, -1, 0] > 0, "up", "down"),
        "ints": lambda: np.digitize(X[:, -1, 0], [-0.3, 0.3]) + 7,
        "values": lambda: 50 * X[:, :, 0].sum(axis=1) + 3,
        "multi": lambda: np.column_stack([X[:, -1, 0], 100 * X[:, 0, 1]]),
        "per-step": lambda: 10 * np.cumsum(X[:, :, 0], axis=1),
        "per-step-2": lambda: np.cumsum(X, axis=1),
    }[kind]()
    est = cls(hidden_size=6, max_epochs=3, batch_size=8, random_state=0, **kwargs).fit(X, y)
    return est, X


def _check_estimator(est, got, X_for_predict, valid=None):
    if isinstance(est, fastlstm.LSTMClassifier):
        np.testing.assert_allclose(got["probabilities"], est.predict_proba(X_for_predict), **TOL)
        assert got["probabilities"].dtype == np.float64
        np.testing.assert_array_equal(got["label"], est.predict(X_for_predict))
        return
    want = est.predict(X_for_predict)
    if isinstance(want, list):  # ragged per-step predictions: compare the valid steps
        for i, w in enumerate(want):
            np.testing.assert_allclose(got["y"][i, :len(w)], w, **TOL)
    else:
        assert got["y"].shape == want.shape
        np.testing.assert_allclose(got["y"], want, **TOL)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_matches_predict(name, tmp_path):
    est, X = _fitted(name)
    path = tmp_path / "model.onnx"
    model = est.to_onnx(path)
    assert onnx.load(str(path)) == model
    x = X[:13].astype(np.float32)
    _check_estimator(est, run_onnx(model, x=x), x)

    # with lengths: right-padded sequences against predict on the ragged list
    model = est.to_onnx(lengths=True)
    lengths = np.random.default_rng(1).integers(1, 7, size=13)
    lengths[0] = 6
    ragged = [x[i, :n] for i, n in enumerate(lengths)]
    padded = np.zeros_like(x)
    for i, r in enumerate(ragged):
        padded[i, :len(r)] = r
    _check_estimator(est, run_onnx(model, x=padded, lengths=lengths), ragged)


def test_estimator_fitted_on_a_table_takes_one_feature_per_step():
    X = np.random.default_rng(0).uniform(size=(40, 5))  # 2D: univariate series
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=2, random_state=0).fit(X, X.sum(1))
    got = run_onnx(reg.to_onnx(), x=X[:, :, None].astype(np.float32))
    np.testing.assert_allclose(got["y"], reg.predict(X), **TOL)


def test_unfitted_estimator_and_missing_onnx(monkeypatch):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fastlstm.LSTMClassifier().to_onnx()
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'fastlstm\[onnx\]'"):
        fastlstm.LSTM(2, 3).to_onnx()


# ------------------------------------------- lengths: as the model was fitted
def _ragged(seed, n, features=2, longest=8):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (int(k), features)) for k in rng.integers(2, longest + 1, n)]


def _pad(ragged):
    lengths = np.array([len(r) for r in ragged], dtype=np.int64)
    padded = np.zeros((len(ragged), lengths.max(), ragged[0].shape[1]), dtype=np.float32)
    for i, r in enumerate(ragged):
        padded[i, :len(r)] = r
    return padded, lengths


def _input_names(model):
    return [i.name for i in model.graph.input]


RAGGED_FITS = {
    "clf": (fastlstm.LSTMClassifier, dict(), lambda X: [int(x[-1, 0] > 0) for x in X]),
    "clf-bi-rnn": (fastlstm.LSTMClassifier, dict(cell="rnn", bidirectional=True),
                   lambda X: ["up" if x[:, 1].sum() > 0 else "down" for x in X]),
    "reg": (fastlstm.LSTMRegressor, dict(num_layers=2), lambda X: [x[:, 0].sum() for x in X]),
    # bidirectional: the backward direction starts at the last valid step
    "reg-sequence-bi": (fastlstm.LSTMRegressor, dict(sequence_output=True, bidirectional=True),
                        lambda X: [np.cumsum(x[:, 0]) for x in X]),
}


@pytest.mark.parametrize("name", list(RAGGED_FITS))
def test_a_model_fitted_on_ragged_sequences_exports_lengths_by_default(name):
    cls, kwargs, target = RAGGED_FITS[name]
    X = _ragged(0, 48)
    est = cls(hidden_size=6, max_epochs=3, batch_size=8, random_state=0, **kwargs)
    est.fit(X, target(X))
    model = est.to_onnx()
    assert _input_names(model) == ["x", "lengths"]
    test = _ragged(1, 13)
    padded, lengths = _pad(test)
    assert len(set(lengths.tolist())) > 1
    _check_estimator(est, run_onnx(model, x=padded, lengths=lengths), test)

    # the argument still overrides the default, and then padding is read as steps
    plain = est.to_onnx(lengths=False)
    assert _input_names(plain) == ["x"]
    got = run_onnx(plain, x=padded)
    with pytest.raises(AssertionError):
        _check_estimator(est, got, test)


def test_a_model_fitted_on_equal_lengths_exports_no_lengths_by_default():
    X = _x(0, 40, 6, 2)
    reg = fastlstm.LSTMRegressor(hidden_size=5, max_epochs=2, random_state=0)
    reg.fit(X, X[:, :, 0].sum(axis=1))
    model = reg.to_onnx()
    assert _input_names(model) == ["x"]
    np.testing.assert_allclose(run_onnx(model, x=X[:7])["y"], reg.predict(X[:7]), **TOL)
    assert _input_names(reg.to_onnx(lengths=True)) == ["x", "lengths"]
    # an equal-length list of sequences has no padding either
    reg.fit(list(X), X[:, :, 0].sum(axis=1))
    assert _input_names(reg.to_onnx()) == ["x"]


def test_the_default_follows_partial_fit_warm_start_and_refits():
    X_equal, X_ragged = _x(0, 24, 5, 2), _ragged(2, 24)
    y_equal, y_ragged = [0, 1] * 12, [1, 0] * 12
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0)
    clf.partial_fit(X_equal, y_equal, classes=[0, 1])
    assert _input_names(clf.to_onnx()) == ["x"]
    clf.partial_fit(X_ragged, y_ragged)           # has now seen different lengths
    assert _input_names(clf.to_onnx()) == ["x", "lengths"]
    clf.partial_fit(X_equal, y_equal)             # and that stays true
    assert _input_names(clf.to_onnx()) == ["x", "lengths"]
    clf.fit(X_equal, y_equal)                     # a new fit starts over
    assert _input_names(clf.to_onnx()) == ["x"]
    clf.set_params(warm_start=True).fit(X_ragged, y_ragged)
    clf.fit(X_equal, y_equal)
    assert _input_names(clf.to_onnx()) == ["x", "lengths"]


def test_the_default_survives_pickling_and_is_no_input_when_unknown():
    import pickle

    X = _ragged(3, 24)
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, random_state=0)
    reg.fit(X, [x.sum() for x in X])
    again = pickle.loads(pickle.dumps(reg))
    assert _input_names(again.to_onnx()) == ["x", "lengths"]
    del again._fit_variable_lengths       # a model from before fit recorded it
    assert _input_names(again.to_onnx()) == ["x"]
    padded, lengths = _pad(X[:5])
    got = run_onnx(again.to_onnx(lengths=True), x=padded, lengths=lengths)
    np.testing.assert_allclose(got["y"], reg.predict(X[:5]), **TOL)


def test_the_default_survives_save_and_load(tmp_path):
    """fastlstm.save keeps what fit saw; a file from before it was recorded exports no lengths."""
    import json
    import zipfile

    X = _ragged(3, 24)
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, random_state=0)
    reg.fit(X, [x.sum() for x in X])
    path = tmp_path / "ragged.fastlstm"
    fastlstm.save(reg, path)
    assert _input_names(fastlstm.load(path).to_onnx()) == ["x", "lengths"]
    fixed = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, random_state=0)
    fixed.fit(_x(1, 24, 5, 2), np.arange(24.0))
    fastlstm.save(fixed, tmp_path / "fixed.fastlstm")
    assert _input_names(fastlstm.load(tmp_path / "fixed.fastlstm").to_onnx()) == ["x"]
    # the same file without the field, as files were written before
    old = tmp_path / "old.fastlstm"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".json"):
                header = json.loads(data)
                del header["state"]["variable_lengths"]
                data = json.dumps(header).encode()
            dst.writestr(info, data)
    assert _input_names(fastlstm.load(old).to_onnx()) == ["x"]


def test_a_failed_fit_keeps_the_recorded_lengths():
    X = _ragged(4, 24)
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0)
    clf.fit(X, [0, 1] * 12)
    with pytest.raises(ValueError):
        clf.fit(_x(0, 24, 5, 2), [0] * 23 + [np.nan])  # refused targets: nothing changes
    assert _input_names(clf.to_onnx()) == ["x", "lengths"]
