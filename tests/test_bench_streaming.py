"""The benchmark's streaming section: every cell's step, torch's cell and predict_step."""

import math

import pytest

from fastlstm._bench import _streaming
from fastlstm._bench._report import Report
from fastlstm._bench._timing import Timer

# the section fits one-epoch estimators on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_every_cell_is_timed_beside_torch(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(_streaming, "STREAM_STEPS", 5)
    report = Report(echo=False)
    _streaming.streaming_section([1], Timer(budget=0.0, min_reps=1, settle=0.0), report)
    records = report.data["streaming"]["results"]
    assert [r["cell"] for r in records] == ["lstm", "rnn", "gru"]
    for r in records:
        for key in ("step_us", "step_in_place_us", "torch_us", "predict_step_classifier_us",
                    "predict_step_regressor_us"):
            assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, key
    text = report.sections[-1]
    assert "| 1 | gru |" in text and "predict_step clf" in text and "in place" in text
    # the parity of each cell against torch's, within the report's tolerance
    assert len(report.parity) == 3 and report.notes == []


@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_the_in_place_steps_give_the_steps_of_fresh_states(cell):
    import numpy as np

    import fastlstm

    layer = {"lstm": fastlstm.LSTM, "rnn": fastlstm.RNN, "gru": fastlstm.GRU}[cell](
        3, 5, num_layers=2, random_state=0)
    xs = np.random.default_rng(0).standard_normal((6, 2, 3), dtype=np.float32)
    np.testing.assert_array_equal(_streaming._run_steps_in_place(layer, xs),
                                  _streaming._run_steps(layer.step, xs))
