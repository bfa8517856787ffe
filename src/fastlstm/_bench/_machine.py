"""Facts about the machine for the top of the report: CPU, kernel variant, BLAS, versions."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cpu_model", "kernel_info", "machine", "machine_lines", "usable_cores"]

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                 "OPENBLAS_NUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on.

    Examples
    --------
    >>> usable_cores() >= 1
    True
    """
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``lscpu``, else ``platform``).

    Examples
    --------
    >>> isinstance(cpu_model(), str) and cpu_model() != ""
    True
    """
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def kernel_info() -> dict[str, Any]:
    """The kernel variant in use, the ones available, and its vector width.

    Examples
    --------
    >>> info = kernel_info()
    >>> info["variant"] in info["available"]
    True
    """
    from fastlstm import _kernels

    info: dict[str, Any] = {"variant": None, "available": [], "packed_width": None,
                            "forced": os.environ.get("FASTLSTM_KERNEL"), "error": None}
    try:
        info["available"] = _kernels.available_variants()
        mod = _kernels.load()
        info["variant"] = mod.__name__.rsplit("_", 1)[-1]
        info["packed_width"] = int(mod.packed_width())
    except Exception as exc:  # not built / bad FASTLSTM_KERNEL: reported, not fatal
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def _version(mod: str) -> str:
    try:
        return str(getattr(importlib.import_module(mod), "__version__", "?"))
    except Exception:  # any import failure: the peer is absent
        return "not installed"


def machine() -> dict[str, Any]:
    """CPU, cores, kernel variant, BLAS pools (threadpoolctl), versions and settings."""
    import scipy
    import scipy.linalg  # noqa: F401 - loads scipy's OpenBLAS for threadpool_info
    from threadpoolctl import threadpool_info

    import fastlstm

    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "scipy": scipy.__version__, "fastlstm": fastlstm.__version__}
    for mod in ("torch", "onnxruntime", "onnx"):
        versions[mod] = _version(mod)
    blas = [{"internal_api": i.get("internal_api"), "version": i.get("version"),
             "architecture": i.get("architecture"), "num_threads": i.get("num_threads"),
             "library": Path(i.get("filepath", "")).name} for i in threadpool_info()]
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "kernel": kernel_info(),
        "blas": blas,
        "versions": versions,
        "environment": {v: os.environ.get(v) for v in OPENBLAS_VARS},
        "load_average_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def machine_lines(m: dict[str, Any], threads: Sequence[int]) -> list[str]:
    """The machine section of the markdown report for :func:`machine`'s dict."""
    k = m["kernel"]
    if k["error"]:
        kernel = f"not usable ({k['error']})"
    else:
        width = (f"{k['packed_width']}-float vectors" if k["packed_width"]
                 else "portable BLAS kernels")
        kernel = (f"**{k['variant']}** ({width}; available: {', '.join(k['available'])}"
                  + (f"; forced by FASTLSTM_KERNEL={k['forced']}" if k["forced"] else "") + ")")
    lines = [
        "## fastlstm benchmark",
        "",
        f"- CPU: {m['cpu']}; {m['logical_cores']} logical cores, {m['usable_cores']} usable; "
        f"threads compared: {', '.join(map(str, threads))}",
        f"- fastlstm kernel variant: {kernel}",
        "- versions: " + ", ".join(f"{a} {b}" for a, b in m["versions"].items()),
    ]
    for var, val in m["environment"].items():
        lines.append(f"- {var}: " + (f"**set** ({val!r})" if val is not None else "not set"))
    if m["environment"]["OPENBLAS_CORETYPE"] or m["environment"]["OPENBLAS_L2_SIZE"]:
        lines.append("- **warning**: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE are set; sgemm runs "
                     "old kernels. Run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`.")
    lines.append("- BLAS / thread pools (threadpoolctl):")
    for b in m["blas"]:
        lines.append(f"  - {b['internal_api']} {b['version']} arch={b['architecture'] or '-'} "
                     f"num_threads={b['num_threads']} ({b['library']})")
    if m["load_average_start"] is not None:
        lines.append(f"- load average at start: {m['load_average_start']:.2f} "
                     "(the machine may be shared: > 0.5 means contention)")
    return lines
