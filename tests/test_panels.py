"""Panels from pandas: a DataFrame with an (instance, time) MultiIndex, one sequence each."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from fastlstm import LSTMClassifier, LSTMRegressor, SequenceScaler
from fastlstm.train.data import check_sequences
from fastlstm.train.panels import check_panel_targets, is_panel

pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=3, batch_size=8, learning_rate=0.02,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


def _panel(lengths, n_features=3, seed=0, dtype=np.float64):
    """sktime's pd-multiindex panel and the equivalent list of (T_i, F) arrays."""
    rng = np.random.RandomState(seed)
    seqs = [rng.normal(size=(n, n_features)).astype(dtype) for n in lengths]
    index = pd.MultiIndex.from_tuples(
        [(f"case{i}", t) for i, n in enumerate(lengths) for t in range(n)],
        names=["instance", "time"])
    df = pd.DataFrame(np.concatenate(seqs), index=index,
                      columns=[f"ch{j}" for j in range(n_features)])
    return df, seqs


def _lengths(n=60, seed=1):
    return np.random.RandomState(seed).randint(5, 15, size=n)


def test_a_panel_is_read_one_sequence_per_instance_in_order_of_first_appearance():
    index = pd.MultiIndex.from_tuples(
        [("b", 0), ("a", 0), ("b", 1), ("c", 0), ("a", 1), ("b", 2)], names=["id", "t"])
    df = pd.DataFrame({"x": [1.0, 10, 2, 100, 20, 3], "y": [-1.0, -10, -2, -100, -20, -3]},
                      index=index)
    assert is_panel(df) and not is_panel(df.reset_index(drop=True))
    s = check_sequences(df, dtype=np.float64)
    assert s.is_ragged and s.as_list and s.n_features == 2
    np.testing.assert_array_equal(s.lengths, [3, 2, 1])  # b, a, c
    got = s.to_list()
    np.testing.assert_array_equal(got[0], [[1, -1], [2, -2], [3, -3]])
    np.testing.assert_array_equal(got[1], [[10, -10], [20, -20]])
    np.testing.assert_array_equal(got[2], [[100, -100]])
    # equal lengths are stored dense, still one sequence per instance
    dense = check_sequences(_panel([4, 4, 4])[0])
    assert not dense.is_ragged and dense.dense.shape == (3, 4, 3)
    # a Series is a one-feature panel
    series = check_sequences(df["x"], dtype=np.float64)
    np.testing.assert_array_equal(series.to_list()[1][:, 0], [10, 20])


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_fitting_a_panel_gives_the_model_of_the_equivalent_list(cls):
    lengths = _lengths()
    df, seqs = _panel(lengths)
    assert len(df) == lengths.sum() and len(seqs) == 60
    y = np.array([s[:, 0].mean() for s in seqs])
    if cls is LSTMClassifier:
        y = (y > 0).astype(int)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=UserWarning)  # no "2D DataFrame" warning
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning too
        from_panel = _small(cls).fit(df, y)
    from_list = _small(cls).fit(seqs, y)
    assert from_panel.n_features_in_ == 3
    np.testing.assert_array_equal(from_panel.feature_names_in_, ["ch0", "ch1", "ch2"])
    np.testing.assert_array_equal(from_panel.predict(df), from_list.predict(seqs))
    np.testing.assert_array_equal(from_panel.network_.get_weights()[0],
                                  from_list.network_.get_weights()[0])
    assert from_panel.predict(df).shape == (60,)


def test_an_equal_length_panel_gives_the_model_of_the_3d_array():
    df, seqs = _panel([8] * 30)
    X = np.stack(seqs)
    y = X[:, :, 1].sum(axis=1)
    a = _small().fit(df, y)
    b = _small().fit(X, y)
    np.testing.assert_array_equal(a.predict(df), b.predict(X))


def test_per_step_predictions_on_a_panel_are_one_array_per_instance():
    lengths = [5, 9, 7, 6, 8, 5, 9, 4]
    df, seqs = _panel(lengths)
    reg = _small(sequence_output=True).fit(df, [s[:, 0] for s in seqs])
    out = reg.predict(df)
    assert isinstance(out, list) and [len(o) for o in out] == lengths
    with pytest.raises(ValueError, match="one entry per row of the panel X; per-step"):
        _small(sequence_output=True).fit(df, df["ch0"])


@pytest.mark.parametrize("cls", [LSTMClassifier, LSTMRegressor])
def test_targets_given_per_row_of_a_panel_are_refused(cls):
    lengths = _lengths()
    df, seqs = _panel(lengths)
    y_rows = np.repeat(np.arange(60) % 2, lengths)  # e.g. a label column of the same frame
    with pytest.raises(ValueError, match=rf"y has {lengths.sum()} entries, one per row of the "
                                         r"panel X, but X holds 60 sequences"):
        _small(cls).fit(df, y_rows)
    with pytest.raises(ValueError, match="one per row of the panel X"):
        _small(cls).fit(df, pd.Series(y_rows, index=df.index))
    # the same with the validation data of early stopping
    y = np.arange(60) % 2
    with pytest.raises(ValueError, match="y_val has .* one per row of the panel X_val"):
        _small(cls, early_stopping=True).fit(df, y, X_val=df, y_val=y_rows)


def test_check_panel_targets_leaves_other_input_alone():
    X = check_sequences(np.zeros((4, 3, 2)))
    check_panel_targets(np.zeros(12), X)  # not a panel: the estimator's own checks decide
    df, _ = _panel([3, 3])
    panel = check_sequences(df)
    check_panel_targets([0, 1], panel)
    with pytest.raises(ValueError, match="6 entries"):
        check_panel_targets(np.zeros(6), panel)


def test_a_deeper_multiindex_is_refused_with_how_to_convert():
    df, _ = _panel([4, 6, 5])
    deep = df.copy()
    deep.index = pd.MultiIndex.from_arrays(
        [["g"] * len(df), df.index.get_level_values(0), df.index.get_level_values(1)])
    for est in (_small(), SequenceScaler()):
        with pytest.raises(ValueError, match=r"3 levels.*groupby\(level=\[0, 1\]"):
            est.fit(deep, np.zeros(3))
    # the suggested conversion works
    X = [g.to_numpy() for _, g in deep.groupby(level=[0, 1], sort=False)]
    assert [len(x) for x in X] == [4, 6, 5]


def test_the_scaler_takes_a_panel_and_returns_one():
    lengths = [6, 11, 8, 9]
    df, seqs = _panel(lengths)
    df = df * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]
    scaler = SequenceScaler().fit(df)
    np.testing.assert_allclose(scaler.mean_, df.mean().to_numpy())
    assert scaler.n_steps_seen_ == len(df) and scaler.n_features_in_ == 3
    Z = scaler.transform(df)
    assert isinstance(Z, pd.DataFrame) and Z.index.equals(df.index)
    assert Z.columns.equals(df.columns)
    np.testing.assert_allclose(Z.to_numpy(), (df - df.mean()) / df.std(ddof=0))
    pd.testing.assert_frame_equal(scaler.inverse_transform(Z), df)
    # as fitting the list of the instances' arrays
    as_list = SequenceScaler().fit([(s * [1.0, 10.0, 100.0] + [0.0, 5.0, -50.0]) for s in seqs])
    np.testing.assert_allclose(scaler.scale_, as_list.scale_)


def test_the_scaler_keeps_a_float32_panel_float32_and_feeds_an_estimator():
    df, seqs = _panel(_lengths(20), dtype=np.float32)
    Z = SequenceScaler().fit_transform(df)
    assert isinstance(Z, pd.DataFrame) and (Z.dtypes == np.float32).all()
    y = np.array([s[:, 0].mean() for s in seqs])
    reg = _small().fit(Z, y)
    assert reg.predict(Z).shape == (20,)
