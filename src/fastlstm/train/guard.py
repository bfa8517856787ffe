"""Updates that apply completely or not at all.

:class:`StepGuard` keeps the parameters and optimizer state from before an
optimizer step, so that the step can be undone when it is interrupted
(Ctrl-C arrives between any two bytecodes, possibly half-way through the
parameter arrays) or when it leaves non-finite weights.
:class:`TrainingInterrupted` is the :class:`KeyboardInterrupt` the training
loop raises once the model holds the weights of its last complete step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

__all__ = ["StepGuard", "TrainingInterrupted", "all_finite"]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, raised after the model was left usable.

    A :class:`KeyboardInterrupt`, so that whatever runs the training loop
    stops as it would on any Ctrl-C.  It tells the estimators that the model
    holds the weights of its last complete step; they hand the caller a plain
    :class:`KeyboardInterrupt` in its place, because the interpreter exits a
    script by SIGINT (status 130) only for that exact type.

    Examples
    --------
    >>> from fastlstm.train.guard import TrainingInterrupted
    >>> try:
    ...     raise TrainingInterrupted
    ... except KeyboardInterrupt as exc:
    ...     type(exc).__name__
    'TrainingInterrupted'
    """


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    """True when no array holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.guard import all_finite
    >>> all_finite([np.ones(3)]), all_finite([np.ones(3), np.array([np.nan])])
    (True, False)
    """
    # np.logical_and.reduce is what ndarray.all runs, without its Python wrapper
    return all(bool(np.logical_and.reduce(np.isfinite(a), axis=None)) for a in arrays)


class StepGuard:
    """Undo for one optimizer step: saves parameters and optimizer state, restores them.

    Parameters
    ----------
    params : sequence of ndarray
        The live parameter arrays (updated in place by the optimizer).
    optimizer : object with ``get_state`` and ``set_state``
        See :mod:`fastlstm.train.optim`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.guard import StepGuard
    >>> from fastlstm.train.optim import SGD
    >>> w = np.ones(4)
    >>> opt = SGD([w], learning_rate=1.0, momentum=0.0)
    >>> guard = StepGuard([w], opt)
    >>> try:
    ...     with guard.step():
    ...         w[:2] = 0.0                  # half of an update ...
    ...         raise KeyboardInterrupt      # ... then Ctrl-C
    ... except KeyboardInterrupt:
    ...     pass
    >>> w
    array([1., 1., 1., 1.])
    """

    def __init__(self, params: Sequence[np.ndarray], optimizer: Any) -> None:
        self.params = list(params)
        self.optimizer = optimizer
        self._saved = [np.empty_like(p) for p in self.params]
        self._saved_optimizer: dict | None = None
        # an optimizer with ``state_arrays`` (fastlstm.train.optim) is saved by
        # copying into buffers kept from step to step, not by get_state copies
        self._arrays = getattr(optimizer, "state_arrays", None)
        self._saved_state: list[np.ndarray] = []
        self._saved_t = 0

    def save(self) -> None:
        """Remember the current parameters and optimizer state."""
        for saved, p in zip(self._saved, self.params, strict=True):
            np.copyto(saved, p)
        if self._arrays is None:
            self._saved_optimizer = self.optimizer.get_state()
            return
        arrays = self._arrays()
        if [a.shape for a in arrays] != [s.shape for s in self._saved_state]:
            self._saved_state = [np.empty_like(a) for a in arrays]
        for saved, a in zip(self._saved_state, arrays, strict=True):
            np.copyto(saved, a)
        self._saved_t = self.optimizer.t
        self._saved_optimizer = {}  # saved: restore() puts the arrays back

    def restore(self) -> None:
        """Put back what :meth:`save` remembered."""
        for saved, p in zip(self._saved, self.params, strict=True):
            np.copyto(p, saved)
        if self._saved_optimizer is None:
            return
        if self._arrays is None:
            self.optimizer.set_state(self._saved_optimizer)
            return
        for saved, a in zip(self._saved_state, self._arrays(), strict=True):
            np.copyto(a, saved)
        self.optimizer.t = self._saved_t

    @contextmanager
    def step(self) -> Iterator[None]:
        """Save, run the block, and restore if it raises anything (Ctrl-C included)."""
        self.save()
        try:
            yield
        except BaseException:
            self.restore()
            raise
