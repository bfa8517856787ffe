"""Input layouts: channels-first input, layout warnings, feature names."""

import warnings

import numpy as np
import pytest

from fastlstm import LSTMClassifier, LSTMRegressor, SequenceScaler
from fastlstm.estimators.layout import layout_warning

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=3, batch_size=8, learning_rate=0.02,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


def _aeon_like(n=30, channels=3, steps=12, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, channels, steps))  # (n_cases, n_channels, n_timepoints)
    return X, X[:, 0, :].sum(axis=1)


def test_channels_first_equals_the_transposed_batch_first_input():
    X, y = _aeon_like()
    cf = _small(channels_first=True).fit(X, y)
    bf = _small().fit(X.transpose(0, 2, 1), y)
    assert cf.n_features_in_ == bf.n_features_in_ == 3
    np.testing.assert_array_equal(cf.predict(X), bf.predict(X.transpose(0, 2, 1)))
    np.testing.assert_array_equal(cf.network_.get_weights()[0], bf.network_.get_weights()[0])


def test_aeon_unequal_length_lists_under_channels_first():
    rng = np.random.RandomState(1)
    X = [rng.normal(size=(2, n)) for n in (5, 9, 7, 4, 8, 6, 5, 9)]  # (channels, steps_i)
    y = np.array([x[0].sum() for x in X])
    cf = _small(channels_first=True).fit(X, y)
    bf = _small().fit([x.T for x in X], y)
    np.testing.assert_array_equal(cf.predict(X), bf.predict([x.T for x in X]))


def test_an_input_that_looks_transposed_warns():
    X, y = _aeon_like(channels=2, steps=100)
    with pytest.warns(UserWarning, match=r"channels_first=True"):
        _small(max_epochs=1).fit(X, y)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*channels_first", category=UserWarning)
        _small(max_epochs=1, channels_first=True).fit(X, y)
        _small(max_epochs=1).fit(X.transpose(0, 2, 1), y)


def test_a_dataframe_warns_how_it_is_read_and_sets_feature_names():
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.normal(size=(20, 4)), columns=["t0", "t1", "t2", "t3"])
    y = df.sum(axis=1).to_numpy()
    with pytest.warns(UserWarning, match="one univariate series"):
        reg = _small().fit(df, y)
    np.testing.assert_array_equal(reg.feature_names_in_, ["t0", "t1", "t2", "t3"])
    assert reg.predict(df).shape == (20,)
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(df.rename(columns={"t0": "x"}))


def test_the_layout_is_fixed_by_the_first_fit():
    X, y = _aeon_like()
    clf = _small(LSTMClassifier, channels_first=True, warm_start=True).fit(X, y > 0)
    with pytest.raises(ValueError, match="channels_first"):
        clf.set_params(channels_first=False).fit(X, y > 0)
    assert clf.predict(X).shape == (30,)  # still read channels-first


def _fit_warnings(est, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return [str(w.message) for w in caught
            if issubclass(w.category, UserWarning) and "time steps than features" in str(w.message)]


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_a_basic_motions_like_array_without_channels_first_warns(cls):
    X, y = _aeon_like(n=40, channels=6, steps=100)  # 6 channels of 100 time points
    y = (y > 0).astype(int) if cls is LSTMClassifier else y
    found = _fit_warnings(_small(cls, max_epochs=1), X, y)
    assert len(found) == 1 and "(40, 6, 100)" in found[0] and "channels_first=True" in found[0]
    assert not _fit_warnings(_small(cls, max_epochs=1, channels_first=True), X, y)
    assert not _fit_warnings(_small(cls, max_epochs=1), X.transpose(0, 2, 1), y)  # (40, 100, 6)


def test_channels_first_states_the_layout_so_nothing_is_guessed():
    X, y = _aeon_like(n=20, channels=6, steps=50)
    # many channels, few time points: the option says so, no warning either way
    assert not _fit_warnings(_small(max_epochs=1, channels_first=True), X.transpose(0, 2, 1), y)
    assert layout_warning([np.zeros((3, 8))] * 4, True, "LSTMRegressor") is None


def test_lists_warn_when_every_array_has_fewer_rows_than_columns():
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(4, 30)) for _ in range(12)]  # (n_channels, n_timepoints) each
    y = np.array([x[0].sum() for x in X])
    found = _fit_warnings(_small(max_epochs=1), X, y)
    assert len(found) == 1 and "channels_first=True" in found[0] and "list of 12" in found[0]
    assert not _fit_warnings(_small(max_epochs=1, channels_first=True), X, y)
    assert not _fit_warnings(_small(max_epochs=1), [x.T for x in X], y)
    # one array longer than wide: a batch-first list of short and long sequences
    mixed = [rng.normal(size=(n, 5)) for n in (3, 2, 8, 4)]
    assert layout_warning(mixed, False, "LSTMRegressor") is None


@pytest.mark.parametrize("shape", [(30, 2), (30, 50), (2, 100), (100, 1)])
def test_2d_input_never_warns_about_the_layout(shape):
    X = np.zeros(shape)
    assert layout_warning(X, False, "LSTMRegressor") is None
    assert layout_warning(X, True, "LSTMRegressor") is None


def test_equal_sizes_and_longer_series_do_not_warn():
    for shape in [(10, 5, 5), (10, 7, 3), (3, 100, 1), (1, 2, 1)]:
        assert layout_warning(np.zeros(shape), False, "LSTMClassifier") is None
    assert layout_warning(np.zeros((10, 3, 7)), False, "LSTMClassifier") is not None


def test_the_scaler_warns_as_the_estimators_do():
    X, _ = _aeon_like(n=40, channels=6, steps=100)
    with pytest.warns(UserWarning, match=r"SequenceScaler reads it as .*channels_first=True"):
        SequenceScaler().fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*channels_first", category=UserWarning)
        SequenceScaler(channels_first=True).fit(X)
        SequenceScaler().fit(X.transpose(0, 2, 1))
