"""The aeon adapters: aeon's own estimator checks, and the same models fastlstm fits itself.

aeon is an optional extra.  Without it this module skips, unless
FASTLSTM_REQUIRE_ECOSYSTEM=1 (set by the CI step that installs the extras),
which turns the missing package into a failure.
"""

import importlib
import io
import os
import warnings

import numpy as np
import pytest
from sklearn.pipeline import Pipeline


def _require(name):
    if os.environ.get("FASTLSTM_REQUIRE_ECOSYSTEM") == "1":
        return importlib.import_module(name)  # missing: an ImportError fails the module
    return pytest.importorskip(name)


aeon = _require("aeon")

from aeon.datasets import load_covid_3month, load_japanese_vowels  # noqa: E402
from aeon.testing.estimator_checking import check_estimator  # noqa: E402

import fastlstm  # noqa: E402
from fastlstm.ecosystem.aeon import AeonLSTMClassifier, AeonLSTMRegressor  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("cls", [AeonLSTMClassifier, AeonLSTMRegressor])
def test_aeon_check_estimator_passes(cls):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls, raise_exceptions=False)
    failed = {name: result for name, result in results.items() if result != "PASSED"}
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    # the checks ran on aeon's equal- and unequal-length, uni- and multivariate data
    kind = "classifier" if cls is AeonLSTMClassifier else "regressor"
    outputs = [name for name in results if name.startswith(f"check_{kind}_output")]
    for datatype in ("EqualLengthUnivariate", "EqualLengthMultivariate",
                     "UnequalLengthUnivariate", "UnequalLengthMultivariate"):
        assert any(f"datatype={datatype}" in name for name in outputs), datatype
    assert len(results) >= 30


@pytest.mark.parametrize("cls", [AeonLSTMClassifier, AeonLSTMRegressor])
def test_aeon_multithreading_check_passes(cls, monkeypatch):
    # aeon leaves its multithreading check out unless its test configuration
    # asks for it: one thread and several give the same predictions
    from aeon.testing.estimator_checking import _yield_multithreading_checks as checks

    monkeypatch.setattr(checks, "MULTITHREAD_TESTING", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(cls, raise_exceptions=False,
                                  checks_to_run="check_estimator_multithreading")
    assert len(results) >= 6 and all(r == "PASSED" for r in results.values()), results


def test_tags_say_what_the_adapters_take():
    for cls in (AeonLSTMClassifier, AeonLSTMRegressor):
        tags = cls.get_class_tags()
        assert tags["capability:multivariate"] and tags["capability:unequal_length"]
        assert tags["capability:univariate"] and tags["capability:multithreading"]
        assert not tags["capability:missing_values"]
        assert set(tags["X_inner_type"]) == {"numpy3D", "np-list"}


def _collection(seed, n=30, channels=3, length=12, ragged=False):
    rng = np.random.default_rng(seed)
    if ragged:
        return [rng.normal(10, 4, size=(channels, int(t))) for t in rng.integers(4, length, n)]
    return rng.normal(10, 4, size=(n, channels, length))


def _fastlstm_pipeline(cls, **params):
    return Pipeline([("scaler", fastlstm.SequenceScaler(channels_first=True)),
                     ("model", cls(channels_first=True, n_jobs=1, **params))])


@pytest.mark.parametrize("ragged", [False, True], ids=["numpy3D", "np-list"])
def test_the_classifier_is_the_fastlstm_pipeline_on_channels_first_data(ragged):
    X = _collection(0, ragged=ragged)
    y = np.array(["a", "b", "c"])[np.arange(len(X)) % 3]
    params = dict(hidden_size=5, max_epochs=3, batch_size=8, random_state=3)
    clf = AeonLSTMClassifier(**params).fit(X, y)
    ref = _fastlstm_pipeline(fastlstm.LSTMClassifier, **params).fit(X, y)
    test = _collection(1, n=7, ragged=ragged)
    np.testing.assert_array_equal(clf.predict_proba(test), ref.predict_proba(test))
    np.testing.assert_array_equal(clf.predict(test), ref.predict(test))
    assert list(clf.classes_) == ["a", "b", "c"]


@pytest.mark.parametrize("ragged", [False, True], ids=["numpy3D", "np-list"])
def test_the_regressor_is_the_fastlstm_pipeline_on_channels_first_data(ragged):
    X = _collection(2, ragged=ragged)
    y = np.array([x[0, -1] + x[1].mean() for x in X])
    params = dict(hidden_size=5, max_epochs=3, batch_size=8, random_state=4, cell="gru")
    reg = AeonLSTMRegressor(**params).fit(X, y)
    ref = _fastlstm_pipeline(fastlstm.LSTMRegressor, **params).fit(X, y)
    test = _collection(3, n=7, ragged=ragged)
    np.testing.assert_array_equal(reg.predict(test), ref.predict(test))


def test_without_standardize_the_model_is_the_estimator_alone():
    X = _collection(4)
    y = np.arange(len(X)) % 2
    clf = AeonLSTMClassifier(hidden_size=4, max_epochs=2, standardize=False,
                             random_state=0).fit(X, y)
    assert [name for name, _ in clf.model_.steps] == ["model"]
    ref = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=2, channels_first=True, n_jobs=1,
                                  random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), ref.predict_proba(X))


def test_unequal_length_multivariate_data_is_learnt():
    # JapaneseVowels ships with aeon: 12 channels, lengths 7 to 29, 9 speakers
    X, y = load_japanese_vowels(split="train")
    X_test, y_test = load_japanese_vowels(split="test")
    assert len({x.shape[1] for x in X}) > 5
    clf = AeonLSTMClassifier(hidden_size=16, max_epochs=30, random_state=0).fit(X, y)
    accuracy = float(np.mean(clf.predict(X_test) == y_test))
    assert accuracy > 0.85, accuracy  # chance is 1/9


def test_the_regressor_beats_the_mean_on_aeon_data():
    X, y = load_covid_3month(split="train")
    X_test, y_test = load_covid_3month(split="test")
    reg = AeonLSTMRegressor(hidden_size=16, max_epochs=20, learning_rate=1e-2,
                            random_state=0).fit(X, y)
    mse = np.mean((reg.predict(X_test) - y_test) ** 2)
    assert mse < np.mean((y.mean() - y_test) ** 2)


def test_the_fitted_model_saves_and_exports():
    X = _collection(5, channels=2)
    y = np.where(X[:, 0, -1] > 10, 1, 0)
    clf = AeonLSTMClassifier(hidden_size=4, max_epochs=2, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    fastlstm.save(clf.model_, buffer)
    loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = fastlstm.to_onnx(clf.model_)
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    _, proba = session.run(None, {"x": X.astype(np.float32)})
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-5, atol=1e-5)


def test_bad_parameters_are_reported_by_fastlstm():
    X = _collection(6)
    with pytest.raises(ValueError, match="'hidden_size' parameter of LSTMClassifier"):
        AeonLSTMClassifier(hidden_size=0).fit(X, np.arange(len(X)) % 2)
    with pytest.raises(ValueError, match="'cell' parameter of LSTMRegressor"):
        AeonLSTMRegressor(cell="cnn").fit(X, np.arange(len(X), dtype=float))
