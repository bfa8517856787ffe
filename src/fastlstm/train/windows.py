"""Sliding windows over a series, and the per-window scaling a forecaster trains on.

A series is an array ``(n_timesteps, n_columns)`` whose first ``n_targets``
columns are the values to forecast and whose other columns are covariates.
A window is ``window`` consecutive rows (the network's input) followed by
``steps`` rows whose targets the network learns to predict.

Per-window scaling keeps a trending series inside the range a tanh network
handles: each window's targets are taken relative to a reference of that
window (its last value, or its mean), and divided by one spread fitted over
the training windows.  Covariates are standardized with one mean and spread
per column.  :func:`undo_scaling` maps the network's outputs back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["WindowScaling", "fit_scaling", "n_windows", "undo_scaling", "window_arrays",
           "window_views"]

SCALINGS = ("last", "mean", "none")


def n_windows(n_timesteps: int, window: int, steps: int) -> int:
    """How many windows of ``window`` inputs and ``steps`` targets a series holds.

    Examples
    --------
    >>> from fastlstm.train.windows import n_windows
    >>> n_windows(10, 4, 2)
    5
    """
    return max(0, n_timesteps - window - steps + 1)


def window_views(series: np.ndarray, window: int, steps: int) -> np.ndarray:
    """Every window of ``window + steps`` rows of ``series``, as a view (no copy).

    Parameters
    ----------
    series : ndarray of shape (n_timesteps, n_columns)
    window, steps : int

    Returns
    -------
    views : ndarray of shape (n_windows, window + steps, n_columns)
        A read-only view: window ``i`` is ``series[i : i + window + steps]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.windows import window_views
    >>> window_views(np.arange(6.0)[:, None], 3, 1)[:, :, 0]
    array([[0., 1., 2., 3.],
           [1., 2., 3., 4.],
           [2., 3., 4., 5.]])
    """
    # sliding_window_view puts the window axis last: move it before the columns
    return sliding_window_view(series, window + steps, axis=0).transpose(0, 2, 1)


@dataclass
class WindowScaling:
    """The fitted constants of the per-window scaling.

    Attributes
    ----------
    method : {"last", "mean", "none"}
        The reference of each window's targets: its last value, its mean, or
        the fitted ``target_mean`` (no per-window reference).
    target_mean, target_scale : ndarray of shape (n_targets,)
        ``target_mean`` is only used by ``"none"``; ``target_scale`` divides
        every target after the reference is subtracted.
    covariate_mean, covariate_scale : ndarray of shape (n_covariates,)
        Each covariate column is standardized with these.
    """

    method: str
    target_mean: np.ndarray
    target_scale: np.ndarray
    covariate_mean: np.ndarray
    covariate_scale: np.ndarray

    def reference(self, targets: np.ndarray) -> np.ndarray:
        """Each window's reference ``(n_windows, n_targets)`` from its input targets.

        Parameters
        ----------
        targets : ndarray of shape (n_windows, window, n_targets)
        """
        if self.method == "last":
            return targets[:, -1, :]
        if self.method == "mean":
            return targets.mean(axis=1)
        return np.broadcast_to(self.target_mean, (targets.shape[0], targets.shape[2]))


def _spread(values: np.ndarray) -> np.ndarray:
    scale = values.std(axis=0) if len(values) else np.ones(values.shape[1:])
    scale = np.asarray(scale, dtype=np.float64)
    scale[~(scale > 1e-12)] = 1.0  # a constant column: leave it unscaled
    return scale


def fit_scaling(series: list[np.ndarray], n_targets: int, window: int, method: str
                ) -> WindowScaling:
    """Fit the scaling's constants on the training series.

    The targets' spread is that of every input value relative to its
    window's reference, over all windows of all series, so that the scaled
    inputs have unit spread.

    Parameters
    ----------
    series : list of ndarray of shape (n_timesteps_i, n_columns)
        Float64 training series; the first ``n_targets`` columns are targets.
    n_targets, window : int
    method : {"last", "mean", "none"}

    Returns
    -------
    scaling : WindowScaling

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.windows import fit_scaling
    >>> s = fit_scaling([np.arange(10.0)[:, None]], 1, 3, "last")
    >>> s.target_scale.round(4)
    array([0.8165])
    """
    targets = np.concatenate([s[:, :n_targets] for s in series])
    covariates = np.concatenate([s[:, n_targets:] for s in series])
    target_mean = targets.mean(axis=0)
    provisional = WindowScaling(method, target_mean, np.ones(n_targets), np.zeros(0),
                                np.ones(0))
    sums = np.zeros(n_targets)
    squares = np.zeros(n_targets)
    count = 0
    for s in series:  # one series at a time: no copy of all windows
        views = window_views(s[:, :n_targets], window, 0)
        if not len(views):
            continue
        rel = views - provisional.reference(views)[:, None, :]
        sums += rel.sum(axis=(0, 1))
        squares += np.square(rel).sum(axis=(0, 1))
        count += rel.shape[0] * rel.shape[1]
    if count:
        mean = sums / count
        var = np.maximum(squares / count - mean * mean, 0.0)
        scale = np.sqrt(var)
        scale[~(scale > 1e-12 * np.maximum(1.0, np.abs(target_mean)))] = 1.0
    else:
        scale = np.ones(n_targets)
    return WindowScaling(method, target_mean, scale, covariates.mean(axis=0),
                         _spread(covariates))


def window_arrays(views: np.ndarray, n_targets: int, window: int, steps: int,
                  scaling: WindowScaling, *, future_columns: np.ndarray | None,
                  dtype: np.dtype, with_targets: bool = True,
                  out: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The network's inputs and scaled targets of some windows (the one copy).

    Parameters
    ----------
    views : ndarray of shape (n_windows, window + steps, n_columns)
        Windows from :func:`window_views` (or one built by hand for a
        forecast, whose target rows after ``window`` are ignored).
    n_targets, window, steps : int
    scaling : WindowScaling
    future_columns : ndarray of int or None
        Covariate columns (indices among the covariates) known in the future.
        With some, the input runs ``window + steps`` steps: the last
        ``steps`` hold only those covariates (targets and past-only
        covariates zero) and a last feature that is 1 there, 0 before.
        Without, the input is the ``window`` rows.
    dtype : numpy dtype
        Of the inputs.
    with_targets : bool, default=True
        Whether to compute the targets.
    out : (inputs, targets) arrays, optional
        Where to write them (zeroed first), e.g. slices of the arrays of
        every series' windows, so that the windows are copied once.

    Returns
    -------
    inputs : ndarray of shape (n_windows, n_steps, n_features)
        Features per step: the scaled targets, then every standardized
        covariate, then (with future columns) the future flag.
    targets : ndarray of shape (n_windows, steps * n_targets) or None
        Float64, step-major (the ``n_targets`` values of the first step,
        then the second's, ...).
    reference : ndarray of shape (n_windows, n_targets)
        Each window's reference, for :func:`undo_scaling`.
    """
    n, _, n_columns = views.shape
    n_cov = n_columns - n_targets
    has_future = future_columns is not None and len(future_columns) > 0
    n_steps = window + steps if has_future else window
    n_features = n_columns + (1 if has_future else 0)
    if out is None:
        inputs = np.zeros((n, n_steps, n_features), dtype=dtype)
    else:
        inputs = out[0]
        inputs[...] = 0
    past_targets = views[:, :window, :n_targets]
    reference = np.array(scaling.reference(past_targets), dtype=np.float64)
    inputs[:, :window, :n_targets] = (past_targets - reference[:, None, :]) / scaling.target_scale
    if n_cov:
        cov = views[:, :, n_targets:]
        inputs[:, :window, n_targets:n_columns] = (
            (cov[:, :window] - scaling.covariate_mean) / scaling.covariate_scale)
        if has_future:
            cols = n_targets + np.asarray(future_columns)
            inputs[:, window:, cols] = ((cov[:, window:window + steps, cols - n_targets]
                                         - scaling.covariate_mean[cols - n_targets])
                                        / scaling.covariate_scale[cols - n_targets])
            inputs[:, window:, -1] = 1
    targets = None
    if with_targets:
        future = views[:, window:window + steps, :n_targets]
        scaled = (future - reference[:, None, :]) / scaling.target_scale
        if out is None:
            targets = scaled.reshape(n, -1)
        else:
            targets = out[1]
            targets[...] = scaled.reshape(n, -1)
    return inputs, targets, reference


def undo_scaling(outputs: np.ndarray, reference: np.ndarray, scaling: WindowScaling
                 ) -> np.ndarray:
    """Map the network's outputs back to the targets' units.

    Parameters
    ----------
    outputs : ndarray of shape (n_windows, steps * n_targets)
    reference : ndarray of shape (n_windows, n_targets)
    scaling : WindowScaling

    Returns
    -------
    forecast : ndarray of shape (n_windows, steps, n_targets)

    Examples
    --------
    >>> import numpy as np
    >>> from fastlstm.train.windows import fit_scaling, undo_scaling, window_arrays
    >>> from fastlstm.train.windows import window_views
    >>> series = np.cumsum(np.ones(8))[:, None]
    >>> scaling = fit_scaling([series], 1, 3, "last")
    >>> views = window_views(series, 3, 2)
    >>> x, t, ref = window_arrays(views, 1, 3, 2, scaling, future_columns=None,
    ...                           dtype=np.float64)
    >>> bool(np.allclose(undo_scaling(t, ref, scaling), views[:, 3:, :1]))
    True
    """
    n, k = reference.shape
    out = np.asarray(outputs, dtype=np.float64).reshape(n, -1, k)
    return out * scaling.target_scale + reference[:, None, :]
