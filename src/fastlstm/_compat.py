"""Module names of fastlstm 0.1.0, so that objects pickled by it still load.

Pickles name each object's class by module and qualified name.  Before the
package was laid out by layer its modules sat side by side
(``fastlstm._lstm``, ``fastlstm._estimators``, ...); a finder on
``sys.meta_path`` answers those names with the modules that hold the classes
now.  Nothing imports an old name itself.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: old module name -> the module that holds its contents now
MOVED = {
    "fastlstm._config": "fastlstm.runtime.config",
    "fastlstm._parallel": "fastlstm.runtime.parallel",
    "fastlstm._workspace": "fastlstm.runtime.workspace",
    "fastlstm._tape": "fastlstm.runtime.tape",
    "fastlstm._memory": "fastlstm.runtime.memory",
    "fastlstm._recurrent": "fastlstm.nn.layer",
    "fastlstm._lstm": "fastlstm.nn.cells.lstm",
    "fastlstm._rnn": "fastlstm.nn.cells.rnn",
    "fastlstm._packed": "fastlstm.nn.packed",
    "fastlstm._ragged": "fastlstm.nn.ragged",
    "fastlstm._data": "fastlstm.train.data",
    "fastlstm._losses": "fastlstm.train.losses",
    "fastlstm._optim": "fastlstm.train.optim",
    "fastlstm._flat": "fastlstm.train.flat",
    "fastlstm._trainer": "fastlstm.train.trainer",
    "fastlstm._training": "fastlstm.train.network",
    "fastlstm._guard": "fastlstm.train.guard",
    "fastlstm._history": "fastlstm.train.history",
    "fastlstm._progress": "fastlstm.train.progress",
    "fastlstm._estimators": "fastlstm.estimators",
    "fastlstm._scaler": "fastlstm.estimators.scaler",
    "fastlstm._layout": "fastlstm.estimators.layout",
    "fastlstm._validation": "fastlstm.estimators.validation",
    "fastlstm._transaction": "fastlstm.estimators.transaction",
    "fastlstm._io": "fastlstm.io.saving",
    "fastlstm._onnx": "fastlstm.export.onnx",
    "fastlstm._torch": "fastlstm.export.torch_interop",
    "fastlstm._streaming": "fastlstm.export.streaming",
    "fastlstm._interop": "fastlstm.nn.interop",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and loads a stand-in that reads the current module.

    The stand-in forwards every attribute to the module that holds the code
    now, so ``pickle`` finds its classes; the current module itself is left
    as it is (its ``__spec__`` keeps its own name).
    """

    def find_spec(self, name: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # an empty module, filled below

    def exec_module(self, module: ModuleType) -> None:
        current = importlib.import_module(MOVED[module.__name__])

        def __getattr__(name: str) -> object:
            return getattr(current, name)

        module.__getattr__ = __getattr__
        module.__doc__ = f"Moved to {current.__name__}."


def install() -> None:
    """Answer the old module names (once per interpreter)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
