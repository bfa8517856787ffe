"""The compiled training step: forward, readout, loss and backward of a mini-batch in C.

For the estimators' common network (a stack of LSTM, RNN or GRU layers, one
direction or two, with or without dropout between them, on the packed float32
kernels, a readout of the final hidden state, softmax cross-entropy or
squared error), :class:`CompiledStep` replaces the ~20 Python pieces of a
training step's forward, loss and backward by one GIL-free call per row chunk
on workspaces planned once per batch shape (plan, then execute): each chunk
of rows runs forward, readout, loss, backward and its partial weight
gradients in its own buffers (dropout's masks drawn from the layer's
generator as the Python forward draws them); the partials are summed in
chunk order.  The chunks are cut from the batch size alone, so the thread
count changes speed, never results; a batch too narrow for two chunks
shares its one chunk among the threads by hidden units instead
(``fastlstm.train.plans``), with the bits of the chunk on one thread.

With Adam (or AdamW), :meth:`CompiledStep.adam_step` goes on in the same
way: one GIL-free call sums the partials, checks the loss and the gradients,
clips and takes the optimizer step (undoing it if the weights came out
non-finite).  :meth:`CompiledStep.adam_runs` goes further: given the whole
training set, it runs an epoch's batches in runs of at most
:data:`RUN_SECONDS`, every thread staying in C from one batch to the next
(tickets, ``_kernels/csrc/fl_run.h``): no hand-over of work per batch, so
both cores pay off on small batches; each batch is the same code on the same
plans, so the bits are those of the batches taken one by one.  Batches of
sequences of several lengths run their rows longest first, each chunk's
kernels running only the rows still running at a step, one call a batch
or, given the whole set padded to its longest sequence, in runs too (no
dropout then).  Everything else stays the trainer's: other optimizers,
the events, rollback.  Batches the engine does not cover (other dtypes)
take the Python path.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from fastlstm.runtime.parallel import (
    blas_single_threaded,
    effective_n_jobs,
    run_grouped,
    run_parallel,
)
from fastlstm.train.plans import dropout_between, plan_shape, shared_plan

__all__ = ["CompiledStep", "ENGINE_LOSSES", "MAX_LAYERS", "RUN_SECONDS", "step_flops"]

# the losses the engine computes itself, by the name the estimators give
ENGINE_LOSSES = ("cross_entropy", "squared_error")

# The trainer's Python step (the networks the engine does not cover) gives
# its layer a thread per this many matrix-product flops: its hand-overs of
# work between threads cost more than the second core saves on a small step
# (measured on a 2-core machine: T=8, I=8, H=64, B=32, 27 MFLOP a step, ran
# 1.1-1.2x slower on two threads; T=64, I=1, H=64, B=32, 200 MFLOP, 0.8x).
MIN_FLOPS_PER_THREAD = 5e7

# A compiled step called once per mini-batch (batches of several lengths, a
# live callback, other optimizers) is split over threads only if each gets
# at least this many: the chunks go to a pool thread once per batch, which
# costs tens of microseconds (measured on a 2-core Intel Xeon: the digits
# task, 27 MFLOP a step, 0.897 of the one-thread fit on two threads; ragged
# sequences of 20-60 steps, about 34 MFLOP a step, 0.852; at 5e7 both ran on
# one thread).
MIN_CALL_FLOPS_PER_THREAD = 1e7

# A run of mini-batches (CompiledStep.adam_runs) keeps its threads in C, so
# the hand-over above is paid once a run, not once a batch; then a thread
# pays for itself with far less work.  Measured on a 2-core machine
# (docs/performance.md, "A run of mini-batches"): T=8, I=8, H=64, B=32,
# 27 MFLOP a step, ran 1.5x faster on two threads than on one.
MIN_RUN_FLOPS_PER_THREAD = 2e6

# The longest a run goes on without returning to Python (seconds): Ctrl-C,
# the progress bar and the other batch events wait at most about this long.
RUN_SECONDS = 0.1

# the layers of a stack the compiled step runs, at most, each direction of a
# bidirectional layer counted as one (more take the Python step)
MAX_LAYERS = 8


class CompiledStep:
    """Gradients of one mini-batch of a :class:`~fastlstm.train.network.SequenceNet` in C.

    Build it with :meth:`for_network` (None when the network is not one the
    engine covers).  :meth:`gradients` writes the gradients of every
    parameter into ``grads`` (arrays shaped as ``net.parameters()``) and
    returns ``(loss, failure)`` as the trainer's step does, or None for a
    batch it does not cover (the caller then runs the Python path).

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.engine import CompiledStep
    >>> from fastlstm.train.network import SequenceNet
    >>> net = SequenceNet(2, 3, hidden_size=8, random_state=0)
    >>> step = CompiledStep.for_network(net, "cross_entropy")
    >>> if step is not None:  # float32 on a SIMD kernel variant
    ...     x = np.zeros((4, 5, 2), np.float32)
    ...     grads = [np.empty_like(p) for p in net.parameters()]
    ...     loss, failure = step.gradients(x, None, np.array([0, 1, 2, 0]), np.ones(4), grads)
    ...     assert failure is None and abs(loss - np.log(3)) < 0.5
    """

    def __init__(self, net: Any, loss: str) -> None:
        self.net = net
        self.loss = loss
        self._plans: dict[tuple[int, int], Any] = {}
        # the undo copy of adam_step: parameters and moments before the update
        self._save: list[np.ndarray] | None = None
        # the global L2 norm of the last gradients (before any clipping)
        self.norm = math.nan
        # the losses of the batches the last call of a run stepped
        self.stepped = np.empty(0)
        # the whole set of adam_runs and its prepared arrays (or None)
        self._set: tuple | None = None
        # (what it points to, the run, its threads): adam_runs' last run
        self._run_cache: tuple | None = None
        self._thread: int | None = None  # the thread whose shared plans _plans holds

    @classmethod
    def for_network(cls, net: Any, loss: str | None) -> CompiledStep | None:
        """The engine for ``net`` and ``loss`` (one of ENGINE_LOSSES), or None if not covered."""
        if loss not in ENGINE_LOSSES or net.sequence_output:
            return None
        layer = net.layer
        k = layer._kernels
        # the cells the plan runs: LSTM and RNN (whose recurrent weights take the
        # input weights' gate gradients) and the GRU (its own, from its aux store)
        cells = tuple(getattr(k, f"CELL_{n}", None) for n in ("LSTM", "RNN", "GRU"))
        if (layer.num_layers * layer.num_directions > MAX_LAYERS or layer.dtype != np.float32
                or k.packed_width() == 0 or not hasattr(k, "TrainPlan")
                or not layer.spec.packed or layer._cell_code not in cells):
            return None
        return cls(net, loss)

    def _this_thread(self) -> None:
        # the plans come from this thread's shared ones (_shared_plan): an
        # engine called from another thread takes that thread's, and its runs,
        # which point to the plans, are built again
        if self._thread != threading.get_ident():
            self._thread = threading.get_ident()
            self._plans.clear()
            self._run_cache = None

    def _plan(self, batch: int, steps: int) -> Any:
        self._this_thread()
        layer = self.net.layer
        # the thread count may change between fits (the slices follow it)
        key = (batch, steps, layer.n_jobs)
        plan = self._plans.get(key)
        if plan is None:
            plan = shared_plan(layer._kernels, plan_shape(self.net, self.loss, batch, steps))
            if len(self._plans) >= 8:  # a few shapes per fit: the full and the last batch
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def threads(self, batch: int, steps: int,
                per_thread: float = MIN_CALL_FLOPS_PER_THREAD,
                flop_steps: int | None = None) -> int:
        """Threads for a mini-batch of this shape: the layer's, if each gets enough work.

        ``per_thread``: the matrix-product flops a thread needs (one call per
        batch; a run of batches needs far less); ``flop_steps``: the steps
        its rows run, if fewer than the plan's ``steps``.  The rule reads the shape
        only (never timings), and the chunks do not depend on it: it changes
        speed, not results.
        """
        layer = self.net.layer
        flops = step_flops(layer, batch * (steps if flop_steps is None else flop_steps))
        # the chunks' calls: one per row chunk, or per thread sharing the one
        chunks = self._plan(batch, steps).n_tickets
        return max(1, min(effective_n_jobs(layer.n_jobs), chunks, int(flops // per_thread)))

    def gradients(self, x: np.ndarray, lengths: np.ndarray | None, target: Any,
                  weight: np.ndarray, grads: list[np.ndarray]
                  ) -> tuple[float, str | None] | None:
        """Write the gradients of the mini-batch into ``grads``: ``(loss, failure)``, or None.

        ``failure`` names what was not finite (the loss, or the gradient of
        the recurrent features); ``grads`` are then not to be used.  None: the
        batch is not one the engine covers (nothing was written).  The
        gradients' global L2 norm is left in :attr:`norm`.
        """
        plan = self._run_chunks(x, lengths, target, weight)
        if plan is None:
            return None
        loss, squares = plan.reduce(*grads)
        self.norm = _norm(squares)
        if not math.isfinite(loss):
            return loss, f"the loss is {loss}"
        if any(plan.status_codes()):
            return loss, "the gradient of the recurrent features is not finite"
        return loss, None

    def adam_step(self, x: np.ndarray, lengths: np.ndarray | None, target: Any,
                  weight: np.ndarray, flat: Any, optimizer: Any, clip_norm: float | None
                  ) -> tuple[float, str | None] | None:
        """The whole training step with Adam: gradients, norm, clipping and the update.

        ``flat``: the network's :class:`~fastlstm.train.flat.FlatParameters`;
        ``optimizer``: an Adam or AdamW bound to it.  After the chunks'
        forward and backward, one GIL-free call sums the partial gradients,
        checks the loss, the gradients and their norm, clips, takes the Adam
        step and checks the new weights, undoing the step if they are not
        finite: the step is taken completely or not at all.  Returns
        ``(loss, failure)`` as :meth:`gradients` (failure: what was not
        finite, nothing changed), or None for a batch it does not cover.
        """
        plan = self._run_chunks(x, lengths, target, weight)
        if plan is None:
            return None
        save = self._save
        if save is None or save[0].shape != flat.params.shape:
            save = self._save = [np.empty_like(flat.params) for _ in range(3)]
        m, v = optimizer.state_arrays()
        loss, squares, code = plan.reduce_adam(
            list(flat.grad_views), flat.params, flat.grads, m, v, save, optimizer,
            -1.0 if clip_norm is None else float(clip_norm))
        self.norm = norm = _norm(squares)
        return loss, _failure(code, loss, norm)

    def adam_runs(self, data: tuple[np.ndarray, Any, np.ndarray], batches: list[np.ndarray],
                  flat: Any, optimizer: Any, clip_norm: float | None,
                  seconds: float = RUN_SECONDS) -> Iterator[tuple[np.ndarray, str | None]] | None:
        """The epoch's mini-batches with Adam in runs of GIL-free calls: or None if not covered.

        ``data``: the whole training set ``(x, targets, sample_weight)``, of
        which batch ``idx`` is ``(x[idx], targets[idx], sample_weight[idx])``
        (x float32, C-contiguous, every sequence of the full length), or
        ``(x, targets, sample_weight, lengths)`` for sequences of several
        lengths, x padded with zeros to the longest (a batch then runs as
        :meth:`adam_step` runs it: its rows longest first, padded to its own
        longest).  Each
        run takes batch after batch with the threads staying in C, exactly
        :meth:`adam_step` on each (same plans, same bits), and returns to
        Python after at most about ``seconds``.  Yields per run the losses of
        the batches it stepped and None; when a batch failed, the losses
        up to and with that batch's, and its ``failure`` as :meth:`adam_step`
        names it (nothing of it applied; the runs end there).  Should a run
        end in an exception (Ctrl-C), :attr:`stepped` holds the losses of the
        batches it stepped.  The parameters change in place during the runs;
        the caller tells the network when it reads them.
        """
        prepared = self._whole_set(data)
        if prepared is None or not batches:
            return None
        self._this_thread()
        x, classes, values, wf, unit, lengths = prepared
        net = self.net
        steps = x.shape[1]
        sizes = [len(idx) for idx in batches]
        rows = np.concatenate(batches).astype(np.int64, copy=False)
        row_lengths, planned = None, [steps] * len(batches)
        if lengths is not None:
            if dropout_between(net.layer):
                return None  # the masks of batches of several lengths: one at a time
            # each batch as adam_step takes it: rows longest first (a stable
            # order), on a plan of its longest row's steps rounded up
            rows, row_lengths, planned = _by_length(batches, lengths)
        offs = np.zeros(len(batches) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offs[1:])
        # each batch's weight sum as adam_step forms it, over its rows in their
        # order (of unit weights: its size, exactly)
        wsums = (np.array(sizes, dtype=np.float64) if unit
                 else np.array([float(np.add.reduce(wf[rows[a:b]]))
                                for a, b in zip(offs[:-1], offs[1:], strict=True)]))
        save = self._save
        if save is None or save[0].shape != flat.params.shape:
            save = self._save = [np.empty_like(flat.params) for _ in range(3)]
        m, v = optimizer.state_arrays()
        params = net.parameters()
        clip = -1.0 if clip_norm is None else float(clip_norm)
        # the run of the last epoch serves this one when everything it points
        # to is the same and the batches as many: only the batches change
        top = max(sizes)
        key = (data, len(sizes), top, *params, *flat.grad_views, flat.params, flat.grads, m, v,
               *save, clip, net.layer.n_jobs)
        # the plans of the batches' shapes (a fit has a few), looked up once each
        shapes = list(zip(sizes, planned, strict=True))
        of_shape = {shape: self._plan(*shape) for shape in set(shapes)}
        plans = [of_shape[shape] for shape in shapes]
        masks = redraw = None
        if dropout_between(net.layer):
            drawn = _epoch_masks(net.layer, sizes, steps)
            if drawn is None:
                return None  # too many masks at once: a batch at a time (adam_step)
            masks, redraw = drawn
        cached = self._run_cache
        if cached is not None and _same(cached[0], key):
            run, threads = cached[1], cached[2]
            run.reorder(plans, rows, offs, wsums, masks, row_lengths)
        else:
            k = net.layer._kernels
            run = k.TrainRun(plans, rows, offs, wsums, x, classes, values, wf, params,
                             list(flat.grad_views), flat.params, flat.grads, m, v, save, clip,
                             masks, row_lengths)
            # the rule reads a mean sequence's steps (a set of one length: its steps)
            mean = steps if lengths is None else max(1, round(float(np.mean(lengths))))
            threads = self.threads(top, planned[sizes.index(top)], MIN_RUN_FLOPS_PER_THREAD,
                                   flop_steps=mean)
            self._run_cache = (key, run, threads)
        return self._runs(run, len(batches), optimizer, threads, seconds, redraw)

    def _whole_set(self, data: tuple) -> tuple | None:
        # the set as the runs read it, checked and converted once per fit (the
        # same tuple comes every epoch); None if the engine does not cover it
        if self._set is not None and self._set[0] is data:
            return self._set[1]
        x, target, weight = data[:3]
        lengths = data[3] if len(data) > 3 else None
        prepared = None
        if (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 3
                and x.flags.c_contiguous and len(x) > 0):
            classes = values = None
            if self.loss == "cross_entropy":
                classes = np.ascontiguousarray(target, dtype=np.int64)
                ok = classes.shape == (len(x),)
            else:
                values = np.ascontiguousarray(
                    np.asarray(target, dtype=np.float64).reshape(len(x), -1))
                ok = values.shape[1] == self.net.config["n_outputs"]
            if ok:
                if not np.isfinite(x).all():
                    raise ValueError(
                        "x contains NaN or infinity (or values too large for float32)")
                wf = np.ascontiguousarray(weight, dtype=np.float64)
                if lengths is not None:
                    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
                    if (lengths.shape != (len(x),) or lengths.min() < 1
                            or lengths.max() > x.shape[1]):
                        raise ValueError("the set needs one length in [1, steps] per sequence")
                    if (lengths == x.shape[1]).all():
                        lengths = None
                prepared = (x, classes, values, wf, bool((wf == 1.0).all()), lengths)
        self._set = (data, prepared)
        return prepared

    def _runs(self, run: Any, n: int, optimizer: Any, threads: int, seconds: float,
              redraw: Any = None) -> Iterator[tuple[np.ndarray, str | None]]:
        # redraw(m): leave the dropout masks' generator as batches [0, m] leave it
        first = 0
        while first < n:
            run.start(first, optimizer, seconds)
            try:
                # the chunks' GEMMs on one BLAS thread each (a fit holds this already)
                with blas_single_threaded():
                    # thread i (the caller first) prefers the same row chunks every batch
                    run_parallel([lambda i=i: run.work(i, threads) for i in range(threads)])
            finally:  # also on Ctrl-C, which lands once the threads are out of C
                end, code = run.result(optimizer)
                self.stepped = run.losses[first:end]
            if code:  # batch `end` failed
                if redraw is not None:
                    redraw(end)
                self.norm = norm = _norm(run.sqnorms[end])
                yield run.losses[first:end + 1], _failure(code, float(run.losses[end]), norm)
                return
            self.norm = _norm(run.sqnorms[end - 1])
            yield self.stepped, None
            first = end

    def _run_chunks(self, x: np.ndarray, lengths: np.ndarray | None, target: Any,
                    weight: np.ndarray) -> Any:
        # forward, readout, loss and backward of every row chunk: the plan, or None
        if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 3
                or not x.flags.c_contiguous):
            return None
        batch, steps = x.shape[0], x.shape[1]
        net = self.net
        params = net.layer._params
        weight = np.ascontiguousarray(weight, dtype=np.float64)
        if self.loss == "cross_entropy":
            classes, values = np.ascontiguousarray(target, dtype=np.int64), None
        else:
            classes = None
            values = np.asarray(target, dtype=np.float64).reshape(batch, -1)
            values = np.ascontiguousarray(values)
            if values.shape[1] != net.config["n_outputs"]:
                return None
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinity (or values too large for float32)")
        order = None
        if lengths is not None:
            lengths = np.asarray(lengths, dtype=np.int64)
            if lengths.shape != (batch,) or lengths.min() < 1 or lengths.max() > steps:
                return None
            if (lengths == steps).all():
                lengths = None
            else:
                # longest first (the rows running at a step are a prefix of each
                # chunk); the batch's sums do not depend on its row order
                order = _longest_first(lengths)
                x, weight, lengths = np.ascontiguousarray(x[order]), weight[order], lengths[order]
                if classes is not None:
                    classes = np.ascontiguousarray(classes[order])
                else:
                    values = np.ascontiguousarray(values[order])
        # batches of several lengths share the plans of their steps rounded up
        planned = steps if lengths is None else _rounded(steps)
        plan = self._plan(batch, planned)
        plan.pack(*(params[n] for n in net.parameter_names()[:-2]))
        w_sum = float(np.add.reduce(weight))
        w_out, b_out = net.weight, net.bias
        masks = None
        if plan.dropout:
            masks = _dropout_masks(net.layer, batch, steps)  # drawn in the batch's order
            if order is not None:
                masks = np.ascontiguousarray(masks[:, :, order])

        def run(c: int) -> None:
            if plan.slices > 1:  # every call shares the one chunk
                plan.shared_chunk(x, classes, values, weight, w_sum, w_out, b_out, masks,
                                  lengths)
            else:
                plan.chunk(c, x, classes, values, weight, w_sum, w_out, b_out, masks, lengths)

        # the chunks' GEMMs on one BLAS thread each (a fit holds this already)
        with blas_single_threaded():
            run_grouped([lambda c=c: run(c) for c in range(plan.n_tickets)],
                        self.threads(batch, planned))
        return plan


def _longest_first(lengths: np.ndarray) -> np.ndarray:
    """The order of a batch's rows in the compiled step: longest first, ties as given."""
    return np.argsort(-lengths, kind="stable")


def _rounded(steps: int) -> int:
    """The planned steps of a batch of several lengths (see _STEPS_ROUND)."""
    return -(-steps // _STEPS_ROUND) * _STEPS_ROUND


def _by_length(batches: list[np.ndarray], lengths: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The batches of a run over a set of several lengths, as adam_step takes each:
    (their rows one batch after another, each batch's longest first; the rows'
    lengths; each batch's planned steps: its longest row's rounded up, even
    where all its rows have that length, which adam_step plans exactly; a
    plan's steps size its buffers and never change a batch's bits)."""
    rows, planned = [], []
    for idx in batches:
        own = lengths[idx]
        rows.append(np.asarray(idx)[_longest_first(own)])
        planned.append(_rounded(int(own.max())))
    ordered = np.concatenate(rows).astype(np.int64, copy=False)
    return ordered, np.ascontiguousarray(lengths[ordered], dtype=np.int64), planned


# A batch of sequences of several lengths takes the plan of its steps rounded
# up to a multiple of this (its kernels run its own steps): a fit's batches of
# many lengths share a few plans.
_STEPS_ROUND = 16


def _dropout_masks(layer: Any, batch: int, steps: int,
                   out: np.ndarray | None = None) -> np.ndarray:
    # the scaled masks of a training forward of the layer (fastlstm.nn.stack):
    # the same draws from the layer's generator, in the same order, the same bits
    D, H, p = layer.num_directions, layer.hidden_size, layer.dropout
    masks = np.empty((layer.num_layers - 1, steps, batch, D * H), np.float32) if out is None \
        else out
    scale = np.float32(1.0 / (1.0 - p))
    for i in range(layer.num_layers - 1):
        keep = layer._rng.random((steps, batch, D * H)) >= p
        np.multiply(keep.astype(np.float32), scale, out=masks[i])
    return masks


# The most bytes of dropout masks an epoch's runs draw at once; an epoch that
# needs more takes its batches one by one (each drawing its own masks).
MAX_RUN_MASK_BYTES = 64 << 20


def _epoch_masks(layer: Any, sizes: list[int], steps: int) -> tuple[np.ndarray, Any] | None:
    # the masks of an epoch's batches, one after another in one flat array, as
    # its Python steps would draw them; and redraw(m), which leaves the
    # generator as batches [0, m] alone would (a run ending at a failed batch);
    # None if they would take more than MAX_RUN_MASK_BYTES
    L, D, H = layer.num_layers, layer.num_directions, layer.hidden_size
    per_row = (L - 1) * steps * D * H
    if 4 * per_row * sum(sizes) > MAX_RUN_MASK_BYTES:
        return None
    before = layer._rng.bit_generator.state
    masks = np.empty(per_row * sum(sizes), np.float32)
    lo = 0
    for size in sizes:
        block = masks[lo * per_row:(lo + size) * per_row].reshape(L - 1, steps, size, D * H)
        _dropout_masks(layer, size, steps, block)
        lo += size

    def redraw(m: int) -> None:
        layer._rng.bit_generator.state = before
        for size in sizes[:m + 1]:
            _dropout_masks(layer, size, steps)

    return masks, redraw


def step_flops(layer: Any, rows: float) -> float:
    """Matrix-product flops of a training step's forward and backward over ``rows``
    time steps of sequences (the sum of their lengths), every layer and direction.

    Examples
    --------
    >>> from fastlstm import LSTM
    >>> step_flops(LSTM(8, 16), 10) == 2.0 * 64 * (2 * 8 + 3 * 16) * 10
    True
    """
    G, H = layer._gates * layer.hidden_size, layer.hidden_size
    return (2.0 * G * (2 * layer.input_size + 3 * H) * rows
            * layer.num_layers * layer.num_directions)


def _same(a: tuple, b: tuple) -> bool:
    # the same objects in the same places (the numbers: equal)
    return len(a) == len(b) and all(
        p is q or (type(p) in (float, int) and p == q) for p, q in zip(a, b, strict=True))


def _norm(squares: float) -> float:
    # the L2 norm from its square (negative: not finite)
    return math.sqrt(squares) if squares >= 0 else math.nan


def _failure(code: int, loss: float, norm: float) -> str | None:
    # what a step's code (TrainPlan.reduce_adam) says was not finite
    if code == 0:
        return None
    return {1: f"the loss is {loss}",
            2: "the gradient of the recurrent features is not finite",
            3: f"the gradient norm is {norm}",
            4: "the update made the weights non-finite"}[code]
