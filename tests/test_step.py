"""layer.step on its cached stepper: bit-identical results, invalidation, out=, threads.

Every test runs for every cell and, through the ``kernel`` fixture, every
kernel variant this CPU runs.  The RNN and the GRU step with their forward's
arithmetic over one step, and so does the LSTM on the packed SIMD kernels;
there a step-by-step run is also the whole-sequence forward, bit for bit.
"""

import threading

import numpy as np
import pytest

import fastlstm

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CELLS = {"lstm": fastlstm.LSTM, "rnn": fastlstm.RNN, "gru": fastlstm.GRU}
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}


def _states(state):
    return list(state) if isinstance(state, tuple) else [state]


def _same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_states(a), _states(b), strict=True))


def _packed(layer):
    return (layer.dtype == np.float32 and layer.spec.packed
            and layer._kernels.packed_width() > 0)


def _random_state(layer, batch, rng):
    shape = (layer.num_layers, batch, layer.hidden_size)
    arrays = [rng.standard_normal(shape).astype(layer.dtype) * 0.5 for _ in layer.spec.states]
    return tuple(arrays) if len(arrays) == 2 else arrays[0]


def _forward_one(layer, x_t, state):
    out, final = layer.forward(x_t[:, None], initial_state=state)
    return out[:, 0], final


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step_is_the_forward_over_one_step(kernel, rng, cell, dtype):
    """From any state, for batches up to past a register tile: the forward's numbers,
    bit for bit (the LSTM's BLAS path has arithmetic of its own: close)."""
    for batch in (1, 2, 7, 9):
        for hidden in (5, 16):
            layer = CELLS[cell](3, hidden, num_layers=2, dtype=dtype, random_state=batch,
                                n_jobs=1)
            x = rng.standard_normal((batch, 3)).astype(dtype)
            state = _random_state(layer, batch, rng)
            h_t, new = layer.step(x, state)
            want_h, want = _forward_one(layer, x, state)
            if cell == "lstm" and not _packed(layer):
                np.testing.assert_allclose(h_t, want_h, **TOL[dtype])
                for a, b in zip(_states(new), _states(want), strict=True):
                    np.testing.assert_allclose(a, b, **TOL[dtype])
            else:
                assert np.array_equal(h_t, want_h) and _same(new, want), (batch, hidden)


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_batches_the_forward_splits_step_as_the_forward(kernel, rng, cell):
    """A batch whose one-step forward is split over threads: the same numbers, out= too."""
    layer = CELLS[cell](3, 8, dtype="float64", random_state=0, n_jobs=2)
    x = rng.standard_normal((12, 3))
    state = _random_state(layer, 12, rng)
    want_h, want = _forward_one(layer, x, state)
    h_t, new = layer.step(x, state)
    assert np.array_equal(h_t, want_h) and np.array_equal(new, want)
    own = np.empty_like(want)
    h_t, new = layer.step(x, state, out=own)
    assert new is own and np.array_equal(own, want) and np.array_equal(h_t, want_h)
    with pytest.raises(ValueError, match="out must hold"):
        layer.step(x, state, out=own[:, :6])


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_packed_steps_are_the_whole_forward(kernel, rng, cell):
    """On the packed kernels, stepping through a sequence is its forward, bit for bit."""
    layer = CELLS[cell](4, 20, num_layers=2, random_state=0)
    if not _packed(layer):
        pytest.skip(f"the {kernel} variant has no packed kernels: the BLAS path is tested above")
    for batch in (1, layer._kernels.packed_tile_rows() + 1):
        x = rng.standard_normal((batch, 6, 4)).astype(np.float32)
        out, final = layer.forward(x)
        state, hs = None, []
        for t in range(6):
            h_t, state = layer.step(x[:, t], state)
            hs.append(h_t)
        assert np.array_equal(np.stack(hs, axis=1), out) and _same(state, final)


@pytest.mark.parametrize("cell", list(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_receives_the_state_and_may_be_the_state(kernel, rng, cell, dtype):
    layer = CELLS[cell](3, 6, num_layers=2, dtype=dtype, random_state=0)
    xs = rng.standard_normal((8, 2, 3)).astype(dtype)
    fresh, hs = None, []
    for x in xs:
        h_t, fresh = layer.step(x, fresh)
        hs.append(h_t.copy())
    # caller-owned buffers, reused at every step
    bufs = [np.full((2, 2, 6), np.nan, dtype) for _ in layer.spec.states]
    own = tuple(bufs) if cell == "lstm" else bufs[0]
    other = tuple(np.empty_like(b) for b in bufs) if cell == "lstm" else np.empty_like(bufs[0])
    state = None
    for t, x in enumerate(xs):
        target = own if t % 2 == 0 else other
        h_t, state = layer.step(x, state, out=target)
        assert state is target
        assert np.array_equal(h_t, hs[t]) and np.shares_memory(h_t, _states(target)[0])
    assert _same(state, fresh)
    # in place: the state passed in is the out
    state = tuple(np.zeros((2, 2, 6), dtype) for _ in bufs) if cell == "lstm" else np.zeros(
        (2, 2, 6), dtype)
    first = state
    for t, x in enumerate(xs):
        h_t, state = layer.step(x, state, out=state)
        assert state is first and np.array_equal(h_t, hs[t])
    assert _same(state, fresh)


@pytest.mark.parametrize("cell", list(CELLS))
def test_bad_out_is_refused_before_anything_is_written(kernel, rng, cell):
    layer = CELLS[cell](3, 4, num_layers=2, random_state=0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    _, state = layer.step(x)
    kept = [a.copy() for a in _states(state)]
    shape = (2, 2, 4)

    def pack(*arrays):
        return tuple(arrays) if cell == "lstm" else arrays[0]

    def good():
        return np.zeros(shape, np.float32)

    read_only = good()
    read_only.flags.writeable = False
    bad = {
        "shape": (pack(*[np.zeros((2, 3, 4), np.float32)] * len(kept)), ValueError, "shape"),
        "dtype": (pack(*[np.zeros(shape)] * len(kept)), ValueError, "float32"),
        "strided": (pack(*[np.zeros((2, 2, 8), np.float32)[:, :, ::2]] * len(kept)),
                    ValueError, "not C-contiguous"),
        "read-only": (pack(*[read_only] * len(kept)), ValueError, "read-only"),
        "list": (pack(*[[[0.0] * 4] * 2] * len(kept)), ValueError, "list"),
    }
    if cell == "lstm":
        bad["one array"] = (good(), TypeError, r"tuple \(h, c\)")
        bad["h is c"] = ((state[1], state[1]), ValueError, "share memory")
        shared = good()
        bad["same buffer"] = ((shared, shared), ValueError, "share memory")
    else:
        bad["a tuple"] = ((good(),), ValueError, "tuple")
    # an out whose memory holds x_t
    wide = np.zeros(shape, np.float32)
    x_inside = wide.reshape(-1)[:6].reshape(2, 3)
    x_inside[...] = x
    bad["x_t's memory"] = (pack(wide, *[good()] * (len(kept) - 1)), ValueError, "x_t")
    for name, (out, exc, match) in bad.items():
        x_in = x_inside if name == "x_t's memory" else x
        with pytest.raises(exc, match=match):
            layer.step(x_in, state, out=out)
        assert all(np.array_equal(a, b) for a, b in zip(_states(state), kept, strict=True)), name
    h_t, _ = layer.step(x, state, out=pack(*[good() for _ in kept]))  # and a good one works
    assert np.isfinite(h_t).all()


@pytest.mark.parametrize("cell", list(CELLS))
def test_stepper_is_rebuilt_when_the_parameters_change(kernel, rng, cell):
    """load_state_dict, in-place edits through named_parameters, an unpickled copy."""
    import pickle

    layer = CELLS[cell](3, 9, num_layers=2, random_state=0)
    other = CELLS[cell](3, 9, num_layers=2, random_state=1)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    first, _ = layer.step(x)
    layer.load_state_dict(other.state_dict())
    assert np.array_equal(layer.step(x)[0], other.step(x)[0])
    live = layer.named_parameters()
    for value in live.values():
        value *= 0.5
    twin = CELLS[cell](3, 9, num_layers=2, random_state=2)
    twin.load_state_dict(layer.state_dict())
    assert np.array_equal(layer.step(x)[0], twin.step(x)[0])
    assert not np.array_equal(layer.step(x)[0], first)
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._stepper is None
    assert np.array_equal(clone.step(x)[0], layer.step(x)[0])


def test_optimizer_steps_rebuild_the_stepper(kernel, rng):
    """During a fit, a callback stepping the network being trained sees each update."""
    from fastlstm.callbacks import Callback

    X = rng.standard_normal((24, 5, 3)).astype(np.float32)
    y = (X[:, -1, 0] > 0).astype(int)
    checked = []

    class StepAfterUpdate(Callback):
        def on_batch_end(self, ctx, batch, loss):
            layer = ctx._network.layer  # the network being trained
            x_t = X[:3, 0]
            h_t, _ = layer.step(x_t)
            want, _ = _forward_one(layer, x_t, None)
            checked.append(np.array_equal(h_t, want) if layer.spec.name != "lstm"
                           or _packed(layer) else np.allclose(h_t, want, atol=1e-6))

    for cell in CELLS:
        checked.clear()
        fastlstm.LSTMClassifier(hidden_size=6, cell=cell, max_epochs=2, batch_size=8,
                                random_state=0, callbacks=[StepAfterUpdate()]).fit(X, y)
        assert len(checked) == 6 and all(checked), cell


def test_stream_readouts_against_numpy_float64(kernel, rng):
    """readout_proba and readout_values (predict_step's readouts in one call) against
    NumPy in float64: on dyadic inputs, whose products and sums are exact, the values
    to the bit and the probabilities within the rounding of exp and of the sums."""
    from fastlstm.train.network import softmax

    k = fastlstm.LSTM(2, 3)._kernels
    for classes in (1, 2, 3, 7, 8, 9, 40, 300):
        for hidden in (1, 5, 128):
            h = rng.integers(-8, 9, (4, hidden)) / 8.0
            w = rng.integers(-8, 9, (classes, hidden)) / 16.0
            b = rng.integers(-8, 9, classes) / 4.0
            for dtype in (np.float32, np.float64):
                h_, w_, b_ = h.astype(dtype), w.astype(dtype), b.astype(dtype)
                logits = (h @ w.T).astype(dtype)  # exact in float64, then the dtype
                logits += b_
                want = softmax(logits)
                got = k.readout_proba(h_, w_, b_)
                assert got.dtype == np.float64 and got.shape == (4, classes)
                np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
                # strided h (a state given as out=) is read as it is
                wide = np.zeros((4, 2 * hidden), dtype)
                wide[:, ::2] = h_
                assert np.array_equal(k.readout_proba(wide[:, ::2], w_, b_), got)
                values = k.readout_values(h_, w, b, False)
                assert np.array_equal(values, h @ w.T + b), (classes, hidden, dtype)
            if classes == 1:
                one = k.readout_values(h.astype(np.float32), w, b, True)
                assert one.shape == (4,) and np.array_equal(one, (h @ w.T + b)[:, 0])
    h, w, b = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32), np.ones(4, np.float32)
    for args in [(h, w.astype(np.float64), b), (h, w, b[:3]), (h, w[:, :2], b),
                 (h.tolist(), w, b), (h.astype(np.int64), w, b)]:
        with pytest.raises(ValueError, match="readout_proba"):
            k.readout_proba(*args)
    for args in [(h, w, b, False), (h, w.astype(np.float64), b.astype(np.float64), True)]:
        with pytest.raises(ValueError, match="readout_values"):
            k.readout_values(*args)


def test_refit_and_set_params_rebuild_predict_step(kernel, rng):
    from fastlstm.train.network import softmax

    X = rng.standard_normal((24, 5, 3)).astype(np.float32)
    y = (X[:, -1, 0] > 0).astype(int)
    for cell in CELLS:
        clf = fastlstm.LSTMClassifier(hidden_size=6, cell=cell, max_epochs=1, batch_size=8,
                                      random_state=0).fit(X, y)
        before, _ = clf.predict_step(X[:4, 0])
        clf.set_params(warm_start=True, max_epochs=2)
        clf.fit(X, y)
        net = clf.network_
        h_t, _ = net.layer.step(X[:4, 0])
        after, _ = clf.predict_step(X[:4, 0])
        # the refitted readout (its logits summed in float64: within rounding of
        # NumPy's float32 product), and not the one before
        want = softmax(h_t @ net.weight.T + net.bias)
        np.testing.assert_allclose(after, want, rtol=1e-6, atol=1e-7)
        assert not np.allclose(before, want, rtol=1e-6, atol=1e-7)
        clf.set_params(hidden_size=5, warm_start=False).fit(X, y)
        p, state = clf.predict_step(X[:4, 0])
        assert _states(state)[0].shape == (1, 4, 5)
        np.testing.assert_allclose(p, clf.predict_proba(X[:4, :1]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", list(CELLS))
def test_two_threads_step_one_stepper_on_states_of_their_own(kernel, rng, cell):
    """No scratch is shared: concurrent streams give their sequential numbers, with
    fresh states, with out= buffers of their own and in place."""
    layer = CELLS[cell](5, 24, num_layers=2, random_state=3)
    layer.step(np.zeros((1, 5), np.float32))  # one stepper, shared by the threads
    stepper = layer._stepper
    xs = [rng.standard_normal((300, b, 5)).astype(np.float32) for b in (1, 3)]

    def stream(i, mode):
        state = None
        if mode != "fresh":
            shape = (2, xs[i].shape[1], 24)
            state = tuple(np.zeros(shape, np.float32) for _ in layer.spec.states)
            state = state if cell == "lstm" else state[0]
        hs = []
        for x in xs[i]:
            h_t, state = layer.step(x, state, out=state if mode == "in place" else None)
            hs.append(h_t.copy())
        return np.stack(hs), [a.copy() for a in _states(state)]

    for mode in ("fresh", "in place"):
        expected = [stream(i, mode) for i in range(2)]
        results, errors = [None, None], []
        barrier = threading.Barrier(2)

        def run(i, mode=mode, barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait()
                results[i] = stream(i, mode)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors == [] and not any(t.is_alive() for t in threads)
        for (hs, final), (hs_e, final_e) in zip(results, expected, strict=True):
            assert np.array_equal(hs, hs_e) and all(
                np.array_equal(a, b) for a, b in zip(final, final_e, strict=True)), mode
    assert layer._stepper is stepper  # nothing rebuilt it


def test_predict_step_out_and_softmax_bits(kernel, rng):
    """predict_step with out= (in place) gives the fresh path's numbers; the stream's
    softmax is the training softmax to the bit, for narrow and wide outputs."""
    from fastlstm.train.network import softmax

    layer = fastlstm.LSTM(2, 3)
    for classes in (1, 2, 3, 7, 8, 9, 40, 300):
        logits = rng.standard_normal((5, classes)) * 30
        bias = rng.standard_normal(classes) * 3
        for dtype in (np.float32, np.float64):
            y, b = logits.astype(dtype), bias.astype(dtype)
            kept = y.copy()
            got = layer._kernels.readout_softmax(y, b)
            y2 = y.copy()
            y2 += b
            assert got.dtype == np.float64 and np.array_equal(got, softmax(y2)), classes
            assert np.array_equal(y, kept)
    X = rng.standard_normal((30, 4, 2)).astype(np.float32)
    for cell in CELLS:
        reg = fastlstm.LSTMRegressor(hidden_size=5, cell=cell, max_epochs=1,
                                     random_state=0).fit(X, X[:, :, 0].sum(1))
        state, own = None, None
        for t in range(4):
            y, state = reg.predict_step(X[:6, t], state)
            y_own, own = reg.predict_step(X[:6, t], own, out=own)
            assert np.array_equal(y, y_own) and _same(state, own)
        np.testing.assert_allclose(y, reg.predict(X[:6]), rtol=1e-5, atol=1e-5)
