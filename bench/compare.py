"""Compare fastlstm with PyTorch and ONNX Runtime on this machine.

Run (see bench/README.md for why the environment variables are unset)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py --quick \\
        --markdown results.md --plot results.png

Prints a markdown report (or JSON with ``--json``): machine and library facts
(CPU model, kernel variant, BLAS), the sgemm and FMA peaks of this run, the
dense-shape table (forward and forward+backward times, GFLOP/s and % of the
peaks, peer ratios > 1 meaning fastlstm is faster), ragged batches, streaming
single steps, the memory of one training step, and whole fits of the
estimators against the same model in a plain PyTorch loop (time and test
accuracy). The figures to expect are in docs/performance.md.

The machinery lives in the package (``fastlstm._bench``) so that the installed
``fastlstm bench`` command runs the same code; this script only differs in
keeping all six default cases, the memory section and (with fewer epochs on
smaller sets) the whole fits under ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import fastlstm._bench._run as _run
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastlstm._bench._run as _run

if __name__ == "__main__":
    raise SystemExit(_run.main(prog="compare.py", quick_cases=False))
