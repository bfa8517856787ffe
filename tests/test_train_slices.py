"""The compiled step's one row chunk shared by hidden slices (``TrainPlan(slices > 1)``).

A batch too narrow for two row chunks runs its chunk as phases of tickets
that any number of threads take (each layer's forward and backward on a
gang, the weight gradients by gate rows): the loss, the gradients and their
norm must be those of the chunk run on one thread, bit for bit, with one
thread, several, or some starting late, for every cell, stacks of layers in
one direction or two, dropout and rows of several lengths; and fits that
take such batches give the same model at any thread count.  Hidden sizes
come from the kernel variant's panels; every SIMD variant this CPU has runs.
"""

import warnings

import numpy as np
import pytest
from staggered import run_staggered

import fastlstm.train.plans as plans_module
from fastlstm import LSTMClassifier, LSTMRegressor, _kernels
from fastlstm.callbacks import Callback
from fastlstm.train.network import SequenceNet

SIMD = [v for v in _kernels.available_variants() if _kernels.load(v).packed_width() > 0]
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")

N_IN, N_OUT = 3, 4


@pytest.fixture(params=SIMD)
def k(request, monkeypatch):
    """The kernel module of one SIMD variant; networks built in the test use it too."""
    monkeypatch.setenv("FASTLSTM_KERNEL", request.param)
    return _kernels.load(request.param)


def _hidden(k, cell, panels):
    # a hidden size of `panels` panels, the last one ragged
    return (panels - 1) * k.packed_units(getattr(k, f"CELL_{cell.upper()}")) + 3


class _Batch:
    """A network and one batch's chunk arguments, for plans of any slices."""

    def __init__(self, k, rng, cell, batch, steps, hidden, layers=1, directions=1,
                 dropout=False, loss="cross_entropy", lengths=False):
        self.k, self.batch, self.steps, self.dropout = k, batch, steps, dropout
        self.net = SequenceNet(N_IN, N_OUT, cell=cell, hidden_size=hidden, num_layers=layers,
                               bidirectional=directions == 2, random_state=1, n_jobs=1)
        self.loss = k.LOSS_CROSS_ENTROPY if loss == "cross_entropy" else k.LOSS_SQUARED_ERROR
        x = rng.normal(size=(batch, steps, N_IN)).astype(np.float32)
        classes = values = None
        if loss == "cross_entropy":
            classes = rng.integers(0, N_OUT, size=batch).astype(np.int64)
        else:
            values = rng.normal(size=(batch, N_OUT))
        weight = rng.uniform(0.5, 2.0, size=batch)
        masks = None
        if dropout:
            keep = rng.uniform(size=(layers - 1, steps, batch, directions * hidden)) > 0.3
            masks = (keep / 0.7).astype(np.float32)
        lens = None
        if lengths:  # rows by decreasing length, the first running every step
            lens = np.sort(rng.integers(1, steps + 1, size=batch))[::-1].copy()
            lens[0] = steps
        self.args = (x, classes, values, weight, float(weight.sum()), self.net.weight,
                     self.net.bias, masks, lens)

    def plan(self, slices):
        layer = self.net.layer
        return self.k.TrainPlan(layer._cell_code, N_IN, layer.hidden_size, N_OUT, self.batch,
                                self.steps, self.loss, [0, self.batch], layer.num_layers,
                                layer.num_directions, self.dropout, slices)

    def gradients(self, plan, run):
        # pack, run the chunk (run(plan)), reduce: (loss, squared norm, the gradients' bits)
        names = self.net.parameter_names()[:-2]
        plan.pack(*(self.net.layer._params[n] for n in names))
        run(plan)
        grads = [np.full_like(p, np.nan) for p in self.net.parameters()]
        loss, squares = plan.reduce(*grads)
        return loss, squares, [g.view(np.uint32) for g in grads]

    def on_one_thread(self, plan):
        assert plan.chunk(0, *self.args) == 0

    def shared(self, n_threads, delay=0.0):
        def run(plan):
            run_staggered(n_threads, delay, lambda: plan.shared_chunk(*self.args))
            assert plan.status_codes() == [0]
        return run


def _same(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    for p, q in zip(a[2], b[2], strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("layers, directions, dropout", [
    (1, 1, False), (2, 1, False), (1, 2, False), (3, 2, True)])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_a_shared_chunk_has_the_bits_of_the_chunk_on_one_thread(k, rng, cell, layers,
                                                                 directions, dropout):
    tile = k.packed_tile_rows()
    for batch, panels in ((1, 3), (max(1, tile - 1), 4)):
        case = _Batch(k, rng, cell, batch, 6, _hidden(k, cell, panels), layers, directions,
                      dropout)
        expected = case.gradients(case.plan(1), case.on_one_thread)
        for slices in (2, 3):
            plan = case.plan(slices)
            assert plan.n_tickets == slices and plan.n_chunks == 1
            for n_threads in (1, 2, 3):
                _same(case.gradients(plan, case.shared(n_threads)), expected)
            # one thread starting late; and the plan's own chunk on one thread
            _same(case.gradients(plan, case.shared(2, delay=0.02)), expected)
            _same(case.gradients(plan, case.on_one_thread), expected)


@pytest.mark.parametrize("loss", ["cross_entropy", "squared_error"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_shared_chunk_of_rows_of_several_lengths_has_the_same_bits(k, rng, cell, loss):
    case = _Batch(k, rng, cell, 5, 9, _hidden(k, cell, 3), layers=2, directions=2, loss=loss,
                  lengths=True)
    assert len(set(case.args[-1])) > 1
    expected = case.gradients(case.plan(1), case.on_one_thread)
    plan = case.plan(2)
    for n_threads in (1, 2, 3):
        _same(case.gradients(plan, case.shared(n_threads)), expected)


def test_each_batch_after_pack_runs_the_shared_chunk_afresh(k, rng):
    first = _Batch(k, rng, "lstm", 3, 5, _hidden(k, "lstm", 3))
    second = _Batch(k, rng, "lstm", 3, 5, _hidden(k, "lstm", 3))
    expected = second.gradients(second.plan(1), second.on_one_thread)
    plan = second.plan(2)
    first.gradients(plan, first.shared(2))
    _same(second.gradients(plan, second.shared(2)), expected)


def test_a_shared_chunk_stops_where_the_readout_gradient_is_not_finite(k, rng):
    case = _Batch(k, rng, "lstm", 3, 4, _hidden(k, "lstm", 3))
    case.net.weight[0, 0] = np.inf
    plan = case.plan(2)
    case.gradients(plan, lambda p: None)  # packed
    results = []
    run_staggered(2, 0.0, lambda: results.append(plan.shared_chunk(*case.args)))
    assert results == [1, 1] and plan.status_codes() == [1]
    one = case.plan(1)
    one.pack(*(case.net.layer._params[n] for n in case.net.parameter_names()[:-2]))
    assert one.chunk(0, *case.args) == 1


def test_a_plan_takes_slices_only_of_one_chunk(k, rng):
    case = _Batch(k, rng, "lstm", 4, 3, _hidden(k, "lstm", 2))
    layer = case.net.layer
    with pytest.raises(ValueError, match="one row chunk"):
        k.TrainPlan(layer._cell_code, N_IN, layer.hidden_size, N_OUT, 4, 3, case.loss,
                    [0, 2, 4], 1, 1, False, 2)
    with pytest.raises(ValueError, match="one row chunk"):
        case.plan(0)
    with pytest.raises(ValueError, match="no hidden slices"):
        case.plan(1).shared_chunk(*case.args)
    bad = list(case.args)
    bad[0] = bad[0][:, :, :2].copy()
    with pytest.raises(ValueError, match="x or weight"):
        case.plan(2).shared_chunk(*bad)


class Live(Callback):
    """Needs each step's event right after it: the fit takes its steps one call each."""

    def on_batch_end(self, ctx, batch, loss):
        pass


# hidden sizes whose narrow batches the rule shares at three threads under a
# threshold of this many flops a thread (the test lowers the rule's own, so
# that the fits stay small), the RNN's panels wider
THRESHOLD = 5e4
HIDDEN = {"lstm": 96, "gru": 96, "rnn": 320}


def _narrow_fit(monkeypatch, cls, cell, n_jobs, callbacks=None, ragged=False, heavy=None):
    # a fit of batches of 5 rows (one row chunk) on up to three cores, whatever
    # the machine has; the slices of the plans it took
    monkeypatch.setattr(plans_module, "usable_cores", lambda: 3)
    monkeypatch.setattr(plans_module, "SLICE_MIN_THREAD_STEP_FLOPS", THRESHOLD)
    taken = []
    real = plans_module.chunk_slices

    def recorded(layer, batch):
        taken.append(real(layer, batch))
        return taken[-1]

    monkeypatch.setattr(plans_module, "chunk_slices", recorded)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(17, 7, N_IN)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int) + (X[:, 0, 1] > 0.5)
    if cls is LSTMRegressor:
        y = np.c_[X[:, -1, 1] + 0.5 * y, X[:, 2, 0]]
    if ragged:
        X = [X[i, :3 + i % 5] for i in range(len(X))]
    weight = np.ones(len(y))
    if heavy is not None:  # a weight so large that the weighted loss overflows
        weight[heavy] = 1.7e308
    model = cls(cell=cell, hidden_size=HIDDEN[cell], batch_size=5, max_epochs=2, n_jobs=n_jobs,
                random_state=0, callbacks=callbacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y, sample_weight=weight)
    return model, taken


def _same_model(a, b):
    for p, q in zip(a.network_.parameters(), b.network_.parameters(), strict=True):
        np.testing.assert_array_equal(p.view(np.uint32), q.view(np.uint32))
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_fits_of_narrow_batches_take_slices_and_the_same_bits_at_any_thread_count(
        k, monkeypatch, cls, cell):
    one, taken = _narrow_fit(monkeypatch, cls, cell, 1)
    assert set(taken) == {1}
    for n_jobs in (2, 3):
        many, taken = _narrow_fit(monkeypatch, cls, cell, n_jobs)
        assert max(taken) == n_jobs  # the full batches were shared
        _same_model(one, many)
    # one call a batch (a live callback) shares them the same way
    stepped, taken = _narrow_fit(monkeypatch, cls, cell, 2, callbacks=[Live()])
    assert max(taken) == 2
    _same_model(one, stepped)


def test_fits_of_narrow_batches_of_several_lengths_give_the_same_bits(k, monkeypatch):
    one, _ = _narrow_fit(monkeypatch, LSTMClassifier, "lstm", 1, ragged=True)
    two, taken = _narrow_fit(monkeypatch, LSTMClassifier, "lstm", 2, ragged=True)
    assert max(taken) == 2
    _same_model(one, two)


def test_the_rule_shares_only_batches_with_work_enough_for_each_thread(monkeypatch):
    monkeypatch.setattr(plans_module, "usable_cores", lambda: 2)
    threshold = plans_module.SLICE_MIN_THREAD_STEP_FLOPS

    def share(hidden, batch):  # a thread's share of a step of an LSTM, at two threads
        return 2.0 * batch * 4 * hidden * (N_IN + hidden) / 2

    wide = SequenceNet(N_IN, N_OUT, hidden_size=512, n_jobs=2).layer
    if wide._kernels.packed_width() == 0:
        pytest.skip("this kernel variant has no packed kernels")
    assert share(512, 4) >= threshold and plans_module.chunk_slices(wide, 4) == 2
    one = SequenceNet(N_IN, N_OUT, hidden_size=512, n_jobs=1).layer
    assert plans_module.chunk_slices(one, 4) == 1
    # a thread's share of a step under the threshold: one thread
    small = SequenceNet(N_IN, N_OUT, hidden_size=128, n_jobs=2).layer
    assert share(128, 4) < threshold and plans_module.chunk_slices(small, 4) == 1


def test_a_failing_narrow_batch_is_handled_the_same_at_any_thread_count(k, monkeypatch):
    whole, _ = _narrow_fit(monkeypatch, LSTMClassifier, "lstm", 1)
    one, _ = _narrow_fit(monkeypatch, LSTMClassifier, "lstm", 1, heavy=3)
    two, taken = _narrow_fit(monkeypatch, LSTMClassifier, "lstm", 2, heavy=3)
    assert max(taken) == 2
    assert len(one.loss_curve_) != len(whole.loss_curve_) or one.loss_curve_ != whole.loss_curve_
    _same_model(one, two)
    assert one.t_ == two.t_ < whole.t_
