"""Process-wide settings and the thread budget behind ``n_jobs=None``.

``n_jobs=None`` used to mean every usable core even inside a joblib or Dask
worker, so that ``GridSearchCV(n_jobs=2)`` on two cores ran four threads.
"""

import sys
import types

import numpy as np
import pytest
from joblib import Parallel, delayed, parallel_backend

import fastlstm
from fastlstm.runtime.parallel import effective_n_jobs, usable_cores


@pytest.fixture(autouse=True)
def clean_config(monkeypatch):
    """No test sees another's settings, nor an OMP_NUM_THREADS from outside."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    old = fastlstm.get_config()
    yield
    fastlstm.set_config(**old)


def test_get_config_returns_a_copy():
    config = fastlstm.get_config()
    assert config == {"n_jobs": None}
    config["n_jobs"] = 5
    assert fastlstm.get_config()["n_jobs"] is None


def test_set_config_changes_the_default_thread_count():
    fastlstm.set_config(n_jobs=1)
    assert fastlstm.get_config()["n_jobs"] == 1
    assert effective_n_jobs(None) == 1
    assert effective_n_jobs(3) == 3  # an explicit n_jobs wins
    fastlstm.set_config()  # nothing given: nothing changes
    assert fastlstm.get_config()["n_jobs"] == 1
    fastlstm.set_config(n_jobs=-1)
    assert effective_n_jobs(None) == usable_cores()
    fastlstm.set_config(n_jobs=None)
    assert effective_n_jobs(None) == usable_cores()


def test_config_context_restores_even_on_error():
    with fastlstm.config_context(n_jobs=3):
        assert effective_n_jobs(None) == 3
        with fastlstm.config_context():
            assert fastlstm.get_config()["n_jobs"] == 3
    assert fastlstm.get_config()["n_jobs"] is None
    with pytest.raises(RuntimeError, match="boom"), fastlstm.config_context(n_jobs=1):
        raise RuntimeError("boom")
    assert fastlstm.get_config()["n_jobs"] is None


@pytest.mark.parametrize("bad, error", [(0, ValueError), ("2", TypeError), (True, TypeError),
                                        (1.5, TypeError)])
def test_bad_settings_are_refused_and_change_nothing(bad, error):
    fastlstm.set_config(n_jobs=2)
    with pytest.raises(error, match="n_jobs"):
        fastlstm.set_config(n_jobs=bad)
    with pytest.raises(error, match="n_jobs"), fastlstm.config_context(n_jobs=bad):
        pass
    assert fastlstm.get_config()["n_jobs"] == 2


def test_settings_are_seen_by_other_threads():
    with fastlstm.config_context(n_jobs=1), parallel_backend("threading", n_jobs=2):
        seen = Parallel()(delayed(fastlstm.get_config)() for _ in range(2))
    assert seen == [{"n_jobs": 1}] * 2


def test_a_layer_plans_with_the_setting():
    layer = fastlstm.LSTM(3, 4, n_jobs=None)
    with fastlstm.config_context(n_jobs=1):
        assert layer._plan(64, 5, None).n_threads == 1
    assert layer._plan(64, 5, None).n_threads == usable_cores()
    pinned = fastlstm.LSTM(3, 4, n_jobs=2)
    with fastlstm.config_context(n_jobs=1):
        assert pinned._plan(64, 5, None).n_threads == 2


@pytest.mark.parametrize("value, expected", [("1", 1), ("1,1", 1), ("", None), ("x", None),
                                             ("0", None), ("1000", "cores")])
def test_omp_num_threads_is_the_budget(monkeypatch, value, expected):
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    want = {None: usable_cores(), "cores": usable_cores()}.get(expected, expected)
    assert effective_n_jobs(None) == want
    with fastlstm.config_context(n_jobs=-1):  # the setting comes first
        assert effective_n_jobs(None) == usable_cores()


def test_joblib_process_workers_get_their_share():
    with parallel_backend("loky", n_jobs=2, inner_max_num_threads=1):
        threads = Parallel()(delayed(effective_n_jobs)(None) for _ in range(4))
    assert threads == [1] * 4


def test_joblib_thread_workers_use_one_thread():
    with parallel_backend("threading", n_jobs=2):
        threads = Parallel()(delayed(effective_n_jobs)(None) for _ in range(4))
    assert threads == [1] * 4
    # a sequential Parallel is no worker: every core
    assert Parallel(n_jobs=1)(delayed(effective_n_jobs)(None) for _ in range(2)) == \
        [usable_cores()] * 2


def test_dask_worker_threads_use_one_thread(monkeypatch):
    """Inside a task of a Dask worker (``distributed.get_worker()`` answers), one thread."""
    fake = types.ModuleType("distributed")

    def get_worker():
        if not getattr(fake, "inside", False):
            raise ValueError("No worker found")
        return object()

    fake.get_worker = get_worker
    monkeypatch.setitem(sys.modules, "distributed", fake)
    assert effective_n_jobs(None) == usable_cores()
    fake.inside = True
    assert effective_n_jobs(None) == 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_fitted_in_workers_plan_one_thread():
    """What a parallel search does: fits in worker threads, each planned with one thread."""
    from fastlstm import LSTMRegressor

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3, 1)), rng.standard_normal(40)

    def fit_and_plan():
        est = LSTMRegressor(hidden_size=2, max_epochs=1, random_state=0).fit(X, y)
        return est.network_.layer._plan(64, 2, None).n_threads

    with parallel_backend("threading", n_jobs=2):
        assert Parallel()(delayed(fit_and_plan)() for _ in range(2)) == [1, 1]
    assert fit_and_plan() == usable_cores()
