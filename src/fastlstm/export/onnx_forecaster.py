"""ONNX export of a fitted :class:`LSTMForecaster`: the window scaling in the graph.

The graph takes the raw last ``window`` values of each series and returns
the forecast in the series' units: the per-window reference and the fitted
spreads (:mod:`fastlstm.train.windows`) are float64 nodes before the inner
regressor's graph (:func:`fastlstm.export.onnx.estimator_to_onnx`, whose
input ``x`` they feed) and after its output.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastlstm.export.onnx import _Graph, estimator_to_onnx, require_onnx

__all__ = ["forecaster_to_onnx"]


def forecaster_to_onnx(est: Any, path: str | os.PathLike | None = None) -> Any:
    """The ONNX graph of a fitted forecaster's next ``steps`` values (see its ``to_onnx``)."""
    onnx = require_onnx()
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "spec_")
    if est.per_series:
        raise ValueError("to_onnx exports one model; this forecaster is a fleet of "
                         f"{len(est.models_)}: export a member as a forecaster of its own.")
    spec, scaling = est.spec_, est.scaling_
    model = estimator_to_onnx(est.regressor_, lengths=False)
    graph = model.graph
    g = _Graph(onnx)
    g._n = 10_000  # names of their own: the regressor's graph counts from 1
    tp, make = onnx.TensorProto, onnx.helper.make_tensor_value_info
    w, k, c, steps = spec.window, spec.n_targets, spec.n_covariates, spec.steps
    has_future = len(spec.future_columns) > 0
    inputs = [make("y", tp.DOUBLE, ["batch", w, k])]

    def const(value: Any, stem: str, dtype: Any = np.float64) -> str:
        return g.const(np.asarray(value, dtype=dtype), stem)

    def zeros(batch: str, rows: int, cols: int) -> str:
        shape = g.one("Concat", [batch, const([rows, cols], "dims", np.int64)], axis=0)
        return g.one("ConstantOfShape", [shape],
                     value=onnx.numpy_helper.from_array(np.zeros(1, np.float64)))

    batch = g.one("Slice", [g.one("Shape", ["y"]), const([0], "s", np.int64),
                            const([1], "e", np.int64)])
    if scaling.method == "last":
        ref = g.one("Slice", ["y", const([w - 1], "s", np.int64), const([w], "e", np.int64),
                              const([1], "a", np.int64)])                     # (B, 1, k)
    elif scaling.method == "mean":
        ref = g.one("ReduceMean", ["y"], axes=[1], keepdims=1)
    else:
        ref = const(scaling.target_mean.reshape(1, 1, k), "target_mean")
    scale = const(scaling.target_scale, "target_scale")
    parts = [g.one("Div", [g.one("Sub", ["y", ref]), scale])]               # (B, W, k)
    future_parts = [zeros(batch, steps, k)] if has_future else []
    if c:
        n_rows = w + steps if has_future else w
        inputs.append(make("X", tp.DOUBLE, ["batch", n_rows, c]))
        cov = g.one("Div", [g.one("Sub", ["X", const(scaling.covariate_mean, "cov_mean")]),
                            const(scaling.covariate_scale, "cov_scale")])
        parts.append(g.one("Slice", [cov, const([0], "s", np.int64), const([w], "e", np.int64),
                                     const([1], "a", np.int64)]))
        if has_future:
            future = g.one("Slice", [cov, const([w], "s", np.int64),
                                     const([w + steps], "e", np.int64),
                                     const([1], "a", np.int64)])
            mask = np.zeros(c, dtype=bool)
            mask[spec.future_columns] = True  # past-only columns of forecast rows: not read
            future_parts.append(g.one("Where", [const(mask, "future_mask", bool), future,
                                                const(0.0, "zero")]))
    if has_future:
        parts.append(zeros(batch, w, 1))
        future_parts.append(g.one("Add", [zeros(batch, steps, 1), const(1.0, "one")]))
        window_part = g.one("Concat", parts, axis=2)
        x = g.one("Concat", [window_part, g.one("Concat", future_parts, axis=2)], axis=1)
    else:
        x = g.one("Concat", parts, axis=2) if len(parts) > 1 else parts[0]
    net_x = g.one("Cast", [x], to=tp.FLOAT)
    # the regressor's graph, reading net_x where it read its input x
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name == "x":
                node.input[j] = net_x
        for j, name in enumerate(node.output):
            if name == "y":
                node.output[j] = "net_y"
    pre = list(g.nodes)
    g.nodes.clear()
    out = g.one("Reshape", ["net_y", const([0, steps, k], "shape", np.int64)])
    g.node("Add", [g.one("Mul", [out, scale]), ref], outputs=["forecast"])
    nodes = pre + list(graph.node) + g.nodes
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(g.initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.output[:]
    graph.output.extend([make("forecast", tp.DOUBLE, ["batch", steps, k])])
    graph.name = "fastlstm_LSTMForecaster"
    what = ("the next value (feed it back for longer forecasts)" if est.strategy == "recursive"
            else f"the next {steps} values")
    model.doc_string = (
        f"fastlstm.LSTMForecaster exported by fastlstm; y: the last {w} values of each series "
        f"(float64, (batch, {w}, {k}))" + (f"; X: their covariates, then the {steps} forecast "
                                          "rows'" if has_future else
                                          "; X: their covariates" if c else "")
        + f"; forecast: {what}, (batch, {steps}, {k}), in the series' units")
    onnx.checker.check_model(model)
    if path is not None:
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
    return model
