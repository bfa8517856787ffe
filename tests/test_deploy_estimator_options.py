"""save/load, to_onnx, to_torch and predict_step with the estimators' newer options.

Validation control (X_val/y_val, validation_split, scoring), the input layout
(channels_first), robust regression losses, callbacks, history_,
validation_losses_ and feature_names_in_.
"""

import io
import json
import warnings
import zipfile

import numpy as np
import pytest

import fastlstm
from fastlstm.callbacks import Callback, LRScheduler

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TOL32 = dict(rtol=1e-5, atol=1e-5)
# channels-first data: 3 features, 7 time steps (distinct, so a mixed-up layout fails)
N, F, T = 30, 3, 7


def _round_trip(model, **kwargs):
    buffer = io.BytesIO()
    fastlstm.save(model, buffer, **kwargs)
    return fastlstm.load(io.BytesIO(buffer.getvalue())), buffer.getvalue()


def _edited(data, edit):
    """The file ``data`` with its header changed by ``edit``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(entries["header.json"])
    edit(header)
    entries["header.json"] = json.dumps(header).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, value in entries.items():
            zf.writestr(name, value)
    return buffer.getvalue()


def _refused(data, match):
    with pytest.raises(ValueError, match=match):
        fastlstm.load(io.BytesIO(data))


def _cf_data(seed=0):
    """Channels-first sequences ``(N, F, T)`` and targets in their own units."""
    X = np.random.default_rng(seed).uniform(-1, 1, (N, F, T)).astype(np.float32)
    return X, np.where(X[:, 0, :].sum(axis=1) > 0, "up", "down"), 50 * X[:, 1, -2:].sum(1) + 7


def _same_history(a, b):
    np.testing.assert_equal(list(a), list(b))  # NaN (no validation) compares equal here


# ------------------------------------------------------------------ save / load
def test_round_trip_of_a_model_validated_on_x_val():
    rng = np.random.default_rng(1)
    X, X_val = rng.uniform(-1, 1, (40, 5, 2)), rng.uniform(-1, 1, (12, 5, 2))
    y, y_val = 10 * X[:, -1, 0] + 3, 10 * X_val[:, -1, 0] + 3
    reg = fastlstm.LSTMRegressor(hidden_size=5, max_epochs=3, batch_size=8, early_stopping=True,
                                 scoring="loss", loss="huber", random_state=0)
    reg.fit(X, y, X_val=X_val, y_val=y_val)
    copy, _ = _round_trip(reg)
    np.testing.assert_array_equal(copy.predict(X_val), reg.predict(X_val))
    assert copy.validation_losses_ == reg.validation_losses_ and len(reg.validation_losses_) == 3
    assert copy.validation_scores_ == reg.validation_scores_
    assert copy.best_validation_score_ == reg.best_validation_score_
    _same_history(copy.history_, reg.history_)
    assert copy.history_["validation_loss"] == reg.validation_losses_
    assert (copy.scoring, copy.loss) == ("loss", "huber")
    # a warm-start fit on new validation data goes on identically
    for est in (reg, copy):
        est.set_params(warm_start=True, max_epochs=2).fit(X, y, X_val=X_val, y_val=y_val)
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    assert copy.validation_losses_ == reg.validation_losses_
    assert copy.history_["epoch"] == [1, 2, 3, 4, 5]


def test_feature_names_from_a_dataframe_travel():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.uniform(-1, 1, (40, 6)), columns=[f"t{i}" for i in range(6)])
    y = X.sum(axis=1).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "a 2D DataFrame is univariate series"
        reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=2, random_state=0).fit(X, y)
    copy, _ = _round_trip(reg)
    assert copy.feature_names_in_.dtype == object
    np.testing.assert_array_equal(copy.feature_names_in_, reg.feature_names_in_)
    np.testing.assert_array_equal(copy.predict(X), reg.predict(X))
    renamed = X.rename(columns={"t0": "other"})
    with pytest.raises(ValueError, match="feature names"):
        copy.predict(renamed)  # checked against the loaded names, as the original does
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(renamed)
    # and a model fitted without names has none after loading
    plain, _ = _round_trip(fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, random_state=0)
                           .fit(X.to_numpy(), y))
    assert not hasattr(plain, "feature_names_in_")


class _Recorder(Callback):
    """A user callback: an arbitrary Python object, which no safe file can hold."""

    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, ctx, epoch, logs):
        self.epochs.append(epoch)


def test_callbacks_are_not_saved_and_load_as_none():
    X, y_label, _ = _cf_data()
    recorder = _Recorder()
    callbacks = [recorder, LRScheduler("step", step_size=1, gamma=0.5)]
    clf = fastlstm.LSTMClassifier(hidden_size=5, max_epochs=3, channels_first=True,
                                  callbacks=callbacks, random_state=0).fit(X, y_label)
    assert recorder.epochs and clf.history_["learning_rate"][-1] < clf.learning_rate
    with pytest.warns(UserWarning, match="callbacks .* are not saved"):
        copy, data = _round_trip(clf)
    assert clf.callbacks is callbacks  # the saved model keeps them
    assert copy.callbacks is None
    params, copy_params = clf.get_params(), copy.get_params()
    params.pop("callbacks")
    assert copy_params.pop("callbacks") is None and copy_params == params
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    _same_history(copy.history_, clf.history_)  # the scheduled rates are in the history
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert json.loads(zf.read("header.json"))["params"]["callbacks"] is None
    # training goes on, without callbacks until they are set again
    copy.partial_fit(X, y_label)
    assert copy.n_iter_ == 4
    copy.set_params(callbacks=[recorder]).partial_fit(X, y_label)
    assert recorder.epochs[-1] == 5
    # no callbacks: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _round_trip(copy.set_params(callbacks=None))
    # a file claiming callbacks is refused
    _refused(_edited(data, lambda h: h["params"].update(callbacks=["os.system"])),
             "callbacks must be null")


def test_history_records_must_be_the_standard_ones_to_save(tmp_path):
    X, y_label, _ = _cf_data()
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=2, random_state=0).fit(X, y_label)
    clf._state.history[0]["note"] = object()  # not what training records
    path = tmp_path / "model.fastlstm"
    with pytest.raises(TypeError, match="cannot save the history_ record"):
        fastlstm.save(clf, path)
    assert not path.exists()  # nothing half-written


def test_estimator_files_of_format_version_1_are_refused_layer_files_load():
    X, y_label, _ = _cf_data()
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0).fit(X, y_label)
    _, data = _round_trip(clf)
    _refused(_edited(data, lambda h: h.update(format_version=1)),
             "format version 1: estimator files older than format version 2")
    layer = fastlstm.LSTM(2, 3, random_state=0)
    _, data = _round_trip(layer)
    old = fastlstm.load(io.BytesIO(_edited(data, lambda h: h.update(format_version=1))))
    x = np.ones((2, 4, 2), dtype=np.float32)
    np.testing.assert_array_equal(old.forward(x)[0], layer.forward(x)[0])


def test_tampered_new_fields_are_refused():
    X, y_label, _ = _cf_data()
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=2, channels_first=True,
                                  early_stopping=True, random_state=0).fit(X, y_label)
    _, data = _round_trip(clf)

    def arch(**kw):
        return lambda h: h["state"]["architecture"].update(**kw)

    def train_state(edit):
        return lambda h: edit(h["state"]["train_state"])

    _refused(_edited(data, arch(channels_first="yes")), "channels_first must be true or false")
    _refused(_edited(data, lambda h: h["state"]["architecture"].pop("channels_first")),
             "architecture does not match the format: missing \\['channels_first'\\]")
    _refused(_edited(data, arch(extra=1)), "unexpected \\['extra'\\]")
    _refused(_edited(data, train_state(lambda ts: ts["history"][0].pop("loss"))),
             "history record 0 does not match the format: missing \\['loss'\\]")
    _refused(_edited(data, train_state(lambda ts: ts["history"][1].update(note=1.0))),
             "history record 1 does not match the format: missing \\[\\], unexpected "
             "\\['note'\\]")
    _refused(_edited(data, train_state(lambda ts: ts["history"][1].update(seconds="x"))),
             "history record 1: seconds must be a number")
    _refused(_edited(data, train_state(lambda ts: ts.update(history={"loss": 1}))),
             "the history must be a list")
    _refused(_edited(data, train_state(lambda ts: ts["validation_losses"].append("x"))),
             "validation_losses must be a number")
    _refused(_edited(data, lambda h: h["state"]["published"].update(
        feature_names_in_=["a"])), "feature_names_in_ must be a list of n_features_in_")
    _refused(_edited(data, lambda h: h["state"]["published"].update(
        validation_losses_=[None])), "validation_losses_ must be a number")


def test_channels_first_loads_with_its_layout():
    X, y_label, _ = _cf_data()
    clf = fastlstm.LSTMClassifier(hidden_size=5, max_epochs=2, channels_first=True,
                                  random_state=0).fit(X, y_label)
    copy, _ = _round_trip(clf)
    assert copy.channels_first is True and copy._channels_first is True
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # the layout is the fitted one: changing the parameter does not re-read X
    copy.set_params(channels_first=False)
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    with pytest.raises(ValueError, match="changed channels_first"):
        copy.partial_fit(X, y_label)


# ------------------------------------------------------------------ exports
def _cf_models():
    X, y_label, y_value = _cf_data()
    kw = dict(hidden_size=6, max_epochs=2, batch_size=8, channels_first=True, random_state=0)
    return X, [
        fastlstm.LSTMClassifier(**kw).fit(X, y_label),
        fastlstm.LSTMRegressor(loss="huber", **kw).fit(X, y_value),
        fastlstm.LSTMRegressor(loss="absolute_error", cell="rnn", num_layers=2, **kw)
        .fit(X, y_value),
        fastlstm.LSTMRegressor(sequence_output=True, loss="mae", **kw)
        .fit(X, 20 * np.cumsum(X[:, 0, :], axis=1)),
    ]


def _want(est, X):
    if isinstance(est, fastlstm.LSTMClassifier):
        return est.predict_proba(X)
    return est.predict(X)


def _ragged_cf(X):
    """A channels-first list ``(F, T_i)``, and the same right-padded with its lengths."""
    lengths = np.array([T, 2, 5, 1, 3, T - 1])
    ragged = [X[i, :, :n] for i, n in enumerate(lengths)]
    padded = np.zeros((len(lengths), F, T), dtype=X.dtype)
    for i, r in enumerate(ragged):
        padded[i, :, :r.shape[1]] = r
    return ragged, padded, lengths


def _assert_close_ragged(got, want, tol):
    if isinstance(want, list):  # per-step outputs of a list: compare valid steps
        for i, w in enumerate(want):
            np.testing.assert_allclose(got[i, :len(w)], w, **tol)
    else:
        np.testing.assert_allclose(got, want, **tol)


def test_regressors_with_robust_losses_export_in_target_units():
    X, models = _cf_models()
    for reg in models[1:]:
        assert (np.abs(reg._y_scale - 1) > 0.5).all()  # un-scaling matters in these tests
        assert np.abs(reg.predict(X)).max() > 5


def test_to_onnx_takes_channels_first_input():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, models = _cf_models()
    ragged, padded, lengths = _ragged_cf(X)
    for est in models:
        for with_lengths in (False, True):
            model = est.to_onnx(lengths=with_lengths)
            onnx.checker.check_model(model, full_check=True)
            dims = model.graph.input[0].type.tensor_type.shape.dim
            assert [d.dim_param or d.dim_value for d in dims] == ["batch", F, "time"]
            session = ort.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
            feeds = {"x": padded, "lengths": lengths} if with_lengths else {"x": X}
            out = session.run(None, feeds)
            got = out[1] if isinstance(est, fastlstm.LSTMClassifier) else out[0]
            want = _want(est, ragged if with_lengths else X)
            _assert_close_ragged(got, want, TOL32)
            if isinstance(est, fastlstm.LSTMClassifier):
                np.testing.assert_array_equal(out[0], est.predict(ragged if with_lengths else X))


def test_to_torch_takes_channels_first_input():
    torch = pytest.importorskip("torch")
    X, models = _cf_models()
    ragged, padded, lengths = _ragged_cf(X)
    for est in models:
        module = est.to_torch()
        assert module.channels_first is True
        with torch.no_grad():
            got = module(torch.from_numpy(X)).numpy()
            got_ragged = module(torch.from_numpy(padded), torch.from_numpy(lengths)).numpy()
        np.testing.assert_allclose(got, _want(est, X), **TOL32)
        _assert_close_ragged(got_ragged, _want(est, ragged), TOL32)
    # a batch-first model's module does not transpose
    X_bf = np.swapaxes(X, 1, 2).copy()
    reg = fastlstm.LSTMRegressor(hidden_size=4, max_epochs=1, loss="huber",
                                 random_state=0).fit(X_bf, X_bf[:, -1, 0] * 40)
    module = reg.to_torch()
    assert module.channels_first is False
    with torch.no_grad():
        np.testing.assert_allclose(module(torch.from_numpy(X_bf)).numpy(), reg.predict(X_bf),
                                   **TOL32)


def test_predict_step_takes_a_step_of_channels_first_input():
    X, models = _cf_models()
    X = X[:8]
    for est in models:
        if est.bidirectional:
            continue
        state = None
        for t in range(T):
            y_t, state = est.predict_step(X[:, :, t], state)
            want = _want(est, X[:, :, :t + 1])
            if getattr(est, "sequence_output", False):
                want = want[:, -1]  # per-step outputs stay time-major
            assert y_t.shape == want.shape
            np.testing.assert_allclose(y_t, want, **TOL32)
