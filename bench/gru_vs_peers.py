"""fastlstm.GRU against torch.nn.GRU and ONNX Runtime's GRU operator, in one run.

Same weights (fastlstm's state dict loaded into each peer), float32, the same
thread count everywhere. For each case (B, T, I, H): the forward (inference)
of fastlstm, PyTorch and ONNX Runtime (fastlstm's own ``to_onnx`` graph), and
forward + backward of fastlstm and PyTorch (autograd on ``out.sum()``), as the
median of interleaved repeats, with the ratios peer / fastlstm (above 1:
fastlstm is faster) and fastlstm.LSTM's times on the same shapes beside them;
GRU GFLOP/s as a percentage of the FMA peak measured in the same run (forward:
2*B*T*3H*(I+H) flops, forward+backward 3x that). Prints a markdown table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gru_vs_peers.py [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastlstm
from fastlstm._bench._machine import cpu_model
from fastlstm._bench._timing import fma_peak

CASES = [(1, 100, 32, 128), (32, 100, 32, 128), (64, 50, 64, 256), (32, 200, 16, 64)]


def _median_time(fn, repeats: int) -> float:
    fn()  # warm up: plans, packing, allocator
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fastlstm_fns(cls, x, hidden, threads):
    layer = cls(x.shape[2], hidden, n_jobs=threads, random_state=0)

    def forward():
        layer.forward(x)

    def train():
        out, _ = layer.forward(x, training=True)
        layer.backward(np.ones_like(out))

    return layer, forward, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    peak = fma_peak(args.threads)
    print(f"{cpu_model()}; fastlstm {fastlstm.__version__}, torch {torch.__version__}, "
          f"onnxruntime {ort.__version__}; {args.threads} threads, float32, median of "
          f"{args.repeats}; FMA peak {peak if peak else float('nan'):.0f} GFLOP/s\n")
    print("| B, T, I, H | GRU fwd ms (%FMA) | torch/GRU fwd | ORT/GRU fwd "
          "| GRU fwd+bwd ms (%FMA) | torch/GRU fwd+bwd | LSTM fwd ms | LSTM fwd+bwd ms |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for b, t, i, h in CASES:
        x = rng.standard_normal((b, t, i)).astype(np.float32)
        gru, g_fwd, g_train = _fastlstm_fns(fastlstm.GRU, x, h, args.threads)
        _, l_fwd, l_train = _fastlstm_fns(fastlstm.LSTM, x, h, args.threads)
        module = gru.to_torch()
        xt = torch.from_numpy(x)

        def t_fwd(module=module, xt=xt):
            with torch.no_grad():
                module(xt)

        def t_train(module=module, xt=xt):
            module.zero_grad()
            xg = xt.clone().requires_grad_(True)
            module(xg)[0].sum().backward()

        sess = ort.InferenceSession(gru.to_onnx().SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name

        def o_fwd(sess=sess, name=name, x=x):
            sess.run(None, {name: x})

        times = {k: _median_time(fn, args.repeats) * 1e3 for k, fn in
                 [("g", g_fwd), ("t", t_fwd), ("o", o_fwd), ("gb", g_train), ("tb", t_train),
                  ("l", l_fwd), ("lb", l_train)]}
        flops = 2.0 * b * t * 3 * h * (i + h)

        def pct(ms: float, f: float) -> str:
            return f"{100 * f / (ms * 1e-3) / 1e9 / peak:.0f}%" if peak else "n/a"

        print(f"| {b}, {t}, {i}, {h} | {times['g']:.2f} ({pct(times['g'], flops)}) "
              f"| {times['t'] / times['g']:.2f}x "
              f"| {times['o'] / times['g']:.2f}x | {times['gb']:.2f} "
              f"({pct(times['gb'], 3 * flops)}) "
              f"| {times['tb'] / times['gb']:.2f}x | {times['l']:.2f} | {times['lb']:.2f} |")


if __name__ == "__main__":
    main()
