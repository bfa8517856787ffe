"""Training machinery: losses, the readout head, and ``train_epochs``.

The loop itself is :class:`fastlstm.train.trainer.Trainer` (train step, epoch,
events, with early stopping, rollback, history and progress as its hooks);
the progress reports are in :mod:`fastlstm.train.progress`.

Everything here is plain NumPy and costs O(parameters) or O(batch x outputs)
per step; the O(sequence) work is the layer's.  The estimators
(:mod:`fastlstm.estimators`) put these pieces together; nothing here knows about
scikit-learn conventions beyond warnings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastlstm.nn import registry
from fastlstm.nn.params import _checked_params
from fastlstm.runtime.tape import ThreadTape
from fastlstm.train.flat import FlatParameters
from fastlstm.train.losses import step_weights
from fastlstm.train.progress import Progress
from fastlstm.train.sequences import Sequences, length_batches
from fastlstm.train.trainer import Trainer, standard_hooks

__all__ = [
    "SequenceNet",
    "TrainState",
    "Progress",
    "softmax",
    "softmax_cross_entropy",
    "squared_error",
    "predict_outputs",
    "train_epochs",
]


# ---------------------------------------------------------------- losses
def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.network import softmax
    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).round(3)
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def softmax_cross_entropy(
    logits: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Weighted mean softmax cross-entropy and its gradient.

    ``loss = sum_i w_i * -log softmax(logits_i)[y_i] / sum_i w_i`` (the
    normalization scikit-learn's MLP uses); a batch whose weights are all zero
    has loss 0 and gradient 0.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
        Unnormalized scores.
    y : ndarray of int, shape (n_samples,)
        Class indices.
    sample_weight : ndarray of shape (n_samples,), default=None
        Weights; None means ones.

    Returns
    -------
    loss : float
    grad : ndarray of shape (n_samples, n_classes)
        Gradient of ``loss`` with respect to ``logits``, in ``logits.dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.network import softmax_cross_entropy
    >>> loss, grad = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 4), grad.shape  # log(4): uniform over 4 classes
    (1.3863, (2, 4))
    """
    n = logits.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    # the ufuncs' reduce rather than the methods: the same sums without a Python
    # wrapper frame each (they run once per mini-batch)
    w_sum = float(np.add.reduce(w))
    z = np.asarray(logits, dtype=np.float64)
    z = z - np.maximum.reduce(z, axis=1, keepdims=True)
    log_norm = np.log(np.add.reduce(np.exp(z), axis=1))
    rows = np.arange(n)
    nll = log_norm - z[rows, y]
    if w_sum <= 0:
        return 0.0, np.zeros_like(logits)
    loss = float(np.dot(w, nll) / w_sum)
    grad = np.exp(z - log_norm[:, None])
    grad[rows, y] -= 1.0
    grad *= (w / w_sum)[:, None]
    return loss, grad.astype(logits.dtype, copy=False)


def squared_error(
    pred: np.ndarray,
    target: np.ndarray,
    sample_weight: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Weighted mean squared error and its gradient.

    For ``pred`` of shape ``(n, k)``: ``sum_i w_i * mean_j (p_ij - t_ij)^2 /
    sum_i w_i``.  For per-step outputs ``(n, T, k)`` each valid step counts as
    one sample with its sequence's weight; steps at or past ``lengths[i]`` are
    left out of the loss and get zero gradient.

    Parameters
    ----------
    pred, target : ndarray of shape (n, k) or (n, T, k)
        Predictions and targets.
    sample_weight : ndarray of shape (n,), default=None
        Weights per sample (sequence); None means ones.
    lengths : ndarray of shape (n,), default=None
        Valid steps per sequence for 3D inputs; None means all.

    Returns
    -------
    loss : float
    grad : ndarray shaped like ``pred``, in ``pred.dtype``

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.network import squared_error
    >>> loss, grad = squared_error(np.array([[1.0], [2.0]]), np.array([[0.0], [0.0]]))
    >>> loss, grad.ravel().tolist()
    (2.5, [1.0, 2.0])
    """
    diff = np.asarray(pred, dtype=np.float64) - target
    k = pred.shape[-1]
    w_b, w_sum = step_weights(pred, sample_weight, lengths)
    if w_sum <= 0:
        return 0.0, np.zeros_like(pred)
    wdiff = diff * w_b
    loss = float(np.add.reduce(wdiff * diff, axis=None) / (w_sum * k))
    grad = wdiff * (2.0 / (w_sum * k))
    return loss, grad.astype(pred.dtype, copy=False)


# ---------------------------------------------------------------- network
class SequenceNet:
    """A recurrent layer (:class:`~fastlstm.LSTM` or :class:`~fastlstm.RNN`) with a linear readout.

    Sequence-level outputs read the final hidden state of the last layer
    (both directions concatenated when bidirectional), which with ``lengths``
    is each sequence's own last step; per-step outputs read ``out`` at every
    step.  The layer starts from its own (PyTorch's) initialization except
    for the forget-gate biases, set to 1 in ``bias_ih`` and 0 in ``bias_hh``;
    the readout is initialized as PyTorch's ``nn.Linear``.

    Parameters
    ----------
    n_features : int
        Features per time step.
    n_outputs : int
        Outputs (classes or regression targets).
    cell : str, default="lstm"
        The recurrent layer: :class:`~fastlstm.LSTM` or the tanh :class:`~fastlstm.RNN`.
    hidden_size, num_layers, bidirectional, dropout, dtype, n_jobs
        Passed to the layer.
    sequence_output : bool, default=False
        One output vector per time step instead of per sequence.
    random_state : int, default=0
        Seeds the layer and the readout.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.network import SequenceNet
    >>> net = SequenceNet(3, 2, hidden_size=4, random_state=0)
    >>> net.forward(np.zeros((5, 7, 3), dtype=np.float32)).shape
    (5, 2)
    """

    # (features, state shape) of the last training forward, per thread (fastlstm.runtime.tape)
    _cache = ThreadTape()

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        *,
        cell: str = "lstm",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        dtype: Any = "float32",
        n_jobs: int | None = None,
        sequence_output: bool = False,
        random_state: int = 0,
    ) -> None:
        registry.layer_class(cell)  # ValueError naming the cells for an unknown one
        self.config = dict(
            cell=cell, n_features=int(n_features), n_outputs=int(n_outputs),
            hidden_size=int(hidden_size), num_layers=int(num_layers),
            bidirectional=bool(bidirectional), dropout=float(dropout),
            dtype=np.dtype(dtype).name, n_jobs=n_jobs,
            sequence_output=bool(sequence_output), random_state=int(random_state),
        )
        self._build()
        rng = np.random.RandomState(self.config["random_state"])
        n_in = self.num_directions * self.config["hidden_size"]
        bound = 1.0 / math.sqrt(n_in)
        self.weight = rng.uniform(-bound, bound, (n_outputs, n_in)).astype(self.dtype)
        self.bias = rng.uniform(-bound, bound, n_outputs).astype(self.dtype)
        # the cell's own start for an estimator (the LSTM's open forget gates)
        self.layer.spec.estimator_init(self.layer.named_parameters(),
                                       self.config["hidden_size"])

    def _build(self) -> None:
        c = self.config
        cls = registry.layer_class(c["cell"])
        self.layer = cls(
            c["n_features"], c["hidden_size"], num_layers=c["num_layers"],
            bidirectional=c["bidirectional"], dropout=c["dropout"], dtype=c["dtype"],
            n_jobs=c["n_jobs"],
            # the layer's own generator: derived from, but not equal to, the readout's
            random_state=np.random.SeedSequence(c["random_state"]).generate_state(1)[0],
        )
        self._names = list(self.layer.named_parameters())

    @property
    def dtype(self) -> np.dtype:
        """Parameter and computation precision."""
        return np.dtype(self.config["dtype"])

    @property
    def num_directions(self) -> int:
        """2 if bidirectional, else 1."""
        return 2 if self.config["bidirectional"] else 1

    @property
    def sequence_output(self) -> bool:
        """Whether outputs are per time step."""
        return self.config["sequence_output"]

    def set_n_jobs(self, n_jobs: int | None) -> None:
        """Change the layer's thread count (does not change the weights)."""
        self.config["n_jobs"] = n_jobs
        self.layer.n_jobs = n_jobs

    def parameter_names(self) -> list[str]:
        """Names of :meth:`parameters`, in order (PyTorch's for the layer)."""
        return self._names + ["head.weight", "head.bias"]

    def parameters(self) -> list[np.ndarray]:
        """The live parameter arrays: the layer's, then the readout's."""
        live = self.layer.named_parameters()
        return [live[n] for n in self._names] + [self.weight, self.bias]

    def bind_flat(self) -> FlatParameters:
        """Make the live parameters views of one flat buffer (once); return it.

        The layer's arrays and the readout's are replaced by views of a
        :class:`~fastlstm.train.flat.FlatParameters` holding the same values, so
        that the training step can treat all parameters as one array.  Later
        calls return the same object while the parameters are still its
        views (a network rebuilt by unpickling is bound anew).

        Examples
        --------
        >>> import numpy as np
        >>> from fastlstm.train.network import SequenceNet
        >>> net = SequenceNet(3, 2, hidden_size=4, random_state=0)
        >>> flat = net.bind_flat()
        >>> flat.params[:] = 0.0                      # the buffer is the model
        >>> float(np.abs(net.layer.named_parameters()["weight_hh_l0"]).max())
        0.0
        >>> net.bind_flat() is flat
        True
        """
        flat = self.__dict__.get("_flat")
        live = self.parameters()
        if flat is not None and flat.is_live(live):
            return flat
        flat = FlatParameters(live)
        layer_params = self.layer._params
        for name, view in zip(self._names, flat.param_views, strict=False):
            layer_params[name] = view
        self.weight, self.bias = flat.param_views[-2:]
        # the layer's stepper must not outlive the old arrays
        self.params_changed()
        self._flat = flat
        return flat

    def params_changed(self) -> None:
        """Note that the parameters were updated in place (an optimizer step): the
        layer's ``step`` then rebuilds what it prepared from them."""
        self.layer._version += 1

    def get_weights(self) -> list[np.ndarray]:
        """Copies of :meth:`parameters`."""
        return [p.copy() for p in self.parameters()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Copy ``weights`` (as from :meth:`get_weights`) into the live parameters."""
        for p, w in zip(self.parameters(), weights, strict=True):
            p[...] = w

    def forward(
        self, x: np.ndarray, lengths: np.ndarray | None = None, training: bool = False
    ) -> np.ndarray:
        """Outputs for a padded batch: ``(B, n_outputs)`` or ``(B, T, n_outputs)``."""
        out, state = self.layer.forward(x, lengths=lengths, training=training)
        h_n = state[0] if isinstance(state, tuple) else state  # LSTM: (h_n, c_n); RNN: h_n
        d = self.num_directions
        if self.sequence_output:
            feats = out
        elif d == 1:
            feats = h_n[-1]
        else:
            feats = np.concatenate([h_n[-2], h_n[-1]], axis=1)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverged model: loss says
            y = feats @ self.weight.T
            y += self.bias
        self._cache = (feats, h_n.shape) if training else None
        return y

    def backward(self, d_y: np.ndarray, out: list[np.ndarray] | None = None
                 ) -> list[np.ndarray]:
        """Gradients of all :meth:`parameters` from the gradient of the last outputs.

        Needs a preceding ``forward(..., training=True)``.  With ``out`` (arrays
        shaped as :meth:`parameters`, e.g. ``bind_flat().grad_views``) the
        gradients are written there and ``out`` is returned.
        """
        if self._cache is None:
            raise RuntimeError("backward needs a preceding forward(..., training=True)")
        feats, h_shape = self._cache
        self._cache = None
        d_y = np.asarray(d_y, dtype=self.dtype)
        k = d_y.shape[-1]
        d_y2 = d_y.reshape(-1, k)
        d_weight = d_bias = None
        if out is not None:
            d_weight, d_bias = out[-2:]
        with np.errstate(over="ignore", invalid="ignore"):  # reported below instead
            d_weight = np.matmul(d_y2.T, feats.reshape(-1, feats.shape[-1]), out=d_weight)
            d_bias = np.add.reduce(d_y2, axis=0, out=d_bias)
            d_feats = d_y @ self.weight
        if not np.logical_and.reduce(np.isfinite(d_feats), axis=None):
            raise FloatingPointError("the gradient of the recurrent features is not finite")
        if self.sequence_output:
            grads, _ = self.layer.backward(d_feats, input_grad=False)
        else:
            d_h_n = np.zeros(h_shape, dtype=self.dtype)
            h = self.config["hidden_size"]
            for j in range(self.num_directions):
                d_h_n[h_shape[0] - self.num_directions + j] = d_feats[:, j * h:(j + 1) * h]
            grads, _ = self.layer.backward(None, d_h_n=d_h_n, input_grad=False)
        if out is None:
            return [grads[n] for n in self._names] + [d_weight, d_bias]
        for name, g in zip(self._names, out, strict=False):
            np.copyto(g, grads[name])
        return out

    # Pickle the configuration and the weights, not the layer's thread pool,
    # kernels or training cache; the layer is rebuilt on load.
    def __getstate__(self) -> dict:
        return {
            "config": self.config,
            "layer_state": self.layer.state_dict(),
            "weight": self.weight,
            "bias": self.bias,
        }

    def __setstate__(self, state: dict) -> None:
        try:
            self.config = dict(state["config"])
            self._build()
            self.layer.load_state_dict(state["layer_state"])
            n_out = self.config["n_outputs"]
            n_in = self.num_directions * self.config["hidden_size"]
            head = _checked_params({"weight": state["weight"], "bias": state["bias"]},
                                   {"weight": (n_out, n_in), "bias": (n_out,)}, self.dtype,
                                   what="readout")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"cannot unpickle the network: {exc}") from exc
        self.weight = head["weight"]
        self.bias = head["bias"]


def inference_batch_size(X: Sequences, net: SequenceNet, batch_size: int) -> int:
    """Batch size for prediction: larger than for training, within ~64 MB of outputs."""
    steps = int(X.lengths.max()) if X.n_samples else 1
    per_seq = steps * 4 * net.num_directions * net.config["hidden_size"] * net.dtype.itemsize
    return int(max(batch_size, min(256, (64 << 20) // max(per_seq, 1))))


def predict_outputs(net: SequenceNet, X: Sequences, batch_size: int) -> np.ndarray | Sequences:
    """Run ``net`` over all of ``X`` in length-sorted batches, in float64.

    Returns an ``(n_samples, n_outputs)`` array for sequence-level nets, and
    :class:`~fastlstm.train.sequences.Sequences` of ``n_outputs`` features for per-step
    nets; either in the order of ``X``.
    """
    k = net.config["n_outputs"]
    bs = inference_batch_size(X, net, batch_size)
    if net.sequence_output:
        result: Any = Sequences.empty_like(X, k, np.float64)
    else:
        result = np.empty((X.n_samples, k), dtype=np.float64)
    for idx in length_batches(X.lengths, bs):
        x, lengths = X.padded(idx)
        y = net.forward(x, lengths)
        if net.sequence_output:
            result.unpad(y, idx)
        else:
            result[idx] = y
    return result


# ---------------------------------------------------------------- the loop
@dataclass
class TrainState:
    """What the epoch loop carries across epochs and across calls.

    The estimators publish these as ``loss_curve_``, ``validation_scores_``,
    ``best_loss_``, ``best_validation_score_``, ``n_iter_`` and ``t_``.
    """

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    validation_losses: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)  # fastlstm.train.history records
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    best_weights: list[np.ndarray] | None = None
    no_improvement_count: int = 0
    n_iter: int = 0
    t: int = 0

    def __setstate__(self, state: dict) -> None:
        # pickles from versions with fewer fields get the new ones empty
        self.__dict__.update(TrainState().__dict__)
        self.__dict__.update(state)

    def reset_stopping(self) -> None:
        """Forget the plateau counter and the best validation weights (new fit call)."""
        self.no_improvement_count = 0
        self.best_validation_score = -math.inf
        self.best_weights = None


BatchFn = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None", Any, np.ndarray]]
LossFn = Callable[..., tuple[float, np.ndarray]]


def train_epochs(
    net: SequenceNet,
    optimizer: Any,
    state: TrainState,
    *,
    lengths: np.ndarray,
    get_batch: BatchFn,
    loss_fn: LossFn,
    n_epochs: int,
    batch_size: int,
    shuffle: bool,
    rng: np.random.RandomState,
    clip_norm: float | None,
    tol: float,
    n_iter_no_change: int,
    validate: Callable[[], float] | None = None,
    stop_on_plateau: bool = True,
    progress: Progress | None = None,
    total_epochs: int | None = None,
    events: Any = None,
    early_stopping: bool = True,
    engine_loss: str | None = None,
    whole_set: tuple | None = None,
) -> str:
    """Run up to ``n_epochs`` epochs of mini-batch training, updating ``state``.

    The loop is a :class:`fastlstm.train.trainer.Trainer` with the estimators'
    hooks (:func:`fastlstm.train.trainer.standard_hooks`).

    Each epoch shuffles (when ``shuffle``) and batches the samples by length,
    and for each batch runs forward, the loss, backward, global-norm clipping
    and an optimizer step.  After each epoch the plateau counter is updated
    from the validation score (``validate`` given with ``early_stopping``:
    higher is better, and the best weights are kept to be restored at the
    end) or else from the training loss, as scikit-learn's MLP does.

    Parameters
    ----------
    net : SequenceNet
        The model, trained in place.
    optimizer : object with ``step(params, grads)``, ``get_state``, ``set_state``
        See :mod:`fastlstm.train.optim`.
    state : TrainState
        Curves, counters and best weights, updated in place.
    lengths : ndarray of shape (n_samples,)
        Sequence lengths, for batching.
    get_batch : callable
        ``get_batch(indices) -> (x, lengths_or_None, targets, sample_weight)``.
    loss_fn : callable
        ``loss_fn(outputs, targets, sample_weight, lengths) -> (loss, d_outputs)``.
    n_epochs : int
        Epochs to run at most in this call.
    batch_size : int
        Sequences per mini-batch.
    shuffle : bool
        Reshuffle every epoch.
    rng : RandomState
        Source of the shuffling.
    clip_norm : float or None
        Global gradient-norm limit.
    tol, n_iter_no_change : float, int
        Plateau criterion.
    validate : callable, default=None
        Validation score of the current weights (higher is better), run and
        recorded after every epoch.
    stop_on_plateau : bool, default=True
        Stop when the plateau criterion is met (False for ``partial_fit``).
    progress : Progress, default=None
        Where to report.
    total_epochs : int, default=None
        Shown in the progress output.
    events : object, default=None
        The callbacks (``fastlstm.callbacks._Events``): told when training,
        each epoch and each batch begin or end; a callback may stop the
        training at the end of an epoch.
    early_stopping : bool, default=True
        Whether the plateau of the validation score (when ``validate`` is
        given) stops the training and brings back the best weights; False
        records the validation only, and the training loss's plateau stops.
    engine_loss : {"cross_entropy", "squared_error"} or None, default=None
        What ``loss_fn`` computes, when the compiled step
        (:mod:`fastlstm.train.engine`) may compute it instead.
    whole_set : tuple or None, default=None
        ``(x, targets, sample_weight)`` when ``get_batch(idx)`` is exactly
        ``(x[idx], None, targets[idx], sample_weight[idx])``: lets the
        compiled step run many batches per call (:class:`Trainer`).

    Returns
    -------
    reason : {"max_epochs", "converged", "non_finite", "callback"}
        Why the loop ended.  On "non_finite" (a non-finite loss, gradient or
        updated weight) the weights and optimizer state of the start of the
        failed epoch are back; weights are checked after every update, so
        they are finite.

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C (a :class:`KeyboardInterrupt`), after the weights of the
        last complete step were put back; ``state`` counts the complete
        epochs and steps.
    """
    progress = progress or Progress(0, total_epochs)
    hooks = standard_hooks(progress, tol=tol, n_iter_no_change=n_iter_no_change,
                           stop_on_plateau=stop_on_plateau, events=events,
                           early_stopping=early_stopping)
    trainer = Trainer(net, optimizer, state, get_batch=get_batch, loss_fn=loss_fn,
                      batch_size=batch_size, shuffle=shuffle, rng=rng, clip_norm=clip_norm,
                      validate=validate, hooks=hooks, total_epochs=total_epochs,
                      engine_loss=engine_loss, whole_set=whole_set)
    return trainer.fit_loop(lengths, n_epochs)
