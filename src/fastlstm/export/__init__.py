"""Other runtimes: ONNX and PyTorch export, streaming predictions.

Importing this package provides its functions to the layers' and
estimators' methods (:mod:`fastlstm.runtime.hooks`); ``import fastlstm``
does that.  onnx and torch themselves are imported only when an export runs.
"""

from fastlstm.export import onnx, onnx_forecaster, streaming, torch_interop
from fastlstm.runtime import hooks

for _name, _fn in {
    "layer_to_onnx": onnx.layer_to_onnx,
    "estimator_to_onnx": onnx.estimator_to_onnx,
    "forecaster_to_onnx": onnx_forecaster.forecaster_to_onnx,
    "layer_to_torch": torch_interop.layer_to_torch,
    "layer_from_torch": torch_interop.layer_from_torch,
    "estimator_to_torch": torch_interop.estimator_to_torch,
    "predict_step": streaming.predict_step,
}.items():
    hooks.provide(_name, _fn)
