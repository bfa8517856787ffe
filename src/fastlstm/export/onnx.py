"""ONNX export of layers and fitted estimators with the standard ``LSTM``/``RNN`` operators.

Each recurrent layer becomes one ONNX ``LSTM`` (or ``RNN``) node, both
directions in one node when bidirectional.  ONNX orders the gate blocks
i, o, f, c where PyTorch and fastlstm order them i, f, g, o, so the rows of
``W``, ``R`` and the biases are permuted on export.  The graph is
batch-first outside (``x`` is ``(batch, time, features)``, both axes dynamic)
and time-major inside, which is what ONNX Runtime's kernels accept.

The graph computes in float32 even for float64 models (ONNX Runtime's
``LSTM`` and ``RNN`` kernels are float32 only); the estimators' outputs
(probabilities, un-scaled regression targets) are computed in float64 from
the readout, as ``predict_proba`` and ``predict`` do.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastlstm._version import __version__

__all__ = ["estimator_to_onnx", "layer_to_onnx"]

OPSET = 17
IR_VERSION = 8  # the IR of opset 17, read by ONNX Runtime 1.13 and later


def require_onnx() -> Any:
    """Import ``onnx``, or raise an ImportError that names the extra to install."""
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs the optional 'onnx' package: pip install 'fastlstm[onnx]' "
            "(installs onnx and onnxruntime)") from exc
    return onnx


class _Graph:
    """Nodes, constants and names of the graph being built."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: np.ndarray, stem: str) -> str:
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, outputs: list[str] | None = None,
             **attrs: Any) -> list[str]:
        outs = outputs or [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, inputs, outs, **attrs))
        return outs

    def one(self, op: str, inputs: list[str], **attrs: Any) -> str:
        return self.node(op, inputs, **attrs)[0]


def _recurrent(g: _Graph, layer: Any, x_tm: str, seq_lens: str
               ) -> tuple[str, list[str], list[str]]:
    """The layer's nodes on time-major ``x_tm``: (output (T, B, D*H), [h_n per layer],
    [c_n per layer])."""
    sd = {k: np.asarray(v, dtype=np.float32) for k, v in layer.state_dict().items()}
    h, d = layer.hidden_size, 2 if layer.bidirectional else 1
    spec = layer.spec  # the cell's ONNX operator and its gate order
    op, order = spec.onnx_op, spec.to_onnx_order
    two_states = len(spec.states) == 2
    cur, hs, cs = x_tm, [], []
    shape_tbd = g.const(np.array([0, 0, -1], dtype=np.int64), "shape_tb_flat")
    for i in range(layer.num_layers):
        sfx = [f"_l{i}" + ("_reverse" if j else "") for j in range(d)]
        w = np.stack([order(sd[f"weight_ih{s}"], h) for s in sfx])
        r = np.stack([order(sd[f"weight_hh{s}"], h) for s in sfx])
        b = np.stack([np.concatenate([order(sd[f"bias_ih{s}"], h),
                                      order(sd[f"bias_hh{s}"], h)]) for s in sfx])
        inputs = [cur, g.const(w, f"W{i}"), g.const(r, f"R{i}"), g.const(b, f"B{i}"), seq_lens]
        n_out = 1 + len(spec.states)  # Y, then one final state per state array
        outs = g.node(op, inputs, n_out=n_out, hidden_size=h,
                      direction="bidirectional" if d == 2 else "forward", **spec.onnx_attrs)
        hs.append(outs[1])
        if two_states:
            cs.append(outs[2])
        # Y is (T, D, B, H): to (T, B, D*H), the next layer's input
        cur = g.one("Reshape", [g.one("Transpose", [outs[0]], perm=[0, 2, 1, 3]), shape_tbd])
    return cur, hs, cs


def _inputs(g: _Graph, n_features: int, lengths: bool,
            channels_first: bool = False) -> tuple[list, str, str]:
    """Graph inputs; the time-major input and the ``sequence_lens`` name ("" if none).

    ``x`` is ``(batch, time, n_features)``, or ``(batch, n_features, time)``
    for an estimator fitted with ``channels_first=True``.
    """
    helper, tp = g.onnx.helper, g.onnx.TensorProto
    dims = ["batch", n_features, "time"] if channels_first else ["batch", "time", n_features]
    inputs = [helper.make_tensor_value_info("x", tp.FLOAT, dims)]
    x_tm = g.one("Transpose", ["x"], perm=[2, 0, 1] if channels_first else [1, 0, 2])
    seq_lens = ""
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", tp.INT64, ["batch"]))
        seq_lens = g.one("Cast", ["lengths"], to=tp.INT32)
    return inputs, x_tm, seq_lens


def _model(g: _Graph, inputs: list, outputs: list, name: str, doc: str) -> Any:
    onnx = g.onnx
    graph = onnx.helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="fastlstm", producer_version=__version__, doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _write(model: Any, path: str | os.PathLike | None) -> Any:
    if path is not None:
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
    return model


def layer_to_onnx(layer: Any, path: str | os.PathLike | None = None, *,
                  lengths: bool = False) -> Any:
    """The ONNX graph of ``layer.forward(x[, lengths])``: outputs ``output``, ``h_n``
    (and ``c_n`` for an LSTM), shaped as ``forward`` returns them."""
    onnx = require_onnx()
    g = _Graph(onnx)
    inputs, x_tm, seq_lens = _inputs(g, layer.input_size, lengths)
    out_tm, hs, cs = _recurrent(g, layer, x_tm, seq_lens)
    g.node("Transpose", [out_tm], outputs=["output"], perm=[1, 0, 2])
    g.node("Concat", hs, outputs=["h_n"], axis=0)
    tp, make = onnx.TensorProto, onnx.helper.make_tensor_value_info
    dh = layer.num_directions * layer.hidden_size
    states = ["num_layers_x_directions", "batch", layer.hidden_size]
    outputs = [make("output", tp.FLOAT, ["batch", "time", dh]), make("h_n", tp.FLOAT, states)]
    if cs:
        g.node("Concat", cs, outputs=["c_n"], axis=0)
        outputs.append(make("c_n", tp.FLOAT, states))
    model = _model(g, inputs, outputs, f"fastlstm_{type(layer).__name__}",
                   f"fastlstm.{type(layer).__name__} exported by fastlstm")
    return _write(model, path)


def estimator_to_onnx(est: Any, path: str | os.PathLike | None = None, *,
                      lengths: bool | None = None) -> Any:
    """The ONNX graph of a fitted estimator's ``predict`` / ``predict_proba``.

    ``lengths=None`` adds the ``lengths`` input when the estimator was fitted
    on sequences of different lengths (``_fit_variable_lengths``; absent, as
    in models from before it was recorded: no input).
    """
    onnx = require_onnx()
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "network_")
    if lengths is None:
        lengths = bool(getattr(est, "_fit_variable_lengths", False))
    net = est.network_
    cfg = net.config
    g = _Graph(onnx)
    tp, make = onnx.TensorProto, onnx.helper.make_tensor_value_info
    inputs, x_tm, seq_lens = _inputs(g, cfg["n_features"], lengths,
                                     bool(getattr(est, "_channels_first", False)))
    out_tm, hs, _ = _recurrent(g, net.layer, x_tm, seq_lens)
    if cfg["sequence_output"]:
        feats = g.one("Transpose", [out_tm], perm=[1, 0, 2])           # (B, T, D*H)
    else:
        # the last layer's final states (D, B, H), directions side by side: (B, D*H)
        last = g.one("Transpose", [hs[-1]], perm=[1, 0, 2])
        feats = g.one("Reshape", [last, g.const(np.array([0, -1], dtype=np.int64), "shape")])
    w_t = np.ascontiguousarray(np.asarray(net.weight, dtype=np.float32).T)
    logits = g.one("Add", [g.one("MatMul", [feats, g.const(w_t, "head_weight_t")]),
                           g.const(np.asarray(net.bias, dtype=np.float32), "head_bias")])
    scores = g.one("Cast", [logits], to=tp.DOUBLE)
    k = cfg["n_outputs"]
    if est._kind == "classifier":
        g.node("Softmax", [scores], outputs=["probabilities"], axis=-1)
        index = g.one("ArgMax", [logits], axis=-1, keepdims=0)
        classes = np.asarray(est.classes_)
        if classes.dtype.kind in "US":
            table, label_type = classes.astype(str).astype(object), tp.STRING
        elif classes.dtype.kind in "iu":
            table, label_type = classes.astype(np.int64), tp.INT64
        elif classes.dtype.kind == "b":
            table, label_type = classes, tp.BOOL
        else:
            table, label_type = classes.astype(np.float64), tp.DOUBLE
        g.node("Gather", [g.const(table, "classes"), index], outputs=["label"])
        outputs = [make("label", label_type, ["batch"]),
                   make("probabilities", tp.DOUBLE, ["batch", k])]
        doc = ("label: the predicted class (predict); probabilities: one column per class "
               "of classes_ (predict_proba)")
    else:
        scaled = g.one("Add", [g.one("Mul", [scores, g.const(est._y_scale, "y_scale")]),
                               g.const(est._y_mean, "y_mean")])
        dims = ["batch", "time"] if cfg["sequence_output"] else ["batch"]
        if est._y_single:
            g.node("Squeeze", [scaled, g.const(np.array([-1], dtype=np.int64), "axes")],
                   outputs=["y"])
        else:
            g.node("Identity", [scaled], outputs=["y"])
            dims.append(k)
        outputs = [make("y", tp.DOUBLE, dims)]
        doc = "y: the predictions of predict, in the units of the training targets"
        if cfg["sequence_output"] and lengths:
            doc += " (steps at or past a sequence's length are padding: ignore them)"
    name = type(est).__name__
    return _write(_model(g, inputs, outputs, f"fastlstm_{name}",
                         f"fastlstm.{name} exported by fastlstm; {doc}"), path)
