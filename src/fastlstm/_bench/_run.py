"""One benchmark run from command-line options: ``fastlstm bench`` and ``bench/compare.py``."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

from fastlstm._bench import _peers
from fastlstm._bench._dense import ShapeResult, dense_section, peaks_section
from fastlstm._bench._fit import DEFAULT_TASKS, TASKS
from fastlstm._bench._machine import machine, machine_lines, usable_cores
from fastlstm._bench._report import Report
from fastlstm._bench._shapes import DEFAULT_CASES, QUICK_CASES, Shape, fastlstm_error, parse_case
from fastlstm._bench._timing import Timer

__all__ = ["SECTIONS", "add_arguments", "main", "run"]

SECTIONS = ("dense", "ragged", "streaming", "memory", "fit")
PEER_NAMES = {"torch": "torch", "ort": "onnxruntime"}


def _case(text: str) -> Shape:
    try:
        return parse_case(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _threads(text: str) -> list[int]:
    try:
        counts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"thread counts are positive integers (e.g. 1 2 or 1,2), got {text!r}")
    return counts


def add_arguments(parser: argparse.ArgumentParser, quick_cases: bool = False) -> None:
    """Add the benchmark options to ``parser``.

    ``quick_cases``: ``--quick`` also reduces the default cases to three small
    ones (the ``fastlstm bench`` command); otherwise it only takes fewer repeats.
    """
    usable = usable_cores()
    quick_help = ("fewer repeats and a smaller sgemm"
                  + (", three cases, no memory and no whole-fit section" if quick_cases
                     else ", whole fits with fewer epochs on smaller sets")
                  + "; for a first look")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--cases", type=_case, nargs="+", default=None, metavar="B,T,I,H",
                        help="dense shapes as batch,steps,inputs,hidden (default: "
                             + ", ".join(",".join(map(str, c)) for c in DEFAULT_CASES) + ")")
    from fastlstm.nn import registry

    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"],
                        choices=registry.names(),
                        help="cells of the dense table (default: lstm gru)")
    parser.add_argument("--threads", type=_threads, nargs="+", default=None, metavar="N",
                        help=f"thread counts, e.g. 1 2 (default: 1 and all usable cores = "
                             f"{usable})")
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS,
                        help="sections to leave out (fit: the whole fits against a PyTorch "
                             "loop, the longest section)")
    parser.add_argument("--fit-tasks", nargs="+", default=list(DEFAULT_TASKS),
                        choices=list(TASKS), metavar="TASK",
                        help="tasks of the whole-fit section, among " + ", ".join(TASKS)
                             + " (default: " + " ".join(DEFAULT_TASKS) + ")")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON document instead of the markdown report")
    parser.add_argument("--markdown", metavar="FILE", help="also write the markdown to FILE")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="write a PNG of time vs hidden size and batch size (matplotlib)")
    parser.set_defaults(_quick_cases=quick_cases)


def run(args: argparse.Namespace) -> Report:
    """Run the benchmark that ``args`` (from :func:`add_arguments`) describes."""
    start = time.perf_counter()
    thread_counts = sorted({n for group in args.threads for n in group}) if args.threads \
        else sorted({1, usable_cores()})
    small = args.quick and args._quick_cases
    cases = args.cases or (QUICK_CASES if small else DEFAULT_CASES)
    skip = set(args.skip) | ({"memory", "fit"} if small else set())
    timer = (Timer(budget=0.1, min_reps=3, max_reps=100) if args.quick
             else Timer(budget=0.5, min_reps=5, max_reps=500))
    report = Report()
    fl_error = fastlstm_error()
    if fl_error is not None:
        report.note(f"{fl_error}: fastlstm columns are n/a; peers use random weights")
    m = machine()
    peers = {}
    for name, reason in _peers.peer_status().items():
        module = PEER_NAMES[name]
        peers[module] = {"available": reason is None, "reason": reason,
                         "version": m["versions"].get(module)}
        if reason is not None:
            report.note(f"peer {module} absent: {reason}")
    report.data.update({
        "machine": m,
        "peers": peers,
        "settings": {"quick": bool(args.quick), "threads": thread_counts,
                     "cases": [dict(zip("BTIH", c, strict=True)) for c in cases],
                     "cells": list(args.cells),
                     "sections": [s for s in SECTIONS if s not in skip],
                     "fit_tasks": [] if "fit" in skip else list(args.fit_tasks),
                     "timer": {"budget_s": timer.budget, "min_reps": timer.min_reps}},
    })
    report.header = machine_lines(m, thread_counts)
    report.header.append("- peers: " + "; ".join(
        f"{k} {v['version']}" if v["available"] else f"{k} absent"
        for k, v in peers.items()))

    cache: dict[tuple[Shape, int], ShapeResult] = {}
    peaks = peaks_section(thread_counts, timer, report, sgemm_n=1024 if args.quick else 2048)
    if "dense" not in skip:
        dense_section(cases, thread_counts, timer, report, cache, peaks, cells=args.cells)
    if "ragged" not in skip:
        from fastlstm._bench._ragged import ragged_section

        ragged_section(thread_counts, timer, report)
    if "streaming" not in skip:
        from fastlstm._bench._streaming import streaming_section

        streaming_section(thread_counts, timer, report)
    if "memory" not in skip:
        from fastlstm._bench._memory import memory_section

        memory_section(thread_counts[-1], report)
    if "fit" not in skip:
        from fastlstm._bench._fit import fit_section

        fit_section(thread_counts, report, quick=bool(args.quick),
                    tasks=[TASKS[name] for name in args.fit_tasks], peaks=peaks)
    if args.plot:
        from fastlstm._bench._plot import plot

        plot(args.plot, thread_counts[-1], timer, report, cache)
    if timer.noisy:
        report.note(f"{len(timer.noisy)} of {timer.count} measurements were noisy "
                    f"(interquartile range > {timer.noisy_limit:.0%} of the median, worst "
                    f"{max(timer.noisy):.0%}): another process was probably using the cores")
    wall = time.perf_counter() - start
    report.data["wall_time_s"] = wall
    report.data["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if report.data["load_average_end"] is not None:
        report.note(f"load average at end: {report.data['load_average_end']:.2f}; total wall "
                    f"time {wall:.0f} s")
    return report


def main(argv: Sequence[str] | None = None, prog: str | None = None,
         quick_cases: bool = False) -> int:
    """Parse ``argv``, run, print markdown (or JSON with ``--json``); exit status."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Time fastlstm against PyTorch and ONNX Runtime on this machine.")
    add_arguments(parser, quick_cases=quick_cases)
    return execute(parser.parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    """Run parsed options and print the report; exit status 0."""
    report = run(args)
    text = report.render()
    print(report.dumps() if args.json else text, end="" if not args.json else "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0
