"""The command line: ``fastlstm demo``, ``--version``, ``--help``."""

import re
import shutil
import subprocess
import sys

import pytest

import fastlstm
from fastlstm.__main__ import main


def _accuracy(stdout):
    match = re.search(r"^test accuracy: ([0-9.]+)$", stdout, re.MULTILINE)
    assert match, stdout
    return float(match.group(1))


def test_demo_in_process_quick_and_quiet(capsys):
    assert main(["demo", "--quick", "--quiet", "--n-jobs", "1"]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # --quiet: no progress bar
    assert 0.5 < _accuracy(out) <= 1.0  # 3 epochs: far above chance (0.1)
    assert re.search(r"^fit time: [0-9.]+ s \(3 epochs\)$", out, re.MULTILINE)
    assert re.search(r"^training throughput: [0-9,]+ sequences/s$", out, re.MULTILINE)
    assert "1347 training and 450 test sequences" in out


def test_python_m_fastlstm_demo_with_progress_bar():
    proc = subprocess.run(
        [sys.executable, "-m", "fastlstm", "demo", "--epochs", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert 0.3 < _accuracy(proc.stdout) <= 1.0
    assert "Epoch 1/2 [" in proc.stderr and "Epoch 2/2 [" in proc.stderr
    assert "seq/s" in proc.stderr
    assert "Epoch" not in proc.stdout  # progress goes to stderr only


def test_version_and_help():
    proc = subprocess.run([sys.executable, "-m", "fastlstm", "--version"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == f"fastlstm {fastlstm.__version__}"
    proc = subprocess.run([sys.executable, "-m", "fastlstm", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.startswith("usage: fastlstm") and "demo" in proc.stdout


def test_demo_help_lists_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--epochs", "--quick", "--n-jobs", "--seed", "--quiet"):
        assert option in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_bad_arguments_exit_with_usage_error(capsys):
    for argv in (["demo", "--epochs", "0"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("fastlstm") is None, reason="console script not installed")
def test_console_script():
    proc = subprocess.run(["fastlstm", "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0 and fastlstm.__version__ in proc.stdout


def test_ctrl_c_during_the_demo_exits_130(monkeypatch, capsys):
    from fastlstm.train.optim import Adam

    def interrupted(self, params, grads):
        raise KeyboardInterrupt

    monkeypatch.setattr(Adam, "step", interrupted)
    assert main(["demo", "--quick", "--quiet", "--n-jobs", "1"]) == 130
    assert "interrupted" in capsys.readouterr().err
