"""The deployment methods of the layers (``to_onnx``, ``to_torch``, ``from_torch``), as a mixin.

The layers inherit these thin methods; the work is in :mod:`fastlstm.export`,
which provides it through :mod:`fastlstm.runtime.hooks` (so neither torch
nor onnx is needed to import fastlstm, and nn imports nothing above it).
"""

from __future__ import annotations

import os
from typing import Any

from fastlstm.runtime import hooks

__all__ = ["LayerInterop"]


class LayerInterop:
    """``to_onnx``, ``to_torch`` and ``from_torch`` of :class:`fastlstm.LSTM` and :class:`fastlstm.RNN`."""  # noqa: E501

    def to_onnx(self, path: str | os.PathLike | None = None, *, lengths: bool = False) -> Any:
        """Export the layer's ``forward`` as an ONNX model with the standard ``LSTM``/``RNN`` operators.

        Needs the optional ``onnx`` package (``pip install 'fastlstm[onnx]'``).
        The graph's input ``x`` is ``(batch, time, input_size)`` float32 with
        dynamic batch and time; outputs ``output``, ``h_n`` (and ``c_n`` for an
        LSTM) are those of :meth:`forward` from zero initial states.  One ONNX
        node per layer (both directions in it), gates reordered to ONNX's
        i, o, f, c; opset 17; float32 (ONNX Runtime's kernels are float32 only).

        Parameters
        ----------
        path : str or path-like, optional
            Also write the model there.
        lengths : bool, default=False
            Add an int64 input ``lengths`` of shape ``(batch,)``, with the
            meaning of ``forward``'s ``lengths``.

        Returns
        -------
        model : onnx.ModelProto
            Checked with ``onnx.checker``.

        Examples
        --------
        >>> import fastlstm
        >>> layer = fastlstm.LSTM(3, 8, num_layers=2, bidirectional=True, random_state=0)
        >>> model = layer.to_onnx(lengths=True)
        >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
        (['x', 'lengths'], ['output', 'h_n', 'c_n'])
        >>> [node.op_type for node in model.graph.node if node.op_type == "LSTM"]
        ['LSTM', 'LSTM']
        """  # noqa: E501
        return hooks.call("layer_to_onnx", self, path, lengths=lengths)

    def to_torch(self) -> Any:
        """A ``torch.nn.LSTM`` (or ``nn.RNN``) with ``batch_first=True`` and this layer's weights.

        Needs PyTorch.  Parameters, names and gate order are the same in both
        libraries, so the module computes what :meth:`forward` computes (up to
        float rounding); it has the layer's dtype and dropout.

        Returns
        -------
        module : torch.nn.LSTM or torch.nn.RNN
            In eval mode, as :meth:`forward` without ``training``
            (``module.train()`` turns its dropout on).

        Examples
        --------
        >>> import numpy as np
        >>> import torch
        >>> import fastlstm
        >>> layer = fastlstm.LSTM(3, 4, random_state=0)
        >>> module = layer.to_torch()
        >>> x = np.ones((2, 5, 3), dtype=np.float32)
        >>> out, (h_n, c_n) = module(torch.from_numpy(x))
        >>> bool(np.allclose(out.detach().numpy(), layer.forward(x)[0], atol=1e-6))
        True
        """
        return hooks.call("layer_to_torch", self)

    @classmethod
    def from_torch(cls, module: Any, *, n_jobs: int | None = None,
                   random_state: Any = None) -> Any:
        """A new layer holding the weights of a ``torch.nn.LSTM`` (for ``LSTM``) or ``nn.RNN``.

        Sizes, layers, directions, dropout and dtype (float32 or float64) come
        from the module; ``batch_first`` does not matter (fastlstm is always
        batch-first).  A module built with ``bias=False`` gets zero biases;
        ``proj_size`` and ``nonlinearity="relu"`` have no equivalent and are
        refused.

        Parameters
        ----------
        module : torch.nn.LSTM or torch.nn.RNN
            The module to copy (its weights are copied, not shared).
        n_jobs : int or None, default=None
            Threads of the new layer.
        random_state : int, numpy Generator or None, default=None
            Seeds the new layer's dropout masks.

        Returns
        -------
        layer : LSTM or RNN

        Examples
        --------
        >>> import torch
        >>> import fastlstm
        >>> module = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
        >>> layer = fastlstm.LSTM.from_torch(module)
        >>> layer.hidden_size, layer.num_layers, layer.dtype.name
        (4, 2, 'float32')
        """
        return hooks.call("layer_from_torch", cls, module, n_jobs=n_jobs, random_state=random_state)
