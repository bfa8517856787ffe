"""The recurrent cells fastlstm knows, by name: each a spec and a layer class.

A cell registers its layer class once (:mod:`fastlstm.nn` does, for the
cells it ships); everything else asks the registry.

Examples
--------
>>> from fastlstm.nn import registry
>>> registry.names()
('lstm', 'rnn', 'gru')
>>> registry.layer_class("lstm").__name__
'LSTM'
"""

from __future__ import annotations

from typing import Any

from fastlstm.nn.cells.spec import CellSpec

_LAYERS: dict[str, type] = {}


def register(layer_class: type) -> type:
    """Make ``layer_class`` (a layer with a ``spec``) known under its cell's name."""
    spec = layer_class.spec
    if not isinstance(spec, CellSpec):
        raise TypeError(f"{layer_class.__name__}.spec must be a CellSpec")
    if _LAYERS.get(spec.name, layer_class) is not layer_class:
        raise ValueError(f"a cell named {spec.name!r} is registered already")
    _LAYERS[spec.name] = layer_class
    return layer_class


def names() -> tuple[str, ...]:
    """The registered cells' names, in registration order."""
    return tuple(_LAYERS)


def layer_class(name: Any) -> type:
    """The layer class of the cell ``name``; ValueError naming the choices otherwise."""
    try:
        return _LAYERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; choose from {list(_LAYERS)}") from None


def spec(name: Any) -> CellSpec:
    """The spec of the cell ``name``."""
    return layer_class(name).spec
