"""What the rest of fastlstm knows about a recurrent cell: one record per cell kind.

The driver, the engines, the memory estimate, save/load and the ONNX and
PyTorch exports read a layer's cell from its spec and name no cell
themselves.  A cell module holds its spec and its layer class; the
registry (:mod:`fastlstm.nn.registry`) maps names to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _no_init(params: Mapping[str, np.ndarray], hidden_size: int) -> None:
    """Leave PyTorch's initialisation as it is."""


@dataclass(frozen=True)
class CellSpec:
    """One kind of recurrent cell, as the layers, estimators and exports see it.

    Parameters
    ----------
    name : str
        The estimators' ``cell=`` value and the name saved in files.
    gates : int
        Gate blocks of ``hidden_size`` rows in ``W_ih``, ``W_hh`` and the
        biases, in PyTorch's order.
    states : tuple of str
        The recurrent state arrays, e.g. ``("h", "c")``.
    kernel_code : int or None
        The packed SIMD kernels' code for the cell (their ``CELL_*``
        constants), or None when they do not run it: then every dtype runs
        the cell's BLAS kernels (see :attr:`packed`).
    onnx_op : str
        The standard ONNX operator that runs the cell.
    onnx_gate_order : tuple of int
        PyTorch's gate blocks in the ONNX operator's order.
    torch_class : str
        The ``torch.nn`` class with the same parameters.
    torch_kwargs : dict
        Keyword arguments that class needs to run this cell.
    estimator_init : callable
        ``f(named_parameters, hidden_size)``, adjusting a new estimator's
        layer in place (e.g. the LSTM's open forget gates).
    folded_bias : tuple of int or None, default=None
        Gate blocks whose ``bias_hh`` is added to ``bias_ih`` in the input
        projection (None: all).  A block left out (the GRU's n, whose
        recurrent part is scaled by the reset gate) gets its ``bias_hh``
        from the cell's recurrence.
    hh_grads_apart : bool, default=False
        The recurrent weights' gate gradients differ from the input weights'
        (the GRU's n block: ``r * dn``).  The cell's backward then leaves
        them in its store (:meth:`RecurrentLayer._hh_grad_rows`), and
        ``bias_hh`` gets their sum instead of ``bias_ih``'s gradient.
    onnx_attrs : dict
        Attributes the ONNX operator needs to run this cell.
    store_blocks : int, default=0
        Blocks of ``hidden_size`` floats per row and direction that a training
        forward keeps besides the gates and the outputs (the LSTM's c_t and
        tanh(c_t): 2; the GRU's: 3), for the memory estimate.

    Examples
    --------
    >>> from fastlstm.nn.cells.lstm import SPEC
    >>> SPEC.gates, SPEC.states, SPEC.onnx_op
    (4, ('h', 'c'), 'LSTM')
    """

    name: str
    gates: int
    states: tuple[str, ...]
    kernel_code: int | None
    onnx_op: str
    onnx_gate_order: tuple[int, ...]
    torch_class: str
    torch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    estimator_init: Callable[[Mapping[str, np.ndarray], int], None] = _no_init
    folded_bias: tuple[int, ...] | None = None
    hh_grads_apart: bool = False
    onnx_attrs: Mapping[str, Any] = field(default_factory=dict)
    store_blocks: int = 0

    def to_onnx_order(self, a: np.ndarray, hidden_size: int) -> np.ndarray:
        """Rows of a stacked weight or bias in the ONNX operator's gate order."""
        order = self.onnx_gate_order
        if order == tuple(range(self.gates)):
            return a
        return np.concatenate([a[g * hidden_size:(g + 1) * hidden_size] for g in order])

    @property
    def packed(self) -> bool:
        """Whether the packed SIMD kernels run the cell (float32)."""
        return self.kernel_code is not None

    def input_bias(self, b_ih: np.ndarray, b_hh: np.ndarray, hidden_size: int) -> np.ndarray:
        """The bias added in the input projection: ``b_ih`` plus the folded blocks of ``b_hh``."""
        if self.folded_bias is None:
            return b_ih + b_hh
        bias = b_ih.copy()
        for g in self.folded_bias:
            bias[g * hidden_size:(g + 1) * hidden_size] += b_hh[g * hidden_size:
                                                                (g + 1) * hidden_size]
        return bias
