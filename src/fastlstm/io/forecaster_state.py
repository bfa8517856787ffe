"""A forecaster's state in a model file: its members' regressors, scalings and series ends.

A forecaster holds one inner :class:`LSTMRegressor` (a fleet: one per
series).  Each is written as an estimator is (:mod:`fastlstm.io.estimator_state`),
its header under ``state.members[i]`` and its arrays named ``m<i>.<name>``;
each member's scaling constants are the arrays ``s<i>.<name>``, the ends of
the training series the array ``tails``.  Loading checks every member as an
estimator file is checked, and that the file holds exactly those arrays.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from fastlstm.io.archive import _Reader
from fastlstm.io.checks import (
    _check,
    _check_bool,
    _check_int,
    _check_keys,
    _detail,
    _Invalid,
    _names,
    _scalar,
    _short,
)
from fastlstm.io.estimator_state import (
    _decode_param,
    _dump_estimator,
    _encode_params,
    _load_estimator,
)

__all__ = ["_dump_forecaster", "_load_forecaster"]

_SCALING_ARRAYS = ("target_mean", "target_scale", "covariate_mean", "covariate_scale")
_STATE = ("spec", "layout", "members", "published")
_SPEC = ("window", "steps", "n_targets", "n_covariates", "future_columns", "dtype")
_LAYOUT = ("kind", "n_targets", "target_names", "items", "keys", "level_names", "indexes")


def _json_list(value: Any, what: str) -> Any:
    if value is None:
        return None
    return [_json_list(v, what) if isinstance(v, (list, tuple)) else _scalar(v, what)
            for v in value]


def _dump_forecaster(est: Any, header: dict, arrays: dict[str, np.ndarray],
                     include_optimizer: bool) -> None:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "spec_")
    params = est.get_params(deep=False)
    _encode_params(est, params, header, arrays)
    spec, layout = est.spec_, est.layout_
    members = (list(zip(est.models_, est.scalings_, strict=True)) if est.per_series
               else [(est.regressor_, est.scaling_)])
    headers = []
    for i, (model, scaling) in enumerate(members):
        sub: dict[str, Any] = {}
        sub_arrays: dict[str, np.ndarray] = {}
        with warnings.catch_warnings():  # said once above, for the forecaster
            warnings.filterwarnings("ignore", "the callbacks of this", UserWarning)
            _dump_estimator(model, sub, sub_arrays, include_optimizer)
        headers.append({"params": sub["params"], "state": sub["state"],
                        "scaling": scaling.method})
        for name, value in sub_arrays.items():
            arrays[f"m{i}.{name}"] = value
        for name in _SCALING_ARRAYS:
            arrays[f"s{i}.{name}"] = np.asarray(getattr(scaling, name), dtype=np.float64)
    arrays["tails"] = np.asarray(est.tails_, dtype=np.float64)
    header["state"] = {
        "spec": {"window": spec.window, "steps": spec.steps, "n_targets": spec.n_targets,
                 "n_covariates": spec.n_covariates,
                 "future_columns": [int(c) for c in spec.future_columns], "dtype": spec.dtype},
        "layout": {"kind": layout.kind, "n_targets": layout.n_targets,
                   "target_names": _json_list(layout.target_names, "a target name"),
                   "items": _json_list(layout.items, "a series kind"),
                   "keys": _json_list(layout.keys, "a series key"),
                   "level_names": _json_list(layout.level_names, "an index level name"),
                   "indexes": _json_list(layout.indexes, "an index value")},
        "members": headers,
        "published": est.per_series is False,
    }


class _MemberReader(_Reader):
    """The part of a file that holds member ``i``: its header and its ``m<i>.`` arrays."""

    def __init__(self, parent: _Reader, sub: dict, prefix: str) -> None:  # noqa: D107
        self.zf, self.by_name, self.version = parent.zf, parent.by_name, parent.version
        self.header = {"params": sub["params"], "state": sub["state"]}
        self.prefix = prefix
        self.specs = {n[len(prefix):]: s for n, s in parent.specs.items()
                      if n.startswith(prefix)}

    def array(self, name: str) -> np.ndarray:  # noqa: D102
        # the entry of the full name, checked against the declared spec
        dtype, shape = self.specs[name]
        saved = {self.prefix + name: (dtype, shape)}
        view = _Reader.__new__(_Reader)
        view.zf, view.by_name, view.specs = self.zf, self.by_name, saved
        return _Reader.array(view, self.prefix + name)


def _check_spec(spec: dict) -> None:
    _check_keys(spec, _SPEC, "the forecaster's window spec")
    for name in ("window", "steps", "n_targets"):
        _check_int(spec[name], name, 1)
    _check_int(spec["n_covariates"], "n_covariates", 0)
    cols = spec["future_columns"]
    _check(isinstance(cols, list) and all(isinstance(c, int) and not isinstance(c, bool)
                                          and 0 <= c < spec["n_covariates"] for c in cols)
           and cols == sorted(set(cols)), "malformed future_columns")
    _check(spec["dtype"] in ("float32", "float64"), f"unknown dtype {_short(spec['dtype'])}")


def _load_forecaster(r: _Reader, cls: type) -> Any:
    from fastlstm.estimators.forecaster_core import WindowSpec
    from fastlstm.estimators.forecaster_data import KINDS, Layout
    from fastlstm.estimators.regressor import LSTMRegressor
    from fastlstm.train.windows import SCALINGS, WindowScaling

    raw = r.header["params"]
    _check(isinstance(raw, dict), "params must be a JSON object")
    est = cls()
    known = set(est.get_params(deep=False))
    _check(set(raw) == known, f"params do not match {cls.__name__}: missing "
           f"{_names(known - set(raw))}, unexpected {_names(set(raw) - known)}")
    _check(raw["callbacks"] is None, "callbacks must be null: callbacks are never saved")
    rs_params = [f"params.{n}" for n, v in raw.items()
                 if isinstance(v, dict) and "__random_state__" in v]
    for name in rs_params:
        _check(r.specs.get(name) == (np.dtype(np.uint32), (624,)), f"malformed array {name!r}")
    params = {n: _decode_param(n, v, {a: r.array(a) for a in rs_params})
              for n, v in raw.items()}
    try:
        est.set_params(**params)
        est._check_params()
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Invalid(f"invalid {cls.__name__} parameters ({_detail(exc)})") from None
    state = _check_keys(r.header["state"], _STATE, "state")
    spec_json = state["spec"]
    _check_spec(spec_json)
    _check_bool(state["published"], "published")
    lay = _check_keys(state["layout"], _LAYOUT, "the layout")
    _check(lay["kind"] in KINDS, f"unknown layout {_short(lay['kind'])}")
    _check(lay["n_targets"] == spec_json["n_targets"], "the layout does not match the spec")
    members = state["members"]
    _check(isinstance(members, list) and len(members) >= 1, "members must be a non-empty list")
    _check(est.per_series or len(members) == 1, "a forecaster without per_series has one model")
    _check(len(members) <= max(1, r.count("m")), "more members than the file holds arrays for")
    steps = spec_json["steps"]
    _check(steps == (est.horizon if est.strategy == "direct" else 1),
           "the window spec does not match the horizon and strategy")
    _check(spec_json["window"] == est.window, "the window spec does not match the window")
    k, c = spec_json["n_targets"], spec_json["n_covariates"]
    n_series = len(members) if est.per_series else None
    width = k + c
    tails_spec = r.specs.get("tails")
    _check(tails_spec is not None and tails_spec[1][1:] == (spec_json["window"], width)
           and (n_series is None or tails_spec[1][0] == n_series)
           and tails_spec[0] == np.dtype(np.float64), "malformed array 'tails'")
    expected_top = {"tails", *rs_params} | {f"s{i}.{n}" for i in range(len(members))
                                            for n in _SCALING_ARRAYS}
    member_prefixes = tuple(f"m{i}." for i in range(len(members)))
    extra = [n for n in r.specs if n not in expected_top and not n.startswith(member_prefixes)]
    _check(not extra, f"unexpected arrays {_names(extra)}")
    spec = WindowSpec(spec_json["window"], steps, k, c,
                      np.asarray(spec_json["future_columns"], dtype=np.intp), spec_json["dtype"])
    n_features = spec.n_features
    models, scalings = [], []
    for i, sub in enumerate(members):
        _check_keys(sub, ("params", "state", "scaling"), f"member {i}")
        _check(sub["scaling"] in SCALINGS and sub["scaling"] == est.scaling,
               f"member {i}: unknown scaling {_short(sub['scaling'])}")
        model = _load_estimator(_MemberReader(r, sub, f"m{i}."), LSTMRegressor)
        _check(model.network_.config["n_features"] == n_features
               and model.network_.config["n_outputs"] == steps * k
               and model.network_.config["cell"] == est.cell,
               f"member {i}'s network does not match the window spec")
        sc = {}
        for name, size in zip(_SCALING_ARRAYS, (k, k, c, c), strict=True):
            full = f"s{i}.{name}"
            _check(r.specs.get(full) == (np.dtype(np.float64), (size,)),
                   f"malformed scaling array {full!r}")
            sc[name] = r.array(full)
            _check(np.isfinite(sc[name]).all(), f"array {full!r} contains NaN or infinity")
        _check((sc["target_scale"] > 0).all() and (sc["covariate_scale"] > 0).all(),
               f"member {i}: scales must be positive")
        models.append(model)
        scalings.append(WindowScaling(sub["scaling"], **sc))
    tails = r.array("tails")
    n_rows = tails.shape[0]
    indexes = lay["indexes"]
    _check(isinstance(indexes, list) and len(indexes) == n_rows and all(
        i is None or isinstance(i, list) and i and i[0] in ("range", "datetime", "period", "none")
        for i in indexes), "malformed layout indexes")
    items = lay["items"]
    _check((items is None) == (lay["kind"] != "list") and (items is None or (
        len(items) == n_rows and all(i in KINDS[:4] for i in items))), "malformed layout items")
    _check(lay["kind"] != "panel" or isinstance(lay["keys"], list) and len(lay["keys"]) == n_rows,
           "malformed layout keys")
    names = lay["target_names"]
    _check(names is None and lay["kind"] in ("array1d", "array2d", "list")
           or isinstance(names, list) and len(names) == k, "malformed target names")
    est.spec_ = spec
    est.layout_ = Layout(lay["kind"], lay["n_targets"], target_names=lay["target_names"],
                         items=lay["items"], keys=lay["keys"], level_names=lay["level_names"],
                         indexes=indexes)
    ends = [tails[j] for j in range(n_rows)]
    if est.per_series:
        est.models_, est.scalings_ = models, scalings
        est._set_common(ends, spec, est.layout_)
    else:
        est._publish(models[0], scalings[0], ends, spec, est.layout_)
    return est
