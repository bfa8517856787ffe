"""to_torch / from_torch: layers both ways and fitted estimators, against fastlstm's outputs."""

import io
import sys

import numpy as np
import pytest

import fastlstm

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

F32 = dict(rtol=1e-6, atol=1e-6)
F64 = dict(rtol=1e-12, atol=1e-12)


# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _tol(dtype):
    return F64 if np.dtype(dtype) == np.float64 else F32


def _torch_forward(module, x, lengths=None):
    with torch.no_grad():
        xt = torch.from_numpy(x)
        if lengths is None:
            out, state = module(xt)
        else:
            packed = pack_padded_sequence(xt, torch.as_tensor(lengths), batch_first=True,
                                          enforce_sorted=False)
            out, state = module(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    states = state if isinstance(state, tuple) else (state,)
    return out.numpy(), [s.numpy() for s in states]


def _fast_forward(layer, x, lengths=None):
    out, state = layer.forward(x, lengths=lengths)
    return out, list(state) if isinstance(state, tuple) else [state]


LAYERS = [
    (fastlstm.LSTM, dict()),
    (fastlstm.LSTM, dict(num_layers=2, bidirectional=True, dropout=0.3)),
    (fastlstm.LSTM, dict(num_layers=2, dtype="float64")),
    (fastlstm.RNN, dict()),
    (fastlstm.RNN, dict(num_layers=3, bidirectional=True, dtype="float64")),
]


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_layer_to_torch(cls, kwargs):
    layer = cls(3, 5, random_state=0, **kwargs)
    module = layer.to_torch()
    assert isinstance(module, torch.nn.LSTM if cls is fastlstm.LSTM else torch.nn.RNN)
    assert module.batch_first and module.num_layers == layer.num_layers
    assert not module.training  # no dropout, as forward(training=False)
    assert module.dropout == (layer.dropout if layer.num_layers > 1 else 0.0)
    x = np.random.default_rng(0).standard_normal((6, 8, 3)).astype(layer.dtype)
    for lengths in (None, np.array([8, 3, 1, 5, 8, 2])):
        got = _torch_forward(module, x, lengths)
        want = _fast_forward(layer, x, lengths)
        for g, w in zip([got[0], *got[1]], [want[0], *want[1]], strict=True):
            assert g.dtype == layer.dtype
            np.testing.assert_allclose(g, w, **_tol(layer.dtype))


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_layer_from_torch(cls, kwargs):
    torch.manual_seed(0)
    torch_cls = torch.nn.LSTM if cls is fastlstm.LSTM else torch.nn.RNN
    dtype = kwargs.get("dtype", "float32")
    module = torch_cls(3, 5, num_layers=kwargs.get("num_layers", 1),
                       bidirectional=kwargs.get("bidirectional", False),
                       dropout=kwargs.get("dropout", 0.0), batch_first=True)
    module = module.to(torch.float64 if dtype == "float64" else torch.float32).eval()
    layer = cls.from_torch(module, n_jobs=1, random_state=0)
    assert type(layer) is cls and layer.dtype == np.dtype(dtype) and layer.n_jobs == 1
    assert layer.dropout == pytest.approx(module.dropout)
    x = np.random.default_rng(1).standard_normal((4, 6, 3)).astype(dtype)
    got = _fast_forward(layer, x, [6, 2, 4, 1])
    want = _torch_forward(module, x, [6, 2, 4, 1])
    for g, w in zip([got[0], *got[1]], [want[0], *want[1]], strict=True):
        np.testing.assert_allclose(g, w, **_tol(dtype))
    # and back: the same module, to the bit
    for name, value in layer.to_torch().state_dict().items():
        assert torch.equal(value, module.state_dict()[name])


def test_from_torch_without_bias_and_refusals():
    module = torch.nn.LSTM(2, 3, bias=False, batch_first=True)
    layer = fastlstm.LSTM.from_torch(module)
    assert not layer.state_dict()["bias_ih_l0"].any()
    x = np.random.default_rng(0).standard_normal((2, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(_fast_forward(layer, x)[0], _torch_forward(module, x)[0], **F32)

    with pytest.raises(TypeError, match="expects a torch.nn.LSTM"):
        fastlstm.LSTM.from_torch(torch.nn.RNN(2, 3))
    with pytest.raises(TypeError, match="expects a torch.nn.RNN"):
        fastlstm.RNN.from_torch(torch.nn.GRU(2, 3))
    with pytest.raises(ValueError, match="proj_size=2"):
        fastlstm.LSTM.from_torch(torch.nn.LSTM(2, 3, proj_size=2))
    with pytest.raises(ValueError, match="nonlinearity='relu'"):
        fastlstm.RNN.from_torch(torch.nn.RNN(2, 3, nonlinearity="relu"))
    with pytest.raises(TypeError, match=r"module.float\(\)"):
        fastlstm.LSTM.from_torch(torch.nn.LSTM(2, 3).half())


def _fitted(cls, y_kind, **kwargs):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (40, 6, 2))
    y = {"labels": np.where(X[:, -1, 0] > 0, "up", "down"),
         "values": 30 * X[:, :, 0].sum(axis=1) - 4,
         "multi": np.column_stack([X[:, -1, 0], 100 * X[:, 0, 1]]),
         "per-step": 10 * np.cumsum(X[:, :, 0], axis=1)}[y_kind]
    est = cls(hidden_size=6, max_epochs=2, batch_size=8, random_state=0, **kwargs).fit(X, y)
    return est, X.astype(est.network_.dtype)


ESTIMATORS = [
    (fastlstm.LSTMClassifier, "labels", dict()),
    (fastlstm.LSTMClassifier, "labels", dict(cell="rnn", num_layers=2, bidirectional=True)),
    (fastlstm.LSTMRegressor, "values", dict()),
    (fastlstm.LSTMRegressor, "multi", dict(bidirectional=True, dtype="float64")),
    (fastlstm.LSTMRegressor, "per-step", dict(sequence_output=True)),
]


@pytest.mark.parametrize("cls, y_kind, kwargs", ESTIMATORS,
                         ids=[f"{c.__name__}-{k}-{sorted(kw)}" for c, k, kw in ESTIMATORS])
def test_estimator_to_torch(cls, y_kind, kwargs):
    est, X = _fitted(cls, y_kind, **kwargs)
    module = est.to_torch()
    assert not module.training
    want_fn = est.predict_proba if cls is fastlstm.LSTMClassifier else est.predict
    tol = _tol(est.network_.dtype)
    with torch.no_grad():
        got = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, want_fn(X), **tol)  # un-scaled targets included
    # ragged: padded batch with lengths against predict on the list
    lengths = np.array([6, 2, 5, 1, 3])
    ragged = [X[i, :n] for i, n in enumerate(lengths)]
    padded = np.zeros((5, 6, 2), dtype=X.dtype)
    for i, r in enumerate(ragged):
        padded[i, :len(r)] = r
    with torch.no_grad():
        got = module(torch.from_numpy(padded), torch.from_numpy(lengths)).numpy()
    want = want_fn(ragged)
    if isinstance(want, list):
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[i, :len(w)], w, **tol)
    else:
        np.testing.assert_allclose(got, want, **tol)


def test_estimator_module_saves_with_torch_and_fine_tunes():
    est, X = _fitted(fastlstm.LSTMRegressor, "values")
    module = est.to_torch()
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    copy = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        np.testing.assert_array_equal(copy(torch.from_numpy(X)).numpy(),
                                      module(torch.from_numpy(X)).numpy())
    # trainable as any torch module
    params = list(module.parameters())
    assert {n for n, _ in module.named_parameters()} >= {"head.weight", "rnn.weight_hh_l0"}
    loss = module(torch.from_numpy(X)).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in params)


def test_missing_torch(monkeypatch):
    layer = fastlstm.LSTM(2, 3)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install torch"):
        layer.to_torch()
