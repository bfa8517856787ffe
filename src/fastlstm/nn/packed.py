"""The forward pass on packed weights: how a layer-direction runs on the SIMD kernels.

Weights are packed at the start of every forward (O(parameters), never
stale: in-place updates by an optimizer are seen by the next forward).  The
kernels do the input projection inside the same register tile as the
recurrent product (K = I + H), then the cell's gate math on the tile, so no
(T, B, 4H) pre-activation buffer exists: inference keeps O(B * H) beside the
outputs.

Threads split a direction one of two ways, chosen by a fixed rule on the
shape (never by timing, so results do not depend on the machine's load):

- batch shards: each thread runs its rows through all steps, no
  synchronization (wide batches);
- hidden slices: the threads share each step's weight panels (chunks taken
  from one counter, a step starting when the previous one is complete) and
  compute their units for all rows (narrow batches, including B = 1).  Any
  number of the threads may turn up: one alone finishes the work, so a busy
  machine slows a forward down but never stalls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fastlstm.nn.plan import chunk_of_rows, thread_spans
from fastlstm.nn.stack import forward_stack
from fastlstm.runtime.parallel import run_grouped, usable_cores

if TYPE_CHECKING:  # pragma: no cover
    from fastlstm.nn.layer import RecurrentLayer
    from fastlstm.nn.plan import _Plan

# When threads split a direction (rule measured on 2-core machines, AVX2 and
# AVX-512; see docs/performance.md):
# - batch shards once every thread gets this many rows: no hand-over, and a
#   4-row tile still keeps eight FMA chains busy;
SHARD_MIN_ROWS = 4
# - otherwise hidden slices, if each thread's share of a step is at least this
#   many flops: handing a step over between cores costs ~0.1-1 us, more on a
#   busy machine or between cores far apart (measured on a 2-core AMD EPYC VM,
#   a forward of T=100 on two threads against one, cores close / far apart:
#   3.3e5 flops a share 0.89-1.05x / 1.01-1.06x, 6.6e5 1.00x / 1.01x, 1.1e6
#   0.61x / 0.76x) ...
SLICE_MIN_STEP_FLOPS = 1e6
# ... and the whole sequence is long enough to pay for starting the gang.
SLICE_MIN_FLOPS = 2e7

# Chunks a step's panels are cut into, per thread: more balance the load when
# a thread runs late, fewer cost less handing over.
CHUNKS_PER_THREAD = 2


def uses_packed(layer: RecurrentLayer) -> bool:
    """Whether ``layer`` runs on the packed kernels (float32 on a SIMD variant)."""
    return (layer.dtype == np.float32 and layer.spec.packed
            and layer._kernels.packed_width() > 0)


def slice_threads(layer: RecurrentLayer, batch: int, steps: int, n_threads: int) -> int:
    """Threads that split each direction by hidden slices (1: batch shards or one thread).

    Directions run side by side first; what is left of ``n_threads`` per
    direction goes to slices when the batch is too narrow for shards and a
    step has enough work to share.  Depends only on the shapes, never on
    timing; and since a row gets the same arithmetic on either axis, the
    choice changes speed, not results.
    """
    if not uses_packed(layer):
        return 1
    k = layer._kernels
    per_direction = max(1, n_threads // layer.num_directions)
    per_direction = min(per_direction, usable_cores())
    panels = k.packed_panels(layer._cell_code, layer.hidden_size)
    if per_direction < 2 or panels < 2 or batch >= per_direction * SHARD_MIN_ROWS:
        return 1
    gates = layer._gates * layer.hidden_size
    step_flops = 2.0 * batch * gates * (layer.input_size + layer.hidden_size)
    if step_flops / per_direction < SLICE_MIN_STEP_FLOPS or step_flops * steps < SLICE_MIN_FLOPS:
        return 1
    return min(per_direction, panels)


def spans(plan: Any, directions: int) -> list[tuple[int, int, np.ndarray]]:
    """Each direction's row spans ``(r0, r1, nact)``: runs of the plan's fixed
    chunks, one per thread the direction gets (see ``fastlstm.nn.plan.thread_spans``)."""
    # made once per plan: the forward and the backward of a pass share them
    cached = plan._spans
    if cached is None or cached[0] != directions:
        per_direction = max(1, -(-plan.n_threads // directions))
        cached = (directions, thread_spans(plan.shards, plan.nact, per_direction,
                                           plan.contiguous_chunks))
        plan._spans = cached
    return cached[1]


def direction_start(layer: RecurrentLayer, index: int, d: int,
                    inits: list[np.ndarray | None], batch: int) -> tuple[Any, ...]:
    """What a forward of one layer-direction starts from: ``(wp, bp, h0, c)``.

    The packed weights, h0 (zeros if not given) and, for a cell with a
    second state (the LSTM's c), the buffer the kernel updates in place,
    padded to whole vectors (the padding stays 0), its initial value in
    (zeros if not given); None for a cell with h alone.
    """
    k = layer._kernels
    cell, H = layer._cell_code, layer.hidden_size
    p, s = layer._params, layer._suffix(index, d)
    wp, bp = k.pack(cell, p[f"weight_ih{s}"], p[f"weight_hh{s}"], p[f"bias_ih{s}"],
                    p[f"bias_hh{s}"])
    h0 = np.zeros((batch, H), np.float32) if inits[0] is None else inits[0]
    c = None
    if len(layer._states) > 1:
        c = k.aligned_empty((batch, k.packed_panels(cell, H) * k.packed_width()))
        c[...] = 0
        if inits[1] is not None:
            c[:, :H] = inits[1]
    return wp, bp, h0, c


def backward_start(layer: RecurrentLayer, index: int, d: int,
                   initial: list[np.ndarray | None], dcarry: list[np.ndarray],
                   batch: int) -> tuple[Any, ...]:
    """What a backward of one layer-direction starts from: ``(wp, c0, dc)``.

    W_hh packed for the backward tile and, for a cell with a second state,
    its initial value (zeros if the forward had none) and its carried
    gradient; None for a cell with h alone.
    """
    k = layer._kernels
    cell = layer._cell_code
    wp = k.pack_backward(cell, layer._params["weight_hh" + layer._suffix(index, d)])
    if len(layer._states) == 1:
        return wp, None, None
    c0 = initial[1]
    if c0 is None:
        c0 = np.zeros((batch, layer.hidden_size), np.float32)
    return wp, c0, dcarry[1]


def forward_layer(layer: RecurrentLayer, index: int, layer_in: np.ndarray, plan: _Plan,
                  inits: list[list[np.ndarray | None]], training: bool,
                  batch_first: bool = False) -> tuple[Any, ...]:
    """One layer, every direction, on the packed kernels.

    Returns ``(out, carries, acts, stores)``: the (T, B, D*H) outputs
    ((B, T, D*H) with ``batch_first``, then ``layer_in`` is batch-first too),
    the final states per direction, and what backward needs (None in
    inference; training runs time-major).
    """
    k = layer._kernels
    cell = layer._cell_code
    T, B, H, D = plan.steps, plan.batch, layer.hidden_size, layer.num_directions
    f32 = np.float32
    panels = k.packed_panels(cell, H)
    x = np.ascontiguousarray(layer_in, dtype=f32)
    if training:
        out, acts, stores = training_buffers(layer, index, (T, B))
    else:
        out = np.empty((B, T, D * H) if batch_first else (T, B, D * H), dtype=f32)
        acts = stores = [None] * D
    packed, h0s, cs = [], [], []
    for d in range(D):
        wp, bp, h0, c = direction_start(layer, index, d, inits[d], B)
        packed.append((wp, bp))
        h0s.append(h0)
        cs.append(c)

    # From a whole register tile of rows up, every row gets the same arithmetic
    # wherever it sits: results do not depend on the order of the sequences or
    # on how threads split them.  Tinier batches trade that for k-streams.
    exact = B >= k.packed_tile_rows()

    def run(d: int, r0: int, r1: int, nact: np.ndarray, p0: int, p1: int,
            gang: Any = None) -> None:
        k.packed_forward(cell, x, packed[d][0], packed[d][1], h0s[d], cs[d], out, d * H,
                         acts[d], stores[d], nact, d == 1, r0, r1, p0, p1, gang, exact,
                         batch_first)

    n_slices = plan.slice_threads
    tasks = []
    for d in range(D):
        if n_slices > 1:
            gang = k.Gang(max(1, panels // (CHUNKS_PER_THREAD * n_slices)))
            tasks += [lambda d=d, g=gang: run(d, 0, B, plan.nact[0], 0, panels, g)] * n_slices
        else:
            for r0, r1, nact in spans(plan, D):
                tasks.append(lambda d=d, r0=r0, r1=r1, nact=nact: run(d, r0, r1, nact, 0, panels))
    run_grouped(tasks, plan.n_threads)

    carries = []
    tm = out.transpose(1, 0, 2) if batch_first else out  # (T, B, D*H) view
    for d in range(D):
        cols = slice(d * H, (d + 1) * H)
        if d == 1:
            h_n = tm[0, :, cols]
        elif plan.lengths is None:
            h_n = tm[T - 1, :, cols]
        else:
            h_n = tm[plan.lengths - 1, np.arange(B), cols]
        carry = [np.ascontiguousarray(h_n)]
        if cs[d] is not None:
            carry.append(np.ascontiguousarray(cs[d][:, :H]))
        carries.append(carry)
    return out, carries, acts, stores


def training_buffers(layer: RecurrentLayer, index: int, rows: tuple[int, ...]
                     ) -> tuple[np.ndarray, list[np.ndarray], list[Any]]:
    """``(out, acts, stores)`` of a training forward of one layer, from the workspace.

    ``rows`` is the time-major row shape: ``(T, B)`` padded, ``(N,)`` packed
    sequences.  ``stores`` are the cell's aux stores (what its backward reads
    besides the activations; None for a cell that keeps none).  The buffers
    live until backward, then serve the next pass.
    """
    H, D, f32 = layer.hidden_size, layer.num_directions, np.float32
    ws = layer._scratch()
    out = ws.empty(("out", index), (*rows, D * H), f32)
    acts = [ws.empty(("acts", index, d), (*rows, layer._gates * H), f32) for d in range(D)]
    aux = layer._kernels.packed_aux(layer._cell_code) * H
    stores = [ws.empty(("aux", index, d), (*rows, aux), f32) if aux else None
              for d in range(D)]
    return out, acts, stores


def backward_recurrence(layer: RecurrentLayer, index: int, plan: Any, acts: list[np.ndarray],
                        stores: list[Any], initial: list[list[np.ndarray | None]],
                        dy: np.ndarray, dcarries: list[list[np.ndarray]],
                        d_bias: np.ndarray) -> None:
    """Backpropagate one layer's recurrences through time on packed W_hh.

    ``acts`` (per direction, time-major rows: (T, B, G*H) padded, (N, G*H) in
    the packed-sequence layout of a ``_ragged.RaggedPlan``) hold the
    forward's activations and receive dG; ``dcarries`` (per direction,
    [dh, dc]) the gradients of the final states, updated in place to those
    of the initial states; ``d_bias[d, shard]`` receives the shard's column
    sums of dG.  One task per (direction, span of shards), as the forward's:
    rows are independent in backward, so no thread waits for another, and
    each shard's sums are the same whichever span holds it; or, where the
    forward split a direction by hidden slices, its threads share each step
    the same way (the bits of one thread).
    """
    k = layer._kernels
    cell = layer._cell_code
    B, H, D = plan.batch, layer.hidden_size, layer.num_directions
    exact = B >= k.packed_tile_rows()
    toff = getattr(plan, "toff", None)  # the packed-sequence layout's step offsets

    def as_rows(a: np.ndarray) -> np.ndarray:
        return a.reshape(-1, a.shape[-1])

    dy = as_rows(dy)
    acts = [as_rows(a) for a in acts]
    stores = [None if st is None else as_rows(st) for st in stores]
    chunk = chunk_of_rows(plan.shards, B)
    n_slices = plan.slice_threads
    tasks = []
    for d in range(D):
        wp, c0, dc = backward_start(layer, index, d, initial[d], dcarries[d], B)
        db = d_bias[d].reshape(-1)  # (shards, G) sums, one row per shard

        def run(r0: int, r1: int, nact: np.ndarray, gang: Any = None, d: int = d, wp: Any = wp,
                c0: Any = c0, dc: Any = dc, db: np.ndarray = db) -> None:
            k.packed_backward(cell, acts[d], stores[d], c0, wp, dy, d * H, dcarries[d][0], dc,
                              db, nact, toff, d == 1, r0, r1, exact, chunk, gang)

        if n_slices > 1:
            # the forward's hidden slices: each step's panels of dL/dh shared
            # by a gang, once one thread has every row's gate gradients
            panels = k.packed_backward_panels(H)
            gang = k.Gang(max(1, panels // (CHUNKS_PER_THREAD * n_slices)))
            tasks += [lambda run=run, g=gang: run(0, B, plan.nact[0], g)] * n_slices
        else:
            for r0, r1, nact in spans(plan, D):
                tasks.append(lambda run=run, r0=r0, r1=r1, nact=nact: run(r0, r1, nact))
    run_grouped(tasks, plan.n_threads)


def checked_input(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous float32 array (a copy only if needed), all finite."""
    with np.errstate(over="ignore"):  # reported below, with the reason
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x32).all():
        raise ValueError("x contains NaN or infinity (or values too large for float32)")
    return x32


def forward_batch_first(layer: RecurrentLayer, x: np.ndarray, plan: _Plan,
                        init_all: list[np.ndarray] | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Inference on equal-length sequences, reading and writing batch-first arrays.

    The kernels address rows by stride, so the user's (B, T, I) input (from
    :func:`checked_input`) is read as it is and every layer writes (B, T, D*H)
    directly: no time-major copies in or out.  Returns ``(out, finals)`` as
    ``RecurrentLayer._forward`` does.
    """
    # x from checked_input(); no dropout and no tape in inference
    return forward_stack(
        layer, x, plan, plan.steps, plan.batch, init_all, False,
        lambda index, layer_in, inits: forward_layer(layer, index, layer_in, plan, inits, False,
                                                     batch_first=True),
        None, np.float32)
