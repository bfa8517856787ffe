"""Concurrency: predict, forward and fit from several threads at once."""

import pickle
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import fastlstm
from fastlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def busy_switching():
    """Switch threads every 10 microseconds, so that races show up in short runs."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def _run_threads(target, n, *args):
    errors = []

    def wrapped(i):
        try:
            target(i, *args)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _data(n=48, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 6, 3)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


def _fit(cls=LSTMRegressor, **kw):
    X, y = _data()
    params = dict(hidden_size=8, max_epochs=3, batch_size=8, random_state=0, n_jobs=2)
    params.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**params).fit(X, y if cls is LSTMRegressor else y > 0)


def test_concurrent_predicts_equal_sequential_ones():
    reg = _fit()
    inputs = [_data(20, seed)[0] for seed in range(4)]
    want = [reg.predict(X) for X in inputs]
    got = [None] * 4

    def work(i):
        for _ in range(10):
            got[i] = reg.predict(inputs[i])
            np.testing.assert_array_equal(got[i], want[i])

    _run_threads(work, 4)


def test_concurrent_layer_forwards_equal_sequential_ones(rng):
    layer = fastlstm.LSTM(3, 16, num_layers=2, bidirectional=True, n_jobs=2, random_state=0)
    xs = [rng.standard_normal((9, 7, 3)) for _ in range(3)]
    lengths = [rng.integers(1, 8, size=9) for _ in range(3)]
    want = [layer.forward(x, lengths=n)[0] for x, n in zip(xs, lengths, strict=True)]

    def work(i):
        for _ in range(20):
            out, _ = layer.forward(xs[i], lengths=lengths[i])
            np.testing.assert_array_equal(out, want[i])

    _run_threads(work, 3)


def test_concurrent_training_steps_on_one_layer_get_their_own_gradients(rng, busy_switching):
    layer = fastlstm.RNN(3, 8, n_jobs=2, dtype="float64", random_state=0)
    xs = [rng.standard_normal((8, 5, 3)) for _ in range(3)]
    d_out = rng.standard_normal((8, 5, 8))
    want = []
    for x in xs:
        layer.forward(x, training=True)
        want.append(layer.backward(d_out))

    def work(i):
        for _ in range(30):
            layer.forward(xs[i], training=True)
            time.sleep(2e-4)  # a loss computed here lets the other threads run
            grads, dx = layer.backward(d_out)
            np.testing.assert_array_equal(dx, want[i][1])
            for key, value in want[i][0].items():
                np.testing.assert_array_equal(grads[key], value)

    _run_threads(work, 3)


def test_predicts_during_a_fit_neither_fail_nor_change_the_fit(busy_switching):
    """Predicting from other threads while a model trains: the fit is the one it would
    have been alone (tapes are per thread), and the predictions are finite."""
    X, y = _data()
    busy = _fit(max_epochs=1)
    base = pickle.dumps(busy)
    busy, solo = pickle.loads(base), pickle.loads(base)
    solo.set_params(warm_start=True, max_epochs=4)
    solo.fit(X, y)
    busy.set_params(warm_start=True, max_epochs=4)
    stop = threading.Event()

    def work(i):
        if i == 0:
            try:
                busy.fit(X, y)
            finally:
                stop.set()
            return
        while not stop.is_set():
            pred = busy.predict(X[:10])
            assert pred.shape == (10,) and np.isfinite(pred).all()

    _run_threads(work, 3)
    np.testing.assert_array_equal(busy.predict(X), solo.predict(X))
    assert busy.n_iter_ == solo.n_iter_ == 5


def test_concurrent_fits_of_separate_estimators_are_deterministic():
    X, y = _data()
    want = _fit(LSTMClassifier).predict_proba(X)
    results = [None] * 3

    def work(i):
        results[i] = _fit(LSTMClassifier).predict_proba(X)

    _run_threads(work, 3)
    for got in results:
        np.testing.assert_array_equal(got, want)


def test_blas_threads_are_back_after_concurrent_fits_and_predicts():
    with threadpool_limits(limits=2, user_api="blas"):
        before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        reg = _fit()
        X, _ = _data()

        def work(i):
            for _ in range(5):
                reg.predict(X) if i % 2 else _fit(max_epochs=1)

        _run_threads(work, 4)
        after = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        assert after == before


def test_a_thread_cap_holds_in_its_thread_only():
    from fastlstm.runtime.parallel import effective_n_jobs, thread_cap

    seen = []
    with thread_cap(1):
        assert effective_n_jobs(3) == effective_n_jobs(-1) == 1
        with thread_cap(2):  # nested: the smaller wins
            assert effective_n_jobs(3) == 1
        other = threading.Thread(target=lambda: seen.append(effective_n_jobs(3)))
        other.start()
        other.join()
    assert seen == [3]  # another thread keeps its own count
    with thread_cap(None):
        assert effective_n_jobs(3) == 3
    assert effective_n_jobs(3) == 3


@pytest.mark.parametrize("rows, hidden, want", [(4, 8, 1), (64, 256, 2)])
def test_a_python_step_takes_threads_by_its_size(monkeypatch, rows, hidden, want):
    # the trainer's Python step (the compiled step switched off, as for the
    # networks it does not cover): a small one runs its layer on one thread at
    # n_jobs=2 (the hand-overs would cost more than the second core saves), a
    # large one on both; the same model either way
    from fastlstm.nn.layer import RecurrentLayer
    from fastlstm.train.engine import CompiledStep

    monkeypatch.setattr(CompiledStep, "for_network", classmethod(lambda c, net, loss: None))

    seen = []
    real = RecurrentLayer._plan

    def recorded(self, *args, **kwargs):
        plan = real(self, *args, **kwargs)
        seen.append(plan.n_threads)
        return plan

    monkeypatch.setattr(RecurrentLayer, "_plan", recorded)
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(int(n), 3)) for n in rng.integers(20, 40, size=rows)]
    y = np.arange(rows) % 2

    def fit(n_jobs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LSTMClassifier(hidden_size=hidden, max_epochs=1, batch_size=rows,
                                  random_state=0, n_jobs=n_jobs).fit(X, y)

    two = fit(2)
    assert seen and seen[0] == want
    one = fit(1)
    for a, b in zip(two.network_.parameters(), one.network_.parameters(), strict=True):
        np.testing.assert_array_equal(a, b)
