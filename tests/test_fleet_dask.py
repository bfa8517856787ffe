"""A fleet on a real ``dask.distributed`` LocalCluster equals the fleet fitted in threads.

Two worker processes of one thread each on the loopback address (as in
tests/test_dask.py); the fleet's chunks of series go to them and the fitted
members come back.
"""

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="needs dask[distributed]")

import fastlstm  # noqa: E402
from fastlstm import LSTMForecaster  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def series(n):
    rng = np.random.default_rng(3)
    return [np.sin(np.arange(50 + i) / (2 + i % 5)) + 0.1 * rng.normal(size=50 + i)
            for i in range(n)]


def fleet(**kw):
    return LSTMForecaster(window=8, horizon=4, hidden_size=8, max_epochs=3, random_state=11,
                          per_series=True, **kw)


def test_dask_backend_without_a_client_says_so():
    try:
        distributed.get_client()
    except ValueError:
        pass
    else:
        pytest.skip("a default client exists in this process")
    with pytest.raises(ValueError, match="create one first"):
        fleet(backend="dask").fit(series(2))


def test_dask_fleet_equals_threads_and_one_thread(client):
    ys = series(11)  # more chunks than workers: streamed, two per worker at a time
    on_dask = fleet(backend="dask", verbose=1).fit(ys)
    threads = fleet(n_jobs=2).fit(ys)
    single = fleet(n_jobs=1).fit(ys)
    for a, b, c in zip(on_dask.predict(), threads.predict(), single.predict(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for m1, m2 in zip(on_dask.models_, single.models_, strict=True):
        assert m1.loss_curve_ == m2.loss_curve_


def test_dask_fleet_warm_start_and_save(client):
    import io

    ys = series(5)
    f = fleet(backend="dask", warm_start=True).fit(ys)
    g = fleet(n_jobs=1, warm_start=True).fit(ys)
    f.fit(ys)
    g.fit(ys)
    buffer = io.BytesIO()
    fastlstm.save(f, buffer)
    loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    for a, b in zip(loaded.predict(), g.predict(), strict=True):
        np.testing.assert_array_equal(a, b)
