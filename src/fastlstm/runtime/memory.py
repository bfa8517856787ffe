"""Memory budget: refuse work whose buffers cannot fit, before allocating anything.

A forward pass, a fit or a layer's parameters are estimated from shapes alone
(no data is copied or converted to estimate), and compared with the memory
the operating system reports as available.  When the estimate does not fit,
a :class:`MemoryError` says how much is needed and how much is available,
instead of a copy that takes minutes or a process killed by the kernel.

The estimates follow the buffers the layer allocates (:mod:`fastlstm.nn.layer`): one
number per buffer kind below, so that they are easy to keep in step with the
kernels.  They are estimates, meant to be a little generous; where the
operating system does not say how much memory is available, nothing is
refused.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = [
    "available_memory",
    "check_memory",
    "check_forward_memory",
    "check_parameter_memory",
    "forward_bytes",
    "format_bytes",
    "layer_param_bytes",
    "layer_param_count",
    "uniform_init",
]

# Bytes of bookkeeping per parameter array, besides its values: the array
# object, its dict entry and name, and the shape list of construction (about
# 360 bytes each measured at peak for the small arrays of a deep, narrow stack).
_ARRAY_OVERHEAD = 400
# Requests below this size are not checked: asking the operating system costs
# more than such a forward (streaming calls of one step would pay it each time).
ALWAYS_FITS = 64 << 20


def _read_meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_cgroup_room() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), or None."""
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as f:
            current = int(f.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available to this process now, or None when unknown.

    Linux's ``MemAvailable`` (bounded by a cgroup v2 limit when there is
    one), else ``os.sysconf``'s available physical pages.

    Examples
    --------
    >>> from fastlstm.runtime.memory import available_memory
    >>> room = available_memory()
    >>> room is None or room > 0
    True
    """
    found = [v for v in (_read_meminfo_available(), _read_cgroup_room()) if v is not None]
    if not found:
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES")
            page = os.sysconf("SC_PAGE_SIZE")
            if pages > 0 and page > 0:
                found.append(pages * page)
        except (AttributeError, OSError, ValueError):
            pass
    return min(found) if found else None


def format_bytes(n: float) -> str:
    """Human-readable size in binary units.

    Examples
    --------
    >>> from fastlstm.runtime.memory import format_bytes
    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.0 GiB', '1.5 KiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(needed: float, what: str) -> None:
    """Raise :class:`MemoryError` when ``needed`` bytes exceed the available memory.

    Requests under ``ALWAYS_FITS`` bytes are let through without asking.

    Examples
    --------
    >>> from fastlstm.runtime.memory import check_memory
    >>> check_memory(1024, "a small buffer")
    >>> try:
    ...     check_memory(2.0**60, "a huge buffer")
    ... except MemoryError as exc:
    ...     print(str(exc).split(" of memory")[0])
    a huge buffer needs about 1024.0 PiB
    """
    if needed < ALWAYS_FITS:
        return
    room = available_memory()
    if room is not None and needed > room:
        raise MemoryError(
            f"{what} needs about {format_bytes(needed)} of memory, but only "
            f"{format_bytes(room)} is available; use smaller batches, shorter sequences "
            "or a smaller model"
        )


def layer_param_count(input_size: int, hidden_size: int, num_layers: int, directions: int,
                      gates: int) -> int:
    """Parameters of a recurrent stack, from its sizes alone (no loop over the layers).

    The first layer reads ``input_size`` features, every later one the
    ``directions * hidden_size`` outputs of the layer below; each direction of
    each layer has ``weight_ih``, ``weight_hh``, ``bias_ih`` and ``bias_hh``
    with ``gates * hidden_size`` rows.

    Parameters
    ----------
    input_size, hidden_size, num_layers : int
        The layer's sizes.
    directions : int
        1, or 2 when bidirectional.
    gates : int
        Gate blocks of ``hidden_size`` rows (4 for the LSTM, 1 for the RNN).

    Returns
    -------
    int
        The number of parameters; exact for any ``num_layers``, at the cost
        of a few multiplications.

    Examples
    --------
    >>> from fastlstm.runtime.memory import layer_param_count
    >>> layer_param_count(2, 3, 1, 1, 4)  # 4*3*(2+3+2)
    84
    >>> layer_param_count(1, 1, 10**12, 1, 4)  # 16 per layer after the first
    16000000000000
    """
    G = directions * gates * hidden_size
    first = G * (input_size + hidden_size + 2)
    later = G * (directions * hidden_size + hidden_size + 2)
    return first + (num_layers - 1) * later


def layer_param_bytes(input_size: int, hidden_size: int, num_layers: int, directions: int,
                      gates: int, dtype: Any) -> float:
    """Estimated bytes of a recurrent layer's parameters, their arrays' bookkeeping included.

    Parameters
    ----------
    input_size, hidden_size, num_layers, directions, gates
        As :func:`layer_param_count`.
    dtype : dtype
        Precision of the parameters.

    Returns
    -------
    float
        Bytes; linear in ``num_layers`` and computed in constant time.

    Examples
    --------
    >>> from fastlstm.runtime.memory import layer_param_bytes
    >>> layer_param_bytes(2, 3, 1, 1, 4, "float32")  # 84 values, 4 arrays
    1936.0
    """
    values = float(layer_param_count(input_size, hidden_size, num_layers, directions, gates))
    arrays = 4.0 * directions * num_layers
    return values * np.dtype(dtype).itemsize + arrays * _ARRAY_OVERHEAD


def check_parameter_memory(layer: Any) -> None:
    """Refuse a layer whose parameters alone do not fit, before allocating them.

    Parameters
    ----------
    layer : RecurrentLayer
        A layer whose sizes, dtype and cell are set but whose parameters are
        not yet drawn.  The estimate is arithmetic, so that an absurd
        ``hidden_size`` or ``num_layers`` is refused in microseconds.

    Raises
    ------
    MemoryError
        When the parameters need more than the available memory.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import numpy as np
    >>> from fastlstm.runtime.memory import check_parameter_memory
    >>> sizes = dict(input_size=1, hidden_size=1, num_directions=1, _gates=4,
    ...              dtype=np.dtype("float32"))
    >>> check_parameter_memory(SimpleNamespace(num_layers=2, **sizes))
    >>> try:
    ...     check_parameter_memory(SimpleNamespace(num_layers=10**15, **sizes))
    ... except MemoryError as exc:
    ...     print(str(exc).split(" needs")[0])
    a layer with 16,000,000,000,000,000 parameters in 1,000,000,000,000,000 layers
    """
    args = (layer.input_size, layer.hidden_size, layer.num_layers, layer.num_directions,
            layer._gates)
    needed = layer_param_bytes(*args, layer.dtype)
    n = layer_param_count(*args)
    what = f"a layer with {n:,} parameters"
    if layer.num_layers > 1:
        what += f" in {layer.num_layers:,} layers"
    check_memory(needed, what)


def uniform_init(rng: np.random.Generator, bound: float, shape: tuple[int, ...],
                 dtype: Any, chunk: int = 1 << 16) -> np.ndarray:
    """``rng.uniform(-bound, bound, shape).astype(dtype)`` without the float64 temporary.

    Draws in chunks, so that the values (and the generator's state afterwards)
    are exactly those of the one-shot call, while memory stays at the result
    plus one chunk.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.runtime.memory import uniform_init
    >>> a = uniform_init(np.random.default_rng(0), 0.5, (3, 5), np.float32, chunk=4)
    >>> b = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 5)).astype(np.float32)
    >>> bool((a == b).all()), a.dtype
    (True, dtype('float32'))
    """
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for lo in range(0, flat.size, chunk):
        hi = min(flat.size, lo + chunk)
        flat[lo:hi] = rng.uniform(-bound, bound, hi - lo)
    return out


def forward_bytes(layer: Any, batch: int, steps: int, training: bool,
                  input_copies: int = 2) -> float:
    """Estimated peak bytes of one ``layer.forward`` (and its backward, when training).

    Parameters
    ----------
    layer : RecurrentLayer
        Gives sizes, dtype and the number of gate blocks and carried states.
    batch, steps : int
        Shape of the batch.
    training : bool
        Training keeps every layer's activations for backward.
    input_copies : int, default=2
        Copies of the input made at entry (cast, time-major).

    Examples
    --------
    >>> from fastlstm import LSTM
    >>> from fastlstm.runtime.memory import forward_bytes
    >>> layer = LSTM(8, 16)
    >>> forward_bytes(layer, 4, 10, training=True) > forward_bytes(layer, 4, 10, training=False)
    True
    """
    s = layer.dtype.itemsize
    rows = float(batch) * float(steps)
    H, D, L = layer.hidden_size, layer.num_directions, layer.num_layers
    G = layer._gates * H
    # what the cell keeps for backward besides its gates (CellSpec.store_blocks)
    stored = H * getattr(layer, "_store_blocks", 1 if len(layer._states) > 1 else 0)
    total = input_copies * rows * layer.input_size * s
    # Per layer: its output, gates per direction and the cell's stored states;
    # the layers after the first also have dropout's buffers and read D*H
    # inputs.  In closed form, so that the estimate costs the same for any L.
    first = rows * (D * H + D * G + D * stored) * s
    first_in = rows * layer.input_size * s
    later = first
    if training and layer.dropout > 0:
        later += rows * D * H * (2 * s + 1)                # mask, masked input, boolean draw
    later_in = rows * D * H * s
    if training:
        total += first + (L - 1) * later
        # backward: output gradient, input gradient of a layer, and their user copies
        widest_in = max(first_in, later_in) if L > 1 else first_in
        total += 2 * (rows * D * H * s + widest_in)
    else:
        total += max(first + first_in, later + later_in) if L > 1 else first + first_in
    total += 2 * rows * D * H * s                          # the output, in user order
    return total


def check_forward_memory(layer: Any, x: np.ndarray, training: bool) -> None:
    """Refuse a forward whose buffers cannot fit, before the input is copied."""
    batch, steps = x.shape[0], x.shape[1]
    copies = 1 if x.dtype == layer.dtype and x.flags.c_contiguous else 2
    needed = forward_bytes(layer, batch, steps, training, input_copies=copies)
    what = "training forward and backward" if training else "forward"
    check_memory(needed, f"this {what} (batch {batch}, {steps} steps, hidden_size "
                         f"{layer.hidden_size})")
