"""Variable-length batches in the packed-sequence layout, on the packed kernels.

With ``lengths``, the sequences are sorted by decreasing length once, so
that the sequences still running at step t are a prefix of the batch (N_t of
them), and every time-major buffer stores step t's running rows only,
contiguously, from row ``toff[t] = N_0 + ... + N_{t-1}`` (PyTorch's
``PackedSequence`` data layout).  Buffers then hold sum(lengths) rows, not
T * B: the recurrences, the weight-gradient and dX products, dropout and
the copies in and out all cost the sum of the lengths.

The sorted batch is cut into contiguous blocks with equal sums of lengths
(so each block's running rows stay a prefix of it), as many as the batch
size gives (``fastlstm.nn.plan.packed_chunks``), whatever the thread count;
threads take runs of whole blocks, each block keeps its own bias sums, and
those are reduced in block order, so the thread count changes speed, not
results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fastlstm.nn import packed as _packed
from fastlstm.nn.inputs import check_d_out
from fastlstm.nn.plan import packed_chunks
from fastlstm.nn.stack import backward_stack, forward_stack
from fastlstm.runtime.parallel import blas_single_threaded, run_grouped

if TYPE_CHECKING:  # pragma: no cover
    from fastlstm.nn.cache import _Cache
    from fastlstm.nn.layer import RecurrentLayer


@dataclass
class RaggedPlan:
    """The packed-sequence layout of one batch: made once per forward call."""

    batch: int
    steps: int
    perm: np.ndarray        # internal row r holds user sequence perm[r]
    lengths: np.ndarray     # per internal row, decreasing
    toff: np.ndarray        # (T,) int64: first packed row of step t
    counts: np.ndarray      # (T,) running rows at step t
    seq: np.ndarray         # (N,) user sequence of each packed row
    time: np.ndarray        # (N,) its step
    row: np.ndarray         # (N,) its internal row
    shards: list[tuple[int, int]]  # (first internal row, row count)
    nact: list[np.ndarray]  # per shard: its running rows at each step, int32
    n_threads: int
    slice_threads: int = 1  # packed sequences split by shards, never by hidden slices
    _spans: Any = None      # (directions, spans), made by fastlstm.nn.packed.spans
    # sorted by decreasing length: any run of whole shards keeps its running
    # rows a prefix (fastlstm.nn.plan.thread_spans)
    contiguous_chunks = True

    @property
    def total(self) -> int:
        """Rows of the packed buffers: the sum of the lengths."""
        return int(self.seq.shape[0])

    def inverse(self) -> np.ndarray:
        inv = np.empty_like(self.perm)
        inv[self.perm] = np.arange(self.perm.size)
        return inv

    # the layout's part of the loop over layers (fastlstm.nn.stack)
    def dropout_mask(self, keep: np.ndarray) -> np.ndarray:
        """A (T, B, F) draw in user order as packed (N, F) rows: the padded
        layout's masks, row for row."""
        return keep[self.time, self.seq]

    def initial(self, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """A user-order (B, H) state as a fresh array in sorted row order."""
        return np.ascontiguousarray(a[self.perm], dtype=dtype)

    def final(self, a: np.ndarray) -> np.ndarray:
        """A sorted-order (B, H) state in user row order."""
        return a[self.inverse()]

    def gather(self, a: np.ndarray) -> np.ndarray:
        """A user (B, T, F) array's valid entries as packed (N, F) rows."""
        return a[self.seq, self.time]

    def scatter(self, rows: np.ndarray, dtype: Any) -> np.ndarray:
        """Packed (N, F) rows as a user (B, T, F) array, zero past each end."""
        full = np.zeros((self.batch, self.steps, rows.shape[1]), dtype=dtype)
        full[self.seq, self.time] = rows
        return full

    def previous(self, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
        """For each packed row, the packed row of the step before it in running
        order, and a mask of the rows that start there (their previous state
        is the initial state)."""
        t, r = self.time, self.row
        if reverse:
            nxt = np.minimum(t + 1, self.steps - 1)
            start = (t + 1 >= self.steps) | (r >= self.counts[nxt])
            prev = self.toff[nxt] + r
        else:
            start = t == 0
            prev = self.toff[np.maximum(t - 1, 0)] + r
        return np.where(start, 0, prev), start


def make_plan(lengths: np.ndarray, steps: int, n_threads: int, directions: int,
              tile: int) -> RaggedPlan:
    """Sort, count and split a batch with these (user-order) lengths (``tile``:
    the kernel variant's register tile rows, which set the number of blocks)."""
    batch = lengths.shape[0]
    perm = np.argsort(-lengths, kind="stable")
    srt = lengths[perm]
    counts = (srt[None, :] > np.arange(steps)[:, None]).sum(axis=1).astype(np.int64)
    toff = np.zeros(steps, dtype=np.int64)
    np.cumsum(counts[:-1], out=toff[1:])
    time = np.repeat(np.arange(steps), counts)
    row = np.arange(time.shape[0]) - np.repeat(toff, counts)
    # fixed by the batch (and the variant's tile), not by the threads
    n_blocks = len(packed_chunks(batch, tile))
    # contiguous blocks of equal work: cut the cumulative length in n_blocks
    cum = np.cumsum(srt)
    cuts = [0] + [int(np.searchsorted(cum, cum[-1] * k / n_blocks)) + 1
                  for k in range(1, n_blocks)] + [batch]
    bounds = sorted(set(min(max(c, 0), batch) for c in cuts))
    shards, nact = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi > lo:
            shards.append((lo, hi - lo))
            nact.append(np.clip(counts - lo, 0, hi - lo).astype(np.int32))
    return RaggedPlan(batch, steps, perm, srt, toff, counts, perm[row], time, row, shards,
                      nact, n_threads)


def forward(layer: RecurrentLayer, x: np.ndarray, plan: RaggedPlan,
            init_all: list[np.ndarray] | None, training: bool
            ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The checked forward of ``layer`` (x validated, lengths in ``plan``)."""
    with np.errstate(over="ignore"):  # reported below, with the reason
        xp = np.ascontiguousarray(plan.gather(x), dtype=np.float32)
    if not np.isfinite(xp).all():
        raise ValueError("x contains NaN or infinity (or values too large for float32)")
    # Checks are done: from here on nothing raises on bad input.
    layer._cache = None
    k = layer._kernels
    from fastlstm.nn.cache import _Cache

    cache = _Cache(plan) if training else None
    layer_in, finals = forward_stack(
        layer, xp, plan, plan.steps, plan.batch, init_all, training,
        lambda index, layer_in, inits: _forward_layer(layer, k, index, layer_in, plan, inits,
                                                      training),
        cache, np.float32)
    layer._cache = cache
    return plan.scatter(layer_in, np.float32), finals


def _forward_layer(layer: RecurrentLayer, k: Any, index: int, layer_in: np.ndarray,
                   plan: RaggedPlan, inits: list[list[np.ndarray | None]], training: bool):
    cell = layer._cell_code
    N, B, H, D = plan.total, plan.batch, layer.hidden_size, layer.num_directions
    f32 = np.float32
    if training:
        out, acts, stores = _packed.training_buffers(layer, index, (N,))
    else:
        out = np.empty((N, D * H), dtype=f32)
        acts = stores = [None] * D
    exact = B >= k.packed_tile_rows()
    tasks, cs = [], []
    for d in range(D):
        wp, bp, h0, c = _packed.direction_start(layer, index, d, inits[d], B)
        cs.append(c)
        for r0, r1, nact in _packed.spans(plan, D):
            tasks.append(lambda d=d, wp=wp, bp=bp, h0=h0, c=c, r0=r0, r1=r1, nact=nact:
                         k.packed_forward_rows(cell, layer_in, wp, bp, h0, c, out, d * H,
                                               acts[d], stores[d], nact, plan.toff, d == 1,
                                               r0, r1, exact))
    run_grouped(tasks, plan.n_threads)
    carries = []
    rows = np.arange(B)
    for d in range(D):
        # h_n: the output of each row's last step in running order
        last = plan.toff[plan.lengths - 1] + rows if d == 0 else plan.toff[0] + rows
        carry = [np.ascontiguousarray(out[last, d * H:(d + 1) * H])]
        if cs[d] is not None:
            carry.append(np.ascontiguousarray(cs[d][:, :H]))
        carries.append(carry)
    return out, carries, acts, stores


def backward(layer: RecurrentLayer, cache: _Cache, d_out: Any,
             d_finals: list[np.ndarray | None], input_grad: bool = True
             ) -> tuple[dict[str, np.ndarray], np.ndarray | None, list[np.ndarray]]:
    """BPTT in the packed-sequence layout; returns (grads, dx, d_initial) as
    ``RecurrentLayer._backward`` does.  ``d_finals`` are checked (user order)."""
    plan = cache.plan
    B, T, H, D = plan.batch, plan.steps, layer.hidden_size, layer.num_directions
    if d_out is None:
        dy = np.zeros((plan.total, D * H), dtype=np.float32)
    else:
        d_out = check_d_out(layer, d_out, B, T)
        with np.errstate(over="ignore"):  # reported just below, with the reason
            dy = np.ascontiguousarray(plan.gather(d_out), dtype=np.float32)
        if not np.isfinite(dy).all():
            raise ValueError("d_out contains NaN or infinity "
                             "(or values too large for float32)")
    layer._cache = None
    with blas_single_threaded():
        grads, dy, d_initial = backward_stack(
            layer, cache, dy, plan, B,
            lambda index, dy, grads, ig: _backward_layer(layer, index, cache, dy, d_finals,
                                                         grads, ig),
            input_grad, np.float32)
    return grads, None if dy is None else plan.scatter(dy, np.float32), d_initial


def _backward_layer(layer: RecurrentLayer, index: int, cache: _Cache, dy: np.ndarray,
                    d_finals: list[np.ndarray | None], grads: dict[str, np.ndarray],
                    input_grad: bool = True):
    from fastlstm.nn.gemm import _matmul, gradient_products

    plan = cache.plan
    N, B, H, D = plan.total, plan.batch, layer.hidden_size, layer.num_directions
    G = layer._gates * H
    f32 = np.float32
    p = layer._params
    xs = cache.inputs[index]
    n_in = xs.shape[1]
    acts = cache.gates[index]
    dcarries = [[np.zeros((B, H), f32) if g is None
                 else np.ascontiguousarray(g[index * D + d][plan.perm], dtype=f32)
                 for g in d_finals] for d in range(D)]
    d_bias = np.zeros((D, len(plan.shards), G))
    _packed.backward_recurrence(layer, index, plan, acts, cache.stores[index],
                                cache.initial[index], dy, dcarries, d_bias)

    # h_{t-1} of every packed row (h0 where a row starts): dW_hh = dG^T H_prev
    hprev = []
    for d in range(D):
        prev, start = plan.previous(reverse=d == 1)
        hp = np.take(cache.outputs[index][:, d * H:(d + 1) * H], prev, axis=0,
                     out=layer._scratch().empty(("hprev", d), (N, H), f32))
        h0 = cache.initial[index][d][0]
        hp[start] = 0 if h0 is None else h0[plan.row[start]]
        hprev.append(hp)
    # the recurrent weights' gate gradients: the input side's unless the cell
    # keeps its own (hh_grads_apart)
    dghs = ([layer._hh_grad_rows(st) for st in cache.stores[index]]
            if layer.spec.hh_grads_apart else acts)
    w_ih = [p["weight_ih" + layer._suffix(index, d)] for d in range(D)]
    d_w_ih = [np.empty((G, n_in), f32) for _ in range(D)]
    d_w_hh = [np.empty((G, H), f32) for _ in range(D)]
    d_x = layer._scratch().empty(("dx", index), (N, n_in), f32)

    def weight_grads(lo: int, hi: int) -> None:
        for d in range(D):
            _matmul(acts[d][:, lo:hi], xs, d_w_ih[d][lo:hi], trans_a=True)
            _matmul(dghs[d][:, lo:hi], hprev[d], d_w_hh[d][lo:hi], trans_a=True)

    def input_grads(lo: int, hi: int) -> None:
        for d in range(D):
            _matmul(acts[d][lo:hi], w_ih[d], d_x[lo:hi], accumulate=d > 0)

    gradient_products(weight_grads, input_grads if input_grad else None, G, N,
                      D * ((2 if input_grad else 1) * n_in + H), plan.n_threads)
    d_bias_hh = None
    if layer.spec.hh_grads_apart:  # per direction, in row order: deterministic
        d_bias_hh = [dgh.sum(axis=0, dtype=np.float64) for dgh in dghs]
    layer._store_grads(index, grads, d_w_ih, d_w_hh, d_bias, d_bias_hh)
    return (d_x if input_grad else None), dcarries
