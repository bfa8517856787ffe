"""The compiled training step: forward, readout, loss and backward of a mini-batch in C.

For the estimators' common network (one unidirectional LSTM, RNN or GRU layer on
the packed float32 kernels, a readout of the final hidden state, softmax
cross-entropy or squared error), :class:`CompiledStep` replaces the ~20
Python pieces of a training step's forward, loss and backward by one
GIL-free call per row chunk on workspaces planned once per batch shape
(plan, then execute): each chunk of rows runs forward, readout, loss,
backward and its partial weight gradients in its own buffers; the partials
are summed in chunk order.  The chunks are cut from the batch size alone, so
the thread count changes speed, never results.

With Adam (or AdamW), :meth:`CompiledStep.adam_step` goes on in the same
way: one GIL-free call sums the partials, checks the loss and the gradients,
clips and takes the optimizer step (undoing it if the weights came out
non-finite).  Everything else stays the trainer's: other optimizers, the
events, rollback.  Batches the engine
does not cover (variable lengths, other dtypes) take the Python path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastlstm.nn.plan import _split, row_chunks
from fastlstm.runtime.parallel import blas_single_threaded, effective_n_jobs, run_grouped

__all__ = ["CompiledStep", "ENGINE_LOSSES"]

# the losses the engine computes itself, by the name the estimators give
ENGINE_LOSSES = ("cross_entropy", "squared_error")

# A mini-batch is split over threads only if each gets at least this many
# matrix-product flops: handing the chunks to a pool thread and waiting for it
# costs tens of microseconds, more than the second core saves on a small step
# (measured on a 2-core machine: T=8, I=8, H=64, B=32, 27 MFLOP a step, ran
# 1.1-1.2x slower on two threads; T=64, I=1, H=64, B=32, 200 MFLOP, 0.8x).
MIN_FLOPS_PER_THREAD = 5e7

_NAMES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


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
        if (layer.num_layers != 1 or layer.bidirectional or layer.dtype != np.float32
                or k.packed_width() == 0 or not hasattr(k, "TrainPlan")
                or not layer.spec.packed or layer._cell_code not in cells):
            return None
        return cls(net, loss)

    def _plan(self, batch: int, steps: int) -> Any:
        plan = self._plans.get((batch, steps))
        if plan is None:
            layer, net = self.net.layer, self.net
            k = layer._kernels
            bounds = [lo for lo, _ in _split(batch, row_chunks(batch),
                                             layer._shard_align(batch))] + [batch]
            code = k.LOSS_CROSS_ENTROPY if self.loss == "cross_entropy" else k.LOSS_SQUARED_ERROR
            plan = k.TrainPlan(layer._cell_code, layer.input_size, layer.hidden_size,
                               net.config["n_outputs"], batch, steps, code, bounds)
            if len(self._plans) >= 8:  # a few shapes per fit: the full and the last batch
                self._plans.pop(next(iter(self._plans)))
            self._plans[(batch, steps)] = plan
        return plan

    def threads(self, batch: int, steps: int) -> int:
        """Threads for a mini-batch of this shape: the layer's, if each gets enough work.

        The rule reads the shape only (never timings), and the chunks do not
        depend on it: it changes speed, not results.
        """
        layer = self.net.layer
        G = layer._gates * layer.hidden_size
        flops = 2.0 * G * (2 * layer.input_size + 3 * layer.hidden_size) * batch * steps
        return max(1, min(effective_n_jobs(layer.n_jobs), int(flops // MIN_FLOPS_PER_THREAD)))

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
        self.norm = math.sqrt(squares) if squares >= 0 else math.nan
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
            *flat.grad_views, flat.params, flat.grads, m, v, save, optimizer,
            -1.0 if clip_norm is None else float(clip_norm))
        self.norm = norm = math.sqrt(squares) if squares >= 0 else math.nan
        if code == 0:
            return loss, None
        return loss, {1: f"the loss is {loss}",
                      2: "the gradient of the recurrent features is not finite",
                      3: f"the gradient norm is {norm}",
                      4: "the update made the weights non-finite"}[code]

    def _run_chunks(self, x: np.ndarray, lengths: np.ndarray | None, target: Any,
                    weight: np.ndarray) -> Any:
        # forward, readout, loss and backward of every row chunk: the plan, or None
        if (lengths is not None or not isinstance(x, np.ndarray) or x.dtype != np.float32
                or x.ndim != 3 or not x.flags.c_contiguous):
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
        plan = self._plan(batch, steps)
        plan.pack(*(params[n] for n in _NAMES))
        w_sum = float(np.add.reduce(weight))
        w_out, b_out = net.weight, net.bias

        def run(c: int) -> None:
            plan.chunk(c, x, classes, values, weight, w_sum, w_out, b_out)

        # the chunks' GEMMs on one BLAS thread each (a fit holds this already)
        with blas_single_threaded():
            run_grouped([lambda c=c: run(c) for c in range(plan.n_chunks)],
                        self.threads(batch, steps))
        return plan
