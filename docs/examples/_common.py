"""What the example scripts share: command line, output folder, the long-gap tasks.

Every example runs as ``python docs/examples/NAME.py [--quick] [--out DIR]``;
``--quick`` (or ``FASTLSTM_EXAMPLES_QUICK=1``) is a small run for tests that
still writes its plot. Without ``--out`` the plot goes to ``docs/_static/examples``,
where the documentation pages read it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DOCS_IMAGES = Path(__file__).resolve().parent.parent / "_static" / "examples"


def parse_args(description: str, replot: bool = False) -> argparse.Namespace:
    """Parse ``--quick`` and ``--out`` (and ``--replot``); the environment can ask for quick mode.
    """
    parser = argparse.ArgumentParser(description=description)
    if replot:
        parser.add_argument("--replot", action="store_true",
                            help="redraw the plot from the saved results, without training")
    parser.add_argument("--quick", action="store_true",
                        help="a small run (well under a minute) that still writes the plot")
    parser.add_argument("--out", type=Path, default=DOCS_IMAGES,
                        help=f"folder for the PNG and the results (default: {DOCS_IMAGES})")
    args = parser.parse_args()
    args.quick = args.quick or os.environ.get("FASTLSTM_EXAMPLES_QUICK", "") not in ("", "0")
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def command() -> str:
    """The command line that ran this script, relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(Path(__file__).resolve().parents[2])
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def publish(out: Path, name: str, results: dict[str, Any], lines: list[str]) -> None:
    """Print the summary ``lines`` and save them with ``results`` next to the plot.

    ``NAME.txt`` (the command, the machine and the summary) is what the
    documentation page shows under the plot; ``NAME.json`` has every number.
    """
    info = machine()
    header = [f"$ {command()}",
              f"# {info['date']}, {info['usable_cores']} usable cores, "
              f"load average {info['load_average']}"]
    text = "\n".join(header + lines)
    print(text)
    (out / f"{name}.txt").write_text(text + "\n")
    results = {"command": command(), "machine": info, **results}
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / (name + '.png')}")


# ------------------------------------------------------------------- tasks
def adding_problem(n: int, steps: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber, 1997).

    Each sequence has ``steps`` time steps of two features: a value uniform in
    [0, 1] and a marker that is 1 at exactly two steps, one in the first half
    and one in the second half. The target is the sum of the two marked
    values; predicting its mean, 1, scores an MSE of 1/6.
    """
    x = np.zeros((n, steps, 2), dtype=np.float32)
    x[:, :, 0] = rng.uniform(size=(n, steps))
    rows = np.arange(n)
    first = rng.integers(0, steps // 2, size=n)
    second = rng.integers(steps // 2, steps, size=n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = x[rows, first, 0].astype(np.float64) + x[rows, second, 0]
    return x, y


def copy_memory(n: int, gap: int | np.ndarray, rng: np.random.Generator, *,
                n_symbols: int = 8, n_recall: int = 3) -> tuple[list[np.ndarray], np.ndarray]:
    """The copy-memory task as one classification per sequence.

    A sequence shows ``n_recall`` symbols (one-hot over ``n_symbols``), then
    ``gap`` blank steps, then one cue step that asks for the symbol at one
    of the ``n_recall`` positions (one-hot over positions, in extra
    features). The label is the symbol asked for, so the network must hold
    every symbol across the gap; chance accuracy is ``1 / n_symbols``.
    ``gap`` is one length for all or one per sequence; the sequences are
    returned as a list (ragged when the gaps differ).
    """
    gaps = np.broadcast_to(np.asarray(gap), (n,))
    symbols = rng.integers(0, n_symbols, size=(n, n_recall))
    asked = rng.integers(0, n_recall, size=n)
    X = []
    for i in range(n):
        x = np.zeros((n_recall + gaps[i] + 1, n_symbols + n_recall), dtype=np.float32)
        x[np.arange(n_recall), symbols[i]] = 1.0
        x[-1, n_symbols + asked[i]] = 1.0
        X.append(x)
    return X, symbols[np.arange(n), asked]


def n_parameters(cell: str, hidden: int, n_inputs: int, n_outputs: int) -> int:
    """Parameters of a one-layer network and its linear readout.

    An LSTM has four gate blocks (``4H(I + H + 2)``, PyTorch counts both
    biases), a tanh RNN one (``H(I + H + 2)``); the readout adds
    ``(H + 1) * n_outputs``.
    """
    gates = 4 if cell == "lstm" else 1
    return gates * hidden * (n_inputs + hidden + 2) + (hidden + 1) * n_outputs


def matched_rnn_size(lstm_hidden: int, n_inputs: int, n_outputs: int) -> int:
    """The RNN hidden size whose parameter count is closest to the LSTM's."""
    target = n_parameters("lstm", lstm_hidden, n_inputs, n_outputs)
    return min(range(1, 8 * lstm_hidden),
               key=lambda h: abs(n_parameters("rnn", h, n_inputs, n_outputs) - target))
