"""LSTMForecaster deployed: ONNX Runtime against predict, and predict_step streaming."""

import numpy as np
import pytest

import fastlstm
from fastlstm import LSTMForecaster

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(n=90, k=1, c=0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.stack([0.2 * t * (j + 1) + 3 * np.sin(t / 3 + j) for j in range(k)], axis=1)
    X = rng.normal(size=(n, c)) if c else None
    return (y[:, 0] if k == 1 else y), X


def small(**kw):
    params = dict(window=8, horizon=3, hidden_size=8, max_epochs=4, random_state=0, n_jobs=1)
    params.update(kw)
    return LSTMForecaster(**params)


def run(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString())
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("scaling", ["last", "mean", "none"])
@pytest.mark.parametrize("k", [1, 2])
def test_onnx_forecast_equals_predict(scaling, k):
    pytest.importorskip("onnx")
    y, _ = data(k=k)
    f = small(scaling=scaling).fit(y)
    contexts = [y[:60], y[:75], y]
    window = np.stack([np.reshape(c, (len(c), -1))[-8:] for c in contexts])
    out = run(fastlstm.to_onnx(f), {"y": window})
    assert out.shape == (3, 3, k)
    for i, ctx in enumerate(contexts):
        want = np.reshape(f.predict(y=ctx), (3, k))
        np.testing.assert_allclose(out[i], want, rtol=1e-5, atol=1e-5 * np.abs(y).max())


def test_onnx_with_past_and_future_covariates():
    pytest.importorskip("onnx")
    y, X = data(c=3)
    f = small(horizon=4).fit(y[:80], X[:80], future_covariates=[0, 2])
    rows = X[72:84].copy()
    rows[8:, 1] = np.nan  # a past-only column of the forecast rows: not read
    out = run(f.to_onnx(), {"y": y[72:80].reshape(1, 8, 1), "X": rows[None]})
    np.testing.assert_allclose(out[0, :, 0], f.predict(X=rows[8:]), rtol=1e-5, atol=1e-4)
    assert [i.name for i in f.to_onnx().graph.input] == ["y", "X"]


def test_onnx_recursive_graph_is_one_step():
    pytest.importorskip("onnx")
    y, _ = data()
    f = small(strategy="recursive", horizon=5).fit(y)
    out = run(f.to_onnx(), {"y": y[-8:].reshape(1, 8, 1)})
    assert out.shape == (1, 1, 1)
    np.testing.assert_allclose(out[0, 0, 0], f.predict(1)[0], rtol=1e-5)


def test_onnx_refuses_fleets_and_lengths():
    pytest.importorskip("onnx")
    y, _ = data()
    with pytest.raises(ValueError, match="no lengths input"):
        small().fit(y).to_onnx(lengths=True)
    fleet = small(per_series=True).fit([y, y[::-1].copy()])
    with pytest.raises(ValueError, match="fleet of 2"):
        fleet.to_onnx()


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_predict_step_equals_predict_on_the_extended_series(strategy):
    y, _ = data(k=2)
    f = small(strategy=strategy).fit(y[:70])
    state = None
    for t in range(70, 80):
        forecast, state = f.predict_step(y[t][None], state)
        np.testing.assert_allclose(forecast[0], f.predict(y=y[:t + 1]), rtol=1e-12)
    np.testing.assert_array_equal(state[0], y[72:80])


def test_predict_step_with_covariates_and_a_fleet():
    y, X = data(c=2)
    f = small(horizon=2).fit(y[:70], X[:70], future_covariates=[1])
    state = None
    for t in range(70, 75):
        forecast, state = f.predict_step([y[t]], state, x_t=X[t][None],
                                         x_future=X[None, t + 1:t + 3])
    want = f.predict(y=y[:75], X=X[:77])
    np.testing.assert_allclose(forecast[0, :, 0], want, rtol=1e-12)
    with pytest.raises(ValueError, match="pass x_t"):
        f.predict_step([y[70]])
    with pytest.raises(ValueError, match="pass x_future"):
        f.predict_step([y[70]], x_t=X[70][None])
    fleet = small(per_series=True).fit([y[:60], y[10:70]])
    forecast, state = fleet.predict_step([y[60], y[70]])
    for i, ctx in enumerate([y[:61], y[10:71]]):
        np.testing.assert_allclose(forecast[i, :, 0], fleet.predict(y=[y[:61], y[10:71]])[i])
        assert ctx[-1] == state[i, -1, 0]
    with pytest.raises(ValueError, match="y_t must be"):
        fleet.predict_step([y[60]])
