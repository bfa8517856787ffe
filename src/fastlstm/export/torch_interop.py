"""PyTorch interop: layers to and from ``torch.nn.LSTM``/``nn.RNN``, estimators to a module.

fastlstm's layers carry PyTorch's parameter names, shapes and gate order, so
a layer moves by its ``state_dict``.  A fitted estimator becomes a
:class:`SequenceModule`: the recurrent module, the linear readout, and the
target un-scaling of a regressor (or the softmax of a classifier), giving
what ``predict`` / ``predict_proba`` give.  torch is imported only when one
of these functions runs; the module class is made on first use and is
reachable as ``fastlstm.export.torch_interop.SequenceModule``, so that ``torch.save`` of
a whole module and ``torch.load`` of it work.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["estimator_to_torch", "layer_from_torch", "layer_to_torch"]


def require_torch() -> Any:
    """Import torch, or raise an ImportError saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            "PyTorch interop needs the optional 'torch' package: pip install torch "
            "(the CPU build is enough)") from exc
    return torch


def _torch_dtype(torch: Any, dtype: Any) -> Any:
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _layer_module(torch: Any, spec: Any, input_size: int, hidden_size: int, num_layers: int,
                  bidirectional: bool, dropout: float, dtype: Any,
                  state_dict: dict[str, np.ndarray]) -> Any:
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=True,
                  # PyTorch warns about dropout on a single layer, where it does nothing
                  dropout=dropout if num_layers > 1 else 0.0, **spec.torch_kwargs)
    module = getattr(torch.nn, spec.torch_class)(input_size, hidden_size, **kwargs)
    module = module.to(_torch_dtype(torch, dtype))
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()})
    return module


def layer_to_torch(layer: Any) -> Any:
    """A ``torch.nn.LSTM`` / ``nn.RNN`` (``batch_first=True``) holding ``layer``'s weights."""
    torch = require_torch()
    module = _layer_module(torch, layer.spec, layer.input_size, layer.hidden_size, layer.num_layers,
                           layer.bidirectional, layer.dropout, layer.dtype, layer.state_dict())
    return module.eval()  # as forward(training=False): no dropout until module.train()


def layer_from_torch(cls: type, module: Any, *, n_jobs: int | None = None,
                     random_state: Any = None) -> Any:
    """A new ``cls`` (LSTM or RNN) holding the weights of a ``torch.nn.LSTM`` / ``nn.RNN``."""
    torch = require_torch()
    want = getattr(torch.nn, cls.spec.torch_class)
    if not isinstance(module, want):
        raise TypeError(f"{cls.__name__}.from_torch expects a torch.nn.{want.__name__}, got "
                        f"{type(module).__module__}.{type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"an LSTM with proj_size={module.proj_size} has no fastlstm "
                         "equivalent (fastlstm.LSTM has no projection)")
    for name, value in cls.spec.torch_kwargs.items():
        if getattr(module, name, value) != value:
            raise ValueError(f"fastlstm.{cls.__name__} is the {name}={value!r} "
                             f"{cls.spec.torch_class}; this module has "
                             f"{name}={getattr(module, name)!r}")
    dtypes = {p.dtype for p in module.parameters()}
    if dtypes - {torch.float32, torch.float64} or len(dtypes) != 1:
        raise TypeError(f"the module's parameters must all be float32 or all float64, got "
                        f"{sorted(str(d) for d in dtypes)}; convert it with module.float()")
    dtype = "float64" if dtypes == {torch.float64} else "float32"
    layer = cls(module.input_size, module.hidden_size, num_layers=module.num_layers,
                bidirectional=module.bidirectional, dropout=float(module.dropout),
                dtype=dtype, n_jobs=n_jobs, random_state=random_state)
    state = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    if not module.bias:  # no bias parameters in torch: zero biases here
        for name, value in layer.named_parameters().items():
            if name.startswith("bias_"):
                state[name] = np.zeros_like(value)
    layer.load_state_dict(state)
    return layer


_MODULE_CLASS: Any = None


def _module_class() -> type:
    """Define :class:`SequenceModule` (a ``torch.nn.Module`` subclass) on first use."""
    global _MODULE_CLASS
    if _MODULE_CLASS is not None:
        return _MODULE_CLASS
    torch = require_torch()
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class SequenceModule(torch.nn.Module):
        """A fitted fastlstm estimator as a module: recurrent layer, readout, output map.

        ``forward(x, lengths=None)`` takes a batch-first ``x`` (batch, time,
        features), or (batch, features, time) when ``channels_first`` (an
        estimator fitted with ``channels_first=True``), and optional
        ``lengths`` (batch,) and returns what the
        estimator's ``predict_proba`` (classifier) or ``predict``
        (regressor) returns for the same sequences, as a tensor; ``logits``
        gives the readout before the softmax or the un-scaling.
        """

        def __init__(self, rnn: Any, head: Any, kind: str, sequence_output: bool,
                     y_mean: np.ndarray | None, y_scale: np.ndarray | None,
                     y_single: bool, channels_first: bool = False) -> None:
            super().__init__()
            self.channels_first = channels_first
            self.rnn = rnn
            self.head = head
            self.kind = kind
            self.sequence_output = sequence_output
            self.y_single = y_single
            if y_mean is not None:
                self.register_buffer("y_mean", torch.from_numpy(np.array(y_mean)))
                self.register_buffer("y_scale", torch.from_numpy(np.array(y_scale)))

        def logits(self, x: Any, lengths: Any = None) -> Any:
            if getattr(self, "channels_first", False):  # modules pickled before it: False
                x = x.transpose(1, 2)
            if lengths is None:
                out, state = self.rnn(x)
            else:
                packed = pack_padded_sequence(x, torch.as_tensor(lengths).cpu(),
                                              batch_first=True, enforce_sorted=False)
                out, state = self.rnn(packed)
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            h_n = state[0] if isinstance(state, tuple) else state
            if self.sequence_output:
                feats = out
            elif self.rnn.bidirectional:
                feats = torch.cat([h_n[-2], h_n[-1]], dim=1)
            else:
                feats = h_n[-1]
            return self.head(feats)

        def forward(self, x: Any, lengths: Any = None) -> Any:
            z = self.logits(x, lengths)
            if self.kind == "classifier":
                return torch.softmax(z.double(), dim=-1)
            y = z.to(self.y_scale.dtype) * self.y_scale + self.y_mean
            return y[..., 0] if self.y_single else y

    SequenceModule.__module__ = __name__
    SequenceModule.__qualname__ = "SequenceModule"
    _MODULE_CLASS = SequenceModule
    return SequenceModule


def __getattr__(name: str) -> Any:
    # pickle (torch.save of a whole module) finds the class by this name
    if name == "SequenceModule":
        return _module_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def estimator_to_torch(est: Any) -> Any:
    """A :class:`SequenceModule` reproducing a fitted estimator's predictions."""
    torch = require_torch()
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "network_")
    net = est.network_
    c = net.config
    rnn = _layer_module(torch, net.layer.spec, c["n_features"], c["hidden_size"], c["num_layers"],
                        c["bidirectional"], c["dropout"], c["dtype"], net.layer.state_dict())
    head = torch.nn.Linear(net.weight.shape[1], net.weight.shape[0])
    head = head.to(_torch_dtype(torch, c["dtype"]))
    head.load_state_dict({"weight": torch.from_numpy(np.array(net.weight)),
                          "bias": torch.from_numpy(np.array(net.bias))})
    regressor = est._kind == "regressor"
    module = _module_class()(
        rnn, head, est._kind, bool(c["sequence_output"]),
        est._y_mean if regressor else None, est._y_scale if regressor else None,
        bool(est._y_single) if regressor else False,
        channels_first=bool(getattr(est, "_channels_first", False)))
    return module.eval()
