"""Ctrl-C during a fit, as a script sees it: Python's own KeyboardInterrupt.

Each case runs a script in a subprocess that sends SIGINT to itself in the
middle of a fit (from a callback, after an optimizer step), as a Ctrl-C does.
An uncaught interrupt must end the script as any Ctrl-C does: a death by
SIGINT (status 130 in a shell; subprocess reports -SIGINT) with a short
traceback and no chained exceptions; a caught one leaves a usable model.
"""

import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

_PRELUDE = """
import os, signal, sys
import numpy as np
from fastlstm import LSTMClassifier, LSTMRegressor
from fastlstm.callbacks import Callback

class CtrlC(Callback):
    def __init__(self, at=3):
        self.at = at
        self.n = 0

    def on_batch_end(self, ctx, batch, loss):
        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), signal.SIGINT)

X = np.random.default_rng(0).uniform(size=(64, 5, 1)).astype(np.float32)
y = X[:, -1, 0]
"""

_SIGINT_STATUSES = (130, -signal.SIGINT)  # a shell's status / subprocess's report
_CHAINS = ("During handling of the above exception", "The above exception was the direct cause")


def _run(body):
    script = textwrap.dedent(_PRELUDE) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)


def _assert_plain_interrupt(proc):
    assert proc.returncode in _SIGINT_STATUSES, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) < 15, proc.stderr
    assert not any(chain in proc.stderr for chain in _CHAINS), proc.stderr
    assert lines[-1] == "KeyboardInterrupt", proc.stderr  # not a subclass's name


@pytest.mark.parametrize("call", [
    "LSTMRegressor(hidden_size=8, max_epochs=5, batch_size=16, n_jobs=1, random_state=0,"
    " callbacks=[CtrlC()]).fit(X, y)",
    "LSTMClassifier(hidden_size=8, max_epochs=5, batch_size=16, n_jobs=1, random_state=0,"
    " callbacks=[CtrlC()]).fit(X, y > 0.5)",
    "LSTMRegressor(hidden_size=8, batch_size=16, n_jobs=1, random_state=0,"
    " callbacks=[CtrlC()]).partial_fit(X, y)",
])
def test_uncaught_ctrl_c_in_fit_exits_as_keyboard_interrupt(call):
    _assert_plain_interrupt(_run(call))


def test_uncaught_ctrl_c_with_progress_output_exits_as_keyboard_interrupt():
    proc = _run("LSTMRegressor(hidden_size=8, max_epochs=5, batch_size=16, n_jobs=1,"
                " verbose=1, random_state=0, callbacks=[CtrlC(at=6)]).fit(X, y)")
    _assert_plain_interrupt(proc)
    assert proc.stderr.count("Training interrupted by user.") == 1


def test_caught_ctrl_c_leaves_a_usable_model():
    proc = _run("""
        reg = LSTMRegressor(hidden_size=8, max_epochs=5, batch_size=16, n_jobs=1,
                            random_state=0, callbacks=[CtrlC(at=6)])
        try:
            reg.fit(X, y)
        except KeyboardInterrupt as exc:
            assert type(exc) is KeyboardInterrupt, type(exc)
            assert exc.__cause__ is None and exc.__context__ is None
        else:
            raise AssertionError("the interrupt did not reach the caller")
        pred = reg.predict(X)
        assert pred.shape == (64,) and np.isfinite(pred).all()
        # 4 steps an epoch: interrupted after the 6th, one epoch complete
        assert reg.n_iter_ == 1 and len(reg.loss_curve_) == 1 and reg.t_ == 64 + 32
        reg.set_params(callbacks=None).partial_fit(X, y)  # training goes on
        assert reg.n_iter_ == 2
        print("usable")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "usable"


@pytest.mark.parametrize("quiet", [False, True])
def test_ctrl_c_in_the_demo_exits_130_with_one_line(quiet):
    argv = ["demo", "--quick", "--n-jobs", "1"] + (["--quiet"] if quiet else [])
    proc = _run(f"""
        from fastlstm.train.optim import Adam
        from fastlstm.__main__ import main

        real_step, calls = Adam.step, [0]

        def step(self, params, grads):
            real_step(self, params, grads)
            calls[0] += 1
            if calls[0] == 50:  # in the second epoch
                os.kill(os.getpid(), signal.SIGINT)

        Adam.step = step
        sys.exit(main({argv!r}))
    """)
    assert proc.returncode == 130, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr
    about = [line for line in lines if "nterrupted" in line]
    assert len(about) == 1 and len(about[0]) < 40, proc.stderr
    if quiet:
        assert lines == ["fastlstm: interrupted"]
    assert "test accuracy" not in proc.stdout
