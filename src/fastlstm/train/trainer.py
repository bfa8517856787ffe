"""The training loop as a small Trainer: a train step, an epoch, and events.

As skorch's ``fit_loop`` / ``run_single_epoch`` / ``train_step`` /
``notify``: :meth:`Trainer.train_step` is forward, loss, backward, clipping
and the optimizer step on one mini-batch; :meth:`Trainer.run_epoch` runs the
steps of one epoch and the validation; :meth:`Trainer.fit_loop` runs epochs
until a hook asks to stop.  Everything else sits on the events as hooks, in
order: non-finite rollback (:class:`NonFiniteRollback`), the plateau
criterion (:class:`PlateauStopping`), the curves and ``history_``
(:class:`HistoryRecorder`), the progress report (:class:`ProgressReporter`)
and the user's callbacks (:class:`UserCallbacks`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from fastlstm.runtime.parallel import effective_n_jobs, thread_cap
from fastlstm.runtime.warn import warn_user
from fastlstm.train.engine import MIN_FLOPS_PER_THREAD, CompiledStep, step_flops
from fastlstm.train.flat import flat_grad_norm
from fastlstm.train.guard import StepGuard, TrainingInterrupted, all_finite
from fastlstm.train.history import epoch_record
from fastlstm.train.optim import Adam, AdamW, clip_grad_norm
from fastlstm.train.sequences import length_batches

# Adam's own step: a subclass or a replaced ``step`` takes the general path
_ADAM_STEP = Adam.step

__all__ = ["Hook", "HistoryRecorder", "NonFiniteRollback", "PlateauCheck", "PlateauStopping",
           "ProgressReporter", "Trainer", "UserCallbacks", "standard_hooks"]


class Hook:
    """A built-in participant of the loop; every event does nothing by default."""

    def train_begin(self, trainer: Trainer) -> None:
        """Before the first epoch."""

    def epoch_begin(self, trainer: Trainer, epoch: int) -> None:
        """Before the first step of ``epoch`` (1-based)."""

    def batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:
        """After a complete step; ``trainer.done`` and ``trainer.running_loss`` are current."""

    def live_batch_end(self) -> bool:
        """Whether :meth:`batch_end` must come right after its step.

        False lets the loop run many steps in one compiled call and tell the
        hook of each afterwards, in order (within a fraction of a second):
        for hooks that only display.
        """
        return True

    def epoch_failed(self, trainer: Trainer, epoch: int, batch: int, n_batches: int,
                     what: str) -> None:
        """A step of ``epoch`` met a non-finite value (``what``); the epoch is abandoned."""

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        """After a complete epoch and its validation (``logs``: loss, val_score, ...)."""

    def interrupted(self, trainer: Trainer) -> None:
        """Ctrl-C: the weights are those of the last complete step."""

    def closed(self, trainer: Trainer) -> None:
        """The loop is over, whichever way (also on an error), before ``train_end``."""

    def train_end(self, trainer: Trainer) -> None:
        """After the last epoch (not after an interrupt or an error)."""


class Trainer:
    """Mini-batch training of a :class:`~fastlstm.train.network.SequenceNet`.

    Parameters
    ----------
    net, optimizer, state
        The model, its optimizer and the :class:`~fastlstm.train.network.TrainState`.
    get_batch, loss_fn, batch_size, shuffle, rng, clip_norm
        As for :func:`fastlstm.train.network.train_epochs`.
    validate : callable or None
        Validation score of the current weights (higher is better).
    hooks : sequence of Hook
        Told of every event, in order.
    total_epochs : int or None, default=None
        The epoch count of the whole fit (for progress and callbacks).
    engine_loss : {"cross_entropy", "squared_error"} or None, default=None
        What ``loss_fn`` computes, when it is one of the compiled step's
        losses (:mod:`fastlstm.train.engine`): the batches and networks the
        engine covers then get their gradients from it; None: always the
        Python path.
    whole_set : tuple or None, default=None
        ``(x, targets, sample_weight)`` when ``get_batch(idx)`` is exactly
        ``(x[idx], None, targets[idx], sample_weight[idx])``: with Adam and
        no hook that needs each step's event at once, the engine then runs
        an epoch's batches in a few compiled calls (same results).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.optim import make_optimizer
    >>> from fastlstm.train.trainer import HistoryRecorder, Trainer
    >>> from fastlstm.train.network import SequenceNet, TrainState, squared_error
    >>> X = np.random.default_rng(0).normal(size=(32, 4, 1)).astype(np.float32)
    >>> net = SequenceNet(1, 1, hidden_size=4)
    >>> opt = make_optimizer("adam", net.parameters(), learning_rate=0.01,
    ...                      weight_decay=0.0, momentum=0.9)
    >>> trainer = Trainer(net, opt, TrainState(), loss_fn=squared_error,
    ...                   get_batch=lambda i: (X[i], None, X[i, -1], np.ones(len(i))),
    ...                   batch_size=8, shuffle=True, rng=np.random.RandomState(0),
    ...                   clip_norm=None, validate=None, hooks=[HistoryRecorder()])
    >>> trainer.fit_loop(np.full(32, 4), 3), len(trainer.state.history)
    ('max_epochs', 3)
    """

    def __init__(self, net: Any, optimizer: Any, state: Any, *, get_batch: Callable,
                 loss_fn: Callable, batch_size: int, shuffle: bool,
                 rng: np.random.RandomState, clip_norm: float | None,
                 validate: Callable[[], float] | None, hooks: Sequence[Hook],
                 total_epochs: int | None = None, engine_loss: str | None = None,
                 whole_set: tuple | None = None) -> None:
        self.net, self.optimizer, self.state = net, optimizer, state
        self.get_batch, self.loss_fn = get_batch, loss_fn
        self.batch_size, self.shuffle, self.rng, self.clip_norm = (
            batch_size, shuffle, rng, clip_norm)
        self.validate = validate
        self.hooks = list(hooks)
        # One flat buffer for the parameters, one for the gradients (fastlstm.train.flat):
        # norm, clipping, the update, its undo copy and the finite check are then
        # a few whole-buffer operations per step instead of loops over arrays.
        bind = getattr(net, "bind_flat", None)
        self.flat = bind() if bind is not None else None
        if self.flat is not None and getattr(optimizer, "bind", None) is not None:
            optimizer.bind(self.flat)
        if self.flat is not None:
            self.params = self.flat.param_views
            self.guard = StepGuard([self.flat.params], optimizer)
        else:
            self.params = net.parameters()
            self.guard = StepGuard(self.params, optimizer)
        # the compiled forward, loss and backward, where it covers the network
        self.engine = (CompiledStep.for_network(net, engine_loss)
                       if self.flat is not None and engine_loss is not None else None)
        self.whole_set = whole_set
        self.reason: str | None = None  # why the loop stops (first request wins)
        self.total_epochs = total_epochs
        self.n_samples = 0  # training sequences per epoch
        self.done, self.running_loss = 0, math.nan  # this epoch's, so far

    # ------------------------------------------------------------ events
    def notify(self, event: str, *args: Any) -> None:
        """Call ``event`` on every hook, in order."""
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    def stop(self, reason: str) -> bool:
        """Ask the loop to end after this epoch; False if another hook asked first."""
        if self.reason is not None:
            return False
        self.reason = reason
        return True

    # ------------------------------------------------------------ the loop
    def train_step(self, idx: np.ndarray) -> tuple[float, str | None]:
        """One optimizer step on the samples ``idx``: (loss, what was non-finite or None).

        On a non-finite value nothing is updated (an update that made the
        weights non-finite is undone).
        """
        x, lengths, target, weight = self.get_batch(idx)
        flat = self.flat
        compiled = None
        if self.engine is not None and self._fused_adam():
            # gradients, checks, clipping, the Adam step and its undo in the engine
            try:
                compiled = self.engine.adam_step(x, lengths, target, weight, flat,
                                                 self.optimizer, self.clip_norm)
            finally:
                changed = getattr(self.net, "params_changed", None)
                if changed is not None:
                    changed()
            if compiled is not None:
                return compiled
        if self.engine is not None:
            compiled = self.engine.gradients(x, lengths, target, weight, flat.grad_views)
        if compiled is not None:
            loss, failure = compiled
            if failure is not None:
                return loss, failure
            grads = flat.grad_views
        else:
            with thread_cap(_step_threads(self.net, x, lengths)):
                out = self.net.forward(x, lengths, training=True)
                loss, d_out = self.loss_fn(out, target, weight, lengths)
                if not math.isfinite(loss):
                    return loss, f"the loss is {loss}"
                try:
                    if flat is None:
                        grads = self.net.backward(d_out)
                    else:
                        grads = self.net.backward(d_out, out=flat.grad_views)
                except FloatingPointError as exc:
                    return loss, str(exc)
        if flat is None:
            norm = clip_grad_norm(grads, self.clip_norm)
        elif compiled is not None:  # the engine summed the squares already
            norm = self.engine.norm
            if self.clip_norm is not None and math.isfinite(norm) and norm > self.clip_norm:
                flat.grads *= self.clip_norm / (norm + 1e-6)
        else:
            norm = flat_grad_norm(flat, self.clip_norm)
        if not math.isfinite(norm):
            return loss, f"the gradient norm is {norm}"
        try:
            with self.guard.step():  # undone if interrupted half-way
                self.optimizer.step(self.params, grads)
            if not (all_finite(self.params) if flat is None else all_finite([flat.params])):
                self.guard.restore()
                return loss, "the update made the weights non-finite"
        finally:
            # in-place updates: the layer's streaming stepper is rebuilt on its next step
            changed = getattr(self.net, "params_changed", None)
            if changed is not None:
                changed()
        return loss, None

    def _fused_adam(self) -> bool:
        """Whether the optimizer is Adam/AdamW, bound to the flat buffers, with its own step."""
        opt = self.optimizer
        bound = getattr(opt, "_flat", None)
        return (type(opt) in (Adam, AdamW) and type(opt).step is _ADAM_STEP
                and bound is not None and bound[0] is self.flat and opt._compiled)

    def run_epoch(self, epoch: int, lengths: np.ndarray) -> dict | None:
        """All steps of ``epoch`` and the validation: its logs, or None if it failed."""
        n = len(lengths)
        start = time.perf_counter()
        self.done, self.running_loss = 0, math.nan
        self.notify("epoch_begin", epoch)
        batches = length_batches(lengths, self.batch_size, self.rng if self.shuffle else None)
        # the per-batch event goes only to the hooks that listen to it
        listening = [hook for hook in self.hooks
                     if getattr(type(hook), "batch_end", None) is not Hook.batch_end]
        batch_end = [hook.batch_end for hook in listening]
        runs = None
        if (self.engine is not None and self.whole_set is not None and self._fused_adam()
                and not any(hook.live_batch_end() for hook in listening)):
            runs = self.engine.adam_runs(self.whole_set, batches, self.flat, self.optimizer,
                                         self.clip_norm)
        steps = map(self.train_step, batches) if runs is None else self._run_steps(runs)
        loss_sum = 0.0
        for b, idx in enumerate(batches):
            try:
                loss, failure = next(steps)
            except KeyboardInterrupt:
                if runs is not None:  # the steps the interrupted run took count
                    for j, run_loss in enumerate(self.engine.stepped):
                        loss_sum = self._count(batches[b + j], float(run_loss), loss_sum)
                raise
            if failure is not None:
                self.notify("epoch_failed", epoch, b, len(batches), failure)
                return None
            loss_sum = self._count(idx, loss, loss_sum)
            for listener in batch_end:
                listener(self, b, loss)
        val_score, val_loss = None, None
        if self.validate is not None:
            val_score = float(self.validate())
            losses = getattr(self.validate, "losses", None)  # a ValidationMonitor's
            val_loss = losses[-1] if losses else None
        return {"loss": loss_sum / n, "val_score": val_score, "val_loss": val_loss,
                "start": start}

    def _count(self, idx: np.ndarray, loss: float, loss_sum: float) -> float:
        # a step taken: the counters, and the epoch's loss sum so far
        self.state.t += len(idx)
        loss_sum += loss * len(idx)
        self.done += len(idx)
        self.running_loss = loss_sum / self.done
        return loss_sum

    def _run_steps(self, runs: Iterator[tuple[np.ndarray, str | None]]
                   ) -> Iterator[tuple[float, str | None]]:
        # the engine's runs of steps, one (loss, failure) per batch
        changed = getattr(self.net, "params_changed", None)
        try:
            for losses, failure in runs:
                if changed is not None:  # the streaming stepper is rebuilt on its next step
                    changed()
                last = len(losses) - 1
                for i, loss in enumerate(losses):
                    yield float(loss), failure if i == last else None
        finally:
            if changed is not None:
                changed()

    def fit_loop(self, lengths: np.ndarray, n_epochs: int) -> str:
        """Run up to ``n_epochs`` epochs; the reason the loop ended.

        Returns one of "max_epochs", "converged", "non_finite", "callback".
        """
        self.n_samples = len(lengths)
        self.notify("train_begin")
        try:
            for _ in range(n_epochs):
                epoch = self.state.n_iter + 1
                logs = self.run_epoch(epoch, lengths)
                if logs is None:
                    self.stop("non_finite")
                    break
                self.state.n_iter += 1
                self.notify("epoch_end", epoch, logs)
                if self.reason is not None:
                    break
        except KeyboardInterrupt as exc:
            # the weights are those of the last complete step (a step cut short
            # was undone by the guard); the interrupt goes on to the caller as
            # one exception, without the frames or the chain of where it landed
            self.notify("interrupted")
            raise TrainingInterrupted(*exc.args) from None
        finally:
            self.net._cache = None
            self.notify("closed")
        self.notify("train_end")
        return self.reason or "max_epochs"


def _step_threads(net: Any, x: Any, lengths: np.ndarray | None) -> int | None:
    """Threads for a Python step's layer calls: fewer than all when the step is small.

    A step's forward and backward hand their work to pool threads and wait
    for them, call by call; a thread pays for that only with at least
    :data:`~fastlstm.train.engine.MIN_FLOPS_PER_THREAD` of matrix products
    (on ragged fits under it, two threads were slower than one).  The
    layer's results do not depend on its thread count, so this changes
    speed, never results.  None: no cap.
    """
    layer = getattr(net, "layer", None)
    if layer is None or effective_n_jobs(layer.n_jobs) < 2:
        return None
    rows = float(np.sum(lengths)) if lengths is not None else float(x.shape[0] * x.shape[1])
    return max(1, int(step_flops(layer, rows) // MIN_FLOPS_PER_THREAD))


# ---------------------------------------------------------------- built-in hooks
class ProgressReporter(Hook):
    """Progress text (:mod:`fastlstm.train.progress`); stop messages of the other hooks."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def epoch_begin(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        self.progress.start_epoch(epoch, trainer.n_samples)

    def batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:  # noqa: D102
        self.progress.update(trainer.done, trainer.running_loss)

    def live_batch_end(self) -> bool:  # noqa: D102 - a bar redrawn at most 10 times a second
        return False

    def epoch_failed(self, trainer: Trainer, *args: Any) -> None:  # noqa: D102
        self.progress.close()  # the bar cut short ends its line before the warning

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:  # noqa: D102
        self.progress.end_epoch(logs["loss"], logs["val_score"])

    def interrupted(self, trainer: Trainer) -> None:  # noqa: D102
        self.progress.message("Training interrupted by user.")

    def closed(self, trainer: Trainer) -> None:  # noqa: D102
        self.progress.close()


class NonFiniteRollback(Hook):
    """Keep the weights and optimizer state of each epoch's start; put them back on failure.

    The failure is reported once, as a ConvergenceWarning (not also as
    progress text).
    """

    _arrays: list[np.ndarray] | None = None  # what the copies are of: parameters, then moments
    _copies: list[np.ndarray] | None = None
    _n_params = 0  # how many of them are the parameters

    def epoch_begin(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        # the parameters (the flat buffer, where there is one) and the
        # optimizer's buffers, copied into the arrays of the last epoch
        opt = trainer.optimizer
        params = [trainer.flat.params] if trainer.flat is not None else list(trainer.params)
        arrays = params + opt.state_arrays()
        self._n_params = len(params)
        copies = self._copies
        if (self._arrays is None or len(self._arrays) != len(arrays)
                or any(a is not b for a, b in zip(self._arrays, arrays, strict=True))):
            copies = self._copies = [np.empty_like(a) for a in arrays]
            self._arrays = arrays
        for c, a in zip(copies, arrays, strict=True):
            np.copyto(c, a)
        self._t = opt.t

    def epoch_failed(self, trainer: Trainer, epoch: int, batch: int, n_batches: int,
                     what: str) -> None:  # noqa: D102
        copies, flat, n_params = self._copies, trainer.flat, self._n_params
        weights = flat.layout.views(copies[0]) if flat is not None else copies[:n_params]
        trainer.net.set_weights(weights)
        for a, c in zip(self._arrays[n_params:], copies[n_params:], strict=True):
            np.copyto(a, c)
        trainer.optimizer.t = self._t
        where = f"the end of epoch {epoch - 1}" if epoch > 1 else "initialization"
        warn_user(
            f"Training stopped on non-finite values at epoch {epoch}, batch {batch + 1} of "
            f"{n_batches} ({what}). The weights from {where} were restored. Try a smaller "
            "learning_rate, a smaller clip_norm, or rescaling the inputs.",
            ConvergenceWarning)


class PlateauStopping(Hook):
    """The estimators' own plateau criterion (as scikit-learn's MLP).

    :meth:`epoch_end` (before the curves are recorded) counts epochs without
    an improvement of more than ``tol`` of the validation score (early
    stopping: a validation and ``on_validation``; the best weights are kept
    and put back at the end) or else of the training loss;
    :class:`PlateauCheck` (placed after the user's callbacks) stops the loop
    when the count exceeds ``n_iter_no_change``.  At the end the best
    validation weights are put back (before the user's ``on_train_end``).
    With ``on_validation=False`` a validation is only recorded (its best
    score too): the training loss decides, and the last weights stay.
    """

    def __init__(self, tol: float, n_iter_no_change: int, stop_on_plateau: bool,
                 report: Callable[[str], None], on_validation: bool = True) -> None:
        self.tol, self.n_iter_no_change = tol, n_iter_no_change
        self.stop_on_plateau, self.report = stop_on_plateau, report
        self.on_validation = on_validation

    def watches_validation(self, trainer: Trainer) -> bool:
        """Whether the validation score (not the training loss) decides."""
        return self.on_validation and trainer.validate is not None

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:  # noqa: D102
        state, tol = trainer.state, self.tol
        val_score = logs["val_score"]
        early_stopping = val_score is not None and self.on_validation
        if early_stopping:
            if val_score < state.best_validation_score + tol:
                state.no_improvement_count += 1
            else:
                state.no_improvement_count = 0
        elif logs["loss"] > state.best_loss - tol:
            state.no_improvement_count += 1
        else:
            state.no_improvement_count = 0
        if val_score is not None and val_score > state.best_validation_score:
            state.best_validation_score = val_score
            if early_stopping:
                state.best_weights = trainer.net.get_weights()
        state.best_loss = min(state.best_loss, logs["loss"])

    def train_end(self, trainer: Trainer) -> None:  # noqa: D102
        state = trainer.state
        if self.watches_validation(trainer) and state.best_weights is not None:
            trainer.net.set_weights(state.best_weights)


class PlateauCheck(Hook):
    """Stop the loop on the plateau counted by a :class:`PlateauStopping` (placed last)."""

    def __init__(self, plateau: PlateauStopping) -> None:
        self.plateau = plateau

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:  # noqa: D102
        p = self.plateau
        if p.stop_on_plateau and trainer.state.no_improvement_count > p.n_iter_no_change:
            if trainer.stop("converged"):
                what = "Validation score" if p.watches_validation(trainer) else "Training loss"
                p.report(f"{what} did not improve more than tol={p.tol:g} for "
                         f"{p.n_iter_no_change} consecutive epochs. Stopping.")


class HistoryRecorder(Hook):
    """``loss_curve``, the validation curves and the ``history_`` records."""

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:  # noqa: D102
        state = trainer.state
        state.loss_curve.append(logs["loss"])
        if logs["val_score"] is not None:
            state.validation_scores.append(logs["val_score"])
            if logs["val_loss"] is not None:
                state.validation_losses.append(logs["val_loss"])
        state.history.append(epoch_record(
            epoch, logs["loss"], logs["val_loss"], logs["val_score"],
            trainer.optimizer.learning_rate, time.perf_counter() - logs["start"]))


class UserCallbacks(Hook):
    """The estimator's ``callbacks`` (``fastlstm.callbacks._Events``)."""

    def __init__(self, events: Any, report: Callable[[str], None]) -> None:
        self.events, self.report = events, report

    def train_begin(self, trainer: Trainer) -> None:  # noqa: D102
        self.events.train_begin(trainer.total_epochs)

    def epoch_begin(self, trainer: Trainer, epoch: int) -> None:  # noqa: D102
        self.events.epoch_begin(epoch, trainer.n_samples)

    def batch_end(self, trainer: Trainer, batch: int, loss: float) -> None:  # noqa: D102
        self.events.batch_end(batch, loss, trainer.done)

    def live_batch_end(self) -> bool:  # noqa: D102
        return self.events.live_batch_end()

    def epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:  # noqa: D102
        reason = self.events.epoch_end(epoch, trainer.state.history[-1])
        if reason is not None and trainer.stop("callback"):
            self.report(f"Training stopped: {reason}.")

    def train_end(self, trainer: Trainer) -> None:  # noqa: D102
        self.events.train_end()


def standard_hooks(progress: Any, *, tol: float, n_iter_no_change: int, stop_on_plateau: bool,
                   events: Any = None, early_stopping: bool = True) -> list[Hook]:
    """The estimators' hooks, in their order.

    epoch end: plateau count, curves and history, progress, the user's
    callbacks, the plateau stop; a failed epoch: the progress line is
    ended, then the rollback warns; train end: the best validation weights
    are back before the user's ``on_train_end``.  ``early_stopping=False``:
    a validation is recorded but does not stop the training (the training
    loss's plateau does).
    """
    plateau = PlateauStopping(tol, n_iter_no_change, stop_on_plateau, progress.message,
                              on_validation=early_stopping)
    hooks: list[Hook] = [plateau, HistoryRecorder(), ProgressReporter(progress),
                         NonFiniteRollback()]
    if events is not None:
        hooks.append(UserCallbacks(events, progress.message))
    hooks.append(PlateauCheck(plateau))
    return hooks
