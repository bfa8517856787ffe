"""Fleets (LSTMForecaster(per_series=True)): each member is a forecaster of its own series."""

import io

import numpy as np
import pandas as pd
import pytest

import fastlstm
from fastlstm import LSTMForecaster
from fastlstm.callbacks import Callback
from fastlstm.estimators.fleet import derive_seeds

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def fleet_series(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(40 + 7 * i)
        out.append((i + 1) * np.sin(2 * np.pi * t / (6 + i)) + 0.03 * i * t
                   + 0.1 * rng.normal(size=len(t)))
    return out


def fleet(**kw):
    params = dict(window=8, horizon=3, hidden_size=8, max_epochs=3, random_state=7,
                  per_series=True, n_jobs=1)
    params.update(kw)
    return LSTMForecaster(**params)


def test_each_member_equals_a_forecaster_fitted_on_its_series_alone():
    ys = fleet_series()
    f = fleet().fit(ys)
    seeds = derive_seeds(7, len(ys))
    assert len(set(seeds)) == len(ys)
    out = f.predict()
    for i in (0, 3, 5):
        alone = LSTMForecaster(window=8, horizon=3, hidden_size=8, max_epochs=3,
                               random_state=seeds[i], n_jobs=1).fit(ys[i])
        np.testing.assert_array_equal(out[i], alone.predict())
        np.testing.assert_array_equal(f.scalings_[i].target_scale, alone.scaling_.target_scale)
        assert f.models_[i].loss_curve_ == alone.regressor_.loss_curve_


def test_threads_give_the_same_fleet_bit_for_bit():
    ys = fleet_series(8)
    one = fleet(n_jobs=1).fit(ys)
    two = fleet(n_jobs=2, backend="threads").fit(ys)
    four = fleet(n_jobs=4).fit(ys)
    for a, b, c in zip(one.predict(), two.predict(), four.predict(), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for m1, m2 in zip(one.models_, two.models_, strict=True):
        for w1, w2 in zip(m1.network_.get_weights(), m2.network_.get_weights(), strict=True):
            np.testing.assert_array_equal(w1, w2)


def test_process_workers_give_the_same_fleet_bit_for_bit():
    ys = fleet_series(5)
    threads = fleet(n_jobs=2).fit(ys)
    processes = fleet(n_jobs=2, backend="processes", verbose=1).fit(ys)
    for a, b in zip(threads.predict(), processes.predict(), strict=True):
        np.testing.assert_array_equal(a, b)
    for m1, m2 in zip(threads.models_, processes.models_, strict=True):
        assert m1.loss_curve_ == m2.loss_curve_


def test_seeds_depend_on_position_only():
    assert derive_seeds(7, 3) == derive_seeds(7, 10)[:3]
    assert derive_seeds(7, 3) != derive_seeds(8, 3)
    rs_a, rs_b = np.random.RandomState(1), np.random.RandomState(1)
    assert derive_seeds(rs_a, 4) == derive_seeds(rs_b, 4)


def test_a_fleet_forecasts_a_context_and_a_panel():
    ys = fleet_series(4)
    f = fleet().fit(ys)
    ctx = [y[:-5] for y in ys]
    for i, out in enumerate(f.predict(2, y=ctx)):
        model = f.models_[i]
        alone = LSTMForecaster(window=8, horizon=3)
        alone.__dict__.update(regressor_=model, scaling_=f.scalings_[i], spec_=f.spec_,
                              layout_=f.layout_, tails_=f.tails_[i:i + 1])
        np.testing.assert_array_equal(out, alone.predict(2, y=ctx[i]))
    with pytest.raises(ValueError, match="this fleet has 4 models"):
        f.predict(y=ctx[:3])
    panel = pd.concat([pd.DataFrame({"v": y}) for y in ys], keys=list("abcd"),
                      names=["id", "t"])
    g = fleet().fit(panel)
    out = g.predict()
    assert list(out.index.get_level_values("id").unique()) == list("abcd")
    np.testing.assert_array_equal(out.to_numpy()[:, 0], np.concatenate(f.predict()))


def test_a_saved_fleet_is_one_file_that_loads_identically():
    ys = fleet_series(5)
    f = fleet(strategy="recursive", horizon=1).fit(ys)
    buffer = io.BytesIO()
    fastlstm.save(f, buffer)
    loaded = fastlstm.load(io.BytesIO(buffer.getvalue()))
    assert len(loaded.models_) == 5
    for a, b in zip(loaded.predict(4), f.predict(4), strict=True):
        np.testing.assert_array_equal(a, b)


def test_one_convergence_warning_for_the_whole_fleet():
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fleet(n_jobs=2).fit(fleet_series(4))
    messages = [str(w.message) for w in caught if w.category is ConvergenceWarning]
    assert messages == ["4 of the fleet's 4 models reached max_epochs (3) before their "
                        "optimization converged."]


def test_one_progress_for_the_whole_fleet(capsys):
    fleet(verbose=1, n_jobs=2).fit(fleet_series(3))
    err = capsys.readouterr().err
    assert "fleet: 3/3 models fitted" in err
    assert "epoch" not in err.lower()  # members report nothing of their own


def test_fleet_parameters_and_failures():
    ys = fleet_series(4)
    with pytest.raises(ValueError, match="'callbacks' parameter"):
        fleet(callbacks=[Callback()]).fit(ys)
    with pytest.raises(ValueError, match="'backend' parameter"):
        LSTMForecaster(backend="dask").fit(ys[0])
    f = fleet(warm_start=True).fit(ys)
    before = f.predict()
    with pytest.raises(ValueError, match="fleet of 4 models on 3 series"):
        f.fit(ys[:3])
    bad = list(ys)
    bad[2] = ys[2][:9]  # too short: the whole fit fails, the fleet is as it was
    with pytest.raises(ValueError, match="too short"):
        f.fit(bad)
    for a, b in zip(f.predict(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    f.fit(ys)  # warm start continues every member
    assert all(m.n_iter_ == 6 for m in f.models_)


def test_a_failing_member_stops_the_fleet(monkeypatch):
    import threading

    from fastlstm.estimators import fleet as fleet_module

    calls = []
    lock = threading.Lock()
    real = fleet_module.fit_regressor

    def failing(inner, series, *args):
        with lock:
            calls.append(1)
            n = len(calls)
        if n == 3:
            raise RuntimeError("member failed")
        return real(inner, series, *args)

    monkeypatch.setattr(fleet_module, "fit_regressor", failing)
    f = fleet(n_jobs=2)
    with pytest.raises(RuntimeError, match="member failed"):
        f.fit(fleet_series(40))
    assert len(calls) < 40  # the members after the failure never started
    assert not hasattr(f, "models_")


def test_each_member_holds_out_the_end_of_its_own_series():
    ys = fleet_series(3)
    f = fleet(early_stopping=True, max_epochs=20, n_iter_no_change=2,
              validation_fraction=0.25).fit(ys)
    seeds = derive_seeds(7, 3)
    for i, member in enumerate(f.models_):
        assert len(member.validation_losses_) == member.n_iter_
        alone = LSTMForecaster(window=8, horizon=3, hidden_size=8, max_epochs=20,
                               early_stopping=True, n_iter_no_change=2,
                               validation_fraction=0.25, random_state=seeds[i],
                               n_jobs=1).fit(ys[i])
        assert member.validation_losses_ == alone.validation_losses_
