"""Variable-length batches in the packed-sequence layout (fastlstm.nn.ragged).

On the SIMD variants, a float32 layer given ``lengths`` keeps only running
rows in its buffers.  Checked here: the layout itself, that training buffers
hold sum(lengths) rows, agreement with the float64 layer (the padded BLAS
path, held to the NumPy reference elsewhere) for forward and gradients,
thread-count and order invariance, and dropout masks drawn as the padded
layout draws them.
"""

import numpy as np
import pytest

import fastlstm
from fastlstm import _kernels
from fastlstm.nn import ragged as _ragged
from fastlstm.nn.plan import packed_chunks

SIMD = [v for v in _kernels.available_variants() if _kernels.load(v).packed_width() > 0]
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")
CLASSES = [fastlstm.LSTM, fastlstm.RNN]


@pytest.fixture(params=SIMD)
def variant(request, monkeypatch):
    monkeypatch.setenv("FASTLSTM_KERNEL", request.param)
    return request.param


def _state(cls, arrays):
    """The initial_state argument: (h0, c0) for the LSTM, h0 for the RNN."""
    return tuple(arrays) if cls is fastlstm.LSTM else arrays[0]


@pytest.mark.parametrize("tile", [0, 4, 6, 8])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_plan_is_the_packed_sequence_layout(rng, threads, tile):
    lengths = rng.integers(1, 12, size=23)
    plan = _ragged.make_plan(lengths, 11, threads, 1, tile)
    assert plan.total == lengths.sum()
    assert (np.diff(plan.lengths) <= 0).all()
    assert np.array_equal(lengths[plan.perm], plan.lengths)
    # step t's rows: the first counts[t] sorted rows, from toff[t]
    for t in range(11):
        rows = slice(plan.toff[t], plan.toff[t] + plan.counts[t])
        assert (plan.time[rows] == t).all()
        assert np.array_equal(plan.row[rows], np.arange(plan.counts[t]))
        assert plan.counts[t] == (lengths > t).sum()
    # the packed rows are exactly the valid entries, each once
    valid = {(b, t) for b in range(23) for t in range(lengths[b])}
    assert set(zip(plan.seq.tolist(), plan.time.tolist(), strict=True)) == valid
    # blocks tile the batch; their running rows are counted per step
    lo = 0
    for (r0, n), nact in zip(plan.shards, plan.nact, strict=True):
        assert r0 == lo and n >= 1
        assert np.array_equal(nact, np.clip(plan.counts - r0, 0, n))
        lo += n
    assert lo == 23
    # as many blocks as the batch and the tile give, whatever the thread count
    assert len(plan.shards) == len(packed_chunks(23, tile))


@pytest.mark.parametrize("tile", [0, 6, 8])
def test_blocks_balance_the_work(rng, tile):
    lengths = np.concatenate([np.full(4, 100), np.full(40, 10)])
    plan = _ragged.make_plan(lengths, 100, 2, 1, tile)
    work = [plan.lengths[r0:r0 + n].sum() for r0, n in plan.shards]
    assert len(work) == len(packed_chunks(44, tile)) > 1
    # cut at equal shares of the total: no block exceeds its share by a sequence
    assert max(work) <= lengths.sum() / len(work) + lengths.max()
    assert np.array_equal(_ragged.make_plan(lengths, 100, 1, 1, tile).shards, plan.shards)


@pytest.mark.parametrize("cls", CLASSES)
def test_training_buffers_hold_only_running_rows(variant, rng, cls):
    layer = cls(3, 10, num_layers=2, bidirectional=True, random_state=0)
    lengths = rng.integers(1, 30, size=17)
    x = rng.standard_normal((17, 29, 3)).astype(np.float32)
    layer.forward(x, lengths=lengths, training=True)
    cache = layer._cache
    assert isinstance(cache.plan, _ragged.RaggedPlan)
    n = lengths.sum()
    for arrays in (cache.inputs, cache.outputs, *cache.gates):
        for a in arrays:
            assert a.shape[0] == n
    layer.backward(rng.standard_normal((17, 29, 20)).astype(np.float32))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("batch,hidden", [(1, 3), (9, 17), (30, 40)])
def test_matches_the_float64_padded_layer(variant, rng, cls, batch, hidden):
    """Outputs, final states and every gradient against the float64 layer."""
    kw = dict(num_layers=2, bidirectional=True)
    layer = cls(4, hidden, random_state=0, **kw)
    ref = cls(4, hidden, dtype="float64", random_state=0, **kw)
    ref.load_state_dict({n: v.astype(np.float64) for n, v in layer.state_dict().items()})
    steps = 13
    lengths = rng.integers(1, steps + 1, size=batch)
    lengths[0] = steps - 1  # not all full, or the lengths would be dropped
    x = rng.standard_normal((batch, steps, 4)).astype(np.float32)
    n_states = len(layer._states)
    init = [rng.standard_normal((4, batch, hidden)).astype(np.float32) for _ in range(n_states)]
    d_out = rng.standard_normal((batch, steps, 2 * hidden)).astype(np.float32)
    d_fin = [rng.standard_normal((4, batch, hidden)).astype(np.float32) for _ in range(n_states)]
    results = []
    for lay, dtype in ((layer, np.float32), (ref, np.float64)):
        out, fin = lay.forward(x.astype(dtype), lengths=lengths, training=True,
                               initial_state=_state(cls, [a.astype(dtype) for a in init]))
        grads, dx, d_init = lay.backward(d_out.astype(dtype), *[d.astype(dtype) for d in d_fin],
                                         return_state_grads=True)
        results.append((out, fin, grads, dx, d_init))
    (out, fin, grads, dx, d_init), (out64, fin64, grads64, dx64, d_init64) = results
    assert out.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_allclose(out, out64, atol=2e-5, rtol=0)
    assert (out[np.arange(steps)[None, :] >= lengths[:, None]] == 0).all()
    assert (dx[np.arange(steps)[None, :] >= lengths[:, None]] == 0).all()
    for a, b in zip(fin if n_states > 1 else [fin], fin64 if n_states > 1 else [fin64],
                    strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)
    np.testing.assert_allclose(dx, dx64, atol=5e-5, rtol=0)
    pairs = zip(d_init if n_states > 1 else [d_init], d_init64 if n_states > 1 else [d_init64],
                strict=True)
    for a, b in pairs:
        np.testing.assert_allclose(a, b, atol=5e-5, rtol=0)
    for name, want in grads64.items():
        np.testing.assert_allclose(grads[name], want, atol=2e-4, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("cls", CLASSES)
def test_threads_and_order_change_nothing_but_weight_rounding(variant, rng, cls):
    batch = 37
    x = rng.standard_normal((batch, 21, 5)).astype(np.float32)
    d_out = rng.standard_normal((batch, 21, 24)).astype(np.float32)
    lengths = rng.integers(1, 22, size=batch)

    def run(n_jobs, perm):
        layer = cls(5, 24, n_jobs=n_jobs, random_state=0)
        out, _ = layer.forward(x[perm], lengths=lengths[perm], training=True)
        grads, dx, _ = layer.backward(d_out[perm], return_state_grads=True)
        return out, grads, dx

    ident = np.arange(batch)
    out, grads, dx = run(1, ident)
    for n_jobs, perm in ((2, ident), (3, ident), (1, rng.permutation(batch))):
        out2, grads2, dx2 = run(n_jobs, perm)
        assert np.array_equal(out2, out[perm])
        assert np.array_equal(dx2, dx[perm])
        for name, value in grads.items():
            np.testing.assert_allclose(grads2[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def test_dropout_masks_are_those_of_the_padded_layout(variant, rng):
    """Same seed, same masks: the float32 ragged layer agrees with the float64 one."""
    lengths = rng.integers(1, 10, size=12)
    x = rng.standard_normal((12, 9, 3))
    a = fastlstm.LSTM(3, 8, num_layers=3, dropout=0.5, random_state=7)
    b = fastlstm.LSTM(3, 8, num_layers=3, dropout=0.5, random_state=7, dtype="float64")
    b.load_state_dict({n: v.astype(np.float64) for n, v in a.state_dict().items()})
    out_a = a.forward(x.astype(np.float32), lengths=lengths, training=True)[0]
    out_b = b.forward(x, lengths=lengths, training=True)[0]
    np.testing.assert_allclose(out_a, out_b, atol=5e-5, rtol=0)


def test_bad_gradients_are_refused_and_keep_the_tape(variant, rng):
    layer = fastlstm.LSTM(2, 8, random_state=0)
    lengths = np.array([3, 1, 2])
    layer.forward(rng.standard_normal((3, 3, 2)), lengths=lengths, training=True)
    with pytest.raises(ValueError, match="shape of out"):
        layer.backward(np.zeros((3, 2, 8)))
    with pytest.raises(TypeError, match="real numbers"):
        layer.backward(np.full((3, 3, 8), "a"))
    bad = np.zeros((3, 3, 8))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        layer.backward(bad)
    # NaN past a sequence's end is ignored, as padding
    ok = np.zeros((3, 3, 8))
    ok[1, 2, 0] = np.nan
    grads, dx = layer.backward(ok)
    assert all(np.isfinite(g).all() for g in grads.values()) and np.isfinite(dx).all()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_fits_ragged_lists_through_the_layout(variant, rng, monkeypatch):
    calls = []
    real = _ragged.forward

    def counting(layer, x, plan, init_all, training):
        calls.append((training, plan.total))
        return real(layer, x, plan, init_all, training)

    monkeypatch.setattr(_ragged, "forward", counting)
    # the layer's own training path (the compiled step, which float32 fits
    # take, is tested in test_engine.py)
    from fastlstm.train.engine import CompiledStep

    monkeypatch.setattr(CompiledStep, "for_network", classmethod(lambda c, net, loss: None))
    X = [rng.standard_normal((n, 2)).astype(np.float32) for n in rng.integers(3, 15, size=40)]
    y = np.array([x[:, 0].sum() > 0 for x in X]).astype(int)
    clf = fastlstm.LSTMClassifier(hidden_size=8, max_epochs=3, batch_size=40, random_state=0)
    clf.fit(X, y)
    assert clf.predict(X).shape == (40,)
    # every training mini-batch ran in the packed layout, on sum(lengths) rows
    training_rows = [n for training, n in calls if training]
    assert len(training_rows) >= 3
    assert sum(len(x) for x in X) in training_rows


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("ragged", [False, True])
def test_packed_gradients_match_directional_finite_differences(variant, rng, cls, ragged):
    """<grad, v> against (L(p + eps v) - L(p - eps v)) / (2 eps) on the float32 kernels.

    The loss is sum(out * w) + sum(h_n * u); the forward runs in float32
    (packed kernels) and the difference quotient is taken in float64 with a
    step large enough that float32 rounding stays below 1e-3 relative.
    """
    layer = cls(3, 12, num_layers=2, bidirectional=True, random_state=0)
    x = rng.standard_normal((7, 6, 3)).astype(np.float32)
    lengths = rng.integers(1, 7, size=7) if ragged else None
    if ragged:
        lengths[0] = 5
    w = rng.standard_normal((7, 6, 24))
    u = rng.standard_normal((4, 7, 12))

    def loss(params, xv):
        layer.load_state_dict({n: v.astype(np.float32) for n, v in params.items()})
        out, fin = layer.forward(xv.astype(np.float32), lengths=lengths)
        h_n = fin[0] if isinstance(fin, tuple) else fin
        return float(np.sum(out.astype(np.float64) * w) + np.sum(h_n.astype(np.float64) * u))

    base = {n: v.astype(np.float64) for n, v in layer.state_dict().items()}
    layer.forward(x, lengths=lengths, training=True)
    d_fin = [u.astype(np.float32)] + [None] * (len(layer._states) - 1)
    grads, dx = layer.backward(w.astype(np.float32), *d_fin)
    for _ in range(3):
        # a random direction of unit norm over parameters and input together
        vp = {n: rng.standard_normal(v.shape) for n, v in base.items()}
        vx = rng.standard_normal(x.shape)
        norm = np.sqrt(sum(np.sum(v * v) for v in vp.values()) + np.sum(vx * vx))
        vp = {n: v / norm for n, v in vp.items()}
        vx = vx / norm
        eps = 1e-2
        up = loss({n: base[n] + eps * vp[n] for n in base}, x + eps * vx)
        down = loss({n: base[n] - eps * vp[n] for n in base}, x - eps * vx)
        numeric = (up - down) / (2 * eps)
        analytic = sum(float(np.sum(grads[n] * vp[n])) for n in base) + float(np.sum(dx * vx))
        assert abs(numeric - analytic) <= 2e-3 * max(0.1, abs(analytic))
