"""The training step on one flat parameter buffer (fastlstm.train.flat): the same results, bit
for bit, as the per-array step, with every guarantee of the loop kept (determinism,
rollback, Ctrl-C, callbacks, pickling, partial_fit)."""

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.callbacks import Callback
from fastlstm.train.engine import CompiledStep
from fastlstm.train.flat import FlatLayout, FlatParameters, flat_grad_norm
from fastlstm.train.guard import StepGuard
from fastlstm.train.network import SequenceNet
from fastlstm.train.optim import SGD, Adam, AdamW, clip_grad_norm

# ------------------------------------------------------------------ the layout


def test_layout_blocks_are_aligned_views_with_zero_gaps():
    layout = FlatLayout([(3, 5), (7,), (2, 2, 2)], np.float32)
    flat, views = layout.zeros()
    assert flat.ctypes.data % 64 == 0
    for view, offset, shape in zip(views, layout.offsets, layout.shapes, strict=True):
        assert view.shape == shape and view.flags.c_contiguous and view.flags.writeable
        assert (offset * 4) % 64 == 0 and np.shares_memory(view, flat)
        view[...] = 1.0
    assert flat.sum() == 15 + 7 + 8  # the gaps between blocks stay 0
    assert layout.matches([np.zeros(s, np.float32) for s in layout.shapes])
    assert not layout.matches([np.zeros(s) for s in layout.shapes])  # float64


def test_the_network_parameters_are_the_flat_buffer():
    net = SequenceNet(3, 2, hidden_size=5, num_layers=2, bidirectional=True, random_state=0)
    before = net.get_weights()
    flat = net.bind_flat()
    after = net.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    live = net.layer.named_parameters()
    assert all(np.shares_memory(live[n], flat.params) for n in live)
    assert np.shares_memory(net.weight, flat.params) and np.shares_memory(net.bias, flat.params)
    assert net.bind_flat() is flat
    # a network rebuilt by unpickling holds its own arrays and is bound anew
    twin = pickle.loads(pickle.dumps(net))
    assert twin.__dict__.get("_flat") is None
    assert not np.shares_memory(twin.weight, flat.params)
    assert twin.bind_flat() is not flat


# ------------------------------------------------ norm, clipping and the optimizers


def _grads(seed=0, shapes=((4, 3), (5,), (2, 6))):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("max_norm", [None, 100.0, 0.5])
def test_flat_norm_and_clipping_equal_the_per_array_ones_bit_for_bit(max_norm):
    grads = _grads()
    flat = FlatParameters(grads)
    flat.grads[...] = flat.params
    separate = [g.copy() for g in grads]
    assert flat_grad_norm(flat, max_norm) == clip_grad_norm(separate, max_norm)
    for a, b in zip(flat.grad_views, separate, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_flat_norm_of_a_non_finite_gradient_is_not_finite_and_changes_nothing(bad):
    flat = FlatParameters(_grads())
    flat.grads[...] = flat.params
    flat.grad_views[1][2] = bad
    before = flat.grads.copy()
    assert not math.isfinite(flat_grad_norm(flat, 0.1))
    np.testing.assert_array_equal(flat.grads, before)


def _reference(kind, kw, params, steps):
    """A straightforward per-array implementation of PyTorch's update rules."""
    params = [p.copy() for p in params]
    lr, wd = kw["learning_rate"], kw.get("weight_decay", 0.0)
    state = [dict(m=np.zeros_like(p), v=np.zeros_like(p)) for p in params]
    for t, grads in enumerate(steps, start=1):
        for p, g, s in zip(params, grads, state, strict=True):
            if kind == "sgd":
                mu = kw["momentum"]
                if wd:
                    g = g + wd * p
                if mu:
                    s["m"] = g.copy() if t == 1 else mu * s["m"] + g
                    g = g + mu * s["m"] if kw.get("nesterov") else s["m"]
                p -= lr * g
                continue
            b1, b2, eps = 0.9, 0.999, 1e-8
            if kind == "adamw":
                p *= 1.0 - lr * wd
            elif wd:
                g = g + wd * p
            s["m"] = b1 * s["m"] + (1.0 - b1) * g
            s["v"] = b2 * s["v"] + (1.0 - b2) * (g * g)
            denom = np.sqrt(s["v"]) / math.sqrt(1.0 - b2**t) + eps
            p -= lr / (1.0 - b1**t) * (s["m"] / denom)
    return params


OPTIMIZERS = [
    ("sgd", SGD, dict(learning_rate=0.1, momentum=0.0)),
    ("sgd", SGD, dict(learning_rate=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd", SGD, dict(learning_rate=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("adam", Adam, dict(learning_rate=0.01)),
    ("adam", Adam, dict(learning_rate=0.01, weight_decay=0.1)),
    ("adamw", AdamW, dict(learning_rate=0.02, weight_decay=0.3)),
]


@pytest.mark.parametrize("kind, cls, kw", OPTIMIZERS)
def test_flat_updates_equal_the_reference_and_the_per_array_ones_bit_for_bit(kind, cls, kw):
    params = _grads(1)
    steps = [_grads(10 + i) for i in range(6)]
    expected = _reference(kind, kw, params, steps)

    separate = [p.copy() for p in params]
    per_array = cls(separate, **kw)
    flat = FlatParameters(params)
    bound = cls(flat.param_views, **kw)
    assert bound.bind(flat)
    for i, g in enumerate(steps):
        per_array.step(separate, [x.copy() for x in g])
        for view, x in zip(flat.grad_views, g, strict=True):
            view[...] = x
        bound.step(flat.param_views, flat.grad_views)
        if i == 2:  # the state is the per-array optimizer's, through the views
            for a, b in zip(bound.get_state()["buffers"], per_array.get_state()["buffers"],
                            strict=True):
                assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for got, sep, ref in zip(flat.param_views, separate, expected, strict=True):
        np.testing.assert_array_equal(got, sep)
        np.testing.assert_array_equal(got, ref)
    assert bound.t == per_array.t == len(steps)


def test_binding_keeps_the_optimizer_state_and_pickles_without_the_flat_buffers():
    params = _grads(1)
    opt = Adam([p.copy() for p in params], learning_rate=0.01)
    opt.step([p.copy() for p in params], _grads(2))  # some state before binding
    state = opt.get_state()
    flat = FlatParameters(params)
    assert opt.bind(flat) and opt.bind(flat)  # the second call changes nothing
    after = opt.get_state()
    assert after["t"] == state["t"]
    for a, b in zip(after["buffers"], state["buffers"], strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert clone._flat is None  # per-array again: nothing aliases another object
        assert all(np.array_equal(x, y) for x, y in zip(clone.ms, opt.ms, strict=True))
    assert not opt.bind(FlatParameters([np.zeros(3, np.float32)]))  # another shape: refused


def test_the_step_guard_undoes_a_half_done_flat_update():
    flat = FlatParameters(_grads(1))
    opt = Adam(flat.param_views, learning_rate=0.1)
    opt.bind(flat)
    flat.grads[...] = 1.0
    opt.step(flat.param_views, flat.grad_views)
    guard = StepGuard([flat.params], opt)
    params, state = flat.params.copy(), opt.get_state()
    with pytest.raises(KeyboardInterrupt):
        with guard.step():
            opt.t += 1
            opt.ms[0][...] = 7.0       # half of an update ...
            flat.params[:5] = 3.0
            raise KeyboardInterrupt    # ... then Ctrl-C
    np.testing.assert_array_equal(flat.params, params)
    assert opt.t == state["t"]
    for a, b in zip(opt.get_state()["buffers"], state["buffers"], strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------- whole fits


def _data(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(70, 6, 2)).astype(np.float32)  # 70: the last batch is smaller
    return X, X[:, :, 0].sum(axis=1)


def _ragged(seed=0):
    rng = np.random.RandomState(seed)
    X = [rng.normal(size=(n, 3)).astype(np.float32) for n in rng.randint(2, 12, size=50)]
    return X, np.array([x[:, 0].sum() for x in X])


def _weights(est):
    return est.network_.get_weights()


def _python_steps(monkeypatch):
    """Both ways on the Python step (the compiled one, fastlstm.train.engine, has its tests)."""
    monkeypatch.setattr(CompiledStep, "for_network", classmethod(lambda cls, net, loss: None))


def _fit_both_ways(monkeypatch, make, X, y):
    """Fit and partial_fit with the flat step, then with the per-array step."""
    _python_steps(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        flat = make().fit(X, y)
        assert flat._optimizer._flat is not None  # the flat step did run
        assert flat._optimizer._flat[0] is flat.network_.bind_flat()
        flat.partial_fit(X, y)
        with monkeypatch.context() as mp:
            mp.delattr(SequenceNet, "bind_flat")  # the Trainer falls back to per-array
            plain = make().fit(X, y)
            assert plain._optimizer._flat is None
            plain.partial_fit(X, y)
    return flat, plain


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("case", [
    dict(),
    dict(optimizer="sgd", learning_rate=0.05, weight_decay=0.01),
    dict(optimizer="adamw", weight_decay=0.1, clip_norm=0.05),   # clipping at every step
    dict(cell="rnn", optimizer="sgd", momentum=0.0, bidirectional=True),
    dict(num_layers=2, dtype="float64"),
])
def test_a_fit_with_the_flat_step_equals_the_per_array_fit_bit_for_bit(monkeypatch, case, n_jobs):
    X, y = _data()

    def make():
        return LSTMRegressor(hidden_size=7, max_epochs=3, batch_size=16, random_state=0,
                             n_jobs=n_jobs, **case)

    flat, plain = _fit_both_ways(monkeypatch, make, X, y)
    for a, b in zip(_weights(flat), _weights(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    assert flat.loss_curve_ == plain.loss_curve_


def test_batches_of_changing_shapes_do_not_leak_into_each_other(monkeypatch):
    # ragged sequences: every batch has its own length and padding; a classifier with
    # early stopping adds validation forwards between the training steps
    X, y = _ragged()
    labels = (y > 0).astype(int)
    _python_steps(monkeypatch)

    def make():
        return LSTMClassifier(hidden_size=5, max_epochs=4, batch_size=8, early_stopping=True,
                              validation_fraction=0.2, random_state=0, n_jobs=1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        flat = make().fit(X, labels)
        with monkeypatch.context() as mp:
            mp.delattr(SequenceNet, "bind_flat")
            plain = make().fit(X, labels)
    for a, b in zip(_weights(flat), _weights(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(flat.predict_proba(X), plain.predict_proba(X))
    # and the ragged regressor, fit then partial_fit
    flat, plain = _fit_both_ways(monkeypatch, lambda: LSTMRegressor(
        hidden_size=5, max_epochs=2, batch_size=8, random_state=1, n_jobs=1), X, y)
    for a, b in zip(_weights(flat), _weights(plain), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fits_are_deterministic_and_a_pickled_twin_continues_identically(n_jobs):
    X, y = _data(1)
    make = dict(hidden_size=8, max_epochs=3, batch_size=16, random_state=3, n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = LSTMRegressor(**make).fit(X, y)
        b = LSTMRegressor(**make).fit(X, y)
        for u, v in zip(_weights(a), _weights(b), strict=True):
            np.testing.assert_array_equal(u, v)
        twin = pickle.loads(pickle.dumps(a))   # unbound: binds at its first step
        a.partial_fit(X, y)
        twin.partial_fit(X, y)
        a.partial_fit(X[:20], y[:20])          # another size after partial_fit
        twin.partial_fit(X[:20], y[:20])
    for u, v in zip(_weights(a), _weights(twin), strict=True):
        np.testing.assert_array_equal(u, v)


class _Watch(Callback):
    """Records the weights after every step, and puts the first epoch's start back once."""

    def __init__(self):
        self.seen, self.start = [], None

    def on_epoch_begin(self, ctx, epoch):
        if epoch == 1:
            self.start = ctx.get_weights()

    def on_batch_end(self, ctx, batch, loss):
        self.seen.append(ctx.get_weights()[0].copy())

    def on_epoch_end(self, ctx, epoch, logs):
        if epoch == 1:
            ctx.set_weights(self.start)


def test_callbacks_see_and_set_the_live_flat_parameters():
    X, y = _data()
    watch = _Watch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = LSTMRegressor(hidden_size=6, max_epochs=2, batch_size=16, random_state=0,
                            n_jobs=1, callbacks=[watch]).fit(X, y)
    # every step's update is visible through the callback's view of the model
    seen = watch.seen
    assert all(not np.array_equal(a, b) for a, b in zip(seen[:-1], seen[1:], strict=True))
    # the weights set at the end of epoch 1 are what epoch 2 trained from: its first
    # step is one step away from the initial weights, nearer than epoch 1's last
    per_epoch = len(watch.seen) // 2
    start = watch.start[0]
    assert (np.abs(watch.seen[per_epoch] - start).max()
            < np.abs(watch.seen[per_epoch - 1] - start).max())
    assert est.n_iter_ == 2


def test_ctrl_c_half_way_through_a_flat_update_keeps_the_last_complete_step(monkeypatch):
    X, y = _data()
    calls = {"n": 0}
    real_step = Adam.step

    def step(self, params, grads, half=False):
        calls["n"] += 1
        if calls["n"] == 6:
            if calls.get("half"):
                self.t += 1
                self.ms[0][...] = 5.0          # moments and weights half-updated
                params[1][...] = 0.0
            raise KeyboardInterrupt
        real_step(self, params, grads)

    monkeypatch.setattr(Adam, "step", step)
    reference = LSTMRegressor(hidden_size=6, max_epochs=9, batch_size=16, random_state=0,
                              n_jobs=1)
    with pytest.raises(KeyboardInterrupt):
        reference.fit(X, y)
    calls.update(n=0, half=True)
    reg = LSTMRegressor(hidden_size=6, max_epochs=9, batch_size=16, random_state=0, n_jobs=1)
    with pytest.raises(KeyboardInterrupt):
        reg.fit(X, y)
    for a, b in zip(_weights(reg), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    ref_state, state = reference._optimizer.get_state(), reg._optimizer.get_state()
    assert state["t"] == ref_state["t"] == 5
    for a, b in zip(state["buffers"], ref_state["buffers"], strict=True):
        assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    monkeypatch.undo()
    reg.partial_fit(X, y)  # and training goes on from there, as the reference's does
    reference.partial_fit(X, y)
    for a, b in zip(_weights(reg), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
