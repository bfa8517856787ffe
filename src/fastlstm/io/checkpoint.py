"""Restoring an estimator's weights from a checkpoint file (see ModelCheckpoint)."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import numpy as np

from fastlstm.io.archive import _HEADER
from fastlstm.io.saving import load
from fastlstm.nn.layer import _checked_params

__all__ = ["load_checkpoint"]


def load_checkpoint(estimator: Any, path: str | os.PathLike) -> Any:
    """Load the weights of a :class:`ModelCheckpoint` file into a fitted estimator.

    Reads both kinds of checkpoint (a :func:`fastlstm.save` file or a
    ``weights_only`` ``.npz``); only the weights are taken.  Names and
    shapes must match the estimator's network; nothing changes otherwise.
    Returns the estimator.  (For a whole model, use :func:`fastlstm.load`.)

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from fastlstm import LSTMRegressor
    >>> from fastlstm.callbacks import ModelCheckpoint, load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "best.npz")
    >>> X = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> ckpt = ModelCheckpoint(path, monitor="loss", weights_only=True)
    >>> reg = LSTMRegressor(hidden_size=4, max_epochs=3, random_state=0, callbacks=[ckpt])
    >>> reg = reg.fit(X, X[:, -1, 0])
    >>> load_checkpoint(reg, path) is reg
    True
    """
    net = estimator.network_
    names = net.parameter_names()
    try:
        with zipfile.ZipFile(path) as zf:
            whole_model = _HEADER in zf.namelist()
    except zipfile.BadZipFile:
        whole_model = False  # np.load says what is wrong with the file
    if whole_model:
        saved = getattr(load(path), "network_", None)
        if saved is None:
            raise ValueError("the checkpoint file holds a layer, not an estimator")
        values = dict(zip(saved.parameter_names(), saved.get_weights(), strict=True))
    else:
        with np.load(path, allow_pickle=False) as data:
            values = {name: data[name] for name in data.files}
    expected = {name: p.shape for name, p in zip(names, net.parameters(), strict=True)}
    staged = _checked_params(values, expected, net.dtype, what="checkpoint")
    net.set_weights([staged[name] for name in names])
    return estimator
