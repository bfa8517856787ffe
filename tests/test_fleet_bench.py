"""The fleet benchmark (bench/fleet_vs_torch.py): its before/after switch and its report."""

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "fleet_vs_torch.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("fleet_vs_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_step_fleet_switches_the_compiled_step_off_and_back():
    from fastlstm.train import engine
    from fastlstm.train.network import SequenceNet

    bench = load_bench()
    before = engine.CompiledStep.for_network
    seen = []
    real = bench.fastlstm_fleet

    def spy(*args, **kwargs):  # what the trainer gets while the Python-step fleet fits
        net = SequenceNet(1, 16, hidden_size=4, random_state=0)
        seen.append(engine.CompiledStep.for_network(net, "squared_error"))
        return real(*args, **kwargs)

    bench.fastlstm_fleet = spy
    series = bench.make_series(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 20 epochs do not converge, on purpose
        _, py_forecast, cpu = bench.python_step_fleet(series, 4, 1, 5e-3)
        bench.fastlstm_fleet = real
        _, forecast, _ = real(series, 4, 1, 5e-3)
    assert seen == [None]
    assert engine.CompiledStep.for_network == before
    assert cpu > 0
    # the same model trained by the two paths: equal up to rounding grown over 180 steps
    np.testing.assert_allclose(py_forecast[0], forecast[0], rtol=0, atol=0.05)


def test_fleet_vs_torch_script():
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--series", "2", "--torch-series", "1",
                           "--python-step", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "CPU: " in out and "kernel variant" in out
    assert "ratio (PyTorch / fastlstm, threads): " in out
    assert "ratio (PyTorch / fastlstm, threads, Python step): " in out
    assert out.count("CPU time per series: ") == 2
    assert "largest forecast difference to the compiled step's: " in out
