"""An epoch's mini-batches in runs of compiled calls (CompiledStep.adam_runs).

With Adam and no callback that needs each step's event at once, a fit runs
batch after batch with the threads staying in C.  The runs must give the
bits of the same steps taken one by one (a live ``on_batch_end`` callback
forces that path), at any thread count and however the runs are cut; a
failing batch, Ctrl-C and the display-only events must behave as they do
one step at a time.  Shapes come from the kernel variant's tile.
"""

import sys
import warnings

import numpy as np
import pytest

import fastlstm.train.engine as engine_module
from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.callbacks import Callback, ProgressBar
from fastlstm.train.engine import CompiledStep
from fastlstm.train.network import SequenceNet
from fastlstm.train.trainer import Trainer

SIMD = pytest.importorskip("fastlstm._kernels").load().packed_width() > 0
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")


class Live(Callback):
    """Needs each step's event right after it: the fit takes its steps one by one."""

    def __init__(self):
        self.seen = []

    def on_batch_end(self, ctx, batch, loss):
        self.seen.append((batch, loss, ctx.samples_done))


class Shown(Live):
    """The same events, only displayed: the fit may run many steps per call."""

    display_only = True


def _tile():
    return max(1, SequenceNet(1, 1, hidden_size=1).layer._kernels.packed_tile_rows())


def _compiled():
    # whether this test's kernel variant has the compiled step (SIMD variants)
    return SequenceNet(1, 1, hidden_size=1).layer._kernels.packed_width() > 0


def _ran_in_runs(runs):
    # every epoch in runs where the variant has the engine, none elsewhere
    return (bool(runs) and all(runs)) if _compiled() else not runs


def _data(n, cls):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 6, 3)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(int) + (X[:, 0, 1] > 0.5)
    if cls is LSTMRegressor:
        y = np.c_[X[:, -1, 1] + 0.5 * y, X[:, 2, 0]]
    w = rng.uniform(0.5, 2.0, size=n)
    return X, y, w


def _several_lengths(X):
    # half the set 3 steps long (batches of one length shorter than the set's
    # longest), the rest 2 to 6 (batches of several lengths)
    n = len(X)
    return [X[i, :3] if i < n // 2 else X[i, :2 + i % 5] for i in range(n)]


def _fit(_monkeypatch, cls, callbacks=None, runs=None, seconds=None, weighted=True,
         ragged=False, **kw):
    # a fit; `runs` collects whether each epoch ran in runs (adam_runs not None)
    with pytest.MonkeyPatch.context() as mp:  # undoes its own patches, not the variant's
        real = CompiledStep.adam_runs

        def counted(self, *args, **kwargs):
            if seconds is not None:
                kwargs["seconds"] = seconds
            result = real(self, *args, **kwargs)
            if runs is not None:
                runs.append(result is not None)
            return result

        mp.setattr(CompiledStep, "adam_runs", counted)
        tile = _tile()
        # three full batches and a short one, in shuffled order
        X, y, w = _data(3 * 4 * tile + tile + 1, cls)
        if ragged:
            X = _several_lengths(X)
        kw.setdefault("max_epochs", 3)
        kw.setdefault("hidden_size", 10)
        model = cls(batch_size=4 * tile, random_state=0, callbacks=callbacks, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y, sample_weight=w if weighted else None)
    return model


def _bits(model):
    return [np.asarray(p).view(np.uint32) for p in model.network_.parameters()]


def _same(a, b):
    for p, q in zip(_bits(a), _bits(b), strict=True):
        np.testing.assert_array_equal(p, q)
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("layers, bidirectional, dropout", [
    (1, False, 0.0), (2, False, 0.0), (2, True, 0.0), (3, False, 0.3), (2, True, 0.5)])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_runs_give_the_bits_of_the_steps_one_by_one(kernel, monkeypatch, cls, cell, layers,
                                                     bidirectional, dropout):
    # (with dropout: the runs' masks, drawn for the epoch at once, are the
    # masks the steps draw one batch at a time)
    kw = dict(cell=cell, n_jobs=1, clip_norm=0.5, num_layers=layers, bidirectional=bidirectional,
              dropout=dropout)
    runs = []
    ran = _fit(monkeypatch, cls, runs=runs, **kw)
    assert _ran_in_runs(runs)
    stepped_runs = []
    stepped = _fit(monkeypatch, cls, [Live()], runs=stepped_runs, **kw)
    assert not stepped_runs  # a live callback: one step per call
    _same(ran, stepped)
    assert ran.t_ == stepped.t_ and ran.n_iter_ == stepped.n_iter_ == 3


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_runs_of_several_lengths_give_the_bits_of_the_steps_one_by_one(
        kernel, monkeypatch, cls, cell, layers, bidirectional):
    # sequences of several lengths: each batch's rows longest first, on the
    # plan of its steps (batches of one length among them), in runs as one by one
    kw = dict(cell=cell, n_jobs=1, clip_norm=0.5, num_layers=layers,
              bidirectional=bidirectional, ragged=True)
    runs = []
    ran = _fit(monkeypatch, cls, runs=runs, **kw)
    assert _ran_in_runs(runs)
    stepped_runs = []
    stepped = _fit(monkeypatch, cls, [Live()], runs=stepped_runs, **kw)
    assert not stepped_runs
    _same(ran, stepped)
    for n_jobs in (2, 3):
        _same(ran, _fit(monkeypatch, cls, **{**kw, "n_jobs": n_jobs}))


def test_runs_of_several_lengths_with_dropout_go_one_batch_at_a_time(kernel, monkeypatch):
    runs = []
    ran = _fit(monkeypatch, LSTMClassifier, runs=runs, ragged=True, num_layers=2, dropout=0.3)
    assert not any(runs) and (bool(runs) or not _compiled())
    _same(ran, _fit(monkeypatch, LSTMClassifier, [Live()], ragged=True, num_layers=2,
                    dropout=0.3))


def test_a_set_of_several_lengths_too_long_to_pad_goes_one_batch_at_a_time(kernel,
                                                                          monkeypatch):
    # one sequence far longer than the rest: padding would more than double the set
    import fastlstm.estimators.base as base

    monkeypatch.setattr(base, "_PAD_BYTES", 0)
    X, y, _ = _data(40, LSTMClassifier)
    X = [x[:2] for x in X]
    X[0] = np.zeros((20, 3), np.float32)
    runs = []
    real = CompiledStep.adam_runs

    def counted(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        runs.append(result is not None)
        return result

    monkeypatch.setattr(CompiledStep, "adam_runs", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LSTMClassifier(hidden_size=4, max_epochs=2, random_state=0).fit(X, y)
    assert not runs  # no whole set: the trainer never asks for runs


def test_each_epoch_reorders_the_run_of_the_first(kernel, monkeypatch):
    # unit weights (each batch's weight sum is its size) and the short batch
    # shuffled to another place each epoch: one run serves the whole fit
    made = []
    real = CompiledStep._runs

    def recorded(self, run, *args):
        made.append(run)
        return real(self, run, *args)

    monkeypatch.setattr(CompiledStep, "_runs", recorded)
    ran = _fit(monkeypatch, LSTMRegressor, weighted=False, n_jobs=1, max_epochs=4)
    if _compiled():
        assert len(made) == 4 and all(run is made[0] for run in made)
    stepped = _fit(monkeypatch, LSTMRegressor, [Live()], weighted=False, n_jobs=1,
                   max_epochs=4)
    _same(ran, stepped)


@pytest.mark.parametrize("n_jobs", [1, 2, 3])
def test_a_step_in_slices_gives_the_bits_of_one_step_at_a_time(kernel, monkeypatch, n_jobs):
    # at 64 units the step's reduction and update are several tickets of a
    # run, which threads share; one step at a time takes them in turn
    runs = []
    ran = _fit(monkeypatch, LSTMClassifier, runs=runs, hidden_size=64, n_jobs=n_jobs,
               clip_norm=0.05)
    assert _ran_in_runs(runs)
    stepped = _fit(monkeypatch, LSTMClassifier, [Live()], hidden_size=64, n_jobs=1,
                   clip_norm=0.05)
    _same(ran, stepped)


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (3, False), (2, True)])
@pytest.mark.parametrize("n_jobs", [2, 3])
def test_runs_are_the_same_at_any_thread_count(kernel, monkeypatch, n_jobs, layers,
                                               bidirectional):
    kw = dict(optimizer="adamw", weight_decay=0.1, num_layers=layers,
              bidirectional=bidirectional)
    one = _fit(monkeypatch, LSTMClassifier, n_jobs=1, **kw)
    many = _fit(monkeypatch, LSTMClassifier, n_jobs=n_jobs, **kw)
    _same(one, many)


def test_the_threads_a_run_takes_follow_the_rule_for_runs(monkeypatch):
    tile = _tile()
    net = SequenceNet(3, 2, hidden_size=64, random_state=0, n_jobs=2)
    step = CompiledStep.for_network(net, "cross_entropy")
    # a batch split over chunks, with little work: runs share it, single calls do not
    batch, steps = 8 * tile, 1
    flops = engine_module.step_flops(net.layer, batch * steps)
    assert 2 * engine_module.MIN_RUN_FLOPS_PER_THREAD <= flops
    assert flops < engine_module.MIN_CALL_FLOPS_PER_THREAD
    assert step.threads(batch, steps) == 1
    assert step.threads(batch, steps, engine_module.MIN_RUN_FLOPS_PER_THREAD) == 2
    # a single call of enough work takes both
    assert step.threads(batch, 8) == 2
    # never more threads than chunks
    assert step.threads(1, 100, engine_module.MIN_RUN_FLOPS_PER_THREAD) == 1


def test_runs_cut_short_by_their_time_give_the_same_bits(kernel, monkeypatch):
    runs = []
    whole = _fit(monkeypatch, LSTMRegressor, n_jobs=2)
    calls = []
    real = engine_module.CompiledStep._runs

    def counted_runs(self, *args):
        for item in real(self, *args):
            calls.append(len(item[0]))
            yield item

    monkeypatch.setattr(engine_module.CompiledStep, "_runs", counted_runs)
    cut = _fit(monkeypatch, LSTMRegressor, runs=runs, seconds=0.0, n_jobs=2)
    assert _ran_in_runs(runs)
    # no time at all: every call steps one batch (the first of a call always runs)
    assert set(calls) == ({1} if _compiled() else set())
    _same(whole, cut)


@pytest.mark.parametrize("kw", [{}, dict(num_layers=2, dropout=0.3)])
def test_a_failing_batch_in_a_run_is_handled_as_one_step_at_a_time(kernel, monkeypatch, kw):
    # one sample weight so large that the weighted loss overflows: the batch
    # holding it fails (in the middle of the epoch's run), the epoch is rolled back
    import fastlstm.train.trainer as trainer_module

    def fit(callbacks, heavy=None):
        with pytest.MonkeyPatch.context() as mp:
            real = _data

            def data(n, cls):
                X, y, w = real(n, cls)
                if heavy is not None:
                    w[heavy] = 1.7e308
                return X, y, w

            mp.setattr(sys.modules[__name__], "_data", data)
            failed, batches = [], []
            real_notify, real_batches = Trainer.notify, trainer_module.length_batches

            def notify(self, event, *args):
                if event == "epoch_failed":
                    failed.append(args)
                real_notify(self, event, *args)

            def length_batches(*args):
                batches.append(real_batches(*args))
                return batches[-1]

            mp.setattr(Trainer, "notify", notify)
            mp.setattr(trainer_module, "length_batches", length_batches)
            model = _fit(None, LSTMClassifier, callbacks, n_jobs=2, max_epochs=1, **kw)
        return model, failed, batches[0]

    _, _, batches = fit(None)
    heavy = int(batches[1][0])  # a sample of the epoch's second batch
    ran, ran_failed, _ = fit(None, heavy)
    stepped, stepped_failed, _ = fit([Live()], heavy)
    assert ran_failed == stepped_failed and len(ran_failed) == 1
    epoch, batch, n_batches, what = ran_failed[0]
    assert (epoch, batch) == (1, 1) and "loss" in what
    assert ran.n_iter_ == stepped.n_iter_ and ran.t_ == stepped.t_
    _same(ran, stepped)
    # the dropout masks' generator is where the steps up to the failed one left it
    assert (ran.network_.layer._rng.bit_generator.state
            == stepped.network_.layer._rng.bit_generator.state)


def test_display_only_callbacks_see_every_step_in_order(kernel, monkeypatch):
    runs = []
    shown, live = Shown(), Live()
    _fit(monkeypatch, LSTMClassifier, [shown], runs=runs, n_jobs=2)
    assert _ran_in_runs(runs)
    _fit(monkeypatch, LSTMClassifier, [live], n_jobs=2)
    assert shown.seen == live.seen and len(shown.seen) == 3 * 4


def test_the_progress_bar_keeps_the_runs(kernel, monkeypatch, capsys):
    runs = []
    _fit(monkeypatch, LSTMClassifier, [ProgressBar()], runs=runs)
    assert _ran_in_runs(runs)
    assert "Epoch 3/3" in capsys.readouterr().err


def test_a_live_callback_sees_each_step_s_weights(kernel, monkeypatch):
    class Watch(Callback):
        def __init__(self):
            self.weights = []

        def on_batch_end(self, ctx, batch, loss):
            self.weights.append(np.copy(ctx.get_weights()[0]))

    watch = Watch()
    _fit(monkeypatch, LSTMClassifier, [watch])
    seen = watch.weights
    assert len(seen) == 3 * 4
    assert all(not np.array_equal(a, b) for a, b in zip(seen[:-1], seen[1:], strict=True))


def test_ctrl_c_during_a_run_keeps_its_steps_and_counts_them(kernel, monkeypatch):
    calls = {"n": 0}
    real = engine_module.run_parallel

    def interrupted(tasks):
        real(tasks)  # the run's steps are taken, then Ctrl-C lands
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    tile = _tile()
    X, y, w = _data(3 * 4 * tile + tile + 1, LSTMClassifier)
    model = LSTMClassifier(hidden_size=10, batch_size=4 * tile, max_epochs=5, random_state=0,
                           n_jobs=1)
    if not _compiled():  # no runs on this variant: nothing to interrupt
        pytest.skip("the kernel variant has no compiled step")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setattr(engine_module, "run_parallel", interrupted)
        warnings.simplefilter("ignore")
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, sample_weight=w)
    # two epochs of four batches ran as two runs; the second epoch's steps count
    assert calls["n"] == 2
    assert model.n_iter_ == 1 and model.t_ == 2 * len(X)
    # and the weights are those of ten steps taken one by one
    reference = LSTMClassifier(hidden_size=10, batch_size=4 * tile, max_epochs=2,
                               random_state=0, n_jobs=1, callbacks=[Live()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(X, y, sample_weight=w)
    for p, q in zip(_bits(model), _bits(reference), strict=True):
        np.testing.assert_array_equal(p, q)
    assert np.isfinite(model.predict_proba(X)).all()


def _run_args(net, flat, opt, n=10, batch=4):
    k = net.layer._kernels
    step = CompiledStep.for_network(net, "cross_entropy")
    plan = step._plan(batch, 5)
    rows = np.arange(n, dtype=np.int64)[:batch * 2]
    x = np.zeros((n, 5, 3), np.float32)
    m, v = opt.state_arrays()
    params = net.parameters()
    save = [np.empty_like(flat.params) for _ in range(3)]
    args = dict(plans=[plan, plan], rows=rows, offs=np.array([0, batch, 2 * batch]),
                wsums=np.ones(2), x=x, target_class=np.zeros(n, np.int64), target_value=None,
                weight=np.ones(n), params=params, grads=list(flat.grad_views), p=flat.params,
                g=flat.grads, m=m, v=v, save=save, clip_norm=-1.0)
    return k.TrainRun, args


def _bound_run(net):
    # the run's class and the arguments of a run over net, its flat buffers
    # bound to a fresh Adam
    from fastlstm.train.optim import make_optimizer

    flat = net.bind_flat()
    opt = make_optimizer("adam", net.parameters(), learning_rate=0.01, weight_decay=0.0,
                         momentum=0.9)
    opt.bind(flat)
    return _run_args(net, flat, opt)


@pytest.mark.parametrize("change, match", [
    (dict(offs=np.array([0, 4, 7])), "rows, offs"),
    (dict(rows=np.array([0, 1, 2, 3, 4, 5, 6, 99])), "out of range"),
    (dict(target_class=np.full(10, 7, np.int64)), "class index"),
    (dict(wsums=np.ones(3)), "one plan"),
    (dict(x=np.zeros((10, 4, 3), np.float32)), "does not match its batch"),
])
def test_a_run_refuses_arguments_that_do_not_fit(change, match):
    TrainRun, args = _bound_run(SequenceNet(3, 3, hidden_size=8, random_state=0))
    run = TrainRun(*args.values())
    batch_args = {key: args[key] for key in ("plans", "rows", "offs", "wsums")}
    args.update(change)
    with pytest.raises(ValueError, match=match):
        TrainRun(*args.values())
    if set(change) <= set(batch_args):  # another epoch's batches: checked as well
        batch_args.update(change)
        with pytest.raises(ValueError, match=match):
            run.reorder(*batch_args.values())


def test_a_run_checks_the_lengths_of_its_rows():
    net = SequenceNet(3, 3, hidden_size=8, random_state=0)
    TrainRun, args = _bound_run(net)  # two batches of 4 rows, 5 steps
    good = np.array([5, 5, 4, 1, 3, 3, 3, 3], np.int64)  # several lengths, then one
    run = TrainRun(*args.values(), None, good)
    run.reorder(args["plans"], args["rows"], args["offs"], args["wsums"], None, good)
    for bad in ([5, 4, 5, 1, 3, 3, 3, 3], [6, 5, 4, 1, 3, 3, 3, 3], [5, 5, 4, 0, 3, 3, 3, 3]):
        with pytest.raises(ValueError, match="decreasing length"):
            TrainRun(*args.values(), None, np.array(bad, np.int64))
        with pytest.raises(ValueError, match="decreasing length"):
            run.reorder(args["plans"], args["rows"], args["offs"], args["wsums"], None,
                        np.array(bad, np.int64))
    for bad in (good.astype(np.int32), good[:7], good.tolist()):
        with pytest.raises(ValueError, match="one int64 length per row"):
            TrainRun(*args.values(), None, bad)
    # a plan of fewer steps than its batch's longest row
    short = CompiledStep.for_network(net, "cross_entropy")._plan(4, 4)
    with pytest.raises(ValueError, match="does not match its batch"):
        TrainRun(*{**args, "plans": [short, short]}.values(), None, good)
    TrainRun(*{**args, "plans": [short, short]}.values(), None,
             np.array([4, 4, 2, 1, 3, 3, 3, 3], np.int64))  # within its steps: accepted
    # plans with dropout take no lengths
    TrainRun, args = _bound_run(SequenceNet(3, 3, hidden_size=8, num_layers=2, dropout=0.2,
                                            random_state=0))
    with pytest.raises(ValueError, match="take no dropout"):
        TrainRun(*args.values(), None, good)


def test_a_run_of_plans_with_dropout_needs_every_batch_s_masks():
    TrainRun, args = _bound_run(SequenceNet(3, 3, hidden_size=8, num_layers=2, dropout=0.2,
                                            random_state=0))
    assert args["plans"][0].dropout
    with pytest.raises(ValueError, match="dropout masks"):
        TrainRun(*args.values())  # none
    per_row = 1 * 5 * 8  # (layers - 1) * steps * hidden
    with pytest.raises(ValueError, match="dropout masks"):
        TrainRun(*args.values(), np.ones(per_row * 7, np.float32))  # one row short
    run = TrainRun(*args.values(), np.ones(per_row * 8, np.float32))
    with pytest.raises(ValueError, match="dropout masks"):
        run.reorder(args["plans"], args["rows"], args["offs"], args["wsums"])


def test_fits_of_one_thread_share_their_plans_and_other_threads_have_their_own(
        kernel, monkeypatch):
    import threading

    used = []
    real = engine_module.shared_plan

    def recorded(k, shape):
        plan = real(k, shape)
        used.append((threading.get_ident(), id(plan), plan))
        return plan

    monkeypatch.setattr(engine_module, "shared_plan", recorded)
    first = _fit(monkeypatch, LSTMClassifier, n_jobs=1)
    mine = {id(p) for _, _, p in used}
    used.clear()
    second = _fit(monkeypatch, LSTMClassifier, n_jobs=1)
    _same(first, second)  # a shared plan changes nothing
    if not _compiled():
        return
    assert used and {id(p) for _, _, p in used} <= mine  # the first fit's plans
    # a fit in another thread builds that thread's plans, and an engine made
    # here and stepped there takes the plans of there
    used.clear()
    out = {}
    worker = threading.Thread(target=lambda: out.setdefault(
        "model", _fit(monkeypatch, LSTMClassifier, n_jobs=1)))
    worker.start()
    worker.join()
    assert used and not ({id(p) for _, _, p in used} & mine)
    _same(out["model"], first)
    net = SequenceNet(3, 3, hidden_size=10, random_state=0)
    step = CompiledStep.for_network(net, "cross_entropy")
    X, y, w = _data(4 * _tile(), LSTMClassifier)
    grads = [np.empty_like(p) for p in net.parameters()]
    step.gradients(X, None, y, w, grads)
    here = np.concatenate([g.ravel() for g in grads])
    used.clear()
    worker = threading.Thread(target=lambda: step.gradients(X, None, y, w, grads))
    worker.start()
    worker.join()
    assert used and all(t == worker.ident for t, _, _ in used)
    np.testing.assert_array_equal(np.concatenate([g.ravel() for g in grads]), here)


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_a_thread_alone_in_a_run_takes_the_chunks_the_others_prefer(kernel, monkeypatch, n_jobs):
    # the run's threads called one after another, the last first: it runs its
    # own share of each batch's chunks and every other chunk too
    order = []

    def one_by_one(tasks):
        order.append(len(tasks))
        for task in reversed(tasks):
            task()

    one = _fit(monkeypatch, LSTMClassifier, n_jobs=1, hidden_size=64)
    monkeypatch.setattr(engine_module, "run_parallel", one_by_one)
    alone = _fit(monkeypatch, LSTMClassifier, n_jobs=n_jobs, hidden_size=64)
    if _compiled():
        assert order and max(order) == n_jobs
    _same(one, alone)


def test_a_run_refuses_a_thread_place_out_of_range(kernel, monkeypatch):
    runs = []

    def refused(self, *args):
        with pytest.raises(ValueError, match="index"):
            args[0].work(2, 2)
        return real_runs(self, *args)

    real_runs = engine_module.CompiledStep._runs
    monkeypatch.setattr(engine_module.CompiledStep, "_runs", refused)
    _fit(monkeypatch, LSTMClassifier, runs=runs, n_jobs=2)
    assert _ran_in_runs(runs)
