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

    A :class:`KeyboardInterrupt`, so that whatever runs the fit (a script, a
    grid search) stops as it would on any Ctrl-C.
    """


def all_finite(arrays: Sequence[np.ndarray]) -> bool:
    """True when no array holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm._guard import all_finite
    >>> all_finite([np.ones(3)]), all_finite([np.ones(3), np.array([np.nan])])
    (True, False)
    """
    return all(bool(np.isfinite(a).all()) for a in arrays)


class StepGuard:
    """Undo for one optimizer step: saves parameters and optimizer state, restores them.

    Parameters
    ----------
    params : sequence of ndarray
        The live parameter arrays (updated in place by the optimizer).
    optimizer : object with ``get_state`` and ``set_state``
        See :mod:`fastlstm._optim`.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm._guard import StepGuard
    >>> from fastlstm._optim import SGD
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

    def save(self) -> None:
        """Remember the current parameters and optimizer state."""
        for saved, p in zip(self._saved, self.params, strict=True):
            np.copyto(saved, p)
        self._saved_optimizer = self.optimizer.get_state()

    def restore(self) -> None:
        """Put back what :meth:`save` remembered."""
        for saved, p in zip(self._saved, self.params, strict=True):
            np.copyto(p, saved)
        if self._saved_optimizer is not None:
            self.optimizer.set_state(self._saved_optimizer)

    @contextmanager
    def step(self) -> Iterator[None]:
        """Save, run the block, and restore if it raises anything (Ctrl-C included)."""
        self.save()
        try:
            yield
        except BaseException:
            self.restore()
            raise
