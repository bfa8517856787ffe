"""An absurd number of layers is refused from the sizes alone, in milliseconds.

The memory estimates are closed-form in ``num_layers`` (as in ``hidden_size``),
so a layer or an estimator asked for a billion layers says how much memory
that needs before it builds anything, instead of listing billions of shapes.
"""

import time
import tracemalloc

import numpy as np
import pytest

import fastlstm
from fastlstm.estimators.memory import check_estimator_memory, lstm_param_count
from fastlstm.runtime import memory as _memory
from fastlstm.runtime.memory import forward_bytes, layer_param_bytes, layer_param_count

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

HUGE = 10**9
ROOM = 8 << 30  # the available memory the tests pretend to have: the same on every machine


@pytest.fixture
def eight_gib(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: ROOM)


def _sizes(cls, bidirectional, num_layers, input_size=1, hidden_size=1, dropout=0.0,
           dtype="float32"):
    """A stand-in with a layer's sizes, for the estimates (no layer is built)."""

    class Shape:
        _gates, _states = cls._gates, cls._states

    s = Shape()
    s.input_size, s.hidden_size, s.num_layers = input_size, hidden_size, num_layers
    s.num_directions, s.dropout = 2 if bidirectional else 1, dropout
    s.dtype = np.dtype(dtype)
    return s


# --------------------------------------------------------------------- layers
@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_billion_layers_are_refused_before_allocating(eight_gib, cls, bidirectional):
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(MemoryError) as info:
            cls(1, 1, num_layers=HUGE, bidirectional=bidirectional)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n = layer_param_count(1, 1, HUGE, 2 if bidirectional else 1, cls._gates)
    message = str(info.value)
    assert message.startswith(f"a layer with {n:,} parameters in 1,000,000,000 layers needs "
                              "about ")
    assert "TiB of memory, but only 8.0 GiB is available" in message
    assert elapsed < 1.0
    assert peak < 1 << 20


def test_a_deep_layer_that_fits_is_still_built(eight_gib):
    layer = fastlstm.RNN(2, 3, num_layers=5, bidirectional=True, random_state=0)
    assert len(layer.state_dict()) == 4 * 2 * 5
    out, h_n = layer.forward(np.zeros((2, 4, 2)))
    assert out.shape == (2, 4, 6) and h_n.shape == (10, 2, 3)


def test_the_layer_refusal_uses_the_available_memory(monkeypatch):
    # 10**6 one-unit LSTM layers: 16e6 float32 values plus 4e6 arrays' bookkeeping
    needed = layer_param_bytes(1, 1, 10**6, 1, 4, "float32")
    assert needed == 16e6 * 4 + 4e6 * _memory._ARRAY_OVERHEAD
    monkeypatch.setattr(_memory, "available_memory", lambda: int(needed) - 1)
    with pytest.raises(MemoryError, match=r"16,000,000 parameters in 1,000,000 layers"):
        fastlstm.LSTM(1, 1, num_layers=10**6)


# ----------------------------------------------------------------- estimators
def _task(n=10):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, 5, 1))
    return X, (X[:, -1, 0] > 0).astype(int)


@pytest.mark.parametrize("kwargs", [dict(), dict(cell="rnn", bidirectional=True)])
@pytest.mark.parametrize("as_lists", [False, True], ids=["array", "nested-lists"])
def test_an_estimator_with_a_billion_layers_refuses_to_fit(eight_gib, kwargs, as_lists):
    X, y = _task()
    if as_lists:  # shapes unknown until converted: the layer's own check refuses
        X = X.tolist()
    clf = fastlstm.LSTMClassifier(hidden_size=1, num_layers=HUGE, **kwargs)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"needs about .*TiB of memory, but only 8\.0 GiB"):
        clf.fit(X, y)
    assert time.perf_counter() - t0 < 2.0
    assert not hasattr(clf, "network_") and not hasattr(clf, "classes_")


def test_the_estimator_refusal_names_num_layers(eight_gib):
    X, y = _task()
    with pytest.raises(MemoryError, match=r"LSTMRegressor\.fit on 10 sequences of up to 5 "
                                          r"steps with hidden_size=1, num_layers=1000000000 "):
        fastlstm.LSTMRegressor(hidden_size=1, num_layers=HUGE).fit(X, y.astype(float))


def test_a_refused_refit_leaves_the_fitted_model_unchanged(eight_gib):
    X, y = _task(16)
    clf = fastlstm.LSTMClassifier(hidden_size=3, max_epochs=2, random_state=0).fit(X, y)
    network, proba = clf.network_, clf.predict_proba(X)
    clf.set_params(num_layers=HUGE)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match="num_layers=1000000000"):
        clf.fit(X, y)
    assert time.perf_counter() - t0 < 2.0
    assert clf.network_ is network and clf.network_.config["num_layers"] == 1
    np.testing.assert_array_equal(clf.predict_proba(X), proba)


# ------------------------------------------------------- the estimates: O(1)
def _loop_param_count(n_features, hidden, layers, directions, gates):
    """The parameter count summed layer by layer: what the closed form must equal."""
    total = 0
    for k in range(layers):
        n_in = n_features if k == 0 else directions * hidden
        total += directions * gates * hidden * (n_in + hidden + 2)
    return total


def _loop_forward_bytes(layer, batch, steps, training, input_copies=2):
    """The forward estimate summed layer by layer (the estimate before it was closed-form)."""
    s = layer.dtype.itemsize
    rows = float(batch) * float(steps)
    H, D, L = layer.hidden_size, layer.num_directions, layer.num_layers
    G = layer._gates * H
    stored = H if len(layer._states) > 1 else 0
    total = input_copies * rows * layer.input_size * s
    per_layer = []
    for k in range(L):
        n_in = layer.input_size if k == 0 else D * H
        size = rows * (D * H + D * G + D * stored) * s
        if k > 0 and training and layer.dropout > 0:
            size += rows * D * H * (2 * s + 1)
        per_layer.append((size, rows * n_in * s))
    if training:
        total += sum(size for size, _ in per_layer)
        total += 2 * (rows * D * H * s + max(n_in for _, n_in in per_layer))
    else:
        total += max(size + n_in for size, n_in in per_layer)
    return total + 2 * rows * D * H * s


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers, n_features, hidden", [(1, 3, 5), (2, 3, 5), (4, 7, 2),
                                                        (3, 1, 9)])
def test_the_parameter_count_is_the_layer_s(cls, bidirectional, layers, n_features, hidden):
    layer = cls(n_features, hidden, num_layers=layers, bidirectional=bidirectional)
    real = sum(v.size for v in layer.state_dict().values())
    D = 2 if bidirectional else 1
    assert layer_param_count(n_features, hidden, layers, D, cls._gates) == real
    assert real == _loop_param_count(n_features, hidden, layers, D, cls._gates)
    assert lstm_param_count(n_features, hidden, layers, D, cls._gates, 3) == (
        real + 3 * D * hidden + 3)


def test_the_parameter_estimate_is_constant_time_and_linear_in_layers():
    L = 10**12
    t0 = time.perf_counter()
    n = layer_param_count(3, 5, L, 2, 4)
    nbytes = layer_param_bytes(3, 5, L, 2, 4, "float64")
    elapsed = time.perf_counter() - t0
    first = 2 * 4 * 5 * (3 + 5 + 2)
    later = 2 * 4 * 5 * (2 * 5 + 5 + 2)
    assert n == first + (L - 1) * later  # exact: Python integers
    assert nbytes == pytest.approx(n * 8 + 4 * 2 * L * _memory._ARRAY_OVERHEAD, rel=1e-12)
    assert elapsed < 0.01


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("training, dropout", [(False, 0.0), (True, 0.0), (True, 0.5)])
@pytest.mark.parametrize("n_features", [1, 40])  # narrower and wider than D*H
def test_the_forward_estimate_is_the_layer_by_layer_sum(cls, bidirectional, training, dropout,
                                                         n_features):
    for layers in (1, 2, 5):
        shape = _sizes(cls, bidirectional, layers, n_features, 6, dropout, "float64")
        assert forward_bytes(shape, 7, 11, training) == pytest.approx(
            _loop_forward_bytes(shape, 7, 11, training), rel=1e-12)


@pytest.mark.parametrize("training", [False, True])
def test_the_forward_estimate_is_constant_time_and_linear_in_layers(training):
    def f(layers):
        return forward_bytes(_sizes(fastlstm.LSTM, True, layers, 3, 5, 0.2), 8, 10, training)

    L = 10**12
    t0 = time.perf_counter()
    huge = f(L)
    elapsed = time.perf_counter() - t0
    step = f(3) - f(2)  # what each layer after the second adds
    if training:
        assert step > 0 and huge == pytest.approx(f(2) + (L - 2) * step, rel=1e-9)
    else:  # inference keeps one layer's buffers at a time: depth adds nothing
        assert step == 0 and huge == f(2)
    assert elapsed < 0.01


def test_the_estimator_estimate_is_constant_time(eight_gib):
    X, _ = _task()
    clf = fastlstm.LSTMClassifier(hidden_size=1, num_layers=10**12)
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match="num_layers=1000000000000"):
        check_estimator_memory(clf, X, fitting=True)
    assert time.perf_counter() - t0 < 0.05
    check_estimator_memory(clf.set_params(num_layers=3), X, fitting=True)  # fits: no error


def test_the_data_shape_reads_the_layouts_the_estimators_read():
    """Channels-first arrays and lists, and pandas panels, are counted as the estimators read
    them: the longest sequence (which sizes a mini-batch's buffers) is the time axis."""
    pd = pytest.importorskip("pandas")
    from fastlstm.estimators.memory import data_shape

    assert data_shape(np.zeros((40, 6, 100)), channels_first=True) == (40, 4000, 100, 6)
    assert data_shape(np.zeros((40, 100, 6))) == (40, 4000, 100, 6)
    ragged = [np.zeros((6, 30)), np.zeros((6, 70))]
    assert data_shape(ragged, channels_first=True) == (2, 100, 70, 6)
    index = pd.MultiIndex.from_tuples([(i, t) for i, n in enumerate((3, 7, 5)) for t in range(n)])
    panel = pd.DataFrame(np.zeros((15, 2)), index=index)
    assert data_shape(panel) == (3, 15, 7, 2)


def test_a_channels_first_fit_is_sized_by_its_time_axis(monkeypatch):
    """The guard counts a channels-first fit's steps, not its channels, as the sequence length."""
    from fastlstm.estimators import memory as estimator_memory

    seen = []
    monkeypatch.setattr(estimator_memory, "check_memory", lambda needed, what: seen.append(what))
    X = np.zeros((8, 2, 50), dtype=np.float32)
    check_estimator_memory(fastlstm.LSTMClassifier(channels_first=True), X, fitting=True)
    assert "up to 50 steps" in seen[-1]


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN, fastlstm.GRU])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_training_estimate_covers_what_forward_and_backward_allocate(cls, dtype):
    """Measured with tracemalloc: the cell's own store (CellSpec.store_blocks) counted."""
    layer = cls(4, 32, num_layers=2, dtype=dtype, random_state=0)
    x = np.random.default_rng(0).standard_normal((8, 400, 4)).astype(dtype)
    layer.forward(x[:, :5], training=True)  # workspaces of an earlier pass do not count
    layer.backward(None)
    tracemalloc.start()
    try:
        out, _ = layer.forward(x, training=True)
        layer.backward(np.ones_like(out))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= forward_bytes(layer, 8, 400, training=True)
