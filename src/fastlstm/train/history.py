"""``history_``: one record per training epoch, and a plot of the curves."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["History", "epoch_record"]


def epoch_record(epoch: int, loss: float, validation_loss: float | None,
                 validation_score: float | None, learning_rate: float,
                 seconds: float) -> dict[str, Any]:
    """One epoch's entry of :class:`History` (NaN where there was no validation).

    Examples
    --------
    >>> from fastlstm.train.history import epoch_record
    >>> epoch_record(1, 0.5, None, None, 1e-3, 0.25)["validation_loss"]
    nan
    """
    nan = math.nan
    return {
        "epoch": int(epoch),
        "loss": float(loss),
        "validation_loss": nan if validation_loss is None else float(validation_loss),
        "validation_score": nan if validation_score is None else float(validation_score),
        "learning_rate": float(learning_rate),
        "seconds": float(seconds),
    }


class History(list):
    """Per-epoch training records: a list of dicts, one per epoch.

    Keys: ``epoch`` (1-based, counting across warm starts and partial fits),
    ``loss`` (mean training loss), ``validation_loss`` and
    ``validation_score`` (NaN without validation), ``learning_rate`` and
    ``seconds`` (wall time of the epoch, validation included).
    ``history["loss"]`` gives one key's values as a list; ``to_pandas()`` a
    DataFrame; ``plot()`` the curves.

    Examples
    --------
    >>> from fastlstm.train.history import History, epoch_record
    >>> h = History([epoch_record(1, 0.9, 1.0, 0.5, 0.01, 0.1),
    ...              epoch_record(2, 0.6, 0.8, 0.7, 0.01, 0.1)])
    >>> h["loss"], h[-1]["validation_score"]
    ([0.9, 0.6], 0.7)
    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if self and key not in self[0]:
                raise KeyError(f"no {key!r} in the history; keys are {list(self[0])}")
            return [record[key] for record in self]
        result = super().__getitem__(key)
        return History(result) if isinstance(key, slice) else result

    def to_pandas(self) -> Any:
        """The records as a ``pandas.DataFrame`` indexed by epoch (needs pandas).

        Examples
        --------
        >>> from fastlstm.train.history import History, epoch_record
        >>> df = History([epoch_record(1, 0.9, None, None, 0.01, 0.1)]).to_pandas()
        >>> list(df.columns)[:2]
        ['loss', 'validation_loss']
        """
        import pandas as pd

        return pd.DataFrame(list(self)).set_index("epoch")

    def plot(self, ax: Any = None, *, log: bool = False) -> Any:
        """Plot the training loss and, when recorded, the validation loss per epoch.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Where to draw; a new figure's axes when None.
        log : bool, default=False
            Logarithmic loss axis.

        Returns
        -------
        ax : matplotlib Axes

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> from fastlstm.train.history import History, epoch_record
        >>> h = History([epoch_record(e, 1 / e, 1.2 / e, None, 0.01, 0.1) for e in (1, 2, 3)])
        >>> [line.get_label() for line in h.plot().get_lines()]
        ['training loss', 'validation loss']
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        epochs = self["epoch"]
        ax.plot(epochs, self["loss"], label="training loss")
        val = self["validation_loss"]
        if any(not math.isnan(v) for v in val):
            ax.plot(epochs, val, label="validation loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if log:
            ax.set_yscale("log")
        ax.legend()
        return ax
