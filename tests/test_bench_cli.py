"""``fastlstm bench``: JSON and markdown reports, optional peers, option errors.

Each run uses one tiny case at one thread in quick mode with the fixed-shape
sections left out, so the numbers are meaningless but every code path of the
report runs.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import fastlstm
from fastlstm.__main__ import main

TINY = ["bench", "--quick", "--cases", "2,3,2,8", "--threads", "1",
        "--skip", "ragged", "streaming", "memory"]


def _positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _run_json(capsys):
    assert main([*TINY, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_json_document(capsys):
    doc = _run_json(capsys)
    m = doc["machine"]
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert m["kernel"]["variant"] in m["kernel"]["available"]
    assert m["versions"]["fastlstm"] == fastlstm.__version__
    assert isinstance(m["blas"], list) and m["blas"]
    assert doc["settings"]["threads"] == [1]
    assert doc["settings"]["cases"] == [{"B": 2, "T": 3, "I": 2, "H": 8}]
    assert doc["settings"]["sections"] == ["dense"]
    assert "ragged" not in doc and "streaming" not in doc and "memory" not in doc

    (peak,) = doc["peaks"]
    assert peak["threads"] == 1 and _positive(peak["sgemm_gflops"])
    vector = [v for v in m["kernel"]["available"] if v != "base"]
    if vector:  # a vector variant is built: the FMA loop runs
        assert _positive(peak["fma_gflops"]) and peak["fma_variant"] in vector
    else:
        assert peak["fma_gflops"] is None

    assert doc["settings"]["cells"] == ["lstm", "gru"]
    assert [row["cell"] for row in doc["dense"]] == ["lstm", "gru"]
    for row, gates in zip(doc["dense"], (4, 3), strict=True):
        _check_dense_row(doc, row, gates, peak, vector)
    assert any(line.startswith("- lstm B,T,I,H=2,3,2,8") for line in doc["parity"])
    assert any(line.startswith("- gru B,T,I,H=2,3,2,8") for line in doc["parity"])
    assert _positive(doc["wall_time_s"])


def _check_dense_row(doc, row, gates, peak, vector):
    assert row["case"] == {"B": 2, "T": 3, "I": 2, "H": 8} and row["threads"] == 1
    assert row["forward_flops"] == 2 * 2 * 3 * gates * 8 * (2 + 8)
    fl = row["fastlstm"]
    for key in ("forward_ms", "train_ms", "forward_gflops", "train_gflops",
                "forward_pct_sgemm_peak"):
        assert _positive(fl[key]), key
    # GFLOP/s is the formula's flops over the measured time
    assert fl["forward_gflops"] == pytest.approx(row["forward_flops"] / fl["forward_ms"] / 1e6)
    if vector:
        assert fl["forward_pct_fma_peak"] == pytest.approx(
            100 * fl["forward_gflops"] / peak["fma_gflops"])

    for name, fields in (("torch", ("forward_ms", "train_ms", "forward_ratio", "train_ratio")),
                         ("onnxruntime", ("forward_ms", "forward_ratio"))):
        status = doc["peers"][name]
        assert isinstance(status["available"], bool)
        if status["available"]:
            assert row[name]["parity_ok"] is True  # same weights, same outputs
            for key in fields:
                assert _positive(row[name][key]), (name, key)
        else:
            assert row[name] is None and status["reason"]


def test_markdown_report(capsys):
    assert main(TINY) == 0
    out = capsys.readouterr().out
    assert out.startswith("## fastlstm benchmark")
    assert "- CPU: " in out and "- fastlstm kernel variant: " in out
    assert "| thr | sgemm GFLOP/s | FMA peak GFLOP/s |" in out
    assert ("| cell | B,T,I,H | thr | fl fwd ms | fl f+b ms | fl fwd GF/s | fwd %sgemm "
            "| fwd %FMA |") in out
    assert "\n| lstm | 2,3,2,8 | 1 | " in out and "\n| gru | 2,3,2,8 | 1 | " in out


def test_without_peers(capsys, monkeypatch):
    for mod in ("torch", "onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, mod, None)  # any import of it now fails
    doc = _run_json(capsys)
    for name in ("torch", "onnxruntime"):
        assert doc["peers"][name]["available"] is False
        assert "not importable" in doc["peers"][name]["reason"]
        assert doc["dense"][0][name] is None
        assert any(n.startswith(f"peer {name} absent") for n in doc["notes"])
    assert _positive(doc["dense"][0]["fastlstm"]["forward_ms"])
    assert doc["parity"] == ["- lstm B,T,I,H=2,3,2,8: no peers",
                             "- gru B,T,I,H=2,3,2,8: no peers"]

    assert main(TINY) == 0
    out = capsys.readouterr().out
    assert "- peers: torch absent; onnxruntime absent" in out
    row = next(line for line in out.splitlines() if line.startswith("| lstm | 2,3,2,8 |"))
    assert row.endswith("| n/a | n/a | n/a | n/a | n/a | n/a |")


@pytest.mark.parametrize("argv, status, expected", [
    (["--help"], 0, ("--quick", "--json", "--cases", "--threads", "--skip")),
    (["--cases", "2,3"], 2, ("four positive integers",)),
    (["--cases", "2,3,0,8"], 2, ("four positive integers",)),
    (["--threads", "0"], 2, ("positive integers",)),
    (["--skip", "everything"], 2, ("invalid choice",)),
])
def test_help_and_bad_options(capsys, argv, status, expected):
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv])
    assert exc.value.code == status
    out, err = capsys.readouterr()
    for text in expected:
        assert text in (out if status == 0 else err)


def test_compare_script_is_the_same_command():
    script = Path(__file__).resolve().parents[1] / "bench" / "compare.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    for option in ("--quick", "--json", "--cases", "--threads", "--markdown", "--plot"):
        assert option in proc.stdout


# words about the product only: no targets, verdicts or references to work items
_NOT_FOR_USERS = ("issue", "Target", "target", "| NO |", "#9", "item ")


def test_the_report_is_measurements_without_targets(capsys):
    """The markdown and JSON reports hold measurements, not targets or work items."""
    argv = ["bench", "--quick", "--cases", "2,3,2,8", "--threads", "1", "--skip",
            "streaming", "memory", "fit"]  # dense and ragged sections, tiny and quick
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "### Dense batches" in out and "### Ragged batch" in out
    for text in (out, err):
        for word in _NOT_FOR_USERS:
            assert word not in text, word
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "targets" not in doc and doc["dense"] and doc["ragged"]["results"]
    assert not any(word in json.dumps(doc) for word in _NOT_FOR_USERS)
