"""Running an exported ONNX model in ONNX Runtime, after the full checker."""

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run_onnx(model, **feeds) -> dict:
    """Check ``model`` and run it on ``feeds``: outputs by name."""
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feeds), strict=True))
