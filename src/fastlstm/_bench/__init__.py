"""Benchmarks of fastlstm against PyTorch and ONNX Runtime (``fastlstm bench``).

Private: the command line (``fastlstm bench``) and ``bench/compare.py`` in
the source tree both run :func:`fastlstm._bench._run.main`. Peers are
optional; an absent one is reported as absent.
"""
