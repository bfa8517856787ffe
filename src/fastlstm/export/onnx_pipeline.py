"""ONNX export of a scikit-learn ``Pipeline``: fastlstm scalers, then an estimator.

The graph is the final estimator's (:func:`fastlstm.export.onnx.estimator_to_onnx`:
same inputs, outputs and layout) with each :class:`~fastlstm.SequenceScaler`
before it folded in as a per-channel ``Sub`` of its mean and ``Div`` by its
scale on the input, broadcast along the channel axis of the scaler's layout.
These are the float32 operations ``transform`` itself performs on float32
input, so the recurrent layers receive exactly what ``Pipeline.predict``
gives them; folding the affine map into the first layer's input weights
would round differently, so it is not done.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from fastlstm.estimators import LSTMClassifier, LSTMRegressor
from fastlstm.estimators.forecaster import LSTMForecaster
from fastlstm.estimators.scaler import SequenceScaler
from fastlstm.export.onnx import estimator_to_onnx, require_onnx

__all__ = ["pipeline_to_onnx", "to_onnx"]

_ESTIMATORS = (LSTMClassifier, LSTMRegressor)


def _lone_forecaster(pipe: Any) -> Any:
    """The pipeline's LSTMForecaster when it is its only step but passthrough ones."""
    steps = [step for _, step in pipe.steps
             if not (step is None or isinstance(step, str) and step == "passthrough")]
    if len(steps) == 1 and type(steps[0]) is LSTMForecaster:
        return steps[0]
    return None


def _steps(pipe: Any) -> tuple[list[tuple[str, SequenceScaler]], Any]:
    """The pipeline's scalers (name, scaler) and its final estimator, checked."""
    from sklearn.utils.validation import check_is_fitted

    steps = [(name, step) for name, step in pipe.steps
             if not (step is None or isinstance(step, str) and step == "passthrough")]
    if not steps:
        raise TypeError("cannot export a Pipeline of passthrough steps to ONNX: it has no "
                        "fastlstm estimator")
    *scalers, (last_name, final) = steps
    if type(final) not in _ESTIMATORS:
        raise TypeError(
            f"cannot export the Pipeline to ONNX: its last step {last_name!r} is a "
            f"{type(final).__module__}.{type(final).__qualname__}, not an LSTMClassifier or "
            "LSTMRegressor (or an LSTMForecaster alone)")
    for name, step in scalers:
        if type(step) is not SequenceScaler:
            raise TypeError(
                f"cannot export the Pipeline to ONNX: its step {name!r} is a "
                f"{type(step).__module__}.{type(step).__qualname__}; an exported Pipeline is "
                "fastlstm SequenceScaler steps (or 'passthrough') followed by an "
                "LSTMClassifier or LSTMRegressor")
        check_is_fitted(step, "scale_")
    check_is_fitted(final, "network_")
    n_features = final.network_.config["n_features"]
    est_first = bool(getattr(final, "_channels_first", False))
    for name, scaler in scalers:
        n = scaler.mean_.shape[0]
        if scaler._table:
            if n_features != 1:
                raise ValueError(f"the scaler {name!r} was fitted on a 2D table (one feature "
                                 f"per step), the estimator on {n_features} features per step")
            continue
        if n != n_features:
            raise ValueError(f"the scaler {name!r} has {n} features, the estimator "
                             f"{n_features}: they cannot have been fitted together")
        if n > 1 and bool(scaler._channels_first) != est_first:
            raise ValueError(
                f"the scaler {name!r} reads X with channels_first={scaler._channels_first}, "
                f"the estimator with channels_first={est_first}: the exported graph takes "
                "one layout; fit both with the same channels_first")
    return scalers, final


def pipeline_to_onnx(pipe: Any, path: str | os.PathLike | None = None, *,
                     lengths: bool | None = None) -> Any:
    """The ONNX graph of a fitted Pipeline's ``predict`` / ``predict_proba``.

    The graph's inputs and outputs are the final estimator's
    (:meth:`fastlstm.LSTMClassifier.to_onnx`), the scalers applied to ``x``
    first.  A Pipeline of one :class:`LSTMForecaster` (and passthrough
    steps) gives the forecaster's own graph.
    """
    onnx = require_onnx()
    forecaster = _lone_forecaster(pipe)
    if forecaster is not None:
        return forecaster.to_onnx(path) if lengths is None else forecaster.to_onnx(
            path, lengths=lengths)
    scalers, final = _steps(pipe)
    model = estimator_to_onnx(final, None, lengths=lengths)
    graph = model.graph
    channels_first = bool(getattr(final, "_channels_first", False))
    nodes, initializers, current = [], [], "x"
    for i, (_, scaler) in enumerate(scalers):
        n = scaler.mean_.shape[0]
        shape = (1, n, 1) if channels_first and n > 1 else (1, 1, n)
        for op, stat, used in (("Sub", scaler.mean_, scaler.with_mean),
                               ("Div", scaler.scale_, scaler.with_std)):
            if not used:  # x - 0 and x / 1: nothing to do
                continue
            const = f"scaler{i}_{op.lower()}_constant"
            initializers.append(onnx.numpy_helper.from_array(
                np.asarray(stat, dtype=np.float32).reshape(shape), const))
            out = f"scaler{i}_{op.lower()}"
            nodes.append(onnx.helper.make_node(op, [current, const], [out]))
            current = out
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name == "x":
                node.input[j] = current
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + old)
    graph.initializer.extend(initializers)
    graph.name = "fastlstm_Pipeline"
    model.doc_string = (f"a scikit-learn Pipeline of {len(scalers)} fastlstm SequenceScaler "
                        f"step(s) and {model.doc_string}")
    onnx.checker.check_model(model)
    if path is not None:
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
    return model


def to_onnx(model: Any, path: str | os.PathLike | None = None, *,
            lengths: bool | None = None) -> Any:
    """Export a layer, a fitted estimator or a fitted Pipeline as an ONNX model.

    Needs the optional ``onnx`` package (``pip install 'fastlstm[onnx]'``).
    A layer or an estimator gives the graph of its own ``to_onnx`` method.
    A scikit-learn ``Pipeline`` of :class:`SequenceScaler` steps (or
    ``"passthrough"``) and a final :class:`LSTMClassifier` or
    :class:`LSTMRegressor` gives the final estimator's graph with the
    scalers folded in: each scaler's per-channel mean and scale are a
    float32 ``Sub`` and ``Div`` on the input ``x``, exactly the arithmetic
    ``transform`` does on float32 input, so the graph's ``label`` /
    ``probabilities`` / ``y`` match the Pipeline's ``predict`` /
    ``predict_proba`` on ``x`` (float32, shaped as the estimator's
    ``to_onnx`` documents: ``(batch, time, n_features)``, or ``(batch,
    n_features, time)`` when fitted with ``channels_first=True``).  A
    Pipeline whose only step is an :class:`LSTMForecaster` gives the
    forecaster's graph.

    Parameters
    ----------
    model : LSTM, GRU, RNN, a fitted estimator, or a fitted Pipeline
        The model to export: a layer or estimator exports as its own
        ``to_onnx`` does.
    path : str or path-like, optional
        Also write the model there.
    lengths : bool or None, default=None
        As for the estimators' ``to_onnx``: whether the graph takes the
        valid steps of each right-padded sequence as a second input,
        ``lengths``; None follows what the estimator was fitted on (a
        layer's default is no such input).

    Returns
    -------
    model : onnx.ModelProto
        Checked with ``onnx.checker``.

    Raises
    ------
    TypeError
        If ``model`` is not one of these, or a Pipeline has another step (the
        message names it).
    ValueError
        If a Pipeline's scaler and estimator disagree on the number of
        features or the input layout.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime
    >>> from sklearn.pipeline import make_pipeline
    >>> import fastlstm
    >>> X = np.random.default_rng(0).normal(10, 5, size=(60, 4, 2)).astype(np.float32)
    >>> y = np.where(X[:, -1, 0] > 10, "high", "low")
    >>> pipe = make_pipeline(fastlstm.SequenceScaler(), fastlstm.LSTMClassifier(
    ...     hidden_size=8, max_epochs=3, random_state=0)).fit(X, y)
    >>> graph = fastlstm.to_onnx(pipe)
    >>> [node.op_type for node in graph.graph.node][:3]
    ['Sub', 'Div', 'Transpose']
    >>> session = onnxruntime.InferenceSession(graph.SerializeToString())
    >>> label, proba = session.run(None, {"x": X[:5]})
    >>> bool((label == pipe.predict(X[:5])).all())
    True
    >>> bool(np.allclose(proba, pipe.predict_proba(X[:5]), atol=1e-6))
    True
    """
    from sklearn.pipeline import Pipeline

    if type(model) is Pipeline:
        return pipeline_to_onnx(model, path, lengths=lengths)
    method = getattr(model, "to_onnx", None)
    if callable(method) and type(model).__module__.startswith("fastlstm."):
        return method(path) if lengths is None else method(path, lengths=lengths)
    raise TypeError(f"to_onnx exports fastlstm layers, estimators and Pipelines of them; got "
                    f"{type(model).__module__}.{type(model).__qualname__}")
