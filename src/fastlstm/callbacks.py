"""Callbacks: code that runs at fixed points of an estimator's training loop.

Pass a list to the estimators' ``callbacks`` parameter::

    from fastlstm import LSTMRegressor
    from fastlstm.callbacks import (EarlyStopping, LRScheduler, ModelCheckpoint,
                                    ProgressBar)

    reg = LSTMRegressor(early_stopping=True, callbacks=[
        LRScheduler("cosine"),
        EarlyStopping(monitor="validation_loss", patience=5),
        ModelCheckpoint("best.fastlstm", monitor="validation_loss"),
        ProgressBar(),
    ])

A callback subclasses :class:`Callback` and overrides any of its hooks.
Each hook gets a :class:`TrainingContext`: the estimator, the learning rate
(settable), the weights, the history so far, and :meth:`TrainingContext.stop`.
Callbacks run inside the fit's transaction: an exception in a callback
fails the fit and leaves the estimator as it was.  A callback's state is
reset at the start of every fit (``on_train_begin``), so one list can serve
``clone``\\ s and grid searches.
"""

from fastlstm.io.checkpoint import load_checkpoint
from fastlstm.train import callbacks as _train_callbacks
from fastlstm.train.callbacks import *  # noqa: F403 - the public names, listed in its __all__

__all__ = [*_train_callbacks.__all__, "load_checkpoint"]
