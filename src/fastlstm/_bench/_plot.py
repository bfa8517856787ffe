"""A PNG of time against hidden size and batch size (needs matplotlib)."""

from __future__ import annotations

import numpy as np

from fastlstm._bench._dense import ShapeResult, measure_shape
from fastlstm._bench._report import Report
from fastlstm._bench._shapes import Shape
from fastlstm._bench._timing import Timer, log, thread_limit

__all__ = ["plot"]

PLOT_HIDDEN = [32, 64, 128, 256, 512]  # B=64, T=100, I=64
PLOT_BATCH = [1, 4, 16, 64, 256]  # T=100, I=64, H=128


def plot(path: str, threads: int, timer: Timer, report: Report,
         cache: dict[tuple[Shape, int], ShapeResult]) -> None:
    """Two panels: time vs hidden size and vs batch size, at ``threads`` threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = [("hidden size H (B=64, T=100, I=64)", [(64, 100, 64, hh) for hh in PLOT_HIDDEN],
               PLOT_HIDDEN),
              ("batch size B (T=100, I=64, H=128)", [(bb, 100, 64, 128) for bb in PLOT_BATCH],
               PLOT_BATCH)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    with thread_limit(threads):
        for ax, (xlabel, shapes, xs) in zip(axes, sweeps, strict=True):
            results = []
            for shape in shapes:
                if (shape, threads) not in cache:
                    log(f"[plot, {threads} thread(s)] {shape} ...")
                    cache[(shape, threads)] = measure_shape(shape, threads, timer, report,
                                                            check=False)
                results.append(cache[(shape, threads)])
            series = [("fastlstm fwd+bwd", "fl_fb", "C0", "-"),
                      ("torch fwd+bwd", "torch_fb", "C1", "-"),
                      ("fastlstm fwd", "fl_fwd", "C0", "--"),
                      ("torch fwd", "torch_fwd", "C1", "--"),
                      ("ORT fwd", "ort_fwd", "C2", "--")]
            for label, attr, color, style in series:
                ys = [getattr(r, attr) for r in results]
                if all(y is None for y in ys):
                    continue
                ax.plot(xs, [np.nan if y is None else 1e3 * y for y in ys], style,
                        color=color, marker="o", label=label)
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(v) for v in xs])
            ax.minorticks_off()
            ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("ms (median)")
            ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fastlstm vs peers, {threads} thread(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    report.sections.append(f"Plot written to `{path}` ({threads} thread(s)).")
    report.data["plot"] = {"path": path, "threads": threads}
