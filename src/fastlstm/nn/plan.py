"""How a batch is laid out and split over threads: made once per forward call.

Rows are permuted once at entry so that each shard is a contiguous block
sorted by decreasing length (rows still running at step t are a prefix of
the shard); the whole-sequence GEMMs are cut into aligned row blocks.

The cuts depend on the data's shape only, never on the thread count: the
shards (row chunks) and the GEMM blocks are fixed by the sizes, threads take
whole chunks (the packed kernels, runs of them) and blocks, and what is summed
over chunks (the bias gradients) is kept per chunk and reduced in chunk
order.  So every product is the same call with the same operands at any
``n_jobs``, and a fit gives the same model bit for bit on one thread or many;
the thread count changes speed only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Row blocks of the whole-sequence GEMMs are cut at multiples of this.
ROW_ALIGN = 16
# A whole-sequence GEMM is split across threads only if each thread gets at
# least this many flops: handing a task to a pool thread costs tens of
# microseconds, more than a small GEMM (B=1 ran slower on 2 threads than on 1).
MIN_FLOPS_PER_THREAD = 4e6
# The fixed cuts (independent of the thread count): a batch is cut into at most
# MAX_CHUNKS shards of at least MIN_CHUNK_ROWS rows, a whole-sequence GEMM into
# at most MAX_GEMM_BLOCKS blocks of MIN_FLOPS_PER_THREAD flops or more.  More
# threads than chunks or blocks wait for the others in that phase.
MIN_CHUNK_ROWS = 4
MAX_CHUNKS = 8
MAX_GEMM_BLOCKS = 4
# The packed kernels' chunks are whole register tiles, at most this many.
MAX_TILE_CHUNKS = 64


def row_chunks(batch: int) -> int:
    """Shards of a batch of ``batch`` rows: a function of the batch alone."""
    return max(1, min(MAX_CHUNKS, batch // MIN_CHUNK_ROWS))


def packed_chunks(batch: int, tile: int) -> list[tuple[int, int]]:
    """Row chunks ``(lo, hi)`` of a batch on the packed kernels: whole register tiles.

    Threads take runs of these (:func:`thread_spans`), so they may be small:
    one tile each (at most MAX_TILE_CHUNKS, then whole tiles more) lets the
    runs split a batch evenly.  Under two tiles, ``row_chunks``' rule.  A
    function of the batch and the variant's tile alone.
    """
    if tile <= 0 or batch < 2 * tile:
        return _split(batch, row_chunks(batch))
    return _split(batch, min(MAX_TILE_CHUNKS, -(-batch // tile)), tile)


def paired_chunks(batch: int, align: int = 1) -> list[tuple[int, int]]:
    """Row chunks ``(lo, hi)`` of the compiled training step: two halves of equal rows.

    The batch is cut into halves of ``ceil(batch / 2)`` and ``floor(batch /
    2)`` rows and each half as :func:`row_chunks` would cut it into half as
    many chunks, boundaries ``align`` rows apart from the half's start, so
    two threads taking the chunks in turn get equal rows (B=32 on tiles of 6
    rows: 6, 6, 4, 6, 6, 4, where cutting the whole batch gives five chunks
    of 6 and one of 2).  A function of the batch and ``align`` alone.

    Examples
    --------
    >>> [hi - lo for lo, hi in paired_chunks(32, 6)]
    [6, 6, 4, 6, 6, 4]
    >>> paired_chunks(3)
    [(0, 3)]
    """
    n = row_chunks(batch)
    if n < 2:
        return _split(batch, n, align)
    first = batch - batch // 2
    left = _split(first, n // 2, align)
    right = [(first + lo, first + hi) for lo, hi in _split(batch - first, n // 2, align)]
    return left + right


def gemm_blocks(flops: float) -> int:
    """Blocks a whole-sequence GEMM of ``flops`` is cut into: a function of its size alone."""
    return max(1, min(MAX_GEMM_BLOCKS, int(flops // MIN_FLOPS_PER_THREAD)))


def thread_spans(shards: list[tuple[int, int]], nact: list[np.ndarray], n_threads: int,
                 contiguous: bool) -> list[tuple[int, int, np.ndarray]]:
    """The packed kernels' tasks of one direction: ``(r0, r1, nact)`` row spans.

    A packed forward or backward computes every row the same way in a span of
    any size (from a whole register tile up), and each fixed chunk keeps its
    own bias sums (:func:`chunk_of_rows`), so runs of whole chunks may go to
    one task: then each thread streams the weights once per step, not once
    per chunk.  ``contiguous`` says the chunks' running rows stay a prefix of
    any run of them (rows sorted by decreasing length, or all running);
    otherwise every chunk is its own span.  Runs are cut at equal work
    (row-steps), one per thread.
    """
    if not contiguous or n_threads >= len(shards):
        return [(r0, r0 + n, a) for (r0, n), a in zip(shards, nact, strict=True)]
    if n_threads <= 1:
        cuts = [0, len(shards)]
    else:
        work = np.cumsum([int(a.sum(dtype=np.int64)) for a in nact])
        cuts = [0] + [int(np.searchsorted(work, work[-1] * k / n_threads, side="left")) + 1
                      for k in range(1, n_threads)] + [len(shards)]
        cuts = sorted(set(min(c, len(shards)) for c in cuts))
    spans = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if b > a:
            rows = nact[a].copy()
            for more in nact[a + 1:b]:
                rows += more
            spans.append((shards[a][0], shards[b - 1][0] + shards[b - 1][1], rows))
    return spans


def chunk_of_rows(shards: list[tuple[int, int]], batch: int) -> np.ndarray:
    """(batch,) int32: the fixed chunk (shard) each internal row belongs to."""
    out = np.empty(batch, dtype=np.int32)
    for i, (r0, n) in enumerate(shards):
        out[r0:r0 + n] = i
    return out


def _step_block(block: int, rows: int) -> int:
    """Row block for a shard's step GEMMs: small-matrix blocks only pay off while
    they are few (at B=64 re-reading W_hh per block made the forward 1.4x slower)."""
    return block if rows <= 2 * block else 0


def _split(n: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """Cut range(n) into at most ``parts`` contiguous blocks, boundaries aligned."""
    step = -(-n // parts)
    step = -(-step // align) * align
    return [(lo, min(n, lo + step)) for lo in range(0, n, step)]


@dataclass
class _Plan:
    """How one batch is laid out and split: made once per forward call."""

    batch: int
    steps: int
    perm: np.ndarray | None        # internal row r holds user sequence perm[r]
    lengths: np.ndarray | None     # per internal row, None when all run T steps
    shards: list[tuple[int, int]]  # (first row, row count)
    nact: list[np.ndarray]         # per shard: running rows at each step, int32
    n_threads: int
    slice_threads: int = 1         # > 1: one shard, its hidden units split over threads
    _spans: Any = None             # (directions, spans), made by fastlstm.nn.packed.spans

    def __post_init__(self) -> None:
        self.inverse = None
        if self.perm is not None:
            self.inverse = np.empty_like(self.perm)
            self.inverse[self.perm] = np.arange(self.perm.size)

    @property
    def contiguous_chunks(self) -> bool:
        """Whether any run of whole shards keeps its running rows a prefix: all
        rows run every step (the round-robin shards of ``lengths`` do not)."""
        return self.perm is None

    def to_internal(self, a: np.ndarray, axis: int) -> np.ndarray:
        return a if self.perm is None else np.take(a, self.perm, axis=axis)

    def to_user(self, a: np.ndarray, axis: int) -> np.ndarray:
        return a if self.inverse is None else np.take(a, self.inverse, axis=axis)

    # the layout's part of the loop over layers (fastlstm.nn.stack)
    def dropout_mask(self, keep: np.ndarray) -> np.ndarray:
        """A (T, B, F) draw in user row order as this layout's rows (T, B, F)."""
        return self.to_internal(keep, axis=1)

    def initial(self, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """A user-order (B, H) state as a fresh C-contiguous array in internal row order."""
        return np.array(self.to_internal(a, axis=0), dtype=dtype, order="C")

    def final(self, a: np.ndarray) -> np.ndarray:
        """An internal-order (B, H) state in user row order."""
        return self.to_user(a, axis=0)
