"""Per-thread storage of what a training forward keeps for its backward.

A ``forward(..., training=True)`` saves activations (its *tape*) that the
next ``backward`` consumes.  The tape belongs to the thread that ran the
forward: a forward, predict or backward in another thread neither sees nor
replaces it, so concurrent training passes on one layer never mix their
gradients, and a backward in a thread without its own training forward fails
with a clear error.
"""

from __future__ import annotations

import threading
from typing import Any


class ThreadTape:
    """A slot holding one value per thread, read and written as the attribute ``value``.

    Used as a descriptor (``_cache = ThreadTape()`` in a class body), it gives
    every instance a per-thread attribute: reads in a thread return what that
    thread last stored (None before), writes change only that thread's value.

    Examples
    --------
    >>> import threading
    >>> from fastlstm.runtime.tape import ThreadTape
    >>> class Layer:
    ...     _cache = ThreadTape()
    >>> layer = Layer()
    >>> layer._cache = "mine"
    >>> seen = []
    >>> t = threading.Thread(target=lambda: seen.append(layer._cache))
    >>> t.start(); t.join()
    >>> seen, layer._cache
    ([None], 'mine')
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = f"_{name}_per_thread"

    def _local(self, obj: Any) -> threading.local:
        local = obj.__dict__.get(self._slot)
        if local is None:
            # setdefault is atomic under the GIL: two threads get one object
            local = obj.__dict__.setdefault(self._slot, threading.local())
        return local

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(self._local(obj), "value", None)

    def __set__(self, obj: Any, value: Any) -> None:
        self._local(obj).value = value

    def drop(self, state: dict[str, Any]) -> None:
        """Remove the per-thread storage from a ``__getstate__`` dict (it is not picklable)."""
        state.pop(self._slot, None)
