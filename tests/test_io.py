"""fastlstm.save / fastlstm.load: round trips of every model kind, and files refused."""

import io
import json
import os
import pickle
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import fastlstm

# short fits stop at max_epochs on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _round_trip(model, **kwargs):
    buffer = io.BytesIO()
    fastlstm.save(model, buffer, **kwargs)
    return fastlstm.load(io.BytesIO(buffer.getvalue()))


def _data(seed=0, n=40, steps=6, features=2):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, steps, features))


def _ragged(seed=0, n=30, features=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, size=(int(t), features)) for t in rng.integers(2, 9, size=n)]


# ------------------------------------------------------------------ layers
LAYERS = [
    (fastlstm.LSTM, dict()),
    (fastlstm.LSTM, dict(num_layers=2, bidirectional=True, dropout=0.25)),
    (fastlstm.LSTM, dict(dtype="float64", n_jobs=1)),
    (fastlstm.RNN, dict()),
    (fastlstm.RNN, dict(num_layers=2, bidirectional=True, dtype="float64")),
]


@pytest.mark.parametrize("cls, kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_layer_round_trip(cls, kwargs, tmp_path):
    layer = cls(3, 5, random_state=0, **kwargs)
    path = tmp_path / "layer.fastlstm"
    fastlstm.save(layer, path)
    copy = fastlstm.load(path)
    assert type(copy) is cls
    for name in ("input_size", "hidden_size", "num_layers", "bidirectional", "dropout",
                 "dtype", "n_jobs"):
        assert getattr(copy, name) == getattr(layer, name)
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(copy.state_dict()[name], value)
        assert copy.state_dict()[name].dtype == value.dtype
    x = _data(1, n=4, steps=7, features=3)
    lengths = [7, 2, 5, 1]
    out, state = layer.forward(x, lengths=lengths)
    out2, state2 = copy.forward(x, lengths=lengths)
    np.testing.assert_array_equal(out2, out)
    # the dropout generator travels: training forwards draw the same masks
    np.testing.assert_array_equal(copy.forward(x, training=True)[0],
                                  layer.forward(x, training=True)[0])


def test_same_model_same_bytes(monkeypatch):
    est, _, _ = _fitted("clf-2layers-bi")
    first, second = io.BytesIO(), io.BytesIO()
    fastlstm.save(est, first)
    copy = _round_trip(est)
    later = time.time() + 86400
    monkeypatch.setattr(time, "time", lambda: later)  # saved a day later
    fastlstm.save(copy, second)  # a loaded copy writes the same file
    assert first.getvalue() == second.getvalue()


def test_file_layout_is_documented_zip(tmp_path):
    layer = fastlstm.LSTM(2, 3, random_state=0)
    path = tmp_path / "m.fastlstm"
    fastlstm.save(layer, path)
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        header = json.loads(zf.read("header.json"))
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        w = np.load(io.BytesIO(zf.read("arrays/layer.weight_ih_l0.npy")), allow_pickle=False)
    assert names == ["arrays/layer.bias_hh_l0.npy", "arrays/layer.bias_ih_l0.npy",
                     "arrays/layer.weight_hh_l0.npy", "arrays/layer.weight_ih_l0.npy",
                     "header.json"]
    assert header["format"] == "fastlstm" and header["format_version"] == 2
    assert header["class"] == "LSTM"
    assert header["params"]["hidden_size"] == 3
    assert header["arrays"]["layer.weight_ih_l0"] == {"dtype": "<f4", "shape": [12, 2]}
    np.testing.assert_array_equal(w, layer.state_dict()["weight_ih_l0"])


# ------------------------------------------------------------------ estimators
ESTIMATORS = {
    "clf-1layer": (fastlstm.LSTMClassifier, dict(), "labels"),
    "clf-2layers-bi": (fastlstm.LSTMClassifier,
                       dict(num_layers=2, bidirectional=True, dropout=0.2), "labels"),
    "clf-rnn-f64": (fastlstm.LSTMClassifier, dict(cell="rnn", dtype="float64"), "ints"),
    "clf-ragged": (fastlstm.LSTMClassifier, dict(class_weight={"a": 2.0, "b": 1.0}), "ragged"),
    "clf-object-labels": (fastlstm.LSTMClassifier, dict(), "objects"),
    "clf-rs-instance": (fastlstm.LSTMClassifier,
                        dict(random_state=np.random.RandomState(4), optimizer="sgd"), "labels"),
    "reg-1layer": (fastlstm.LSTMRegressor, dict(), "values"),
    "reg-2layers-bi-f64": (fastlstm.LSTMRegressor,
                           dict(num_layers=2, bidirectional=True, dtype="float64"), "multi"),
    "reg-rnn-early": (fastlstm.LSTMRegressor,
                      dict(cell="rnn", early_stopping=True, optimizer="adamw"), "values"),
    "reg-sequence": (fastlstm.LSTMRegressor, dict(sequence_output=True), "per-step"),
    "reg-ragged-sequence": (fastlstm.LSTMRegressor, dict(sequence_output=True),
                            "ragged-per-step"),
    "reg-table": (fastlstm.LSTMRegressor, dict(), "table"),
    # validation control, layout and loss parameters
    "clf-last-split-loss-scoring": (fastlstm.LSTMClassifier,
                                    dict(early_stopping=True, validation_split="last",
                                         scoring="loss"), "labels"),
    "clf-channels-first": (fastlstm.LSTMClassifier, dict(channels_first=True), "labels"),
    "reg-huber-channels-first": (fastlstm.LSTMRegressor,
                                 dict(loss="huber", channels_first=True), "values"),
    "reg-absolute-error-early": (fastlstm.LSTMRegressor,
                                 dict(loss="absolute_error", early_stopping=True,
                                      validation_split="last"), "multi"),
}


def _problem(kind):
    if kind.startswith("ragged"):
        X = _ragged()
        if kind == "ragged":
            return X, np.array(["a" if x[-1, 0] > 0 else "b" for x in X])
        return X, [np.cumsum(x[:, 0]) for x in X]
    X = _data()
    if kind == "labels":
        return X, np.where(X[:, -1, 0] > 0, "up", "down")
    if kind == "objects":  # as from a pandas column of strings
        return X, np.where(X[:, -1, 0] > 0, "up", "down").astype(object)
    if kind == "ints":
        return X, (X[:, -1, 0] > 0).astype(int) * 3 + 1
    if kind == "values":
        return X, 10 * X[:, :, 0].sum(axis=1) + 5
    if kind == "multi":
        return X, np.column_stack([X[:, -1, 0], 100 * X[:, 0, 1]])
    if kind == "per-step":
        return X, np.cumsum(X, axis=1)
    if kind == "table":
        return X[:, :, 0], X[:, :, 0].mean(axis=1)
    raise AssertionError(kind)


def _fitted(name):
    cls, kwargs, kind = ESTIMATORS[name]
    kwargs = dict(kwargs)
    kwargs.setdefault("random_state", 0)
    X, y = _problem(kind)
    est = cls(hidden_size=6, max_epochs=2, batch_size=8, n_jobs=1, **kwargs).fit(X, y)
    return est, X, y


def _assert_same_predictions(a, b, X):
    pa, pb = a.predict(X), b.predict(X)
    if isinstance(pa, list):
        for u, v in zip(pa, pb, strict=True):
            np.testing.assert_array_equal(u, v)
    else:
        np.testing.assert_array_equal(pb, pa)
        assert pb.dtype == pa.dtype
    if hasattr(a, "predict_proba"):
        np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))


FITTED_ATTRS = ("n_features_in_", "loss_curve_", "best_loss_", "n_iter_", "t_",
                "validation_scores_", "best_validation_score_", "validation_losses_")


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_round_trip_predicts_identically(name):
    est, X, y = _fitted(name)
    copy = _round_trip(est)
    assert type(copy) is type(est)
    _assert_same_predictions(est, copy, X)
    assert copy.score(X, y) == est.score(X, y)
    for attr in FITTED_ATTRS:
        assert hasattr(copy, attr) == hasattr(est, attr), attr
        if hasattr(est, attr):
            assert getattr(copy, attr) == getattr(est, attr), attr
    np.testing.assert_equal(list(copy.history_), list(est.history_))  # NaN == NaN here
    assert type(copy.history_) is type(est.history_)
    if hasattr(est, "classes_"):
        np.testing.assert_array_equal(copy.classes_, est.classes_)
        assert copy.classes_.dtype == est.classes_.dtype
    params, copy_params = est.get_params(), copy.get_params()
    rs = params.pop("random_state")
    copy_rs = copy_params.pop("random_state")
    assert copy_params == params
    if isinstance(rs, np.random.RandomState):  # an instance travels with its state
        assert copy_rs.randint(1 << 30) == rs.randint(1 << 30)
    else:
        assert copy_rs == rs


def test_channels_first_estimator_round_trips_and_reads_x_the_same_way(tmp_path):
    # channels_first is part of the fitted architecture: the loaded model must
    # read (n_samples, n_features, n_timesteps) arrays as the saved one did
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 3, 7)).astype(np.float32)  # 3 channels, 7 steps
    reg = fastlstm.LSTMRegressor(hidden_size=5, max_epochs=2, channels_first=True,
                                 random_state=0, n_jobs=1).fit(X, X[:, 0, -1])
    fastlstm.save(reg, tmp_path / "m.fastlstm")
    loaded = fastlstm.load(tmp_path / "m.fastlstm")
    assert loaded.get_params()["channels_first"] is True
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


@pytest.mark.parametrize("name", ["clf-1layer", "clf-2layers-bi", "reg-2layers-bi-f64",
                                  "reg-sequence", "clf-rs-instance", "clf-channels-first",
                                  "reg-huber-channels-first"])
def test_loaded_estimator_continues_training_exactly(name):
    est, X, y = _fitted(name)
    copy = _round_trip(est)
    if isinstance(est, fastlstm.LSTMClassifier):
        est.partial_fit(X, y)
        copy.partial_fit(X, y)
    else:
        est.partial_fit(X, y)
        copy.partial_fit(X, y)
    # the optimizer's moments, the shuffling and the dropout generators travelled
    _assert_same_predictions(est, copy, X)
    assert copy.loss_curve_ == est.loss_curve_

    def timeless(history):  # seconds are wall time: the rest must match
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    np.testing.assert_equal(timeless(copy.history_), timeless(est.history_))
    assert copy.history_["epoch"] == [1, 2, 3]
    est.set_params(warm_start=True, max_epochs=2)
    copy.set_params(warm_start=True, max_epochs=2)
    est.fit(X, y)
    copy.fit(X, y)
    _assert_same_predictions(est, copy, X)
    assert copy.n_iter_ == est.n_iter_ == 5


def test_without_optimizer_state_file_is_smaller_and_training_continues():
    est, X, y = _fitted("reg-1layer")
    full, lean = io.BytesIO(), io.BytesIO()
    fastlstm.save(est, full)
    fastlstm.save(est, lean, include_optimizer=False)
    assert len(lean.getvalue()) < len(full.getvalue())
    with zipfile.ZipFile(io.BytesIO(lean.getvalue())) as zf:
        assert not [n for n in zf.namelist() if "optimizer" in n]
    copy = fastlstm.load(io.BytesIO(lean.getvalue()))
    _assert_same_predictions(est, copy, X)
    before = copy.predict(X)
    copy.partial_fit(X, y)  # a fresh optimizer
    assert copy.n_iter_ == est.n_iter_ + 1
    assert not np.array_equal(copy.predict(X), before)


def test_save_refuses_what_it_cannot_store(tmp_path):
    path = tmp_path / "m.fastlstm"
    with pytest.raises(NotFittedError):
        fastlstm.save(fastlstm.LSTMClassifier(), path)
    with pytest.raises(TypeError, match="save supports LSTM, RNN"):
        fastlstm.save({"weights": 1}, path)

    class MyLSTM(fastlstm.LSTM):
        pass

    with pytest.raises(TypeError, match="got MyLSTM"):
        fastlstm.save(MyLSTM(2, 3), path)
    X = _data()
    y = np.array(["a", "b"] * 20, dtype=object)
    clf = fastlstm.LSTMClassifier(hidden_size=4, max_epochs=1, random_state=0).fit(X, y)
    clf.classes_ = np.array([("a", 1), ("b", 2), None], dtype=object)[:2]  # not storable
    with pytest.raises(TypeError, match="never pickled objects"):
        fastlstm.save(clf, path)
    assert not path.exists()  # nothing half-written
    with pytest.raises(TypeError, match="include_optimizer must be a bool"):
        fastlstm.save(fastlstm.LSTM(2, 3), path, include_optimizer="no")


# ------------------------------------------------------------------ refused files
def _entries(model):
    buffer = io.BytesIO()
    fastlstm.save(model, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(entries, compression=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _with_header(entries, edit):
    header = json.loads(entries["header.json"])
    edit(header)
    return {**entries, "header.json": json.dumps(header).encode()}


def _npy(array, allow_pickle=False):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _refused(data, match):
    with pytest.raises(ValueError, match=match):
        fastlstm.load(io.BytesIO(data))


class _Payload:
    """Unpickling this runs code: what a malicious pickle does."""

    def __reduce__(self):
        return (exec, ("import os; os.environ['FASTLSTM_PWNED'] = '1'",))


def test_a_pickle_inside_is_never_unpickled(monkeypatch):
    monkeypatch.delenv("FASTLSTM_PWNED", raising=False)
    entries = _entries(fastlstm.LSTM(2, 3, random_state=0))
    evil = np.array([_Payload()], dtype=object)
    name = "arrays/layer.bias_hh_l0.npy"
    # an object array declared as such in the header
    tampered = _with_header({**entries, name: _npy(evil, allow_pickle=True)},
                            lambda h: h["arrays"]["layer.bias_hh_l0"].update(dtype="|O"))
    _refused(_zip(tampered), "dtype '|O' is not allowed")
    # an object array behind an honest-looking header
    _refused(_zip({**entries, name: _npy(evil, allow_pickle=True)}),
             "the .npy entry holds object")
    # a pickle as an extra entry, and a pickle as the whole file
    _refused(_zip({**entries, "model.pkl": pickle.dumps(_Payload())}),
             "unexpected entries in the archive: \\['model.pkl'\\]")
    _refused(pickle.dumps(_Payload()), "not a fastlstm model file")
    assert "FASTLSTM_PWNED" not in os.environ


def test_huge_declared_shape_is_refused_without_allocating():
    entries = _entries(fastlstm.LSTM(2, 3, random_state=0))
    big = 1 << 31

    def inflate(h):
        h["params"]["hidden_size"] = big
        for name, spec in h["arrays"].items():
            spec["shape"] = [4 * big] + ([big if "hh" in name else 2] if "weight" in name
                                         else [])

    tracemalloc.start()
    try:
        _refused(_zip(_with_header(entries, inflate)), "larger than its entry")
        # an .npy header declaring a huge shape behind a small header entry
        huge = (b"\x93NUMPY\x01\x00" + b"v\x00"
                + b"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296,), }"
                .ljust(118) + b"\n")
        _refused(_zip({**entries, "arrays/layer.bias_hh_l0.npy": huge}),
                 "the .npy entry holds float32 \\(4294967296,\\)")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


def test_path_traversal_names_are_refused():
    entries = _entries(fastlstm.LSTM(2, 3, random_state=0))
    _refused(_zip({**entries, "../evil.npy": b"x"}), "unexpected entries")
    _refused(_zip({**entries, "arrays/../../etc/passwd": b"x"}), "unexpected entries")
    data = entries.pop("arrays/layer.bias_hh_l0.npy")
    renamed = _with_header(
        {**entries, "arrays/../layer.bias_hh_l0.npy": data},
        lambda h: h["arrays"].update({"../layer.bias_hh_l0": h["arrays"].pop("layer.bias_hh_l0")}))
    _refused(_zip(renamed), "bad array name '../layer.bias_hh_l0'")


def test_mismatched_dtypes_and_shapes_are_refused():
    layer = fastlstm.LSTM(2, 3, random_state=0)
    entries = _entries(layer)
    w64 = layer.state_dict()["weight_ih_l0"].astype(np.float64)
    name = "arrays/layer.weight_ih_l0.npy"
    _refused(_zip({**entries, name: _npy(w64)}), "the .npy entry holds float64")
    _refused(_zip(_with_header({**entries, name: _npy(w64)},
                               lambda h: h["arrays"]["layer.weight_ih_l0"].update(dtype="<f8"))),
             "has dtype float64, the model needs float32")
    _refused(_zip(_with_header(entries, lambda h: h["params"].update(hidden_size=4))),
             "has shape \\(12, 2\\), the model needs \\(16, 2\\)")
    _refused(_zip({**entries, name: _npy(np.asfortranarray(w64.astype(np.float32)))}),
             "Fortran order")
    w_nan = layer.state_dict()["weight_ih_l0"]
    w_nan[0, 0] = np.nan
    _refused(_zip({**entries, name: _npy(w_nan)}), "contains NaN")


def test_estimator_tampering_is_refused():
    est, _, _ = _fitted("clf-1layer")
    entries = _entries(est)
    _refused(_zip(_with_header(entries, lambda h: h["state"]["network"].update(n_outputs=3))),
             "array 'head.weight' has shape \\(2, 6\\), the model needs \\(3, 6\\)")
    _refused(_zip(_with_header(entries, lambda h: h["params"].update(hidden_size="big"))),
             "invalid LSTMClassifier parameters")
    _refused(_zip(_with_header(entries, lambda h: h["params"].update(evil=1))),
             "unexpected \\['evil'\\]")
    _refused(_zip(_with_header(entries, lambda h: h["state"]["network"].update(cell="cnn"))),
             "unknown cell 'cnn'")
    # another known cell: the arrays and the architecture no longer match
    _refused(_zip(_with_header(entries, lambda h: h["state"]["network"].update(cell="gru"))),
             "match")
    _refused(_zip(_with_header(entries, lambda h: h["state"].update(extra=1))),
             "unexpected \\['extra'\\]")
    _refused(_zip(_with_header(entries, lambda h: h["state"]["optimizer"].update(
        name="lbfgs"))), "unknown optimizer 'lbfgs'")


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.update(format_version=3), "format version 3.*upgrade fastlstm"),
    (lambda h: h.update(format="other"), "not a fastlstm model file"),
    (lambda h: h.update({"class": "ColumnTransformer"}),
     "class 'ColumnTransformer' is not one fastlstm loads"),
    (lambda h: h.update({"class": "os.system"}), "class 'os.system' is not one"),
    (lambda h: h.pop("arrays"), "missing \\['arrays'\\]"),
])
def test_bad_headers_are_refused(edit, match):
    entries = _entries(fastlstm.RNN(2, 3, random_state=0))
    _refused(_zip(_with_header(entries, edit)), match)


def test_corrupt_truncated_and_foreign_files_are_refused(tmp_path):
    buffer = io.BytesIO()
    fastlstm.save(fastlstm.LSTM(2, 3, random_state=0), buffer)
    data = buffer.getvalue()
    for cut in (len(data) // 2, len(data) - 10, 10, 0):
        _refused(data[:cut], "Cannot load")
    # one flipped byte inside an array's data: the CRC catches it
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo("arrays/layer.weight_hh_l0.npy")
        where = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    flipped = bytearray(data)
    flipped[where] ^= 0xFF
    _refused(bytes(flipped), "corrupted or truncated|Bad CRC")
    entries = _entries(fastlstm.LSTM(2, 3, random_state=0))
    _refused(_zip(entries, compression=zipfile.ZIP_DEFLATED), "compressed or encrypted")
    _refused(_zip({k: v for k, v in entries.items() if "bias_ih" not in k}),
             "'layer.bias_ih_l0' is declared but missing")
    _refused(_zip({**entries, "header.json": b"{not json"}), "not valid JSON")
    _refused(_zip({k: v for k, v in entries.items() if k != "header.json"}),
             "no header.json")
    path = tmp_path / "model.fastlstm"
    path.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(ValueError, match=f"Cannot load '{path}'"):
        fastlstm.load(path)
