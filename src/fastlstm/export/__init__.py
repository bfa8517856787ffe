"""Other runtimes: ONNX and PyTorch export, streaming predictions."""
