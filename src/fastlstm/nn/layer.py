"""What every recurrent layer shares: parameters, layout, threads, BPTT GEMMs.

Public arrays are batch-first; inside, everything is time-major and
C-contiguous, with the batch permuted once at entry so that each thread's
shard is a contiguous block of rows sorted by decreasing length (rows still
running at step t are then a prefix of the shard).  Whole-sequence GEMMs
(input projection, weight gradients, dX) are split by rows across threads;
the recurrences run one task per (direction, shard) through the cell's
kernels.  BLAS is held to one thread throughout, so threads never multiply.

A cell (``fastlstm.LSTM``, ``fastlstm.RNN``) says how many gate blocks it has,
which states it carries, and which kernels run its recurrence.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from fastlstm import _kernels
from fastlstm.nn import packed as _packed
from fastlstm.nn import ragged as _ragged
from fastlstm.nn.cache import _Cache
from fastlstm.nn.gemm import _matmul, gradient_products
from fastlstm.nn.inputs import check_d_out
from fastlstm.nn.interop import LayerInterop
from fastlstm.nn.params import (
    _check_dtype,
    _check_positive_int,
    _checked_params,
    _make_rng,
    check_config,
)
from fastlstm.nn.plan import (
    ROW_ALIGN,
    _Plan,
    _split,
    _step_block,
    gemm_blocks,
    packed_chunks,
    row_chunks,
)
from fastlstm.nn.stack import backward_stack, forward_stack
from fastlstm.runtime.memory import check_forward_memory, check_parameter_memory, uniform_init
from fastlstm.runtime.parallel import (
    blas_single_threaded,
    blas_small_matrix_rows,
    effective_n_jobs,
    run_grouped,
)
from fastlstm.runtime.tape import ThreadTape
from fastlstm.runtime.workspace import Workspace, fresh


class RecurrentLayer(LayerInterop):
    """Base of the recurrent layers; see :class:`fastlstm.LSTM` for the parameters."""

    # Each cell's layer class sets its spec (fastlstm.nn.cells); from it come
    # _gates (gate blocks of H rows in W_ih / W_hh), _cell_code (the kernels'
    # cell), _states (carried states, h first) and _store_blocks (what a
    # training forward keeps besides gates and outputs, in H per row).
    spec: Any
    _gates: int
    _cell_code: int
    _states: tuple[str, ...]
    _store_blocks: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls._gates, cls._cell_code, cls._states = spec.gates, spec.kernel_code, spec.states
            cls._store_blocks = spec.store_blocks
    # what a training forward keeps for backward: one per thread (fastlstm.runtime.tape)
    _cache = ThreadTape()
    # scratch buffers reused by the next training pass: one per thread (fastlstm.runtime.workspace)
    _workspace = ThreadTape()
    # step()'s compiled stepper for one parameter version (fastlstm.nn.step); never pickled
    _stepper: Any = None
    _version = 0

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0,
                 dtype: str | np.dtype | type = "float32", n_jobs: int | None = None,
                 random_state: Any = None) -> None:
        self.input_size = _check_positive_int("input_size", input_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a float, got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.dtype = _check_dtype(dtype)
        effective_n_jobs(n_jobs)  # validate now, resolve per call
        self.n_jobs = n_jobs
        # from the sizes alone, before anything of the layer's size is built
        # (the shape list too grows with num_layers)
        check_parameter_memory(self)
        self._rng = _make_rng(random_state)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout} has no effect with num_layers=1: dropout "
                          "applies to the inputs of the layers after the first (as in PyTorch)",
                          UserWarning, stacklevel=3)
        self._kernels = _kernels.load()
        self._params: dict[str, np.ndarray] = {}
        bound = 1.0 / np.sqrt(self.hidden_size)
        for name, shape in self._param_shapes():
            self._params[name] = uniform_init(self._rng, bound, shape, self.dtype)
        # bumped whenever the parameters may have changed: step()'s stepper compares it
        self._version = 0

    def __getstate__(self) -> dict[str, Any]:
        # the kernel module is not picklable and forward caches are not worth
        # keeping: pickle the configuration, parameters and random state
        state = self.__dict__.copy()
        del state["_kernels"]
        state.pop("_stepper", None)
        type(self)._cache.drop(state)
        type(self)._workspace.drop(state)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("_cache", None)  # pickles from before the per-thread tape
        params = state.get("_params")
        if not isinstance(params, dict):
            raise ValueError("not a pickled fastlstm layer: it has no parameter dict")
        self.__dict__.update({k: v for k, v in state.items()
                              if k not in ("_params", "_stepper", "_stepper_version")})
        self._params = {}
        try:
            check_config(self)
            expected = dict(self._param_shapes())
            self._params = _checked_params(params, expected, self.dtype, )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot unpickle {type(self).__name__}: {exc}") from exc
        self._kernels = _kernels.load()

    def _scratch(self) -> Workspace:
        """This thread's workspace (taken only after a call's checks are done)."""
        ws = self._workspace
        if ws is None:
            ws = self._workspace = Workspace()
        return ws

    # ------------------------------------------------------ cell's recurrence
    def _recur_forward(self, d: int, r0: int, rows: int, nact: np.ndarray, gates: np.ndarray,
                       w_hh_t: np.ndarray, bias_hh: np.ndarray, carry: list[np.ndarray],
                       out: np.ndarray, store: Any, block: int) -> None:
        """Run the cell over one shard of direction ``d``: ``gates`` hold the input
        projection with the folded biases; ``bias_hh`` is the layer-direction's, for
        the blocks the cell adds itself (see ``CellSpec.folded_bias``)."""
        raise NotImplementedError

    def _new_store(self, steps: int, batch: int) -> Any:
        """What the cell keeps for backward besides gates and outputs (or None)."""
        return None

    def _recur_backward(self, d: int, r0: int, rows: int, nact: np.ndarray, gates: np.ndarray,
                        w_hh: np.ndarray, store: Any, initial: list[np.ndarray | None],
                        dy: np.ndarray, dcarry: list[np.ndarray], d_bias: np.ndarray,
                        block: int) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ params
    @property
    def num_directions(self) -> int:
        """2 if bidirectional, else 1.

        Examples
        --------
        >>> from fastlstm import LSTM
        >>> LSTM(2, 3, bidirectional=True).num_directions
        2
        """
        return 2 if self.bidirectional else 1

    def _suffix(self, layer: int, direction: int) -> str:
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        H, D = self.hidden_size, self.num_directions
        shapes = []
        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else D * H
            for d in range(D):
                s = self._suffix(layer, d)
                G = self._gates * H
                shapes += [(f"weight_ih{s}", (G, n_in)), (f"weight_hh{s}", (G, H)),
                           (f"bias_ih{s}", (G,)), (f"bias_hh{s}", (G,))]
        return shapes

    def named_parameters(self) -> dict[str, np.ndarray]:
        """Return the live parameter arrays by PyTorch name (edits update the layer).

        Edited in place after a :meth:`step`, they need this call again before the next.

        Examples
        --------
        >>> from fastlstm import LSTM
        >>> layer = LSTM(2, 3, random_state=0)
        >>> for name, value in layer.named_parameters().items():
        ...     print(name, value.shape)
        weight_ih_l0 (12, 2)
        weight_hh_l0 (12, 3)
        bias_ih_l0 (12,)
        bias_hh_l0 (12,)
        """
        # the caller may write through these arrays: caches must not outlive that
        self._version = getattr(self, "_version", 0) + 1
        return dict(self._params)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Return a copy of the parameters, keyed as the PyTorch module's ``state_dict()``.

        Examples
        --------
        >>> from fastlstm import LSTM
        >>> sd = LSTM(2, 3, bidirectional=True, random_state=0).state_dict()
        >>> sorted(sd)[:2]
        ['bias_hh_l0', 'bias_hh_l0_reverse']
        """
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy parameters in from a mapping with exactly this layer's keys and shapes.

        Values may be NumPy arrays or anything ``np.asarray`` takes (PyTorch
        tensors included).  Nothing changes unless every entry is valid.

        Examples
        --------
        >>> from fastlstm import LSTM
        >>> a, b = LSTM(2, 3, random_state=0), LSTM(2, 3, random_state=1)
        >>> b.load_state_dict(a.state_dict())
        >>> bool((a.state_dict()["weight_hh_l0"] == b.state_dict()["weight_hh_l0"]).all())
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        expected = {name: value.shape for name, value in self._params.items()}
        staged = _checked_params(state_dict, expected, self.dtype, what="state_dict")
        for name, value in staged.items():
            self._params[name][...] = value
        self._version = getattr(self, "_version", 0) + 1
        self._cache = None

    # ------------------------------------------------------------- validation
    def _check_x(self, x: Any) -> np.ndarray:
        if x is None:
            raise TypeError("x must be an array of shape (batch, time, input_size), got None")
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        if x.ndim != 3:
            raise ValueError(f"x must be 3D (batch, time, input_size), got {x.ndim}D "
                             f"with shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x has {x.shape[2]} features per step, the layer expects "
                             f"input_size={self.input_size}")
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch (batch size 0)")
        if x.shape[1] == 0:
            raise ValueError("x has zero time steps")
        return x

    @staticmethod
    def _check_lengths(lengths: Any, batch: int, steps: int) -> np.ndarray | None:
        if lengths is None:
            return None
        if hasattr(lengths, "detach"):
            lengths = lengths.detach().cpu().numpy()
        lengths = np.asarray(lengths)
        if lengths.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {lengths.dtype}")
        if lengths.ndim != 1 or lengths.shape[0] != batch:
            raise ValueError(f"lengths must have one entry per sequence ({batch}), "
                             f"got shape {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"lengths must be in [1, {steps}] (the number of time steps), "
                             f"got values from {lengths.min()} to {lengths.max()}")
        if (lengths == steps).all():
            return None
        return lengths.astype(np.int64)

    def _check_state(self, name: str, value: Any, batch: int) -> np.ndarray:
        shape = (self.num_directions * self.num_layers, batch, self.hidden_size)
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} "
                             f"(num_layers*num_directions, batch, hidden_size), got {value.shape}")
        with np.errstate(over="ignore"):  # reported just below, with the reason
            value = value.astype(self.dtype, copy=False)
        if not np.isfinite(value).all():
            raise ValueError(f"{name} contains NaN or infinity "
                             f"(or values too large for {self.dtype})")
        return value

    # ------------------------------------------------------------------- plan
    def _plan(self, batch: int, steps: int, lengths: np.ndarray | None) -> _Plan:
        n_threads = effective_n_jobs(self.n_jobs)
        # the shards are fixed by the batch (not by the threads): see fastlstm.nn.plan
        n_shards = row_chunks(batch)
        n_slices = _packed.slice_threads(self, batch, steps, n_threads) if n_shards == 1 else 1
        if lengths is None:
            if n_slices > 1:  # one chunk, its hidden units split over threads
                bounds = [(0, batch)]
            elif _packed.uses_packed(self):  # threads take runs of them
                bounds = packed_chunks(batch, self._kernels.packed_tile_rows())
            else:
                bounds = _split(batch, n_shards, self._shard_align(batch))
            shards = [(lo, hi - lo) for lo, hi in bounds]
            full: dict[int, np.ndarray] = {}  # chunks of one size share their (read-only) counts
            for _, rows in shards:
                if rows not in full:
                    full[rows] = np.full(steps, rows, dtype=np.int32)
            nact = [full[rows] for _, rows in shards]
            return _Plan(batch, steps, None, None, shards, nact, n_threads, n_slices)
        # Longest first, dealt round-robin so that shards get equal work; each
        # shard's block stays sorted by decreasing length.
        order = np.argsort(-lengths, kind="stable")
        groups = [order[s::n_shards] for s in range(n_shards)]
        perm = np.concatenate(groups)
        shards, nact, lo = [], [], 0
        t = np.arange(steps)
        for g in groups:
            shards.append((lo, g.size))
            nact.append((lengths[g][None, :] > t[:, None]).sum(axis=1).astype(np.int32))
            lo += g.size
        return _Plan(batch, steps, perm, lengths[perm], shards, nact, n_threads, n_slices)

    def _shard_align(self, batch: int) -> int:
        """Shard boundaries at whole register tiles of the packed kernels (1 otherwise)."""
        if not _packed.uses_packed(self):
            return 1
        tile = self._kernels.packed_tile_rows()
        return tile if batch >= 2 * tile else 1

    # ---------------------------------------------------------------- forward
    def _forward(self, x: Any, lengths: Any, initial: list[Any] | None, training: bool
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Checked forward pass; ``initial`` lists one array per carried state."""
        x = self._check_x(x)
        batch, steps = x.shape[0], x.shape[1]
        lengths = self._check_lengths(lengths, batch, steps)
        init_all = None
        if initial is not None:
            init_all = [self._check_state(f"{name}0", value, batch)
                        for name, value in zip(self._states, initial, strict=True)]
        check_forward_memory(self, x, training)
        plan = self._plan(batch, steps, lengths)
        if not training and plan.perm is None and _packed.uses_packed(self):
            # the packed kernels read and write batch-first: no copies in or out
            x32 = _packed.checked_input(x)
            self._cache = None  # checks are done
            return _packed.forward_batch_first(self, x32, plan, init_all)
        if plan.lengths is not None and plan.slice_threads == 1 and _packed.uses_packed(self):
            # variable lengths: buffers of running rows only (hidden slices,
            # for narrow batches, keep the padded layout)
            ragged = _ragged.make_plan(lengths, steps, plan.n_threads, self.num_directions,
                                       self._kernels.packed_tile_rows())
            return _ragged.forward(self, x, ragged, init_all, training)

        # One copy at entry: cast, time-major, rows permuted.
        with np.errstate(over="ignore"):  # reported below, with the reason
            xt = plan.to_internal(np.asarray(x, dtype=self.dtype).transpose(1, 0, 2), axis=1)
        xt = np.ascontiguousarray(xt)
        if plan.lengths is not None:
            xt[np.arange(steps)[:, None] >= plan.lengths[None, :]] = 0
        if not np.isfinite(xt).all():
            raise ValueError(f"x contains NaN or infinity (or values too large for {self.dtype})")

        # Checks are done: from here on nothing raises on bad input.
        self._cache = None
        cache = _Cache(plan) if training else None
        # the packed kernels call no BLAS in forward: no limit to set and restore
        limit = contextlib.nullcontext() if _packed.uses_packed(self) else blas_single_threaded()
        with limit:
            layer_in, finals = forward_stack(
                self, xt, plan, steps, batch, init_all, training,
                lambda index, layer_in, inits: self._forward_layer(index, layer_in, plan, inits,
                                                                   training),
                cache, self.dtype)
        self._cache = cache
        return fresh(plan.to_user(layer_in, axis=1).transpose(1, 0, 2), layer_in), finals

    def _initial(self, states: np.ndarray | None, index: int, plan: _Plan) -> np.ndarray | None:
        """Rows of ``states[index]`` in internal order, always a fresh array."""
        if states is None:
            return None
        return np.array(plan.to_internal(states[index], axis=0), dtype=self.dtype, order="C")

    def _forward_layer(self, layer: int, layer_in: np.ndarray, plan: _Plan,
                       inits: list[list[np.ndarray | None]], training: bool):
        """One layer, every direction, from ``inits[d][k]`` (internal order):
        ``(out, carries, gates, stores)``."""
        T, B, H, D = plan.steps, plan.batch, self.hidden_size, self.num_directions
        G = self._gates * H
        k = self._kernels
        if _packed.uses_packed(self):
            return _packed.forward_layer(self, layer, layer_in, plan, inits, training)
        rows_in = layer_in.reshape(T * B, -1)
        out = np.empty((T, B, D * H), dtype=self.dtype)
        gates = [np.empty((T, B, G), dtype=self.dtype) for _ in range(D)]
        stores = [self._new_store(T, B) if training else None for _ in range(D)]
        carries = [[np.zeros((B, H), self.dtype) if a is None else a.copy() for a in inits[d]]
                   for d in range(D)]
        weights = []
        for d in range(D):
            s = self._suffix(layer, d)
            p = self._params
            weights.append((p[f"weight_ih{s}"], p[f"weight_hh{s}"],
                            self.spec.input_bias(p[f"bias_ih{s}"], p[f"bias_hh{s}"], H)))

        # G = x W_ih^T + b_ih + b_hh (the folded blocks), for all steps at once, rows
        # split over threads
        def project(lo: int, hi: int) -> None:
            for d in range(D):
                g = gates[d].reshape(T * B, G)[lo:hi]
                g[...] = weights[d][2]
                k.matmul(rows_in[lo:hi], weights[d][0], g, trans_b=True, beta=1.0)

        blocks = gemm_blocks(2.0 * T * B * G * D * rows_in.shape[1])
        run_grouped([lambda lo=lo, hi=hi: project(lo, hi)
                     for lo, hi in _split(T * B, blocks, ROW_ALIGN)], plan.n_threads)

        # the step GEMM runs NN on W_hh^T, in row blocks the BLAS multiplies fastest
        w_hh_t = [np.ascontiguousarray(w[1].T) for w in weights]
        b_hh = [self._params["bias_hh" + self._suffix(layer, d)] for d in range(D)]
        block = blas_small_matrix_rows(G, H)

        def recur(d: int, shard: int) -> None:
            r0, rows = plan.shards[shard]
            self._recur_forward(d, r0, rows, plan.nact[shard], gates[d], w_hh_t[d], b_hh[d],
                                carries[d], out, stores[d], _step_block(block, rows))

        run_grouped([lambda d=d, s=s: recur(d, s)
                     for d in range(D) for s in range(len(plan.shards))], plan.n_threads)
        return out, carries, gates, stores

    # --------------------------------------------------------------- backward
    def _backward(self, d_out: Any, d_finals: list[Any], input_grad: bool = True):
        """Checked BPTT; ``d_finals`` lists one gradient (or None) per carried state.

        Returns the parameter gradients, dx, and the initial-state gradients.
        """
        cache = self._cache
        if cache is None:
            raise ValueError("backward() needs a forward(..., training=True) first; "
                             "each forward supports one backward")
        if isinstance(cache.plan, _ragged.RaggedPlan):
            d_finals = [None if v is None else self._check_state(f"d_{name}_n", v,
                                                                 cache.plan.batch)
                        for name, v in zip(self._states, d_finals, strict=True)]
            return _ragged.backward(self, cache, d_out, d_finals, input_grad)
        plan = cache.plan
        T, B, H, D = plan.steps, plan.batch, self.hidden_size, self.num_directions
        # not read by the pending tape: safe to fill before the checks below
        dy = self._scratch().zeros("dy", (T, B, D * H), self.dtype)
        if d_out is not None:
            d_out = check_d_out(self, d_out, B, T)
            with np.errstate(over="ignore"):  # reported just below, with the reason
                dy[...] = plan.to_internal(d_out.transpose(1, 0, 2), axis=1)
            if plan.lengths is not None:  # entries past the ends are ignored
                dy[np.arange(T)[:, None] >= plan.lengths[None, :]] = 0
            if not np.isfinite(dy).all():
                raise ValueError(f"d_out contains NaN or infinity "
                                 f"(or values too large for {self.dtype})")
        d_finals = [None if v is None else self._check_state(f"d_{name}_n", v, B)
                    for name, v in zip(self._states, d_finals, strict=True)]
        self._cache = None

        with blas_single_threaded():
            grads, dy, d_initial = backward_stack(
                self, cache, dy, plan, B,
                lambda index, dy, grads, ig: self._backward_layer(index, cache, dy, d_finals,
                                                                  grads, ig),
                input_grad, self.dtype)
        dx = None if dy is None else fresh(plan.to_user(dy, axis=1).transpose(1, 0, 2), dy)
        return grads, dx, d_initial

    def _backward_layer(self, layer: int, cache: _Cache, dy: np.ndarray,
                        d_finals: list[np.ndarray | None], grads: dict[str, np.ndarray],
                        input_grad: bool = True):
        plan = cache.plan
        T, B, H, D = plan.steps, plan.batch, self.hidden_size, self.num_directions
        G = self._gates * H
        p = self._params
        layer_in = cache.inputs[layer]
        n_in = layer_in.shape[2]
        gates = cache.gates[layer]
        w_ih = [p["weight_ih" + self._suffix(layer, d)] for d in range(D)]
        w_hh = [p["weight_hh" + self._suffix(layer, d)] for d in range(D)]
        # carried gradients, updated in place by the kernel
        dcarries = [[np.zeros((B, H), self.dtype) if g is None
                     else self._initial(g, layer * D + d, plan) for g in d_finals]
                    for d in range(D)]
        # per (direction, shard) bias-gradient sums, reduced in a fixed order below
        d_bias = np.zeros((D, len(plan.shards), G))

        def recur(d: int, shard: int) -> None:
            r0, rows = plan.shards[shard]
            self._recur_backward(d, r0, rows, plan.nact[shard], gates[d], w_hh[d],
                                 cache.stores[layer][d], cache.initial[layer][d], dy,
                                 dcarries[d], d_bias[d, shard], _step_block(block, rows))

        if _packed.uses_packed(self):
            _packed.backward_recurrence(self, layer, plan, gates, cache.stores[layer],
                                        cache.initial[layer], dy, dcarries, d_bias)
        else:
            block = blas_small_matrix_rows(H, G)
            run_grouped([lambda d=d, s=s: recur(d, s)
                         for d in range(D) for s in range(len(plan.shards))], plan.n_threads)

        # Whole-sequence GEMMs from dG: weight gradients split by gate rows,
        # dX split by sequence rows.
        dgs = [g.reshape(T * B, G) for g in gates]
        # the recurrent weights' gate gradients: the same as the input weights'
        # unless the cell keeps its own (hh_grads_apart)
        dghs = ([self._hh_grad_rows(st).reshape(T * B, G) for st in cache.stores[layer]]
                if self.spec.hh_grads_apart else dgs)
        xs = layer_in.reshape(T * B, n_in)
        hseq = cache.outputs[layer].reshape(T * B, D * H)
        d_w_ih = [np.empty((G, n_in), self.dtype) for _ in range(D)]
        d_w_hh = [np.zeros((G, H), self.dtype) for _ in range(D)]
        d_x = self._scratch().empty(("dx", layer), (T * B, n_in), self.dtype)
        starts = None if plan.lengths is None else plan.lengths - 1

        def weight_grads(lo: int, hi: int) -> None:
            for d in range(D):
                # dW_ih = dG^T X
                _matmul(dgs[d][:, lo:hi], xs, d_w_ih[d][lo:hi], trans_a=True)
                dg = dghs[d][:, lo:hi]
                hs = hseq[:, d * H:(d + 1) * H]
                # dW_hh = dG_t^T h_{t-1}: the previous step is t-1 forward, t+1 reverse
                if T > 1:
                    if d == 0:
                        _matmul(dg[B:], hs[:-B], d_w_hh[d][lo:hi], trans_a=True)
                    else:
                        _matmul(dg[:-B], hs[B:], d_w_hh[d][lo:hi], trans_a=True)
                # ... and at each sequence's first step, h_{t-1} is h0
                h0 = cache.initial[layer][d][0]
                if h0 is not None:
                    if d == 0 or starts is None:
                        first = dg[:B] if d == 0 else dg[(T - 1) * B:]
                    else:
                        first = np.ascontiguousarray(
                            dghs[d].reshape(T, B, G)[starts, np.arange(B), lo:hi])
                    _matmul(first, h0, d_w_hh[d][lo:hi], trans_a=True, accumulate=True)

        def input_grads(lo: int, hi: int) -> None:
            # dX = sum over directions of dG W_ih
            for d in range(D):
                _matmul(dgs[d][lo:hi], w_ih[d], d_x[lo:hi], accumulate=d > 0)

        gradient_products(weight_grads, input_grads if input_grad else None, G, T * B,
                          D * ((2 if input_grad else 1) * n_in + H), plan.n_threads)
        d_bias_hh = None
        if self.spec.hh_grads_apart:  # per direction, in row order: deterministic
            d_bias_hh = [dgh.sum(axis=0, dtype=np.float64) for dgh in dghs]
        self._store_grads(layer, grads, d_w_ih, d_w_hh, d_bias, d_bias_hh)
        return (d_x.reshape(T, B, n_in) if input_grad else None), dcarries

    def _store_grads(self, layer: int, grads: dict[str, np.ndarray], d_w_ih: list[np.ndarray],
                     d_w_hh: list[np.ndarray], d_bias: np.ndarray,
                     d_bias_hh: list[np.ndarray] | None = None) -> None:
        """One layer's gradients into ``grads``; per-shard bias sums reduced in order.

        ``bias_hh`` gets ``bias_ih``'s gradient, or ``d_bias_hh`` (per
        direction) for a cell whose recurrent gradients are its own.
        """
        for d in range(self.num_directions):
            s = self._suffix(layer, d)
            d_b = d_bias[d].sum(axis=0).astype(self.dtype)
            grads[f"weight_ih{s}"] = d_w_ih[d]
            grads[f"weight_hh{s}"] = d_w_hh[d]
            grads[f"bias_ih{s}"] = d_b
            grads[f"bias_hh{s}"] = (d_b.copy() if d_bias_hh is None
                                    else d_bias_hh[d].astype(self.dtype))

    def _hh_grad_rows(self, store: Any) -> np.ndarray:
        """The recurrent weights' gate gradients (T, B, G) a cell with
        ``hh_grads_apart`` left in its store after its backward."""
        raise NotImplementedError(f"{type(self).__name__} keeps no recurrent gradients apart")
