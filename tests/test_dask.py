"""fastlstm on a real ``dask.distributed`` cluster, started and stopped here.

One ``LocalCluster`` for the module: two worker processes of one thread each,
listening on the loopback address only, no dashboard.  The three ways of
scaling out of ``docs/scaling.rst`` run on it and must give what a local run
gives: a grid search through joblib's Dask backend, batch prediction of a Dask
array with ``map_blocks``, and a fleet of per-series models through
``client.map``.

Fits that are compared bit for bit use ``n_jobs=1``: a local run would
otherwise use every core and the workers one thread each, and the bias
gradients are summed per thread shard.
"""

import pickle
import threading

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")
da = pytest.importorskip("dask.array", reason="needs dask[distributed]")

import joblib  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastlstm  # noqa: E402
from fastlstm import LSTMClassifier, LSTMRegressor  # noqa: E402
from fastlstm.runtime.parallel import effective_n_jobs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

WINDOW = 8
# every wait on the cluster is bounded: a stuck worker fails the test, with
# what the workers were doing, instead of hanging the run
TIMEOUT = 180


def stuck(client):
    pytest.fail(f"the cluster did not finish within {TIMEOUT} s; processing: "
                f"{client.processing()}; call stacks: {client.call_stack()}")


def gather(client, futures):
    """The futures' results, or a failure naming what is still running after TIMEOUT s."""
    try:
        distributed.wait(futures, timeout=TIMEOUT)
    except TimeoutError:
        stuck(client)
    return client.gather(futures)


def bounded(client, fn):
    """``fn()`` in a daemon thread, or a failure if it has not returned after TIMEOUT s."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    if thread.is_alive():
        stuck(client)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def classification_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, WINDOW, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > X[:, -1, 1]).astype(int)
    return X, y


def test_the_cluster_is_local_and_its_workers_use_one_thread(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
    assert gather(client, client.submit(effective_n_jobs, None, pure=False)) == 1
    # the recipe of docs/scaling.rst for workers with cores to spare
    client.run(fastlstm.set_config, n_jobs=2)
    try:
        assert gather(client, client.submit(effective_n_jobs, None, pure=False)) == 2
    finally:
        client.run(fastlstm.set_config, n_jobs=None)
    assert gather(client, client.submit(effective_n_jobs, None, pure=False)) == 1


def test_grid_search_on_dask_equals_the_local_search(client):
    X, y = classification_data()
    grid = {"hidden_size": [4, 8], "learning_rate": [0.01, 0.03]}
    estimator = LSTMClassifier(max_epochs=4, batch_size=16, n_jobs=1, random_state=0)
    local = GridSearchCV(estimator, grid, cv=3).fit(X, y)

    def search_on_dask():
        # joblib's backend setting is per thread: it is made in the thread that searches
        with joblib.parallel_backend("dask"):
            return GridSearchCV(estimator, grid, cv=3, n_jobs=-1).fit(X, y)

    with distributed.get_task_stream(client) as stream:
        remote = bounded(client, search_on_dask)
    # the fits ran on the workers (joblib sends them in batches of one or more)
    assert stream.data and {t["worker"] for t in stream.data} <= set(
        client.scheduler_info()["workers"])
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def test_batch_prediction_of_a_dask_array_equals_predict(client):
    X, y = classification_data(n=300, seed=1)
    clf = LSTMClassifier(hidden_size=8, max_epochs=3, n_jobs=1, random_state=0).fit(X, y)
    reg = LSTMRegressor(hidden_size=8, max_epochs=3, n_jobs=1, random_state=0).fit(
        X, X[:, :, 0].sum(axis=1))
    dX = da.from_array(X, chunks=(64, WINDOW, 2))
    labels = dX.map_blocks(clf.predict, drop_axis=[1, 2], dtype=clf.classes_.dtype)
    proba = dX.map_blocks(clf.predict_proba, drop_axis=2, chunks=(dX.chunks[0], (2,)),
                          dtype=np.float64)
    values = dX.map_blocks(reg.predict, drop_axis=[1, 2], dtype=np.float64)
    got_labels, got_proba, got_values = gather(client, client.compute([labels, proba, values]))
    assert got_labels.shape == (300,) and got_proba.shape == (300, 2)
    np.testing.assert_array_equal(got_labels, clf.predict(X))
    # blocks of 64 rows against one batch of 300: BLAS may round differently
    np.testing.assert_allclose(got_proba, clf.predict_proba(X), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_values, reg.predict(X), rtol=1e-5, atol=1e-6)


def make_series(n_series, length=48, seed=0):
    """Noisy sine waves of different periods and phases, one per series."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    period = rng.uniform(6, 20, size=(n_series, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    return np.sin(2 * np.pi * t / period + phase) + 0.05 * rng.standard_normal((n_series, length))


def windows(series):
    """One series as sliding windows of WINDOW steps (X) and the value after each (y)."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)[..., None]
    return X, series[WINDOW:]


def test_a_fleet_of_models_fits_on_dask(client):
    """One model per series through ``client.map``; the fitted estimators come back.

    The task is ``LSTMRegressor.fit`` itself (the estimator is its first
    argument), which every worker can import; a function of this test module
    could not be imported there.
    """
    fleet = make_series(300)
    data = [windows(series) for series in fleet]
    unfitted = [LSTMRegressor(hidden_size=4, max_epochs=3, batch_size=16, n_jobs=1,
                              random_state=i) for i in range(len(fleet))]
    models = gather(client, client.map(LSTMRegressor.fit, unfitted, [X for X, _ in data],
                                       [y for _, y in data], pure=False))
    assert len(models) == 300
    assert all(isinstance(m, LSTMRegressor) and m.n_iter_ == 3 for m in models)
    assert not any(hasattr(m, "n_iter_") for m in unfitted)  # fitted there, not here
    last = fleet[:, -WINDOW:, None]
    forecasts = np.array([m.predict(last[i:i + 1])[0] for i, m in enumerate(models)])
    assert np.isfinite(forecasts).all()
    # bit for bit what a local fit of the same series and seed gives
    for i in (0, 157, 299):
        local = clone(unfitted[i]).fit(*data[i])
        assert local.predict(last[i:i + 1])[0] == forecasts[i]
    # and each model is its own: different series, different forecasts
    assert len(np.unique(forecasts)) == len(forecasts)
    # a fitted model pickles, to be stored
    assert pickle.loads(pickle.dumps(models[0])).predict(last[:1])[0] == forecasts[0]
