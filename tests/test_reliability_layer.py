"""Reliability at the layer level: tapes per thread, BLAS limits,
finite checks after the cast, validated unpickling, memory budget, thread pool,
environment overrides and the dropout warning."""

import pickle
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastlstm
from fastlstm.runtime import memory as _memory
from fastlstm.runtime import parallel as _parallel
from fastlstm.train.network import SequenceNet

BIG = 1e39  # finite in float64, inf in float32


def _grads(layer, x, d_out):
    layer.forward(x, training=True)
    grads, dx = layer.backward(d_out)
    return grads, dx


def _in_thread(fn):
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")


# ------------------------------------------------------------ 4: tapes per thread
def test_training_forward_in_another_thread_does_not_replace_this_threads_tape(rng):
    layer = fastlstm.LSTM(3, 4, dtype="float64", n_jobs=1, random_state=0)
    xa, xb = rng.standard_normal((2, 2, 5, 3))
    d_out = rng.standard_normal((2, 5, 4))
    want_grads, want_dx = _grads(layer, xa, d_out)

    layer.forward(xa, training=True)
    _in_thread(lambda: layer.forward(xb, training=True))  # another thread's batch
    _in_thread(lambda: layer.forward(xb))                  # and a predict
    grads, dx = layer.backward(d_out)
    np.testing.assert_array_equal(dx, want_dx)
    for key, value in want_grads.items():
        np.testing.assert_array_equal(grads[key], value, err_msg=key)


def test_backward_in_a_thread_without_its_own_forward_is_a_clear_error(rng):
    layer = fastlstm.RNN(3, 4, n_jobs=1, random_state=0)
    out, _ = layer.forward(rng.standard_normal((2, 5, 3)), training=True)
    with pytest.raises(ValueError, match=r"forward.*training=True"):
        _in_thread(lambda: layer.backward(np.ones_like(out)))
    layer.backward(np.ones_like(out))  # this thread's tape is still there


def test_network_predict_in_another_thread_keeps_the_training_tape(rng):
    net = SequenceNet(3, 2, hidden_size=4, n_jobs=1, random_state=0)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    d_y = rng.standard_normal((4, 2)).astype(np.float32)
    net.forward(x, training=True)
    want = net.backward(d_y)
    net.forward(x, training=True)
    _in_thread(lambda: net.forward(x[:2]))  # a predict during fit
    for got, expected in zip(net.backward(d_y), want, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_concurrent_training_passes_get_their_own_gradients(rng):
    layer = fastlstm.LSTM(3, 8, dtype="float64", n_jobs=1, random_state=0)
    xs = rng.standard_normal((2, 6, 4, 3))
    d_out = rng.standard_normal((6, 4, 8))
    want = [_grads(layer, x, d_out)[1] for x in xs]
    errors = []

    def work(i):
        for _ in range(100):
            layer.forward(xs[i], training=True)
            time.sleep(1e-4)  # a loss computed here lets the other thread run
            _, dx = layer.backward(d_out)
            if not np.array_equal(dx, want[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# ------------------------------------------------------------ 5: BLAS limits
def _blas_threads():
    return sorted({info["num_threads"] for info in threadpool_info()
                   if info["user_api"] == "blas"})


def test_interleaved_blas_holders_restore_the_original_limits():
    """A enters, B enters, A leaves, B leaves: B must still run at one thread after A
    leaves, and the original limits must be back at the end (not A's view of them)."""
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def holder_a():
            with _parallel.blas_single_threaded():
                a_in.set()
                b_in.wait(5)
            a_out.set()

        def holder_b():
            a_in.wait(5)
            with _parallel.blas_single_threaded():
                b_in.set()
                a_out.wait(5)
                seen["b after a left"] = _blas_threads()

        threads = [threading.Thread(target=holder_a), threading.Thread(target=holder_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen["b after a left"] == [1]
        assert _blas_threads() == before


def test_concurrent_forwards_leave_blas_as_it_was(rng):
    layer = fastlstm.LSTM(4, 16, n_jobs=1, random_state=0)
    x = rng.standard_normal((8, 10, 4))
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()

        def work():
            for _ in range(50):
                layer.forward(x)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert _blas_threads() == before


# -------------------------------------------- 6: finite checks after the cast
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_load_state_dict_refuses_values_that_overflow_float32():
    layer = fastlstm.LSTM(2, 3, random_state=0)
    before = layer.state_dict()
    sd = {k: v.astype(np.float64) for k, v in before.items()}
    sd["weight_hh_l0"][0, 0] = BIG
    with pytest.raises(ValueError, match=r"weight_hh_l0.*(inf|large)"):
        layer.load_state_dict(sd)
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_initial_state_and_state_gradients_that_overflow_float32_are_refused(rng):
    layer = fastlstm.LSTM(2, 3, random_state=0)
    x = rng.standard_normal((2, 4, 2))
    h0 = np.zeros((1, 2, 3))
    big = np.full((1, 2, 3), BIG)
    with pytest.raises(ValueError, match=r"h0.*(inf|large)"):
        layer.forward(x, initial_state=(big, h0))
    with pytest.raises(ValueError, match=r"c0.*(inf|large)"):
        layer.forward(x, initial_state=(h0, big))
    out, _ = layer.forward(x, training=True)
    with pytest.raises(ValueError, match=r"d_h_n.*(inf|large)"):
        layer.backward(None, d_h_n=big)
    with pytest.raises(ValueError, match=r"d_c_n.*(inf|large)"):
        layer.backward(None, d_c_n=big)
    d_out = np.zeros(out.shape)
    d_out[0, 0, 0] = BIG
    with pytest.raises(ValueError, match=r"d_out.*(inf|large)"):
        layer.backward(d_out)
    grads, _ = layer.backward(np.ones_like(out))  # the tape survived the refusals
    assert all(np.isfinite(g).all() for g in grads.values())


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("bad", [np.nan, np.inf, BIG])
def test_step_refuses_a_non_finite_state(bad):
    layer = fastlstm.LSTM(2, 3, random_state=0)
    x = np.ones((2, 2))
    h, (h_state, c_state) = layer.step(x)
    c_bad = np.array(c_state, dtype=np.float64)
    c_bad[0, 1, 2] = bad
    with pytest.raises(ValueError, match=r"state.*NaN or inf"):
        layer.step(x, (h_state, c_bad))


# ------------------------------------------------- 8: unpickling checks shapes
def _tampered(layer, **changes):
    state = layer.__getstate__()
    params = dict(state["_params"])
    for key, value in changes.items():
        if key in params:
            params[key] = value
        else:
            state[key] = value
    state["_params"] = params
    return state


@pytest.mark.parametrize("changes", [
    dict(weight_hh_l0=np.zeros((4, 4), np.float32)),
    dict(weight_ih_l0=np.zeros((16,), np.float32)),
    dict(bias_hh_l0=np.full(16, np.nan, np.float32)),
    dict(hidden_size=40),
    dict(input_size=0),
    dict(num_layers=2),
    dict(dtype="int8"),
], ids=lambda c: ",".join(c))
def test_unpickling_validates_shapes_and_values(changes):
    layer = fastlstm.LSTM(3, 4, random_state=0)
    state = _tampered(layer, **changes)
    clone = fastlstm.LSTM.__new__(fastlstm.LSTM)
    with pytest.raises(ValueError, match="unpickle"):
        clone.__setstate__(state)


def test_unpickling_a_tampered_pickle_fails_cleanly():
    layer = fastlstm.LSTM(3, 4, random_state=0)
    layer._params["weight_hh_l0"] = np.zeros((1, 1), np.float32)
    data = pickle.dumps(layer)
    with pytest.raises(ValueError, match=r"weight_hh_l0.*shape"):
        pickle.loads(data)


def test_unpickling_the_network_checks_the_readout():
    net = SequenceNet(3, 2, hidden_size=4, random_state=0)
    state = net.__getstate__()
    state["weight"] = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="readout"):
        SequenceNet.__new__(SequenceNet).__setstate__(state)


# ------------------------------------------------------------ 9: memory budget
def test_a_forward_too_big_for_memory_is_refused_before_copying():
    layer = fastlstm.LSTM(1, 512, random_state=0)
    x = np.broadcast_to(np.zeros(1, np.float64), (2**20, 2**12, 1))  # no memory behind it
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        with pytest.raises(MemoryError, match=r"needs about .*TiB.* available"):
            layer.forward(x)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20 and elapsed < 5


def test_forward_memory_check_uses_the_available_memory(monkeypatch, rng):
    layer = fastlstm.LSTM(3, 8, random_state=0)
    x = rng.standard_normal((4, 6, 3))
    monkeypatch.setattr(_memory, "ALWAYS_FITS", 0)
    monkeypatch.setattr(_memory, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match=r"needs about .* only 1000 B is available"):
        layer.forward(x, training=True)
    monkeypatch.setattr(_memory, "available_memory", lambda: None)  # unknown: no refusal
    out, _ = layer.forward(x)
    assert out.shape == (4, 6, 8)


def test_a_layer_too_big_for_memory_is_refused_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"parameters needs about .*TiB"):
        fastlstm.LSTM(1, 10**6)
    assert time.perf_counter() - t0 < 5


def test_weights_are_drawn_without_a_float64_copy():
    tracemalloc.start()
    try:
        layer = fastlstm.LSTM(1, 1024, random_state=0)  # 4096 x 1024 float32: 16 MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = sum(p.nbytes for p in layer.named_parameters().values())
    assert peak < 1.3 * size


def test_initialization_is_unchanged_by_chunked_drawing():
    layer = fastlstm.LSTM(3, 5, num_layers=2, random_state=0)
    rng = np.random.default_rng(0)
    bound = 1 / np.sqrt(5)
    for name, value in layer.named_parameters().items():
        np.testing.assert_array_equal(
            value, rng.uniform(-bound, bound, value.shape).astype(np.float32), err_msg=name)


# ---------------------------------------------------------- 10: the small ones
def _pool_threads():
    return sum(t.name.startswith("fastlstm") for t in threading.enumerate())


def test_thread_pool_shrinks_after_a_huge_n_jobs(rng):
    x = rng.standard_normal((256, 3, 2))
    fastlstm.LSTM(2, 4, n_jobs=64, random_state=0).forward(x)
    assert _pool_threads() > _parallel.usable_cores()
    fastlstm.LSTM(2, 4, n_jobs=1, random_state=0).forward(x)
    deadline = time.monotonic() + 10
    while _pool_threads() > _parallel.usable_cores() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _pool_threads() <= _parallel.usable_cores()


@pytest.mark.parametrize("value", ["abc", "1.5", "-"])
def test_a_non_integer_step_rows_override_is_ignored_with_a_warning(monkeypatch, rng, value):
    monkeypatch.setattr(_parallel, "_bad_step_rows", None)
    monkeypatch.setenv("FASTLSTM_STEP_ROWS", value)
    # the override tunes the BLAS path's step GEMMs (float64 here; float32 runs
    # its forward on the packed SIMD kernels where the CPU has them)
    layer = fastlstm.LSTM(2, 4, random_state=0, dtype="float64")
    x = rng.standard_normal((3, 4, 2))
    with pytest.warns(RuntimeWarning, match="FASTLSTM_STEP_ROWS"):
        out, _ = layer.forward(x)
    monkeypatch.delenv("FASTLSTM_STEP_ROWS")
    np.testing.assert_array_equal(out, layer.forward(x)[0])


def test_dropout_with_one_layer_warns_as_pytorch():
    with pytest.warns(UserWarning, match="dropout.*num_layers=1"):
        fastlstm.LSTM(2, 3, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastlstm.LSTM(2, 3, num_layers=2, dropout=0.5)
        fastlstm.RNN(2, 3, dropout=0.0)
