"""Work that a higher layer provides to methods defined lower down.

The layers' and estimators' ``to_onnx``, ``to_torch`` and ``predict_step``
are methods of classes in :mod:`fastlstm.nn` and :mod:`fastlstm.estimators`,
while the work is done in :mod:`fastlstm.export`, above them.  The export
package provides its functions here when it is imported (``import
fastlstm`` does), so no lower layer imports a higher one.

Examples
--------
>>> import fastlstm
>>> from fastlstm.runtime import hooks
>>> "layer_to_onnx" in hooks.provided()
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_PROVIDED: dict[str, Callable[..., Any]] = {}


def provide(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` the work behind ``name``."""
    _PROVIDED[name] = fn


def provided() -> tuple[str, ...]:
    """The names provided so far."""
    return tuple(_PROVIDED)


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run the work behind ``name``."""
    try:
        fn = _PROVIDED[name]
    except KeyError:
        raise RuntimeError(f"{name} is provided by fastlstm.export, which is imported by "
                           "`import fastlstm`; import the package first") from None
    return fn(*args, **kwargs)
