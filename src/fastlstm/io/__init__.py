"""Files: safe save/load of layers and estimators, without pickle, and checkpoints.

Importing this package provides :func:`fastlstm.save` to the training
callbacks' ``TrainingContext.save`` (:mod:`fastlstm.runtime.hooks`).
"""

from fastlstm.io import saving
from fastlstm.runtime import hooks

hooks.provide("save", saving.save)
