"""Scratch buffers reused across training passes (fastlstm.runtime.workspace).

What must hold: nothing handed to the caller is workspace memory, a refused
call never changes what a pending backward reads, repeated passes of one
shape (or smaller) allocate nothing new, and threads never share buffers.
"""

import threading

import numpy as np
import pytest

import fastlstm
from fastlstm.runtime.workspace import Workspace, fresh

pytestmark = pytest.mark.usefixtures("kernel")


def test_workspace_grows_and_reuses():
    ws = Workspace()
    a = ws.empty("a", (10, 4), np.float32)
    assert ws.nbytes == 160
    b = ws.zeros("a", (3, 4), np.float32)
    assert np.shares_memory(a, b) and (b == 0).all() and ws.nbytes == 160
    c = ws.empty("a", (20, 4), np.float32)  # larger: new memory
    assert not np.shares_memory(a, c) and ws.nbytes == 320
    d = ws.empty("a", (20, 4), np.float64)  # another dtype: new memory
    assert d.dtype == np.float64 and not np.shares_memory(c, d)
    assert ws.empty("other", (2,), np.float32).base is not c.base


def test_fresh_copies_only_what_may_alias():
    scratch = np.zeros((4, 3))
    view = scratch[1:]
    out = fresh(view, scratch)
    assert not np.shares_memory(out, scratch) and out.flags.c_contiguous
    own = np.ones((2, 2))
    assert fresh(own, scratch) is own


def _layer(cls, dtype, **kw):
    return cls(3, 8, num_layers=2, bidirectional=True, dtype=dtype, random_state=0, **kw)


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch,steps,ragged", [(1, 1, False), (1, 6, False), (5, 1, False),
                                                (5, 6, False), (7, 6, True)])
def test_results_are_never_workspace_memory(rng, cls, dtype, batch, steps, ragged):
    layer = _layer(cls, dtype)
    lengths = rng.integers(1, steps + 1, size=batch) if ragged else None
    if ragged:
        lengths[0] = steps - 1
    x = rng.standard_normal((batch, steps, 3)).astype(dtype)
    d_out = rng.standard_normal((batch, steps, 16)).astype(dtype)
    out, fin = layer.forward(x, lengths=lengths, training=True)
    grads, dx = layer.backward(d_out)
    kept = [out.copy(), dx.copy()] + [g.copy() for g in grads.values()]
    # more passes of the same and of other data through the same workspace
    for _ in range(2):
        layer.forward(rng.standard_normal(x.shape).astype(dtype), lengths=lengths,
                      training=True)
        layer.backward(rng.standard_normal(d_out.shape).astype(dtype))
    for got, want in zip([out, dx, *grads.values()], kept, strict=True):
        np.testing.assert_array_equal(got, want)
    ws = layer._workspace
    assert ws is not None and ws.nbytes > 0
    for buf in ws._buffers.values():
        for result in [out, dx, *grads.values(), *(fin if isinstance(fin, tuple) else (fin,))]:
            assert not np.shares_memory(result, buf)


@pytest.mark.parametrize("ragged", [False, True])
def test_a_refused_call_keeps_the_pending_backward_exact(rng, ragged):
    layer = _layer(fastlstm.LSTM, "float32")
    lengths = np.array([6, 3, 5, 1, 6, 2, 4, 5]) if ragged else None
    x = rng.standard_normal((8, 6, 3)).astype(np.float32)
    d_out = rng.standard_normal((8, 6, 16)).astype(np.float32)
    layer.forward(x, lengths=lengths, training=True)
    expected = layer.backward(d_out)
    layer.forward(x, lengths=lengths, training=True)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer.forward(bad, lengths=lengths, training=True)
    with pytest.raises(ValueError, match="NaN"):
        layer.backward(np.where(np.isfinite(d_out), np.nan, d_out))
    grads, dx = layer.backward(d_out)
    np.testing.assert_array_equal(dx, expected[1])
    for name, value in expected[0].items():
        np.testing.assert_array_equal(grads[name], value)


def test_repeated_passes_allocate_no_new_scratch(rng):
    layer = _layer(fastlstm.LSTM, "float32")
    x = rng.standard_normal((9, 7, 3)).astype(np.float32)
    d_out = rng.standard_normal((9, 7, 16)).astype(np.float32)
    layer.forward(x, training=True)
    layer.backward(d_out)
    buffers = dict(layer._workspace._buffers)
    for batch in (9, 4):  # the same shape, then a smaller one
        layer.forward(x[:batch], training=True)
        layer.backward(d_out[:batch])
        assert layer._workspace._buffers.keys() == buffers.keys()
        assert all(layer._workspace._buffers[k] is v for k, v in buffers.items())


def test_threads_have_workspaces_of_their_own(rng):
    layer = _layer(fastlstm.LSTM, "float32", n_jobs=1)
    xs = [rng.standard_normal((6, 5, 3)).astype(np.float32) for _ in range(2)]
    d_out = rng.standard_normal((6, 5, 16)).astype(np.float32)
    expected = []
    for x in xs:
        layer.forward(x, training=True)
        expected.append(layer.backward(d_out))
    results, spaces = [None, None], [None, None]
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        for _ in range(20):
            layer.forward(xs[i], training=True)
            results[i] = layer.backward(d_out)
        spaces[i] = layer._workspace

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spaces[0] is not spaces[1]
    for (grads, dx), (want_grads, want_dx) in zip(results, expected, strict=True):
        np.testing.assert_array_equal(dx, want_dx)
        for name, value in want_grads.items():
            np.testing.assert_array_equal(grads[name], value)


def test_workspace_is_not_pickled(rng):
    import pickle

    layer = _layer(fastlstm.LSTM, "float32")
    layer.forward(rng.standard_normal((4, 3, 3)), training=True)
    layer.backward(np.ones((4, 3, 16)))
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._workspace is None
    np.testing.assert_array_equal(clone.forward(np.ones((2, 3, 3)))[0],
                                  layer.forward(np.ones((2, 3, 3)))[0])
