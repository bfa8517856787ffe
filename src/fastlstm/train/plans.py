"""Which plan a batch of the compiled training step takes, and the plans a thread shares.

A plan (``TrainPlan`` of the kernels) is fixed by the network, the loss and
the batch's shape: its row chunks, cut from the batch size alone, and, for a
batch too narrow for two chunks, the threads that share its one chunk by
hidden units.  Neither changes a result, only the speed: a chunk's bits are
the same whichever thread runs it, and a chunk shared by hidden slices has
the bits of the chunk on one thread.
"""

from __future__ import annotations

import threading
from typing import Any

from fastlstm.nn.plan import paired_chunks
from fastlstm.runtime.parallel import effective_n_jobs, usable_cores

__all__ = ["SLICE_MIN_THREAD_STEP_FLOPS", "chunk_slices", "dropout_between", "plan_shape",
           "shared_plan"]

# A batch too narrow for two row chunks shares its one chunk by hidden slices
# (chunk_slices) where a thread's share of a step of the first layer's
# forward is at least this many flops.  Each step hands the panels of h_t
# (and in the backward dG and dL/dh) between the cores, so what pays depends
# on how far apart the two cores are.  Measured on a 2-core AMD EPYC whose
# host places its two cores now close (a core-to-core round trip of 55-80
# ns), now far apart (310-350 ns); whole fits on two threads against one:
#   share of a step      close        far
#   7e4 (H=128, B=1)     0.83x        1.71-1.80x
#   2.8e5 (H=128, B=4)   0.66-0.74x   1.22-1.28x
#   1.1e6 (H=256, B=4)   0.53-0.59x   0.87-0.98x
#   2.1e6 (H=512, B=2)   0.59-0.62x   0.79-0.90x
# From here two threads are faster in either placement.
SLICE_MIN_THREAD_STEP_FLOPS = 1e6


def chunk_slices(layer: Any, batch: int) -> int:
    """Threads sharing a batch's one row chunk by hidden units in the compiled step.

    A batch too narrow for two row chunks would run on one thread; its
    layers' steps are shared by hidden slices instead where there are at
    least two threads and two panels of hidden units, and a thread's share
    of a step is worth handing over (:data:`SLICE_MIN_THREAD_STEP_FLOPS`).
    The layers of the chunk run one after another, each on every slice.
    The rule reads the shapes and the thread count only; the slices change
    speed, never results (the bits of the chunk run on one thread).

    Examples
    --------
    >>> from fastlstm.train.network import SequenceNet
    >>> chunk_slices(SequenceNet(8, 3, hidden_size=16, n_jobs=1).layer, 4)  # one thread
    1
    """
    threads = min(effective_n_jobs(layer.n_jobs), usable_cores())
    k = layer._kernels
    if threads < 2 or k.packed_width() == 0:
        return 1
    panels = k.packed_panels(layer._cell_code, layer.hidden_size)
    step = 2.0 * batch * layer._gates * layer.hidden_size * (layer.input_size
                                                            + layer.hidden_size)
    if panels < 2 or step / threads < SLICE_MIN_THREAD_STEP_FLOPS:
        return 1
    return min(threads, panels)


def dropout_between(layer: Any) -> bool:
    """Whether a training forward of ``layer`` drops inputs between its stacked layers.

    Examples
    --------
    >>> from fastlstm import LSTM
    >>> dropout_between(LSTM(4, 8, num_layers=2, dropout=0.5)), dropout_between(LSTM(4, 8))
    (True, False)
    """
    return layer.num_layers > 1 and layer.dropout > 0


def plan_shape(net: Any, loss: str, batch: int, steps: int) -> tuple:
    """The ``TrainPlan`` arguments of a batch of ``net`` (a SequenceNet) and ``loss``.

    Examples
    --------
    >>> from fastlstm.train.network import SequenceNet
    >>> shape = plan_shape(SequenceNet(3, 2, hidden_size=8, n_jobs=1), "cross_entropy", 1, 5)
    >>> shape[4:6], shape[7], shape[-1]  # batch, steps; one row chunk; no slices
    ((1, 5), (0, 1), 1)
    """
    layer = net.layer
    k = layer._kernels
    # the row chunks' edges: a function of the batch size alone
    bounds = [lo for lo, _ in paired_chunks(batch, layer._shard_align(batch))] + [batch]
    slices = chunk_slices(layer, batch) if len(bounds) == 2 else 1
    code = k.LOSS_CROSS_ENTROPY if loss == "cross_entropy" else k.LOSS_SQUARED_ERROR
    return (layer._cell_code, layer.input_size, layer.hidden_size, net.config["n_outputs"],
            batch, steps, code, tuple(bounds), layer.num_layers, layer.num_directions,
            dropout_between(layer), slices)


# Plans shared by the engines of one thread.  A plan holds only what one call
# writes before it reads it (the packed weights, the chunks' buffers and
# partial gradients), and one thread runs one call at a time: so the fits of
# a thread (a fleet's members, one after the other) may share the plans of a
# shape instead of building their own.  Small plans only, a few per thread.
_SHARED_PLANS = 16
_SHARED_PLAN_BYTES = 1 << 20
_threads_plans = threading.local()


def _plan_bytes(shape: tuple) -> int:
    # about what a plan of this shape allocates
    _, n_in, hidden, n_out, batch, steps, _, _, layers, dirs, dropout, _ = shape
    gates, more = 4 * hidden, layers - 1  # the layers above the first: D * H inputs
    rows = steps * batch * (n_in + dirs * layers * (gates + 6 * hidden)
                            + (dirs * hidden if more else 0)
                            + (more * dirs * hidden if dropout else 0))
    weights = dirs * (n_in + hidden + more * (1 + dirs) * hidden) + dirs * n_out
    return 4 * (rows + 8 * gates * weights)


def shared_plan(k: Any, shape: tuple) -> Any:
    """The plan of ``shape`` (:func:`plan_shape`) on kernel variant ``k``: this
    thread's shared one if small."""
    if _plan_bytes(shape) > _SHARED_PLAN_BYTES:
        return k.TrainPlan(*shape[:7], list(shape[7]), *shape[8:])
    plans = getattr(_threads_plans, "plans", None)
    if plans is None:
        plans = _threads_plans.plans = {}
    key = (k.__name__, shape)
    plan = plans.get(key)
    if plan is None:
        plan = k.TrainPlan(*shape[:7], list(shape[7]), *shape[8:])
        if len(plans) >= _SHARED_PLANS:
            plans.pop(next(iter(plans)))
        plans[key] = plan
    return plan
