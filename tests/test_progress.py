"""Progress: verbose=1 and the ProgressBar callback,
with tqdm present, absent, on a terminal and on a plain stream."""

import io
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from fastlstm import LSTMRegressor
from fastlstm.callbacks import ProgressBar
from fastlstm.train.progress import Progress, TqdmProgress, make_progress

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` raises ImportError


def _data(n=40):
    X = np.random.RandomState(0).normal(size=(n, 4, 2)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


def _small(**kw):
    params = dict(hidden_size=4, max_epochs=2, batch_size=16, random_state=0, n_jobs=1)
    params.update(kw)
    return LSTMRegressor(**params)


def _fit_on(stream, monkeypatch, **kw):
    monkeypatch.setattr(sys, "stderr", stream)
    X, y = _data()
    return _small(**kw).fit(X, y)


# ------------------------------------------------------------------ choice of reporter


def test_tqdm_absent_terminal_gets_the_built_in_bar(no_tqdm, monkeypatch):
    assert type(make_progress(1, 3, stream=Tty())) is Progress
    out = Tty()
    _fit_on(out, monkeypatch, verbose=1)
    text = out.getvalue()
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line]
    assert [line.split(" [")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert "\r" in text and "%|" not in text  # drawn in place, not by tqdm


def test_tqdm_required_but_absent_is_a_clear_error_and_changes_nothing(no_tqdm):
    with pytest.raises(ImportError, match="tqdm"):
        make_progress(1, 3, stream=io.StringIO(), use_tqdm=True)
    X, y = _data()
    reg = _small().fit(X, y)
    before = reg.predict(X)
    reg.set_params(callbacks=[ProgressBar(use_tqdm=True)])
    with pytest.raises(ImportError, match="pip install tqdm"):
        reg.fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), before)
    assert reg.n_iter_ == 2


def test_tqdm_present_terminal_gets_a_tqdm_bar_per_epoch(monkeypatch):
    pytest.importorskip("tqdm")
    assert type(make_progress(1, 3, stream=Tty())) is TqdmProgress
    out = Tty()
    _fit_on(out, monkeypatch, verbose=1, early_stopping=True, validation_fraction=0.25)
    text = out.getvalue()
    finals = [line.rsplit("\r", 1)[-1] for line in text.split("\n") if line]
    assert len(finals) == 2
    for epoch, line in enumerate(finals, 1):
        assert line.startswith(f"Epoch {epoch}/2: 100%|")
        assert " 30/30 " in line and "seq/s" in line  # 40 minus 10 for validation
        assert "loss " in line and "val " in line


def test_a_plain_stream_gets_plain_lines_even_with_tqdm(monkeypatch):
    out = io.StringIO()  # not a terminal (a log file, a CI job)
    _fit_on(out, monkeypatch, verbose=1)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text and "%|" not in text
    assert [line.split(" [")[0] for line in text.splitlines()] == ["Epoch 1/2", "Epoch 2/2"]
    assert type(make_progress(1, 3, stream=io.StringIO())) is Progress
    assert type(make_progress(2, 3, stream=Tty())) is Progress  # verbose=2: one text line
    assert type(make_progress(1, 3, stream=Tty(), use_tqdm=False)) is Progress


# ------------------------------------------------------------------ the callback


def test_progress_bar_callback_writes_one_line_per_epoch_to_its_stream(capsys):
    out = io.StringIO()
    X, y = _data()
    reg = _small(max_epochs=3, callbacks=[ProgressBar(stream=out)]).fit(X, y)
    lines = out.getvalue().splitlines()
    assert [line.split(" [")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    for line, loss in zip(lines, reg.loss_curve_, strict=True):
        assert "40/40" in line and f"loss {loss:.4f}" in line
    assert capsys.readouterr().err == ""  # nothing on stderr: verbose is 0


def test_progress_bar_callback_with_tqdm_and_validation():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    X, y = _data()
    reg = _small(early_stopping=True, validation_fraction=0.25,
                 callbacks=[ProgressBar(stream=out, use_tqdm=True)]).fit(X, y)
    finals = [line.rsplit("\r", 1)[-1] for line in out.getvalue().split("\n") if line]
    assert [line.split(":")[0] for line in finals] == ["Epoch 1/2", "Epoch 2/2"]
    assert all("100%|" in line for line in finals)  # tqdm may redraw a bar: count lines
    assert f"val {reg.validation_scores_[-1]:.4f}" in finals[-1]


def test_progress_bar_running_loss_is_the_mean_over_the_sequences_seen():
    seen = []

    class Spy(Progress):
        def update(self, n_done, loss):
            seen.append((n_done, loss))

    bar = ProgressBar(stream=io.StringIO(), use_tqdm=False)
    X, y = _data()
    reg = _small(max_epochs=1, callbacks=[bar])
    import fastlstm.train.progress as progress_module

    orig = progress_module.make_progress
    try:
        progress_module.make_progress = lambda *a, **k: Spy(0, None)
        reg.fit(X, y)
    finally:
        progress_module.make_progress = orig
    counts = [n for n, _ in seen]
    assert len(counts) == 3 and counts[-1] == 40 and counts == sorted(set(counts))
    assert seen[-1][1] == pytest.approx(reg.loss_curve_[0], rel=1e-9)


def test_progress_bar_survives_clone_and_checks_its_parameter():
    out = io.StringIO()
    reg = _small(callbacks=[ProgressBar(stream=out)])
    copy = clone(reg)  # deep-copies the callbacks: the stream is shared, not copied
    assert copy.callbacks[0].stream is out
    X, y = _data()
    with pytest.raises(TypeError, match="use_tqdm"):
        _small(callbacks=[ProgressBar(use_tqdm="yes")]).fit(X, y)


# ------------------------------------------------------------------ one report per event


@pytest.mark.parametrize("tqdm", [False, True])
def test_a_divergence_is_a_warning_and_not_also_progress_text(tqdm, monkeypatch):
    if tqdm:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)
    out, cb_out = Tty(), Tty()
    monkeypatch.setattr(sys, "stderr", out)
    X, y = _data()
    reg = _small(verbose=1, max_epochs=3, learning_rate=1e39, optimizer="sgd",
                 callbacks=[ProgressBar(stream=cb_out)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert any("non-finite" in m for m in messages)
    for text in (out.getvalue(), cb_out.getvalue()):
        assert "non-finite" not in text and "Training stopped" not in text
    # the bar cut short ended its line, so the warning does not start mid-line
    assert not out.getvalue() or out.getvalue().endswith("\n")
