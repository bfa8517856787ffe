"""Peer implementations for the benchmarks, built with identical weights.

Every peer takes a state dict in PyTorch's naming (``weight_ih_l0``,
``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``) as NumPy
arrays, which is what ``fastlstm.LSTM.state_dict()`` returns, so the same
weights drive fastlstm, PyTorch and ONNX Runtime.

Peers are optional: :func:`peer_status` says which ones are importable and
why not, and callers skip the missing ones with a note.

* PyTorch: ``nn.LSTM(batch_first=True)`` (or the cell's ``torch.nn`` class,
  e.g. ``nn.GRU``), ``pack_padded_sequence`` for ragged batches,
  ``nn.LSTMCell``, ``GRUCell`` and ``RNNCell`` for streaming.
* ONNX Runtime: a graph of the cell's standard operators (``LSTM``, ``GRU``;
  one per layer) built directly with ``onnx.helper``.  ONNX's gate order is
  the spec's ``onnx_gate_order`` (LSTM i, o, f, c for PyTorch's i, f, g, o;
  GRU z, r, h for r, z, n); ``W`` is (D, G*H, I), ``R`` (D, G*H, H), ``B``
  (D, 2*G*H) = [Wb, Rb]; the input is time-major (T, B, I).

The cell is named as the estimators' ``cell=`` (its ``CellSpec`` says the
rest); the default is the LSTM.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "OrtLSTM",
    "TorchCell",
    "TorchLSTM",
    "max_abs_diff",
    "peer_status",
    "random_state_dict",
    "state_dict_numpy",
]

StateDict = Mapping[str, np.ndarray]


def peer_status() -> dict[str, str | None]:
    """Map each peer name to ``None`` if usable, else the reason it is skipped."""
    status: dict[str, str | None] = {}
    for name, modules in (("torch", ("torch",)), ("ort", ("onnx", "onnxruntime"))):
        reason = None
        for mod in modules:
            try:
                importlib.import_module(mod)
            except Exception as exc:  # any import failure means "skip"
                reason = f"{mod} not importable ({type(exc).__name__}: {exc})"
                break
        status[name] = reason
    return status


def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def random_state_dict(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    seed: int = 0,
    dtype: Any = np.float32,
) -> dict[str, np.ndarray]:
    """PyTorch-initialised (uniform +-1/sqrt(H)) weights, for peer-only checks."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden_size)
    dirs = 2 if bidirectional else 1
    sd: dict[str, np.ndarray] = {}
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else hidden_size * dirs
        for d in range(dirs):
            s = _suffix(layer, d)
            shapes = {
                "weight_ih": (4 * hidden_size, in_size),
                "weight_hh": (4 * hidden_size, hidden_size),
                "bias_ih": (4 * hidden_size,),
                "bias_hh": (4 * hidden_size,),
            }
            for name, shape in shapes.items():
                sd[name + s] = rng.uniform(-k, k, size=shape).astype(dtype)
    return sd


def state_dict_numpy(sd: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Return a copy of ``sd`` with every value as a C-contiguous NumPy array."""
    out: dict[str, np.ndarray] = {}
    for key, val in sd.items():
        if hasattr(val, "detach"):  # a torch tensor
            val = val.detach().cpu().numpy()
        out[key] = np.ascontiguousarray(np.asarray(val))
    return out


def max_abs_diff(a: Any, b: Any) -> float:
    """Largest absolute elementwise difference between two array-likes."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def _spec(cell: str) -> Any:
    from fastlstm.nn import registry

    return registry.spec(cell)


def _infer_sizes(sd: StateDict, gates: int = 4) -> tuple[int, int, int, bool]:
    """(input_size, hidden_size, num_layers, bidirectional) from a state dict."""
    g_h, input_size = sd["weight_ih_l0"].shape
    num_layers = 0
    while f"weight_ih_l{num_layers}" in sd:
        num_layers += 1
    return input_size, g_h // gates, num_layers, "weight_ih_l0_reverse" in sd


# --------------------------------------------------------------------------- PyTorch


class TorchLSTM:
    """``torch.nn.LSTM(batch_first=True)`` loaded with a fastlstm state dict
    (``cell``: the torch class of another cell's spec, e.g. ``nn.GRU``)."""

    def __init__(self, sd: StateDict, threads: int | None = None, cell: str = "lstm") -> None:
        import torch

        self.torch = torch
        if threads is not None:
            torch.set_num_threads(threads)
        spec = _spec(cell)
        input_size, hidden, layers, bidir = _infer_sizes(sd, spec.gates)
        self.module = getattr(torch.nn, spec.torch_class)(
            input_size, hidden, num_layers=layers, bidirectional=bidir, batch_first=True,
            **spec.torch_kwargs,
        )
        dtype = torch.float64 if sd["weight_ih_l0"].dtype == np.float64 else torch.float32
        self.module.to(dtype)
        self.module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
        self.dtype = dtype

    def tensor(self, x: np.ndarray, requires_grad: bool = False) -> Any:
        """NumPy -> torch tensor (a copy, so timings do not alias NumPy memory)."""
        t = self.torch.tensor(x, dtype=self.dtype)
        return t.requires_grad_(requires_grad)

    def forward(self, x: Any) -> tuple[Any, ...]:
        """Inference forward: ``(out, h_n, c_n)`` (``(out, h_n)`` for a cell with h alone)."""
        with self.torch.inference_mode():
            out, state = self.module(x)
        return (out, *state) if isinstance(state, tuple) else (out, state)

    def forward_backward(self, x: Any, d_out: Any) -> Any:
        """One training step's forward + backward; returns ``x.grad``."""
        self.module.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = self.module(x)
        out.backward(d_out)
        return x.grad

    def packed_forward_backward(self, x: Any, lengths: Any, d_out: Any) -> Any:
        """Ragged forward + backward through ``pack_padded_sequence``.

        Packing and unpacking are inside, as a user's training step has them.
        Returns the padded output (zero past each length).
        """
        rnn = self.torch.nn.utils.rnn
        self.module.zero_grad(set_to_none=True)
        x.grad = None
        packed = rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out_p, _ = self.module(packed)
        out, _ = rnn.pad_packed_sequence(out_p, batch_first=True, total_length=x.shape[1])
        out.backward(d_out)
        return out

    def packed_forward(self, x: Any, lengths: Any) -> tuple[Any, Any, Any]:
        """Ragged inference forward: padded ``(out, h_n, c_n)``."""
        rnn = self.torch.nn.utils.rnn
        with self.torch.inference_mode():
            packed = rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out_p, (h, c) = self.module(packed)
            out, _ = rnn.pad_packed_sequence(out_p, batch_first=True, total_length=x.shape[1])
        return out, h, c

    def grads(self) -> dict[str, np.ndarray]:
        """Parameter gradients after :meth:`forward_backward`, PyTorch names."""
        return {
            k: p.grad.detach().numpy().copy()
            for k, p in self.module.named_parameters()
            if p.grad is not None
        }


class TorchCell:
    """``torch.nn.LSTMCell``, ``GRUCell`` or ``RNNCell`` (tanh) with layer 0's forward
    weights of a fastlstm state dict, for streaming."""

    CLASSES = {"lstm": "LSTMCell", "gru": "GRUCell", "rnn": "RNNCell"}

    def __init__(self, cell: str, sd: StateDict, threads: int | None = None) -> None:
        import torch

        self.torch = torch
        if threads is not None:
            torch.set_num_threads(threads)
        gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
        rows, input_size = sd["weight_ih_l0"].shape
        self.hidden = rows // gates
        self.cell = getattr(torch.nn, self.CLASSES[cell])(input_size, self.hidden)
        self.cell.load_state_dict(
            {k: torch.from_numpy(np.array(sd[k + "_l0"])) for k in
             ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        )

    def step(self, x_t: Any, state: Any) -> Any:
        """One step: returns the state to carry into the next call (``(h, c)`` or ``h``).

        Call it under ``torch.inference_mode()`` (entered once, outside the
        timed loop) to keep autograd out of the measurement.
        """
        return self.cell(x_t, state)


# --------------------------------------------------------------------------- ONNX Runtime


def onnx_lstm_model(
    sd: StateDict, with_lengths: bool = False, opset: int = 17, cell: str = "lstm"
) -> Any:
    """An ONNX model of stacked ``LSTM`` nodes (the cell's operator) with the weights of ``sd``.

    Inputs: ``X`` (T, B, I) time-major, and ``sequence_lens`` (B,) int32 if
    ``with_lengths``.  Outputs: ``Y`` (T, B, D*H), ``Y_h`` and ``Y_c``
    (L*D, B, H; ``Y_c`` only for a cell with two states) — the layout of
    PyTorch's ``out`` (time-major) and ``h_n``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = _spec(cell)
    input_size, hidden, layers, bidir = _infer_sizes(sd, spec.gates)
    dirs = 2 if bidir else 1
    elem = TensorProto.DOUBLE if sd["weight_ih_l0"].dtype == np.float64 else TensorProto.FLOAT
    np_dtype = np.float64 if elem == TensorProto.DOUBLE else np.float32
    two_states = len(spec.states) > 1

    def reorder(a: np.ndarray) -> np.ndarray:
        return spec.to_onnx_order(np.asarray(a, dtype=np_dtype), hidden)

    nodes: list[Any] = []
    inits: list[Any] = [
        numpy_helper.from_array(np.array([0, 0, -1], dtype=np.int64), "shape_TB_")
    ]
    inputs = [helper.make_tensor_value_info("X", elem, ["T", "B", input_size])]
    if with_lengths:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["B"]))
    layer_in = "X"
    hs, cs = [], []
    for layer in range(layers):
        w = np.stack([reorder(sd["weight_ih" + _suffix(layer, d)]) for d in range(dirs)])
        r = np.stack([reorder(sd["weight_hh" + _suffix(layer, d)]) for d in range(dirs)])
        b = np.stack([
            np.concatenate([reorder(sd["bias_ih" + _suffix(layer, d)]),
                            reorder(sd["bias_hh" + _suffix(layer, d)])])
            for d in range(dirs)
        ])
        inits += [
            numpy_helper.from_array(np.ascontiguousarray(w), f"W{layer}"),
            numpy_helper.from_array(np.ascontiguousarray(r), f"R{layer}"),
            numpy_helper.from_array(np.ascontiguousarray(b), f"B{layer}"),
        ]
        nodes.append(helper.make_node(
            spec.onnx_op,
            [layer_in, f"W{layer}", f"R{layer}", f"B{layer}",
             "sequence_lens" if with_lengths else ""],
            [f"Y{layer}", f"Yh{layer}"] + ([f"Yc{layer}"] if two_states else []),
            hidden_size=hidden,
            direction="bidirectional" if bidir else "forward",
            name=f"{cell}{layer}",
            **spec.onnx_attrs,
        ))
        # Y (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H)
        nodes.append(helper.make_node("Transpose", [f"Y{layer}"], [f"Yt{layer}"],
                                      perm=[0, 2, 1, 3]))
        layer_in = "Y" if layer == layers - 1 else f"Yr{layer}"
        nodes.append(helper.make_node("Reshape", [f"Yt{layer}", "shape_TB_"], [layer_in]))
        hs.append(f"Yh{layer}")
        cs.append(f"Yc{layer}")
    nodes.append(helper.make_node("Concat", hs, ["Y_h"], axis=0))
    outputs = [
        helper.make_tensor_value_info("Y", elem, ["T", "B", dirs * hidden]),
        helper.make_tensor_value_info("Y_h", elem, [layers * dirs, "B", hidden]),
    ]
    if two_states:
        nodes.append(helper.make_node("Concat", cs, ["Y_c"], axis=0))
        outputs.append(helper.make_tensor_value_info("Y_c", elem, [layers * dirs, "B", hidden]))
    graph = helper.make_graph(nodes, "fastlstm_peer", inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fastlstm-bench"
    )
    model.ir_version = min(model.ir_version, 9)  # readable by older onnxruntime too
    onnx.checker.check_model(model)
    return model


class OrtLSTM:
    """ONNX Runtime session of :func:`onnx_lstm_model` at a fixed thread count.

    ``run`` takes the time-major input that ONNX's LSTM wants; convert once
    with :meth:`time_major` outside any timed region (ORT gets its native
    layout, the most favourable setting for it).
    """

    def __init__(
        self, sd: StateDict, threads: int | None = None, with_lengths: bool = False,
        cell: str = "lstm",
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads must not spin into the next library's timings on a
        # small shared machine.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = onnx_lstm_model(sd, with_lengths=with_lengths, cell=cell)
        self.session = ort.InferenceSession(
            model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.with_lengths = with_lengths
        self.version = ort.__version__

    @staticmethod
    def time_major(x: np.ndarray) -> np.ndarray:
        """(B, T, I) batch-first -> C-contiguous (T, B, I)."""
        return np.ascontiguousarray(np.swapaxes(x, 0, 1))

    def run(
        self, x_tm: np.ndarray, lengths: np.ndarray | None = None
    ) -> tuple[np.ndarray, ...]:
        """Forward on time-major input: ``(Y (T,B,D*H), Y_h, Y_c)`` (no ``Y_c`` for a
        cell with h alone)."""
        feed: dict[str, np.ndarray] = {"X": x_tm}
        if self.with_lengths:
            if lengths is None:
                lengths = np.full(x_tm.shape[1], x_tm.shape[0], dtype=np.int32)
            feed["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
        return tuple(self.session.run(None, feed))

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Batch-first convenience wrapper (for parity checks, not timing)."""
        y, *states = self.run(self.time_major(x))
        return (np.swapaxes(y, 0, 1), *states)


def build_peers(
    sd: StateDict, threads: int | None, notes: list[str] | None = None, cell: str = "lstm"
) -> dict[str, Any]:
    """Build every available peer for ``sd``; append a note for each skipped one."""
    peers: dict[str, Any] = {}
    status = peer_status()
    builders: dict[str, Callable[[], Any]] = {
        "torch": lambda: TorchLSTM(sd, threads, cell=cell),
        "ort": lambda: OrtLSTM(sd, threads, cell=cell),
    }
    for name, build in builders.items():
        reason = status[name]
        if reason is None:
            try:
                peers[name] = build()
            except Exception as exc:  # a broken peer is skipped, not fatal
                reason = f"failed to build ({type(exc).__name__}: {exc})"
        if reason is not None and notes is not None:
            notes.append(f"peer {name} skipped: {reason}")
    return peers
