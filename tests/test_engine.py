"""The compiled training step (fastlstm.train.engine) against the Python step it replaces.

Its gradients equal the Python path's (forward, loss, backward through the
layer and the readout) up to float32 rounding, for every cell, both losses
and stacks of layers in one direction or two, with sample weights; they are
bit for bit the same at any thread count; fits use it where it covers the
batch and agree with fits that do not.  Shapes come from the kernel
variant's tile.
"""

import warnings

import numpy as np
import pytest

import fastlstm.train.engine as engine_module
from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.train.engine import CompiledStep
from fastlstm.train.network import SequenceNet, softmax_cross_entropy, squared_error

SIMD = pytest.importorskip("fastlstm._kernels").load().packed_width() > 0
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")


def _tile():
    return SequenceNet(1, 1, hidden_size=1).layer._kernels.packed_tile_rows()


def _case(rng, cell, loss, batch, steps, n_in, hidden, n_out, layers=1, bidirectional=False,
          dropout=0.0, lengths=None):
    net = SequenceNet(n_in, n_out, cell=cell, hidden_size=hidden, num_layers=layers,
                      bidirectional=bidirectional, dropout=dropout, random_state=3, n_jobs=1)
    # the engine draws its dropout masks from the layer's generator as the
    # Python forward does: it gets the generator as the forward found it
    drawn = net.layer._rng.bit_generator.state
    x = rng.normal(size=(batch, steps, n_in)).astype(np.float32)
    w = rng.uniform(0.2, 2.0, size=batch)
    if loss == "cross_entropy":
        t = rng.integers(0, n_out, size=batch)
        ref_loss, d_out = softmax_cross_entropy(net.forward(x, lengths, training=True), t, w)
    else:
        t = rng.normal(size=(batch, n_out))
        ref_loss, d_out = squared_error(net.forward(x, lengths, training=True), t, w)
    ref = net.backward(d_out)
    net.layer._rng.bit_generator.state = drawn
    return net, x, t, w, ref_loss, ref


def _shapes():
    tile = _tile()
    # several chunks with a ragged last tile, a batch under one tile, one step
    # and 64 units, whose step is reduced in slices (TrainPlan.n_slices > 1)
    return [(3 * tile + 1, 7, 3, 2 * 16 + 3, 4), (tile - 1 or 1, 5, 2, 9, 3),
            (2 * tile, 1, 4, 16, 2), (2 * tile + 1, 3, 5, 64, 3)]


def _compiled_like(net, loss, x, lengths, t, w, ref_loss, ref):
    # the engine's loss and gradients of the batch equal the Python step's
    # (ref_loss, ref) up to float32 rounding: the engine and the gradients
    step = CompiledStep.for_network(net, loss)
    if step is None:
        pytest.skip("this kernel variant has no packed kernels")
    grads = [np.full_like(p, np.nan) for p in net.parameters()]
    got_loss, failure = step.gradients(x, lengths, t, w, grads)
    assert failure is None
    assert got_loss == pytest.approx(ref_loss, rel=1e-5)
    for name, g, r in zip(net.parameter_names(), grads, ref, strict=True):
        scale = max(float(np.abs(r).max()), 1e-6)
        np.testing.assert_allclose(g, r, rtol=0, atol=2e-5 * scale, err_msg=name)
    return step, grads


@pytest.mark.parametrize("layers, bidirectional, dropout", [
    (1, False, 0.0), (2, False, 0.0), (3, False, 0.0), (1, True, 0.0), (2, True, 0.0),
    (3, False, 0.4), (2, True, 0.3)])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_the_compiled_gradients_equal_the_python_steps(kernel, rng, cell, loss, layers,
                                                       bidirectional, dropout):
    for shape in _shapes():
        net, x, t, w, ref_loss, ref = _case(rng, cell, loss, *shape, layers=layers,
                                            bidirectional=bidirectional, dropout=dropout)
        step, grads = _compiled_like(net, loss, x, None, t, w, ref_loss, ref)
        # the global norm of what it wrote, for the trainer's clipping
        exact = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        assert step.norm == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize("layers, bidirectional, dropout", [
    (1, False, 0.0), (2, False, 0.0), (1, True, 0.0), (2, True, 0.3)])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_the_compiled_gradients_of_sequences_of_several_lengths_equal_the_python_steps(
        kernel, rng, cell, loss, layers, bidirectional, dropout):
    # a batch of lengths from one step to all, in no order, some of them full
    for batch, steps, n_in, hidden, n_out in [(3 * _tile() + 1, 9, 3, 35, 4), (5, 6, 2, 9, 3),
                                              (2 * _tile() + 1, 17, 2, 16, 2)]:
        lengths = rng.integers(1, steps + 1, size=batch)
        lengths[rng.integers(batch)] = steps
        lengths[rng.integers(batch)] = 1
        net, x, t, w, ref_loss, ref = _case(rng, cell, loss, batch, steps, n_in, hidden, n_out,
                                            layers=layers, bidirectional=bidirectional,
                                            dropout=dropout, lengths=lengths)
        x[np.arange(steps)[None, :] >= lengths[:, None]] = 7.0  # padding: never read
        _compiled_like(net, loss, x, lengths, t, w, ref_loss, ref)


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_the_compiled_gradients_are_the_same_at_any_thread_count(kernel, rng, cell, layers,
                                                                 bidirectional):
    net, x, t, w, _, _ = _case(rng, cell, "cross_entropy", 5 * _tile() + 2, 6, 3, 20, 3,
                               layers=layers, bidirectional=bidirectional)
    if CompiledStep.for_network(net, "cross_entropy") is None:
        pytest.skip("this kernel variant has no packed kernels")
    results = []
    for n_jobs in (1, 2, 3):
        net.set_n_jobs(n_jobs)
        grads = [np.empty_like(p) for p in net.parameters()]
        loss, _ = CompiledStep.for_network(net, "cross_entropy").gradients(x, None, t, w, grads)
        results.append((loss, grads))
    for loss, grads in results[1:]:
        assert loss == results[0][0]
        for a, b in zip(grads, results[0][1], strict=True):
            np.testing.assert_array_equal(a, b)


def test_networks_and_batches_outside_the_engine_take_the_python_path(rng):
    assert CompiledStep.for_network(SequenceNet(2, 2, hidden_size=4, dtype="float64"),
                                    "cross_entropy") is None
    # stacks deeper than the engine's limit
    deep = SequenceNet(2, 2, hidden_size=4, num_layers=engine_module.MAX_LAYERS + 1)
    assert CompiledStep.for_network(deep, "cross_entropy") is None
    wide = SequenceNet(2, 2, hidden_size=4, num_layers=engine_module.MAX_LAYERS // 2 + 1,
                       bidirectional=True)  # each direction counts
    assert CompiledStep.for_network(wide, "cross_entropy") is None
    assert CompiledStep.for_network(SequenceNet(2, 2, hidden_size=4, sequence_output=True),
                                    "squared_error") is None
    assert CompiledStep.for_network(SequenceNet(2, 2, hidden_size=4), "huber") is None
    step = CompiledStep.for_network(SequenceNet(2, 2, hidden_size=4), "cross_entropy")
    grads = [np.full_like(p, 7.0) for p in step.net.parameters()]
    x = np.zeros((3, 4, 2), np.float32)
    # float64 batches and lengths out of range: not covered, nothing written
    assert step.gradients(x.astype(np.float64), None, np.zeros(3, int), np.ones(3),
                          grads) is None
    assert step.gradients(x, np.array([4, 2, 5]), np.zeros(3, int), np.ones(3), grads) is None
    assert all((g == 7.0).all() for g in grads)
    with pytest.raises(ValueError, match="NaN or infinity"):
        step.gradients(np.full((3, 4, 2), np.nan, np.float32), None, np.zeros(3, int),
                       np.ones(3), grads)


def _count_engine_calls(monkeypatch, use_engine, calls):
    # the trainer takes the whole Adam step from the engine (an epoch's steps
    # in runs, adam_runs, or one by one, adam_step), other optimizers their
    # gradients (gradients): count them all (True: the engine took the call;
    # runs it declines, whose batches then come one by one, are not counted);
    # use_engine False: the engine covers no network
    for name in ("gradients", "adam_step", "adam_runs"):
        real = getattr(CompiledStep, name)

        def counted(self, *args, real=real, name=name, **kwargs):
            result = real(self, *args, **kwargs)
            if result is not None or name != "adam_runs":
                calls.append(result is not None)
            return result

        monkeypatch.setattr(CompiledStep, name, counted)
    if not use_engine:
        monkeypatch.setattr(CompiledStep, "for_network", classmethod(lambda c, net, loss: None))


def _fit(monkeypatch, cls, use_engine, calls, **kw):
    _count_engine_calls(monkeypatch, use_engine, calls)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3 * 4 * _tile() + 3, 6, 2))
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int)
    if cls is LSTMRegressor:
        y = X[:, -1, 1] + 0.1 * y
    model = cls(hidden_size=12, batch_size=4 * _tile(), max_epochs=2, random_state=0, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    monkeypatch.undo()
    return model


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_fits_use_the_engine_and_agree_with_fits_that_do_not(monkeypatch, cls, cell, layers,
                                                              bidirectional):
    kw = dict(cell=cell, num_layers=layers, bidirectional=bidirectional)
    calls = []
    compiled = _fit(monkeypatch, cls, True, calls, **kw)
    assert calls and all(calls)  # every dense batch took the compiled step
    python_calls = []
    plain = _fit(monkeypatch, cls, False, python_calls, **kw)
    assert not python_calls
    for a, b in zip(compiled.network_.parameters(), plain.network_.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert compiled.loss_curve_ == pytest.approx(plain.loss_curve_, rel=1e-4)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_fits_with_dropout_use_the_engine_and_agree_with_the_python_steps(
        monkeypatch, bidirectional):
    # the masks come from the layer's generator, drawn as the Python step draws them
    kw = dict(num_layers=2, dropout=0.3, bidirectional=bidirectional)
    calls = []
    compiled = _fit(monkeypatch, LSTMClassifier, True, calls, **kw)
    assert calls and all(calls)
    plain = _fit(monkeypatch, LSTMClassifier, False, [], **kw)
    for a, b in zip(compiled.network_.parameters(), plain.network_.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert compiled.loss_curve_ == pytest.approx(plain.loss_curve_, rel=1e-4)
    undropped = _fit(monkeypatch, LSTMClassifier, True, [], num_layers=2,
                     bidirectional=bidirectional)
    moved = [np.abs(a - b).max() for a, b in zip(compiled.network_.parameters(),
                                                  undropped.network_.parameters(), strict=True)]
    assert max(moved) > 1e-3  # the dropout did change the training


def _ragged_fit(monkeypatch, use_engine, calls, n_jobs=1, **kw):
    # a fit on sequences of 2 to 9 steps (the batches of several lengths)
    _count_engine_calls(monkeypatch, use_engine, calls)
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(int(n), 3)) for n in rng.integers(2, 10, size=6 * _tile() + 5)]
    y = np.array([int(x[:, 0].sum() > 0) for x in X])
    model = LSTMClassifier(hidden_size=10, batch_size=2 * _tile(), max_epochs=2, random_state=0,
                           n_jobs=n_jobs, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    monkeypatch.undo()
    return model


@pytest.mark.parametrize("kw", [{}, dict(cell="gru", num_layers=2, bidirectional=True),
                                dict(num_layers=2, dropout=0.3)])
def test_fits_of_sequences_of_several_lengths_use_the_engine(monkeypatch, kw):
    calls = []
    compiled = _ragged_fit(monkeypatch, True, calls, **kw)
    assert calls and all(calls)  # every batch took the compiled step
    plain = _ragged_fit(monkeypatch, False, [], **kw)
    for a, b in zip(compiled.network_.parameters(), plain.network_.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    # and the thread count changes nothing
    for n_jobs in (2, 3):
        other = _ragged_fit(monkeypatch, True, [], n_jobs=n_jobs, **kw)
        for a, b in zip(compiled.network_.parameters(), other.network_.parameters(),
                        strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_plan_checks_the_lengths_of_its_rows(kernel):
    k = SequenceNet(1, 1, hidden_size=1).layer._kernels
    if k.packed_width() == 0:
        pytest.skip("this kernel variant has no packed kernels")
    plan = k.TrainPlan(k.CELL_LSTM, 2, 5, 2, 4, 8, k.LOSS_CROSS_ENTROPY, [0, 2, 4])
    x, w = np.zeros((4, 6, 2), np.float32), np.ones(4)
    cls, out, bias = np.zeros(4, np.int64), np.zeros((2, 5), np.float32), np.zeros(2, np.float32)
    args = (0, x, cls, None, w, 4.0, out, bias, None)
    plan.pack(*(np.zeros(s, np.float32) for s in [(20, 2), (20, 5), (20,), (20,)]))
    assert plan.chunk(*args, np.array([6, 3, 2, 1])) == 0  # 6 of the plan's 8 steps
    for bad in ([3, 6, 2, 1], [7, 3, 2, 1], [6, 0, 2, 1], [6, 3]):
        with pytest.raises(ValueError, match="length"):
            plan.chunk(*args, np.array(bad))
    with pytest.raises(ValueError, match="does not match the plan"):
        plan.chunk(0, np.zeros((4, 9, 2), np.float32), *args[2:], np.array([6, 3, 2, 1]))


def test_regression_losses_the_engine_lacks_take_the_python_path(monkeypatch):
    calls = []
    _fit(monkeypatch, LSTMRegressor, True, calls, loss="huber")
    assert not calls


def test_the_engine_module_names_its_losses():
    assert set(engine_module.ENGINE_LOSSES) == {"cross_entropy", "squared_error"}


def test_clipping_after_the_compiled_step_equals_the_python_clipping(monkeypatch):
    # a limit below every step's norm: each update is clipped
    calls = []
    compiled = _fit(monkeypatch, LSTMClassifier, True, calls, clip_norm=1e-3)
    assert calls and all(calls)
    plain = _fit(monkeypatch, LSTMClassifier, False, [], clip_norm=1e-3)
    for a, b in zip(compiled.network_.parameters(), plain.network_.parameters(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    unclipped = _fit(monkeypatch, LSTMClassifier, True, [], clip_norm=None)
    moved = [np.abs(a - b).max() for a, b in zip(compiled.network_.parameters(),
                                                  unclipped.network_.parameters(), strict=True)]
    assert max(moved) > 1e-3  # the limit did change the training


def test_the_step_of_a_large_layer_comes_in_slices(kernel):
    # the slices of the reduction and the update a run's threads share: more
    # than one from a few thousand parameters, one for a small layer
    k = SequenceNet(1, 1, hidden_size=1).layer._kernels
    if k.packed_width() == 0:
        pytest.skip("this kernel variant has no packed kernels")
    lstm = SequenceNet(1, 1, hidden_size=1).layer._cell_code

    def slices(n_in, hidden):
        return k.TrainPlan(lstm, n_in, hidden, 3, 8, 2, k.LOSS_CROSS_ENTROPY, [0, 4, 8]).n_slices

    assert slices(1, 8) == 1
    assert 1 < slices(5, 64) <= 4
    assert slices(32, 256) == 4


def test_a_plan_takes_dropout_masks_only_if_it_has_dropout(kernel):
    k = SequenceNet(1, 1, hidden_size=1).layer._kernels
    if k.packed_width() == 0:
        pytest.skip("this kernel variant has no packed kernels")
    lstm, ce = k.CELL_LSTM, k.LOSS_CROSS_ENTROPY
    x, w = np.zeros((4, 3, 2), np.float32), np.ones(4)
    cls, out, bias = np.zeros(4, np.int64), np.zeros((2, 5), np.float32), np.zeros(2, np.float32)
    args = (0, x, cls, None, w, 4.0, out, bias)
    masked = k.TrainPlan(lstm, 2, 5, 2, 4, 3, ce, [0, 4], 2, 1, True)
    plain = k.TrainPlan(lstm, 2, 5, 2, 4, 3, ce, [0, 4], 2, 1, False)
    assert masked.dropout and not plain.dropout
    with pytest.raises(ValueError, match="dropout masks of shape"):
        masked.chunk(*args)
    with pytest.raises(ValueError, match="dropout masks of shape"):
        masked.chunk(*args, np.ones((1, 3, 3, 5), np.float32))  # not the batch's rows
    with pytest.raises(ValueError, match="takes no dropout masks"):
        plain.chunk(*args, np.ones((1, 3, 4, 5), np.float32))
