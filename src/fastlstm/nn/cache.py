"""What a training forward keeps for the backward, layer by layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Cache:
    """What a training forward keeps for backward (buffers padded to T * B rows with
    a ``_Plan``, packed sequences with a ``_ragged.RaggedPlan``)."""

    plan: Any
    inputs: list[np.ndarray] = field(default_factory=list)   # per layer, (T, B, I_l)
    masks: list[np.ndarray | None] = field(default_factory=list)  # dropout on inputs
    outputs: list[np.ndarray] = field(default_factory=list)  # per layer, (T, B, D*H)
    gates: list[list[np.ndarray]] = field(default_factory=list)    # [layer][dir]
    stores: list[list[Any]] = field(default_factory=list)   # [layer][dir], cell-specific
    initial: list[list[list[np.ndarray | None]]] = field(default_factory=list)  # [layer][dir][k]

    def keep(self, layer_in: np.ndarray, mask: np.ndarray | None, out: np.ndarray,
             gates: list[np.ndarray], stores: list[Any],
             initial: list[list[np.ndarray | None]]) -> None:
        """Record one layer's tape, in layer order."""
        self.inputs.append(layer_in)
        self.masks.append(mask)
        self.outputs.append(out)
        self.gates.append(gates)
        self.stores.append(stores)
        self.initial.append(initial)
