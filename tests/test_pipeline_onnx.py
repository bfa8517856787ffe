"""fastlstm.to_onnx of a Pipeline: the scalers folded into the graph, checked in ONNX Runtime.

ONNX Runtime runs the exported graph on raw (unscaled) input and must give
what ``Pipeline.predict`` / ``predict_proba`` give, in every layout the
scaler and the estimators share; other pipelines are refused by name.
"""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor, SequenceScaler

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx_session import run_onnx  # noqa: E402

TOL = dict(rtol=1e-5, atol=1e-5)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(cls, **kwargs):
    return cls(hidden_size=6, max_epochs=3, batch_size=8, n_jobs=1, random_state=0, **kwargs)


def _x(seed, n=40, steps=6, features=3):
    # far from standardized, per channel: without the scaler in the graph the
    # outputs would be far off
    rng = np.random.default_rng(seed)
    loc, scale = np.array([50.0, -3.0, 0.5])[:features], np.array([20.0, 0.1, 3.0])[:features]
    return (loc + scale * rng.standard_normal((n, steps, features))).astype(np.float32)


def _check(pipe, got, X):
    final = pipe[-1]
    if isinstance(final, LSTMClassifier):
        np.testing.assert_allclose(got["probabilities"], pipe.predict_proba(X), **TOL)
        np.testing.assert_array_equal(got["label"], pipe.predict(X))
    else:
        want = pipe.predict(X)
        if isinstance(want, list):
            for i, w in enumerate(want):
                np.testing.assert_allclose(got["y"][i, :len(w)], w, **TOL)
        else:
            assert got["y"].shape == want.shape
            np.testing.assert_allclose(got["y"], want, rtol=1e-5, atol=1e-4)


def _labels(X):
    return np.where(X[:, -1, 0] > np.median(X[:, -1, 0]), "up", "down")


PIPELINES = {
    "clf": lambda: make_pipeline(SequenceScaler(), _small(LSTMClassifier)),
    "clf-bi-2layers": lambda: make_pipeline(
        SequenceScaler(), _small(LSTMClassifier, bidirectional=True, num_layers=2)),
    "clf-gru-f64": lambda: make_pipeline(SequenceScaler(), _small(LSTMClassifier, cell="gru",
                                                                  dtype="float64")),
    "reg": lambda: make_pipeline(SequenceScaler(), _small(LSTMRegressor)),
    "reg-two-scalers-passthrough": lambda: Pipeline([
        ("center", SequenceScaler(with_std=False)), ("skip", "passthrough"),
        ("scale", SequenceScaler(with_mean=False)), ("reg", _small(LSTMRegressor, cell="rnn"))]),
    "reg-sequence": lambda: make_pipeline(SequenceScaler(),
                                          _small(LSTMRegressor, sequence_output=True)),
}


@pytest.mark.parametrize("name", list(PIPELINES))
def test_pipeline_graph_matches_predict(name, tmp_path):
    pipe = PIPELINES[name]()
    X = _x(0)
    final = pipe[-1]
    if isinstance(final, LSTMClassifier):
        y = _labels(X)
    elif final.sequence_output:
        y = np.cumsum(X[:, :, 0], axis=1)
    else:
        y = 3 * X[:, -1, 0] + X[:, 0, 1]
    pipe.fit(X, y)
    path = tmp_path / "pipe.onnx"
    model = fastlstm.to_onnx(pipe, path)
    assert onnx.load(str(path)) == model
    ops = [node.op_type for node in model.graph.node]
    assert ops.index("Sub") < ops.index("Div") < ops.index(final.network_.layer.spec.onnx_op)
    test = _x(1, n=11)
    _check(pipe, run_onnx(model, x=test), test)


def test_the_scaler_is_really_in_the_graph():
    # the estimator's own graph on raw input is far from the pipeline's predictions
    X = _x(2)
    pipe = make_pipeline(SequenceScaler(), _small(LSTMRegressor)).fit(X, X[:, -1, 0])
    raw = run_onnx(pipe[-1].to_onnx(), x=X)["y"]
    folded = run_onnx(fastlstm.to_onnx(pipe), x=X)["y"]
    np.testing.assert_allclose(folded, pipe.predict(X), rtol=1e-5, atol=1e-4)
    assert np.abs(raw - pipe.predict(X)).max() > 1e-2


def test_channels_first_pipeline():
    X = np.ascontiguousarray(_x(3).transpose(0, 2, 1))  # (n, channels, time)
    pipe = make_pipeline(SequenceScaler(channels_first=True),
                         _small(LSTMClassifier, channels_first=True)).fit(X, _labels(
                             X.transpose(0, 2, 1)))
    model = fastlstm.to_onnx(pipe)
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "time"]
    test = np.ascontiguousarray(_x(4, n=9).transpose(0, 2, 1))
    _check(pipe, run_onnx(model, x=test), test)


def test_ragged_pipeline_takes_lengths():
    rng = np.random.default_rng(5)
    X = [_x(10 + i, n=1, steps=int(t))[0] for i, t in enumerate(rng.integers(2, 9, size=40))]
    y = [float(x[:, 0].mean()) for x in X]
    pipe = make_pipeline(SequenceScaler(), _small(LSTMRegressor, bidirectional=True)).fit(X, y)
    model = fastlstm.to_onnx(pipe)
    assert [i.name for i in model.graph.input] == ["x", "lengths"]
    test = [_x(60 + i, n=1, steps=int(t))[0] for i, t in enumerate(rng.integers(2, 9, size=9))]
    lengths = np.array([len(t) for t in test], dtype=np.int64)
    padded = np.zeros((9, lengths.max(), 3), dtype=np.float32)
    for i, t in enumerate(test):
        padded[i, :len(t)] = t
    _check(pipe, run_onnx(model, x=padded, lengths=lengths), test)


def test_table_pipeline_takes_one_feature_per_step():
    X = _x(6, features=1)[:, :, 0]  # 2D: univariate series
    pipe = make_pipeline(SequenceScaler(), _small(LSTMRegressor)).fit(X, X.sum(axis=1))
    got = run_onnx(fastlstm.to_onnx(pipe), x=X[:, :, None])
    _check(pipe, got, X)


def test_to_onnx_delegates_for_layers_and_estimators():
    layer = fastlstm.LSTM(3, 4, random_state=0)
    x = _x(7, n=2)
    np.testing.assert_allclose(run_onnx(fastlstm.to_onnx(layer), x=x)["output"],
                               layer.forward(x)[0], **TOL)
    X = _x(8)
    clf = _small(LSTMClassifier).fit(X, _labels(X))
    np.testing.assert_allclose(run_onnx(fastlstm.to_onnx(clf), x=X)["probabilities"],
                               clf.predict_proba(X), **TOL)


def test_a_forecaster_and_a_pipeline_of_it_export_its_graph():
    t = np.arange(100.0)
    y = np.sin(t / 4) + t / 10
    forecaster = fastlstm.LSTMForecaster(window=12, horizon=3, hidden_size=6, max_epochs=3,
                                         n_jobs=1, random_state=0)
    pipe = Pipeline([("skip", "passthrough"), ("forecaster", forecaster)]).fit(y)
    for model in (fastlstm.to_onnx(forecaster), fastlstm.to_onnx(pipe)):
        out = run_onnx(model, y=y[-12:].reshape(1, 12, 1))["forecast"]
        np.testing.assert_allclose(out[0, :, 0], forecaster.predict(), **TOL)
    scaled = Pipeline([("scale", SequenceScaler()), ("forecaster", forecaster)])
    with pytest.raises(TypeError, match="last step 'forecaster' is a fastlstm"):
        fastlstm.to_onnx(scaled)


def test_other_pipelines_are_refused_by_name():
    X = _x(9)
    y = _labels(X)
    foreign = Pipeline([("shift", FunctionTransformer(lambda a: a + 1)),
                        ("clf", _small(LSTMClassifier))]).fit(X, y)
    with pytest.raises(TypeError, match="its step 'shift' is a sklearn.preprocessing"):
        fastlstm.to_onnx(foreign)
    scalers_only = make_pipeline(SequenceScaler()).fit(X)
    with pytest.raises(TypeError, match="last step 'sequencescaler' is a fastlstm"):
        fastlstm.to_onnx(scalers_only)
    mismatch = Pipeline([("scale", SequenceScaler(channels_first=True).fit(
        X.transpose(0, 2, 1))), ("clf", _small(LSTMClassifier).fit(X, y))])
    with pytest.raises(ValueError, match="'scale' reads X with channels_first=True"):
        fastlstm.to_onnx(mismatch)
    with pytest.raises(TypeError, match="to_onnx exports fastlstm layers"):
        fastlstm.to_onnx(FunctionTransformer())
