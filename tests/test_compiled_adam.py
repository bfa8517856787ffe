"""The compiled Adam/AdamW step and clipping: bit for bit the NumPy update."""

import numpy as np
import pytest

from fastlstm.train.flat import FlatParameters
from fastlstm.train.optim import Adam, AdamW

SHAPES = [(37, 5), (13,), (3, 7, 2), (1,), (64,)]


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _setup(dtype, cls, wd, rng):
    values = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    flat = FlatParameters(values)
    opt = cls(flat.param_views, learning_rate=3e-3, weight_decay=wd)
    assert opt.bind(flat)
    return flat, opt


def _grads(rng, dtype, step):
    # magnitudes from tiny (subnormal squares) to large, some exact zeros
    out = []
    for s in SHAPES:
        g = rng.normal(size=s) * 10.0 ** rng.integers(-30, 3, size=s)
        g[rng.random(size=s) < 0.05] = 0.0
        out.append(g.astype(dtype))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,wd", [(Adam, 0.0), (Adam, 1e-2), (AdamW, 0.0), (AdamW, 0.05)])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_compiled_step_is_the_numpy_step_bit_for_bit(kernel, dtype, cls, wd, clip, rng):
    runs = []
    for compiled in (True, False, "per-array"):
        r = np.random.default_rng(7)
        flat, opt = _setup(dtype, cls, wd, r)
        if compiled is True:
            assert opt._kernel is not None  # the C path is the one under test
        opt._compiled = compiled is True
        for step in range(150):
            for view, g in zip(flat.grad_views, _grads(r, dtype, step), strict=True):
                view[...] = g
            if clip is not None:
                norm = float(np.sqrt(np.square(flat.grads, dtype=np.float64).sum()))
                if norm > clip:
                    scale = clip / (norm + 1e-6)
                    if compiled is True:
                        # clipping in the same pass as the update
                        ms, vs = opt.state_arrays()
                        opt.t += 1
                        assert opt._kernel.adam_update(
                            flat.params, flat.grads, ms, vs, opt.learning_rate, opt.beta_1,
                            opt.beta_2, opt.epsilon, opt.weight_decay, opt._decoupled, opt.t,
                            clip_scale=scale)
                        continue
                    flat.grads *= scale
            if compiled == "per-array":  # lists other than the bound ones: per array
                opt.step(list(flat.param_views), list(flat.grad_views))
            else:
                opt.step(flat.param_views, flat.grad_views)
        runs.append((flat.params.copy(), flat.grads.copy(),
                     [a.copy() for a in opt.state_arrays()] if compiled != "per-array"
                     else [np.concatenate([b.ravel() for b in bufs]) for bufs in (opt.ms, opt.vs)],
                     opt.t))
    c, n, a = runs
    assert c[3] == n[3] == a[3] == 150
    np.testing.assert_array_equal(_bits(c[0]), _bits(n[0]))
    np.testing.assert_array_equal(_bits(c[1]), _bits(n[1]))  # the clipped gradients too
    for x, y in zip(c[2], n[2], strict=True):
        np.testing.assert_array_equal(_bits(x), _bits(y))
    # the per-array update (the reference the flat one claims to equal) agrees too
    np.testing.assert_array_equal(_bits(c[0]), _bits(a[0]))
    for x, y in zip(c[2], a[2], strict=True):
        np.testing.assert_array_equal(x[x != 0], y[y != 0])  # the flat has zero gaps
    start = FlatParameters([np.random.default_rng(7).normal(size=s).astype(dtype)
                            for s in SHAPES]).params
    assert np.abs(c[0] - start).max() > 1e-3  # the parameters moved


def test_the_undo_copy_and_the_finite_status(kernel, rng):
    flat, opt = _setup(np.float32, Adam, 0.0, rng)
    assert opt._kernel is not None  # bound: the kernel module
    flat.grads[:] = rng.normal(size=flat.grads.size).astype(np.float32)
    m, v = opt.state_arrays()
    m[:] = 0.25
    saves = [np.empty_like(flat.params) for _ in range(3)]
    before = (flat.params.copy(), m.copy(), v.copy())
    assert opt._kernel.adam_update(flat.params, flat.grads, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0,
                                   False, 1, save=saves)
    for s, b in zip(saves, before, strict=True):
        np.testing.assert_array_equal(s, b)
    assert not np.array_equal(flat.params, before[0])
    flat.grads[3] = np.inf  # inf / inf: a NaN parameter
    assert not opt._kernel.adam_update(flat.params, flat.grads, m, v, 1e-3, 0.9, 0.999, 1e-8,
                                       0.0, False, 2)
    assert not np.isfinite(flat.params[3])


def test_bad_buffers_are_refused(kernel):
    from fastlstm import _kernels

    k = _kernels.load()
    p = np.zeros(8, np.float32)
    for bad in (np.zeros(8, np.float64), np.zeros(7, np.float32), np.zeros(16, np.float32)[::2],
                np.zeros((2, 4), np.float32)):
        with pytest.raises(ValueError, match="contiguous 1-d arrays"):
            k.adam_update(p, bad, p.copy(), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1)
    with pytest.raises(ValueError, match="float32 or float64"):
        z = np.zeros(4, np.int32)
        k.adam_update(z, z.copy(), z.copy(), z.copy(), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1)
    with pytest.raises(ValueError, match="counts from 1"):
        k.adam_update(p, p.copy(), p.copy(), p.copy(), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 0)


def _fit_weights(fused, cls_name, **kw):
    with pytest.MonkeyPatch.context() as mp:  # undoes its own patches, not the variant's
        return _fit_patched(mp, fused, cls_name, **kw)


def _fit_patched(monkeypatch, fused, cls_name, **kw):
    import warnings

    from fastlstm import LSTMClassifier, LSTMRegressor
    from fastlstm.train.engine import CompiledStep

    calls = []
    real = CompiledStep.adam_step

    def counted(self, *args):
        result = real(self, *args)
        calls.append(result is not None)
        return result

    real_runs = CompiledStep.adam_runs

    def counted_runs(self, *args, **kwargs):  # the epoch's steps in runs of compiled calls
        result = real_runs(self, *args, **kwargs)
        calls.append(result is not None)
        return result

    monkeypatch.setattr(CompiledStep, "adam_step", counted)
    monkeypatch.setattr(CompiledStep, "adam_runs", counted_runs)
    if not fused:  # a step of its own: the trainer's general path, NumPy Adam and clipping
        real_step = Adam.step

        def numpy_step(self, params, grads):
            self._compiled = False
            real_step(self, params, grads)

        monkeypatch.setattr(Adam, "step", numpy_step)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(70, 7, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    cls = LSTMClassifier
    if cls_name == "regressor":
        cls, y = LSTMRegressor, X[:, -1, 1] + 0.5 * y
    kw.setdefault("hidden_size", 10)
    model = cls(batch_size=16, max_epochs=3, random_state=0, n_jobs=1, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model.network_.get_weights(), calls


@pytest.mark.parametrize("cls_name", ["classifier", "regressor"])
@pytest.mark.parametrize("kw", [{}, {"clip_norm": 0.05, "weight_decay": 1e-3},
                                {"clip_norm": None, "cell": "rnn"}, {"cell": "gru"},
                                {"optimizer": "adamw", "weight_decay": 0.1},
                                # a step in slices (reduction and update)
                                {"hidden_size": 64, "clip_norm": 0.05}])
def test_the_fused_engine_step_is_the_general_step_bit_for_bit(kernel, cls_name, kw):
    fused, calls = _fit_weights(True, cls_name, **kw)
    general, general_calls = _fit_weights(False, cls_name, **kw)
    from fastlstm import _kernels

    if _kernels.load().packed_width() > 0:  # the engine covers float32 on SIMD variants
        assert calls and all(calls)
    assert not general_calls
    for a, b in zip(fused, general, strict=True):
        np.testing.assert_array_equal(_bits(a), _bits(b))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_a_fused_step_that_diverges_changes_nothing(kernel):
    from fastlstm import _kernels
    from fastlstm.train.engine import CompiledStep
    from fastlstm.train.network import SequenceNet

    net = SequenceNet(2, 3, hidden_size=8, random_state=0)
    step = CompiledStep.for_network(net, "cross_entropy")
    if step is None:
        assert _kernels.load().packed_width() == 0
        return
    flat = net.bind_flat()
    opt = Adam(flat.param_views, learning_rate=1e39)
    assert opt.bind(flat)
    x = np.random.default_rng(0).normal(size=(6, 5, 2)).astype(np.float32)
    y, w = np.array([0, 1, 2, 0, 1, 2]), np.ones(6)
    before = [flat.params.copy()] + [a.copy() for a in opt.state_arrays()]
    loss, failure = step.adam_step(x, None, y, w, flat, opt, None)
    assert failure == "the update made the weights non-finite"
    assert opt.t == 0
    for a, b in zip([flat.params] + opt.state_arrays(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    opt.learning_rate = 1e-2  # a sane step is taken and counted
    loss, failure = step.adam_step(x, None, y, w, flat, opt, 1.0)
    assert failure is None and opt.t == 1 and np.isfinite(loss)
    assert not np.array_equal(flat.params, before[0])
    assert step.adam_step(x.astype(np.float64), None, y, w, flat, opt, None) is None
