"""The benchmark's whole-fit section, ragged ratios and memory ratios.

The whole-fit comparison claims that its PyTorch loop trains the same model
as the estimator: same architecture, initial weights, loss, optimizer,
clipping and mini-batches. The tests check that claim directly (in float64
the two trainers end with the same weights) and run the section on tiny
configurations (a few dozen samples, one epoch), so the times mean nothing
but every column is produced.
"""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fastlstm.__main__ import main
from fastlstm._bench import _fit, _ragged
from fastlstm._bench._report import Report
from fastlstm._bench._timing import Timer

ROOT = Path(__file__).resolve().parents[1]


def tiny(name, **changes):
    """A task with a few dozen samples, H=4 and one epoch."""
    return replace(_fit.TASKS[name], hidden_size=4, batch_size=8, epochs=1, n_samples=48,
                   **changes)


# ------------------------------------------------------------------ same model


@pytest.mark.parametrize("name", ["digits", "pixels", "drift", "sine", "ragged", "adding",
                                  "stacked", "bidirectional"])
def test_torch_loop_trains_the_estimators_model(name):
    """Same init, batches, loss, Adam and clipping: the same weights after training."""
    pytest.importorskip("torch")
    task = replace(tiny(name), n_samples=40)
    split = task.make(0, task.n_samples)
    fl = _fit.fit_fastlstm(task, split, 2, 1, 0, dtype="float64")
    tp = _fit.fit_torch(task, split, 2, 1, 0, dtype="float64")
    net = fl.model.network_
    theirs = {k: v.detach().numpy() for k, v in tp.model.state_dict().items()}
    ours = {"lstm." + k: v for k, v in net.layer.state_dict().items()}
    ours.update({"head.weight": net.weight, "head.bias": net.bias})
    assert sorted(theirs) == sorted(ours)
    initial, _ = _fit.initial_net(task, net.config["n_features"], net.config["n_outputs"], 0,
                                  "float64")
    moved = max(float(np.max(np.abs(a - b))) for a, b in
                zip(net.parameters(), initial.parameters(), strict=True))
    assert moved > 1e-3  # training changed the weights: the comparison below means something
    for key, value in ours.items():
        np.testing.assert_allclose(theirs[key], value, rtol=0, atol=1e-10, err_msg=key)
    assert tp.score == pytest.approx(fl.score, abs=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["digits", "ragged", "adding", "stacked",
                                  "bidirectional"])
def test_torch_model_is_the_estimators_architecture(name):
    """Same parameters and, with the estimator's weights, the same predictions."""
    torch = pytest.importorskip("torch")
    task = tiny(name)
    X_train, X_test, y_train, _ = task.make(0, task.n_samples)
    est = _fit.make_estimator(task, 1, 1, 0).fit(X_train, y_train)
    net = est.network_
    model = _fit.torch_model(net.config["n_features"], task.hidden_size,
                             net.config["n_outputs"], num_layers=task.num_layers,
                             bidirectional=task.bidirectional)
    n_ours = sum(p.size for p in net.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_ours
    # load the estimator's exported module (to_torch) into the benchmark's model
    exported = est.to_torch().state_dict()
    model.load_state_dict({k.replace("rnn.", "lstm.", 1): v for k, v in exported.items()
                           if not k.startswith("y_")})
    model.eval()
    xs, ls = _fit._padded(X_test, net.config["n_features"], np.float32)
    with torch.inference_mode():
        out = model(xs, ls).double().numpy()
    if task.kind == "classifier":
        proba = np.exp(out - out.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(proba, est.predict_proba(X_test), atol=1e-5)
    else:
        pred = out[:, 0] * est._y_scale[0] + est._y_mean[0]
        np.testing.assert_allclose(pred, est.predict(X_test), rtol=1e-5, atol=1e-5)
    if name == "ragged":  # lengths really vary, and packing gives each sequence's last step
        assert len({len(x) for x in X_test}) > 1


def test_initial_net_has_open_forget_gates_and_estimator_init():
    task = tiny("sine")
    net, rng = _fit.initial_net(task, 1, 2, seed=3)
    h = task.hidden_size
    sd = net.layer.state_dict()
    np.testing.assert_array_equal(sd["bias_ih_l0"][h:2 * h], 1.0)
    np.testing.assert_array_equal(sd["bias_hh_l0"][h:2 * h], 0.0)
    bound = 1 / np.sqrt(h)
    assert np.all(np.abs(sd["weight_hh_l0"]) <= bound)
    again, _ = _fit.initial_net(task, 1, 2, seed=3)
    np.testing.assert_array_equal(again.weight, net.weight)  # deterministic
    assert isinstance(rng, np.random.RandomState)


# ------------------------------------------------------------------ the section


def test_fit_section_tiny():
    pytest.importorskip("torch")
    tasks = [tiny("digits"), tiny("ragged"), tiny("adding")]
    report = Report(echo=False)
    _fit.fit_section([1], report, tasks=tasks)
    doc = report.data["fit"]
    assert [d["task"] for d in doc["tasks"]] == ["digits", "ragged", "adding"]
    assert [d["metric"] for d in doc["tasks"]] == ["accuracy", "accuracy", "R^2"]
    ragged = doc["tasks"][1]
    assert ragged["n_features"] == 4 and 20 <= ragged["min_length"] < ragged["max_length"] <= 60
    assert all(d["epochs"] == 1 and d["n_train"] + d["n_test"] == 48 for d in doc["tasks"])
    assert len(doc["results"]) == 3
    for rec in doc["results"]:
        assert rec["threads"] == 1 and rec["epochs"] == 1
        assert rec["fastlstm_s"] > 0 and rec["torch_s"] > 0
        assert rec["ratio"] == pytest.approx(rec["torch_s"] / rec["fastlstm_s"])
        assert rec["score_diff"] == pytest.approx(rec["fastlstm_score"] - rec["torch_score"])
        assert rec["within_tol"] is True  # the same training up to float32 rounding
        assert rec["flops"] > 0 and rec["fastlstm_pct_fma_peak"] is None  # no peaks given
    text = report.sections[-1]
    assert text.startswith("### Whole fits: estimator vs the same model in a plain PyTorch loop")
    assert "torch/fastlstm > 1: fastlstm's fit is faster" in text
    assert "Target" not in text and "issue" not in text
    assert ("| task | thr | fastlstm fit s | torch fit s | torch/fastlstm | metric | fastlstm "
            "| torch | scores within 0.01 | fastlstm % FMA peak | torch % FMA peak |") in text
    assert "\n| ragged | 1 | " in text and "| R^2 |" in text
    assert not report.notes


def test_fit_efficiency_is_the_flops_over_the_peak_of_the_cores_used():
    pytest.importorskip("torch")
    report = Report(echo=False)
    _fit.fit_section([1], report, tasks=[tiny("digits")], peaks={1: {"fma_gflops": 50.0}})
    rec = report.data["fit"]["results"][0]
    # T=8 steps of I=8 features, H=4: per step 2G(I+H) forward, 2GH + 2G(I+H) backward
    gates, n_in, hidden = 16, 8, 4
    n_train = report.data["fit"]["tasks"][0]["n_train"]
    per_step = 2 * gates * (n_in + hidden) * 2 + 2 * gates * hidden
    assert rec["flops"] == per_step * 8 * n_train * rec["epochs"]
    for lib in ("fastlstm", "torch"):
        assert rec[f"{lib}_pct_fma_peak"] == pytest.approx(
            100 * rec["flops"] / rec[f"{lib}_s"] / 50e9)
    assert "| digits | 1 | " in report.sections[-1] and "%" in report.sections[-1]


def test_fit_section_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # any import of torch now fails
    report = Report(echo=False)
    _fit.fit_section([1], report, tasks=[tiny("digits")])
    (rec,) = report.data["fit"]["results"]
    assert rec["fastlstm_s"] > 0 and 0 <= rec["fastlstm_score"] <= 1
    assert rec["torch_s"] is None and rec["ratio"] is None and rec["within_tol"] is None
    assert any(n.startswith("whole fits: PyTorch absent") for n in report.notes)
    assert "| digits | 1 | " in report.sections[-1] and "| n/a | n/a |" in report.sections[-1]


def test_fit_section_reports_a_failing_fit(monkeypatch):
    pytest.importorskip("torch")

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(_fit, "fit_torch", broken)
    report = Report(echo=False)
    _fit.fit_section([1], report, tasks=[tiny("digits")])
    (rec,) = report.data["fit"]["results"]
    assert rec["fastlstm_s"] > 0 and rec["torch_s"] is None and rec["within_tol"] is None
    assert report.notes == ["whole fit digits (torch, 1 thread(s)) failed: RuntimeError: boom"]


def test_fit_vs_torch_script():
    pytest.importorskip("torch")
    script = ROOT / "bench" / "fit_vs_torch.py"
    proc = subprocess.run([sys.executable, str(script), "--tasks", "digits", "--quick",
                           "--epochs", "1", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "| digits | 1 | " in proc.stdout and "torch/fastlstm" in proc.stdout


# ------------------------------------------------------------------ ragged, CLI


def test_ragged_section_ratios(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(_ragged, "RAGGED", (6, 20, 3, 8))
    report = Report(echo=False)
    _ragged.ragged_section([1], Timer(budget=0.0, min_reps=3, settle=0.0), report)
    doc = report.data["ragged"]
    assert doc["mean_over_t_max"] == pytest.approx(doc["mean_length"] / 20)
    assert abs(doc["mean_over_t_max"] - 0.63) < 0.02
    (rec,) = doc["results"]
    assert rec["lengths_over_padded"] == pytest.approx(rec["lengths_ms"] / rec["padded_ms"])
    assert rec["torch_ratio"] == pytest.approx(rec["torch_ms"] / rec["lengths_ms"])
    text = report.sections[-1]
    assert ("| thr | fl lengths ms | fl padded ms | torch packed ms | fl lengths / fl padded "
            "| torch packed / fl lengths |") in text
    assert "fl lengths: fastlstm with `lengths=`" in text
    assert "Target" not in text and "issue" not in text


def test_ragged_lengths_spread():
    lengths = _ragged.ragged_lengths(*_ragged.RAGGED[:2])
    b, t = _ragged.RAGGED[:2]
    assert len(lengths) == b and lengths.max() == t
    assert lengths.mean() / t == pytest.approx(0.63, abs=0.005)
    assert lengths.max() / lengths.min() >= 3  # varies (at least) 3x
    np.testing.assert_array_equal(lengths, _ragged.ragged_lengths(b, t))  # seeded


def test_bench_options_for_the_fit_section(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--fit-tasks" in out and "fit" in out
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--fit-tasks", "nonsense"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_compare_runs_only_the_fit_section(capsys, monkeypatch):
    """compare.py's machinery with every timed section skipped but the fit (tiny task)."""
    pytest.importorskip("torch")
    from fastlstm._bench import _run

    monkeypatch.setitem(_fit.TASKS, "digits", tiny("digits", quick_n_samples=48,
                                                   quick_epochs=1))
    assert _run.main(["--quick", "--threads", "1", "--cases", "2,3,2,8", "--skip", "dense",
                      "ragged", "streaming", "memory", "--fit-tasks", "digits", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["settings"]["sections"] == ["fit"] and doc["settings"]["fit_tasks"] == ["digits"]
    (rec,) = doc["fit"]["results"]
    assert rec["task"] == "digits" and rec["epochs"] == 1 and rec["within_tol"] is True
    assert "targets" not in doc


def test_fit_torch_restores_the_thread_count():
    torch = pytest.importorskip("torch")
    task = tiny("digits")
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    _fit.fit_torch(task, task.make(0, task.n_samples), 1, wanted, 0)
    assert torch.get_num_threads() == before
