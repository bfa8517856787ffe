"""Progress reports of the training loop: a tqdm bar or plain text.

:func:`make_progress` picks the reporter: with ``verbose=1`` on a terminal a
`tqdm <https://tqdm.github.io>`_ bar per epoch when tqdm is installed,
otherwise :class:`Progress`, which draws its own bar in place on a terminal
and writes one plain line per epoch elsewhere.  Both have the same methods
(``start_epoch``, ``update``, ``end_epoch``, ``message``, ``close``), so the
loop and :class:`fastlstm.callbacks.ProgressBar` do not care which they got.
Events that are reported as warnings (a divergence, ``max_epochs``) are
never also written here.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "TqdmProgress", "make_progress"]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _epoch_label(epoch: int, total: int | None) -> str:
    return f"Epoch {epoch}/{total}" if total else f"Epoch {epoch}"


def _import_tqdm() -> Any:
    """tqdm's bar class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Per-epoch progress on a text stream (stderr by default).

    ``verbose=1`` draws a bar that fills during each epoch and stays as one
    line per epoch (on a terminal it is redrawn in place at most 10 times a
    second; otherwise only the finished line is written); ``verbose>=2``
    prints one plain line per epoch; ``verbose=0`` prints nothing.

    Examples
    --------
    >>> import io
    >>> from fastlstm.train.progress import Progress
    >>> out = io.StringIO()
    >>> p = Progress(2, 10, stream=out)
    >>> p.start_epoch(1, 100)
    >>> p.end_epoch(0.5, None)
    >>> out.getvalue().startswith("Epoch 1/10: loss 0.500000")
    True
    """

    width = 24

    def __init__(self, verbose: int, total_epochs: int | None, stream: TextIO | None = None,
                 min_interval: float = 0.1) -> None:
        self.verbose = int(verbose)
        self.total = total_epochs
        self.stream = stream
        self.min_interval = min_interval
        self._epoch = 0
        self._n = 0
        self._done = 0
        self._loss = float("nan")
        self._t0 = 0.0
        self._last_draw = 0.0
        self._drawn = False  # an unfinished bar is on the terminal line

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _isatty(self) -> bool:
        return _isatty(self._out)

    def start_epoch(self, epoch: int, n_samples: int) -> None:
        """Begin epoch ``epoch`` (1-based) over ``n_samples`` sequences."""
        self._epoch, self._n, self._done = epoch, n_samples, 0
        self._loss = float("nan")
        self._t0 = self._last_draw = time.perf_counter()

    def update(self, n_done: int, loss: float) -> None:
        """Report ``n_done`` sequences seen so far this epoch, running ``loss``."""
        self._done, self._loss = n_done, loss
        if self.verbose == 1 and self._isatty():
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self._out.write("\r" + self._bar_line(None) + "\x1b[K")
                self._out.flush()
                self._drawn = True

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return self._done / elapsed if elapsed > 0 else 0.0

    def _bar_line(self, val_score: float | None) -> str:
        frac = self._done / self._n if self._n else 1.0
        fill = int(round(frac * self.width))
        bar = "#" * fill + "." * (self.width - fill)
        line = (f"{_epoch_label(self._epoch, self.total)} [{bar}] {self._done}/{self._n} "
                f"loss {self._loss:.4f}")
        if val_score is not None:
            line += f" val {val_score:.4f}"
        return line + f" {self._rate():,.0f} seq/s"

    def end_epoch(self, loss: float, val_score: float | None) -> None:
        """Finish the epoch with its mean ``loss`` and validation score."""
        self._done, self._loss = self._n, loss
        if self.verbose == 1:
            prefix = "\r" if self._isatty() else ""
            self._out.write(prefix + self._bar_line(val_score) + ("\x1b[K\n" if prefix else "\n"))
        elif self.verbose >= 2:
            elapsed = time.perf_counter() - self._t0
            line = f"{_epoch_label(self._epoch, self.total)}: loss {loss:.6f}"
            if val_score is not None:
                line += f", validation score {val_score:.6f}"
            line += f", {elapsed:.2f} s, {self._rate():,.0f} seq/s\n"
            self._out.write(line)
        self._drawn = False
        if self.verbose:
            self._out.flush()

    def message(self, text: str) -> None:
        """Print ``text`` on its own line when verbose."""
        if self.verbose:
            if self.verbose == 1 and self._isatty():
                self._out.write("\r\x1b[K")
            self._drawn = False
            self._out.write(text + "\n")
            self._out.flush()

    def close(self) -> None:
        """End the output: an epoch cut short leaves its bar on its own line."""
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False


class TqdmProgress:
    """Per-epoch progress as a tqdm bar (one bar per epoch, kept when done).

    The bar counts sequences and shows the running loss; the finished bar
    also shows the validation score.  Same methods as :class:`Progress`.

    Parameters
    ----------
    total_epochs : int or None
        Shown in each bar's label.
    stream : text stream, default=None
        Where to draw (stderr when None).
    tqdm_cls : type, default=None
        The bar class; None imports ``tqdm.tqdm``.

    Examples
    --------
    >>> import io
    >>> import tqdm  # optional: pip install tqdm
    >>> from fastlstm.train.progress import TqdmProgress
    >>> out = io.StringIO()
    >>> p = TqdmProgress(3, stream=out)
    >>> p.start_epoch(1, 100)
    >>> p.update(60, 0.75)
    >>> p.end_epoch(0.5, None)
    >>> "Epoch 1/3" in out.getvalue() and "100/100" in out.getvalue()
    True
    """

    def __init__(self, total_epochs: int | None, stream: TextIO | None = None,
                 tqdm_cls: Any = None) -> None:
        self.total = total_epochs
        self.stream = stream
        self._tqdm = tqdm_cls if tqdm_cls is not None else _import_tqdm()
        if self._tqdm is None:
            raise ImportError("the progress bar needs tqdm (pip install tqdm)")
        self._bar: Any = None
        self._done = 0

    @property
    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def start_epoch(self, epoch: int, n_samples: int) -> None:
        """Open the bar of epoch ``epoch`` (1-based) over ``n_samples`` sequences."""
        self.close()
        self._done = 0
        self._bar = self._tqdm(total=n_samples, desc=_epoch_label(epoch, self.total),
                               unit="seq", file=self._out, leave=True, dynamic_ncols=True,
                               mininterval=0.1)

    def update(self, n_done: int, loss: float) -> None:
        """Advance to ``n_done`` sequences with the running ``loss``."""
        if self._bar is None:
            return
        self._bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self._bar.update(n_done - self._done)
        self._done = n_done

    def end_epoch(self, loss: float, val_score: float | None) -> None:
        """Fill and close the bar with the epoch's ``loss`` and validation score."""
        if self._bar is None:
            return
        post = f"loss {loss:.4f}" + ("" if val_score is None else f", val {val_score:.4f}")
        self._bar.set_postfix_str(post, refresh=False)
        self._bar.update(self._bar.total - self._done)
        self._done = self._bar.total
        self.close()

    def message(self, text: str) -> None:
        """Print ``text`` on its own line (above an open bar)."""
        self._tqdm.write(text, file=self._out)

    def close(self) -> None:
        """Close an open bar (one cut short stays on screen as it was)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(verbose: int, total_epochs: int | None, stream: TextIO | None = None,
                  use_tqdm: bool | None = None) -> Progress | TqdmProgress:
    """The progress reporter for ``verbose`` on ``stream`` (stderr when None).

    ``use_tqdm=None`` (the estimators' ``verbose=1``) takes a tqdm bar when
    the stream is a terminal and tqdm is installed, else :class:`Progress`
    (its own bar in place on a terminal, a plain line per epoch elsewhere);
    ``True`` requires tqdm (ImportError without it); ``False`` never uses it.
    ``verbose`` other than 1 always gets :class:`Progress`.

    Examples
    --------
    >>> import io
    >>> from fastlstm.train.progress import make_progress
    >>> type(make_progress(1, 5, stream=io.StringIO())).__name__  # not a terminal
    'Progress'
    """
    if verbose == 1 and use_tqdm is not False:
        out = stream if stream is not None else sys.stderr
        if use_tqdm or _isatty(out):
            tqdm_cls = _import_tqdm()
            if tqdm_cls is not None:
                return TqdmProgress(total_epochs, stream, tqdm_cls)
            if use_tqdm:
                raise ImportError("use_tqdm=True needs tqdm (pip install tqdm)")
    return Progress(verbose, total_epochs, stream)
