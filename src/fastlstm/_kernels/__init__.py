"""Compiled kernels, one module per instruction-set level, picked at import.

The variant is the best one the running CPU supports; ``FASTLSTM_KERNEL``
(``base``, ``avx2``, ``avx512``) forces a lower one, e.g. to test them all.
"""

import importlib
import os

from fastlstm._kernels._cpu import cpu_level

LEVELS = ("base", "avx2", "avx512")


def available_variants() -> list[str]:
    """Return the kernel variants that are built and runnable on this CPU."""
    found = []
    for level, name in enumerate(LEVELS):
        if level > cpu_level():
            break
        try:
            importlib.import_module(f"fastlstm._kernels._cells_{name}")
        except ImportError:
            break
        found.append(name)
    return found


def load(name: str | None = None):
    """Return the kernel module ``name`` (default: ``FASTLSTM_KERNEL`` or the best)."""
    usable = available_variants()
    if not usable:
        raise ImportError("fastlstm's compiled kernels cannot be imported: the package is not "
                          "built (reinstall it with `pip install .`, which needs a C compiler)")
    name = name or os.environ.get("FASTLSTM_KERNEL") or usable[-1]
    if name not in usable:
        raise ValueError(f"kernel variant {name!r} is not available here; choose from {usable}")
    return importlib.import_module(f"fastlstm._kernels._cells_{name}")
