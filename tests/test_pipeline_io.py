"""fastlstm.save / fastlstm.load of a scikit-learn Pipeline of fastlstm objects.

Round trips predict bit for bit in every input form the scaler and the
estimators take; a Pipeline with another step is refused by name at save;
tampered and damaged pipeline files are refused with ValueError, as
tests/test_io_tampered.py asks of every file.
"""

import contextlib
import copy
import io
import json
import random
import re
import time

import numpy as np
import pytest
from saved_files import saved, tampered, zip_entries, zipped
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor, SequenceScaler

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(cls, **kwargs):
    return cls(hidden_size=4, max_epochs=2, batch_size=8, n_jobs=1, random_state=0, **kwargs)


def _round_trip(model, **kwargs):
    return fastlstm.load(io.BytesIO(saved(model, **kwargs)))


def _refusal(data):
    with pytest.raises(ValueError) as info:
        fastlstm.load(io.BytesIO(data))
    message = str(info.value)
    assert message.startswith("Cannot load the file: "), message
    assert len(message) < 1000, message[:1000]
    return message


def _rng(seed):
    return np.random.default_rng(seed)


def _dense(seed=0, n=32, steps=6, features=2):
    return (_rng(seed).normal(5.0, 3.0, size=(n, steps, features))).astype(np.float32)


def _ragged(seed=0, n=24, features=2):
    rng = _rng(seed)
    return [rng.normal(-2.0, 4.0, size=(int(t), features)) for t in rng.integers(2, 9, size=n)]


def _labels(X):
    first = np.array([np.asarray(x)[..., 0].mean() for x in X])
    return np.where(first > np.median(first), "up", "down")


# ------------------------------------------------------------------ round trips
def _cases():
    X = _dense(0)
    Xcf = np.ascontiguousarray(X.transpose(0, 2, 1))
    ragged = _ragged(1)
    table = _dense(2, features=1)[:, :, 0].astype(np.float64)
    return {
        "dense-clf": (X, _labels(X), SequenceScaler(), _small(LSTMClassifier)),
        "channels-first-clf": (Xcf, _labels(X), SequenceScaler(channels_first=True),
                               _small(LSTMClassifier, channels_first=True)),
        "ragged-clf": (ragged, _labels(ragged), SequenceScaler(),
                       _small(LSTMClassifier, bidirectional=True)),
        "table-reg": (table, table[:, -1] * 3 + 1, SequenceScaler(with_mean=False),
                      _small(LSTMRegressor)),
        "dense-reg-2-outputs": (X, X[:, -1, :] * 10, SequenceScaler(with_std=False),
                                _small(LSTMRegressor, num_layers=2, cell="gru")),
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_pipeline_round_trip_predicts_identically(case):
    X, y, scaler, est = _cases()[case]
    pipe = Pipeline([("scale", scaler), ("model", est)], verbose=False).fit(X, y)
    loaded = _round_trip(pipe)
    assert type(loaded) is Pipeline
    assert list(loaded.named_steps) == ["scale", "model"]
    assert type(loaded["scale"]) is SequenceScaler and type(loaded["model"]) is type(est)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))
    if hasattr(est, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    # the scaler's statistics and parameters, the estimator's parameters
    for name in ("mean_", "scale_"):
        np.testing.assert_array_equal(getattr(loaded["scale"], name), getattr(scaler, name))
    assert loaded["scale"].n_steps_seen_ == scaler.n_steps_seen_
    assert loaded["scale"].get_params() == scaler.get_params()
    assert loaded["model"].get_params() == est.get_params()
    # the loaded transform is the same function
    Z, Z0 = loaded["scale"].transform(X), scaler.transform(X)
    for a, b in zip(Z if isinstance(Z, list) else [Z], Z0 if isinstance(Z0, list) else [Z0],
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_pipeline_parameters_and_step_names_travel(tmp_path):
    X = _dense(3)
    pipe = Pipeline([("first scaler", SequenceScaler()), ("skip", "passthrough"),
                     ("second", SequenceScaler(with_mean=False)), ("none", None),
                     ("clf", _small(LSTMClassifier))],
                    memory=str(tmp_path / "cache"), verbose=True)
    pipe.fit(X, _labels(X))
    loaded = _round_trip(pipe)
    assert [name for name, _ in loaded.steps] == ["first scaler", "skip", "second", "none",
                                                  "clf"]
    assert loaded.steps[1][1] == "passthrough" and loaded.steps[3][1] is None
    assert loaded.memory == str(tmp_path / "cache") and loaded.verbose is True
    assert loaded.get_params(deep=False).keys() == pipe.get_params(deep=False).keys()
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_a_pipeline_ending_in_a_scaler_and_a_scaler_alone_round_trip():
    X = _ragged(4)
    pipe = make_pipeline(SequenceScaler(), SequenceScaler(with_std=False)).fit(X)
    loaded = _round_trip(pipe)
    for a, b in zip(loaded.transform(X), pipe.transform(X), strict=True):
        np.testing.assert_array_equal(a, b)
    scaler = SequenceScaler(channels_first=True).fit(np.swapaxes(_dense(5), 1, 2))
    copy_ = _round_trip(scaler)
    assert copy_.channels_first and copy_._channels_first
    np.testing.assert_array_equal(copy_.scale_, scaler.scale_)


@pytest.mark.parametrize("per_series", [False, True], ids=["global", "fleet"])
def test_a_pipeline_of_a_forecaster_round_trips(per_series):
    t = np.arange(90.0)
    series = [np.sin(t / 4) + t / 30, np.cos(t / 5) * 2 + 5]
    forecaster = fastlstm.LSTMForecaster(window=8, horizon=3, hidden_size=4, max_epochs=2,
                                         n_jobs=1, random_state=0, per_series=per_series)
    pipe = Pipeline([("forecaster", forecaster)]).fit(series)
    loaded = _round_trip(pipe)
    assert type(loaded["forecaster"]) is fastlstm.LSTMForecaster
    for got, want in zip(loaded["forecaster"].predict(), forecaster.predict(), strict=True):
        np.testing.assert_array_equal(got, want)
    context = [s[:60] for s in series]
    for got, want in zip(loaded["forecaster"].predict(2, y=context),
                         forecaster.predict(2, y=context), strict=True):
        np.testing.assert_array_equal(got, want)


def test_feature_names_travel_with_a_panel():
    pd = pytest.importorskip("pandas")
    X = _dense(6, n=12, steps=5)
    index = pd.MultiIndex.from_product([range(12), range(5)], names=["case", "t"])
    df = pd.DataFrame(X.reshape(-1, 2), index=index, columns=["a", "b"])
    y = _labels(X)
    pipe = make_pipeline(SequenceScaler(), _small(LSTMClassifier)).fit(df, y)
    loaded = _round_trip(pipe)
    assert list(loaded[0].feature_names_in_) == ["a", "b"]
    assert list(loaded[-1].feature_names_in_) == ["a", "b"]
    np.testing.assert_array_equal(loaded.predict_proba(df), pipe.predict_proba(df))


def test_a_loaded_pipeline_trains_on_as_the_original():
    X = _dense(7)
    y = X[:, -1, 0]
    pipe = make_pipeline(SequenceScaler(), _small(LSTMRegressor, warm_start=True)).fit(X, y)
    loaded = _round_trip(pipe)
    pipe.fit(X, y)
    loaded.fit(X, y)
    np.testing.assert_array_equal(loaded.predict(X), pipe.predict(X))


def test_include_optimizer_applies_to_every_step():
    X = _dense(8)
    pipe = make_pipeline(SequenceScaler(), _small(LSTMRegressor)).fit(X, X[:, -1, 0])
    with_opt = set(json.loads(zip_entries(saved(pipe))["header.json"])["arrays"])
    without = set(json.loads(zip_entries(saved(pipe, include_optimizer=False))["header.json"])[
        "arrays"])
    assert any(n.startswith("s1.optimizer.") for n in with_opt)
    assert not any(".optimizer." in n for n in without)
    assert without < with_opt


# ------------------------------------------------------------------ refused at save
def test_a_foreign_step_is_refused_by_name():
    X = _dense(9)
    pipe = Pipeline([("log", FunctionTransformer(np.log1p)), ("clf", _small(LSTMClassifier))])
    pipe.fit(np.abs(X), _labels(X))
    with pytest.raises(TypeError, match="its step 'log' is a sklearn.preprocessing."
                                        "_function_transformer.FunctionTransformer"):
        saved(pipe)


def test_nested_pipelines_and_misplaced_estimators_are_refused():
    X = _dense(10)
    y = _labels(X)
    inner = make_pipeline(SequenceScaler()).fit(X)
    clf = _small(LSTMClassifier).fit(X, y)
    with pytest.raises(TypeError, match="its step 'inner' is a sklearn.pipeline.Pipeline"):
        saved(Pipeline([("inner", inner), ("clf", clf)]))
    with pytest.raises(TypeError, match="step 'clf' \\(LSTMClassifier\\) stands before the last"):
        saved(Pipeline([("clf", clf), ("scale", SequenceScaler().fit(X))]))


def test_unfitted_steps_and_unsaveable_parameters_are_refused():
    X = _dense(11)
    y = _labels(X)
    with pytest.raises(NotFittedError, match="step 'lstmclassifier' of the Pipeline"):
        saved(make_pipeline(SequenceScaler().fit(X), LSTMClassifier()))
    with pytest.raises(NotFittedError, match="step 'sequencescaler' of the Pipeline"):
        saved(make_pipeline(SequenceScaler(), _small(LSTMClassifier).fit(X, y)))
    joblib = pytest.importorskip("joblib")
    pipe = make_pipeline(SequenceScaler(), _small(LSTMClassifier)).fit(X, y)
    pipe.set_params(memory=joblib.Memory(None))
    with pytest.raises(TypeError, match="memory=.*a path string"):
        saved(pipe)


# ------------------------------------------------------------------ refused at load
@pytest.fixture(scope="module")
def pipeline_file():
    X = _dense(12, n=24, steps=5)
    pipe = Pipeline([("scale", SequenceScaler()), ("skip", "passthrough"),
                     ("clf", _small(LSTMClassifier))]).fit(X, _labels(X))
    return saved(pipe)


def test_the_untampered_file_loads(pipeline_file):
    assert type(fastlstm.load(io.BytesIO(pipeline_file))) is Pipeline


def _step(index, **changes):
    def edit(h):
        h["state"]["steps"][index].update(changes)
    return edit


def _scaler_state(**changes):
    return lambda h: h["state"]["steps"][0]["state"].update(changes)


@pytest.mark.parametrize("edit, match", [
    (_step(0, **{"class": "FunctionTransformer"}),
     "step 'scale' has class 'FunctionTransformer', which is not one fastlstm loads"),
    (_step(0, **{"class": "Pipeline"}), "step 'scale' has class 'Pipeline'"),
    (_step(0, **{"class": "LSTM"}), "step 'scale' has class 'LSTM'"),
    (_step(0, **{"class": "LSTMClassifier"}),
     "step 'scale' \\(LSTMClassifier\\) stands before the last step"),
    (_step(2, name="scale"), "step 2 of the Pipeline has a malformed name 'scale'"),
    (_step(2, name="a__b"), "malformed name 'a__b'"),
    (_step(2, name="memory"), "malformed name 'memory'"),
    (_step(2, name=7), "malformed name 7"),
    (_step(1, **{"class": "passthrough", "params": {}}), "step 'skip' does not match"),
    (lambda h: h["state"]["steps"][0].pop("state"), "step 'scale' does not match"),
    (lambda h: h["state"].update(steps=[]), "a list of 1 to 64 steps, got 0 steps"),
    (lambda h: h["state"].update(steps={"a": 1}), "must be a list of 1 to 64 steps"),
    (lambda h: h["state"].update(steps=[{"name": f"p{i}", "class": "passthrough"}
                                        for i in range(10**4)]), "got 10000 steps"),
    (lambda h: h["state"].update(extra=1), "the Pipeline's state does not match"),
    (lambda h: h["params"].update(memory=["/tmp"]), "memory must be null or a path"),
    (lambda h: h["params"].update(verbose=1), "verbose must be true or false"),
    (lambda h: h["params"].update(transform_input="x"), "transform_input must be null"),
    (lambda h: h["params"].update(steps=[]), "the Pipeline's params does not match"),
    (_scaler_state(n_features_in_=3), "step 'scale' \\(SequenceScaler\\): n_features_in_=3 "
                                      "does not match the 2 statistics"),
    (_scaler_state(table=True), "fitted on a 2D table has one feature per step"),
    (_scaler_state(channels_first_fitted=True), "layout does not match"),
    (_scaler_state(n_steps_seen_=0), "n_steps_seen_ must be an int in \\[1,"),
    (_scaler_state(feature_names_in_=["a"]), "feature_names_in_ must be a list"),
    (lambda h: h["state"]["steps"][0]["params"].update(with_std="yes"),
     "parameter 'with_std' must be true or false"),
    (lambda h: h["state"]["steps"][0]["params"].update(with_std=False),
     "with_std=False needs a scale of ones"),
    (lambda h: h["state"]["steps"][0]["params"].update(evil=1), "unexpected \\['evil'\\]"),
    # the estimator step is checked as an estimator file is
    (lambda h: h["state"]["steps"][2]["state"]["network"].update(n_outputs=3),
     "step 'clf' \\(LSTMClassifier\\): array 'head.weight' has shape"),
    (lambda h: h["state"]["steps"][2]["params"].update(hidden_size="big"),
     "step 'clf' \\(LSTMClassifier\\): invalid LSTMClassifier parameters"),
    (lambda h: [h["state"]["steps"][2]["state"][k].update(num_layers=10**7)
                for k in ("network", "architecture")],
     "the network's num_layers=10000000 needs"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_tampered_pipeline_headers_are_refused(pipeline_file, edit, match):
    message = _refusal(tampered(pipeline_file, edit))
    assert re.search(match, message), message


def test_arrays_must_belong_to_their_step(pipeline_file):
    entries = zip_entries(pipeline_file)
    header = json.loads(entries["header.json"])
    # the scaler's statistics moved to the passthrough step, and to no step at all
    for prefix in ("s1.", "s9.", ""):
        moved = dict(entries)
        h = copy.deepcopy(header)
        h["arrays"][f"{prefix}mean"] = h["arrays"].pop("s0.mean")
        moved[f"arrays/{prefix}mean.npy"] = moved.pop("arrays/s0.mean.npy")
        moved["header.json"] = json.dumps(h).encode()
        message = _refusal(zipped(moved))
        assert f"arrays that belong to no step of the Pipeline: ['{prefix}mean']" in message
    # an estimator's array given to the scaler
    h = copy.deepcopy(header)
    h["arrays"]["s0.head.bias"] = h["arrays"].pop("s2.head.bias")
    moved = dict(entries)
    moved["arrays/s0.head.bias.npy"] = moved.pop("arrays/s2.head.bias.npy")
    moved["header.json"] = json.dumps(h).encode()
    message = _refusal(zipped(moved))
    assert "step 'scale' (SequenceScaler): the arrays do not match the model" in message


def _replace_array(data, name, value):
    entries = zip_entries(data)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value)
    entries[f"arrays/{name}.npy"] = buffer.getvalue()
    header = json.loads(entries["header.json"])
    header["arrays"][name] = {"dtype": value.dtype.str, "shape": list(value.shape)}
    entries["header.json"] = json.dumps(header).encode()
    return zipped(entries)


@pytest.mark.parametrize("name, value, match", [
    ("s0.scale", np.array([1.0, -1.0]), "the scale positive"),
    ("s0.mean", np.array([np.nan, 0.0]), "must be finite"),
    ("s0.mean", np.array([0.0, 0.0, 0.0]), "array 'scale' has shape \\(2,\\), the model needs "
                                           "\\(3,\\)"),
    ("s0.mean", np.array([[0.0, 0.0]]), "needs 1D arrays"),
    ("s0.mean", np.array([0.0, 0.0], dtype=np.float32), "has dtype float32, the model needs"),
    ("s2.head.bias", np.array([np.inf, 0.0], dtype=np.float32), "contains NaN or infinity"),
])
def test_tampered_step_arrays_are_refused(pipeline_file, name, value, match):
    message = _refusal(_replace_array(pipeline_file, name, value))
    assert re.search(match, message), message


def test_byte_mutations_load_or_raise_value_error(pipeline_file):
    rng = random.Random(2026)
    outcomes = {"ok": 0, "ValueError": 0}
    for _ in range(200):
        mutated = bytearray(pipeline_file)
        for _ in range(rng.choice([1, 2, 4])):
            pos = rng.randrange(len(mutated))
            mutated[pos] = rng.randrange(256)
        try:
            fastlstm.load(io.BytesIO(bytes(mutated)))
            outcomes["ok"] += 1
        except ValueError as exc:  # anything else fails the test
            assert str(exc).startswith("Cannot load the file: ")
            outcomes["ValueError"] += 1
    assert outcomes["ValueError"] > 100


ABSURD = [10**7, 10**400, -1, 0, 1e308, float("nan"), True, None, "", "x" * 5000,
          "passthrough", "Pipeline", "SequenceScaler", [], [10**7], {}, {"a": 1}]


def _paths(node, prefix=()):
    if prefix:
        yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


def test_header_tampering_loads_or_raises_value_error(pipeline_file):
    entries = zip_entries(pipeline_file)
    header = json.loads(entries["header.json"])
    paths = list(_paths(header))
    rng = random.Random(11)
    outcomes = {"ok": 0, "ValueError": 0}
    slowest = 0.0
    for _ in range(200):
        edited = copy.deepcopy(header)
        for _ in range(rng.choice([1, 1, 2])):
            path = rng.choice(paths)
            with contextlib.suppress(KeyError, IndexError, TypeError):  # a path gone
                node = edited
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = copy.deepcopy(rng.choice(ABSURD))
        blob = zipped({**entries, "header.json": json.dumps(edited).encode()})
        start = time.perf_counter()
        try:
            fastlstm.load(io.BytesIO(blob))
            outcomes["ok"] += 1
        except ValueError as exc:  # anything else fails the test
            assert str(exc).startswith("Cannot load the file: "), str(exc)
            outcomes["ValueError"] += 1
        slowest = max(slowest, time.perf_counter() - start)
    assert outcomes["ValueError"] > 120
    assert slowest < 2.0
