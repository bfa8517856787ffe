"""history_: one record per epoch, across warm starts, and its plot."""

import math
import pickle

import numpy as np
import pytest

from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.train.network import TrainState

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _data(n=48):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 5, 2)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


def _small(cls=LSTMRegressor, **kw):
    params = dict(hidden_size=6, max_epochs=3, batch_size=16, learning_rate=0.02,
                  random_state=0, n_jobs=1)
    params.update(kw)
    return cls(**params)


def test_one_record_per_epoch_matching_the_curves():
    X, y = _data()
    reg = _small(early_stopping=True, validation_fraction=0.25).fit(X, y)
    h = reg.history_
    assert len(h) == reg.n_iter_ == 3
    assert h["epoch"] == [1, 2, 3]
    assert h["loss"] == reg.loss_curve_
    assert h["validation_loss"] == reg.validation_losses_
    assert h["validation_score"] == reg.validation_scores_
    assert h["learning_rate"] == [0.02] * 3
    assert all(s > 0 for s in h["seconds"])
    with pytest.raises(KeyError, match="keys are"):
        h["accuracy"]


def test_without_validation_the_validation_entries_are_nan():
    X, y = _data()
    clf = _small(LSTMClassifier).fit(X, y > 0)
    assert all(math.isnan(v) for v in clf.history_["validation_loss"])
    assert not hasattr(clf, "validation_losses_")


def test_history_continues_across_warm_starts_and_partial_fits():
    X, y = _data()
    reg = _small(warm_start=True).fit(X, y)
    reg.set_params(learning_rate=0.01).fit(X, y)
    reg.partial_fit(X, y)
    assert reg.history_["epoch"] == list(range(1, 8))
    assert reg.history_["learning_rate"] == [0.02] * 3 + [0.01] * 4
    fresh = _small().fit(X, y)  # a fit from scratch starts a new history
    assert fresh.history_["epoch"] == [1, 2, 3]


def test_history_travels_in_pickles_and_old_pickles_load():
    X, y = _data()
    reg = _small().fit(X, y)
    clone = pickle.loads(pickle.dumps(reg)).history_
    assert clone["loss"] == reg.history_["loss"] and clone["seconds"] == reg.history_["seconds"]
    state = TrainState()
    old = {k: v for k, v in vars(state).items() if k not in ("history", "validation_losses")}
    loaded = TrainState.__new__(TrainState)
    loaded.__setstate__(old)
    assert loaded.history == [] and loaded.validation_losses == []


def test_plot_and_table():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    X, y = _data()
    reg = _small(early_stopping=True, validation_fraction=0.25).fit(X, y)
    ax = reg.history_.plot()
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["training loss"].get_ydata(), reg.loss_curve_)
    np.testing.assert_array_equal(lines["validation loss"].get_ydata(),
                                  reg.validation_losses_)
    pytest.importorskip("pandas")
    table = reg.history_.to_pandas()
    assert list(table.index) == [1, 2, 3] and "learning_rate" in table


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_divergence_is_reported_once_as_a_warning_not_also_as_progress_text(capsys):
    X, y = _data()
    reg = _small(verbose=2, max_epochs=3, learning_rate=1e39, optimizer="sgd",
                 momentum=0.0, clip_norm=None)
    with pytest.warns(Warning, match="non-finite"):
        reg.fit(X, y)
    assert "non-finite" not in capsys.readouterr().err
