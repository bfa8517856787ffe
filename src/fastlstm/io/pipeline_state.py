"""A scikit-learn ``Pipeline`` of fastlstm objects in a model file.

The header's ``params`` hold the pipeline's own parameters (``memory`` as a
path or null, ``verbose``, and ``transform_input`` where scikit-learn has it);
its ``state`` holds ``steps``, one entry per step: its ``name``, its
``class`` (an allow-listed fastlstm class, ``"passthrough"`` or null) and,
for a fastlstm object, the ``params`` and ``state`` its own file would hold.
The arrays of step ``i`` are stored as ``s<i>.<name>``.

Each step is written and read by the same code as the object saved alone
(:mod:`fastlstm.io.saving` passes its dispatch in), through a view of the
archive that shows the step only its own arrays, so every step's state is
checked exactly as a file of that object is; the pipeline's names, classes
and arrays are checked before any step is read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastlstm.io.archive import _Reader
from fastlstm.io.checks import (
    _check,
    _check_bool,
    _check_keys,
    _Invalid,
    _names,
    _short,
)

# fastlstm classes that transform X and so may stand before the last step
TRANSFORMERS = ("SequenceScaler",)
PASSTHROUGH = "passthrough"
# a pipeline of fastlstm objects has a few steps; a header declaring more is refused
MAX_STEPS = 64
_RESERVED = ("steps", "memory", "verbose", "transform_input")

DumpStep = Callable[[Any, dict, dict], None]
LoadStep = Callable[[_Reader, str], Any]


def _is_passthrough(step: Any) -> bool:
    return step is None or (isinstance(step, str) and step == PASSTHROUGH)


def _pipeline_params(pipe: Any) -> dict[str, Any]:
    params = pipe.get_params(deep=False)
    params.pop("steps")
    memory = params.get("memory")
    if memory is not None and not isinstance(memory, str):
        raise TypeError(
            f"cannot save the Pipeline's memory={memory!r}: a file holds a cache directory "
            "as a path string (or None); set_params(memory=<the directory as a str>) first")
    if not isinstance(params.get("verbose"), (bool, np.bool_)):
        raise TypeError(f"cannot save the Pipeline's verbose={params.get('verbose')!r}: "
                        "verbose must be a bool")
    params["verbose"] = bool(params["verbose"])
    if "transform_input" in params:
        value = params["transform_input"]
        if value is not None:
            if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
                raise TypeError(f"cannot save the Pipeline's transform_input={value!r}: "
                                "it must be None or a list of parameter names")
            params["transform_input"] = list(value)
    unknown = set(params) - set(_RESERVED)
    if unknown:
        raise TypeError(f"cannot save the Pipeline parameters {sorted(unknown)}: this "
                        "fastlstm saves memory, verbose and transform_input")
    return params


def _dump_pipeline(pipe: Any, header: dict, arrays: dict[str, np.ndarray],
                   dump_step: DumpStep, allowed: dict[str, type]) -> None:
    """Write ``pipe``: its parameters, then each step through ``dump_step``."""
    params = _pipeline_params(pipe)
    entries = []
    steps = list(pipe.steps)
    for i, (name, step) in enumerate(steps):
        if _is_passthrough(step):
            entries.append({"name": name, "class": step})
            continue
        kind = type(step).__name__
        if allowed.get(kind) is not type(step):
            raise TypeError(
                f"cannot save the Pipeline: its step {name!r} is a {type(step).__module__}."
                f"{type(step).__qualname__}, which a fastlstm file cannot hold; the steps of "
                f"a saved Pipeline are {', '.join(allowed)} or 'passthrough' (save the other "
                "objects with their own tools)")
        if i < len(steps) - 1 and kind not in TRANSFORMERS:
            raise TypeError(f"cannot save the Pipeline: its step {name!r} ({kind}) stands "
                            "before the last step, where only transformers "
                            f"({', '.join(TRANSFORMERS)}) can")
        sub: dict[str, Any] = {}
        sub_arrays: dict[str, np.ndarray] = {}
        try:
            dump_step(step, sub, sub_arrays)
        except (TypeError, ValueError, AttributeError) as exc:
            # the same exception class (NotFittedError stays one), naming the step
            try:
                named = type(exc)(f"step {name!r} of the Pipeline: {exc}")
            except Exception:  # an exception class that takes other arguments
                raise exc from None
            raise named from exc
        entries.append({"name": name, "class": kind, "params": sub["params"],
                        "state": sub["state"]})
        for array_name, value in sub_arrays.items():
            arrays[f"s{i}.{array_name}"] = value
    header["params"] = params
    header["state"] = {"steps": entries}


class _StepReader(_Reader):
    """The archive as one step sees it: that step's header and arrays, prefix removed."""

    def __init__(self, parent: _Reader, prefix: str, header: dict) -> None:  # noqa: D107
        # no super().__init__: the parent has checked the archive already
        self.zf = parent.zf
        self.header = header
        self.version = parent.version
        self.specs = {n[len(prefix):]: s for n, s in parent.specs.items()
                      if n.startswith(prefix)}
        self.by_name = {f"arrays/{n}.npy": parent.by_name[f"arrays/{prefix}{n}.npy"]
                        for n in self.specs}


def _check_params(raw: Any, known: set[str]) -> dict[str, Any]:
    params = _check_keys(raw, ("memory", "verbose"), "the Pipeline's params",
                         optional=("transform_input",))
    _check(params["memory"] is None or isinstance(params["memory"], str),
           f"the Pipeline's memory must be null or a path, got {_short(params['memory'])}")
    _check_bool(params["verbose"], "the Pipeline's verbose")
    value = params.get("transform_input")
    _check(value is None or isinstance(value, list) and all(isinstance(v, str) for v in value),
           f"the Pipeline's transform_input must be null or a list of strings, got "
           f"{_short(value)}")
    if "transform_input" not in known:
        _check(value is None, "the file sets the Pipeline's transform_input, which this "
               "scikit-learn does not have: upgrade scikit-learn to load it")
        params = {k: v for k, v in params.items() if k != "transform_input"}
    return params


def _check_steps(raw: Any, allowed: dict[str, type]) -> list[dict]:
    state = _check_keys(raw, ("steps",), "the Pipeline's state")
    steps = state["steps"]
    _check(isinstance(steps, list) and 1 <= len(steps) <= MAX_STEPS,
           f"the Pipeline's steps must be a list of 1 to {MAX_STEPS} steps, got "
           f"{_short(steps) if not isinstance(steps, list) else f'{len(steps)} steps'}")
    seen = set()
    for i, entry in enumerate(steps):
        _check(isinstance(entry, dict), f"step {i} of the Pipeline must be a JSON object")
        name = entry.get("name")
        _check(isinstance(name, str) and name and "__" not in name
               and name not in _RESERVED and name not in seen,
               f"step {i} of the Pipeline has a malformed name {_short(name)} (step names "
               "are unique strings without '__' that are not a Pipeline parameter)")
        seen.add(name)
        kind = entry.get("class")
        if kind is None or kind == PASSTHROUGH:
            _check_keys(entry, ("name", "class"), f"step {name!r}")
            continue
        _check(isinstance(kind, str) and kind in allowed,
               f"step {name!r} has class {_short(kind)}, which is not one fastlstm loads in "
               f"a Pipeline (allowed: {', '.join(allowed)}, 'passthrough')")
        _check(i == len(steps) - 1 or kind in TRANSFORMERS,
               f"step {name!r} ({kind}) stands before the last step, where only "
               f"transformers ({', '.join(TRANSFORMERS)}) can")
        _check_keys(entry, ("name", "class", "params", "state"), f"step {name!r}")
    return steps


def _load_pipeline(r: _Reader, cls: type, load_step: LoadStep,
                   allowed: dict[str, type]) -> Any:
    """Check the pipeline's header and arrays, then read each step through ``load_step``."""
    known = set(cls([("step", PASSTHROUGH)]).get_params(deep=False))
    params = _check_params(r.header["params"], known)
    steps = _check_steps(r.header["state"], allowed)
    holders = {f"s{i}." for i, e in enumerate(steps) if e["class"] not in (None, PASSTHROUGH)}
    stray = [n for n in r.specs if n[:n.find(".") + 1] not in holders]
    _check(not stray, f"arrays that belong to no step of the Pipeline: {_names(stray)}")
    built = []
    for i, entry in enumerate(steps):
        name, kind = entry["name"], entry["class"]
        if kind is None or kind == PASSTHROUGH:
            built.append((name, kind))
            continue
        view = _StepReader(r, f"s{i}.", {"params": entry["params"], "state": entry["state"]})
        try:
            built.append((name, load_step(view, kind)))
        except _Invalid as exc:
            raise _Invalid(f"step {name!r} ({kind}): {exc}") from None
    return cls(built, **params)
