"""How far back the gradient reaches: ||dL/dh_t|| against the distance from the loss.

An LSTM and a tanh RNN with the same number of parameters read the adding
problem; the loss is the squared error of a linear readout of the final
hidden state. ``dL/dh_t`` is measured exactly with the public layer API: the
prefix ``x[:, :t+1]`` runs forward to get the state at step t, the suffix
``x[:, t+1:]`` runs from that state (``initial_state``), and
``backward(..., return_state_grads=True)`` returns the gradient with respect
to that initial state, which is ``dL/dh_t`` (and ``dL/dc_t`` for the LSTM).
Gradients are measured on a float64 copy of each model (the RNN's fall below
float32's smallest normal number), and a finite-difference check confirms one
of them. Both cells are measured at initialization and after the same number
of training updates (the layers plus a NumPy Adam loop), so the result does
not depend on the speed of the machine.

Run: ``python docs/examples/vanishing_gradient.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from _common import adding_problem, matched_rnn_size, parse_args, publish

import fastlstm

LSTM_HIDDEN = 32
LEARNING_RATE = {"lstm": 1e-2, "rnn": 1e-3}  # as in long_gaps.py
SEED = 0


class Model:
    """A one-layer recurrent network and a linear readout of its final hidden state."""

    def __init__(self, cell: str, hidden: int, seed: int, dtype: str = "float32") -> None:
        self.cell = cell
        Layer = fastlstm.LSTM if cell == "lstm" else fastlstm.RNN
        self.layer = Layer(2, hidden, dtype=dtype, n_jobs=1, random_state=seed)
        if cell == "lstm":  # forget gates start open, as the estimators do
            params = self.layer.named_parameters()
            params["bias_ih_l0"][hidden:2 * hidden] = 1.0
            params["bias_hh_l0"][hidden:2 * hidden] = 0.0
        rng = np.random.default_rng(seed)
        bound = 1 / np.sqrt(hidden)
        self.w = rng.uniform(-bound, bound, hidden).astype(dtype)
        self.b = np.ones(1, dtype=dtype)  # the mean target

    def to_float64(self) -> Model:
        """A float64 copy, for measuring gradients far below float32's range."""
        copy = Model(self.cell, self.layer.hidden_size, 0, dtype="float64")
        copy.layer.load_state_dict(self.layer.state_dict())
        copy.w[...], copy.b[...] = self.w, self.b
        return copy

    def params(self) -> list[np.ndarray]:
        return [*self.layer.named_parameters().values(), self.w, self.b]

    def final_hidden(self, x: np.ndarray, state: Any = None, training: bool = False
                     ) -> np.ndarray:
        _, final = self.layer.forward(x, initial_state=state, training=training)
        return (final[0] if self.cell == "lstm" else final)[-1]

    def loss_grad(self, h: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sequence losses 0.5 (w.h + b - y)^2 and their gradients wrt h."""
        err = h @ self.w + self.b[0] - y
        return 0.5 * err ** 2, (err[:, None] * self.w[None, :]).astype(h.dtype)

    def train_step(self, x: np.ndarray, y: np.ndarray, adam: Adam) -> None:
        h = self.final_hidden(x, training=True)
        err = (h @ self.w + self.b[0] - y) / len(y)  # gradient of the mean loss
        d_h_n = (err[:, None] * self.w[None, :]).astype(np.float32)[None]
        grads, _ = self.layer.backward(None, d_h_n)
        adam.step(self.params(), [*grads.values(), (err @ h).astype(np.float32),
                                  np.array([err.sum()], dtype=np.float32)])


class Adam:
    """Adam with global-norm clipping, on a flat list of arrays updated in place."""

    def __init__(self, params: list[np.ndarray], lr: float, clip: float = 5.0) -> None:
        self.lr, self.clip, self.t = lr, clip, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
        scale = min(1.0, self.clip / (norm + 1e-12))
        self.t += 1
        lr = self.lr * np.sqrt(1 - 0.999 ** self.t) / (1 - 0.9 ** self.t)
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            g = g * scale
            m += 0.1 * (g - m)
            v += 0.001 * (g * g - v)
            p -= (lr * m / (np.sqrt(v) + 1e-8)).astype(p.dtype)


def state_grads(model: Model, x: np.ndarray, y: np.ndarray, t: int
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact dL_i/dh_t (and dL_i/dc_t for the LSTM) per sequence, t counted from 0."""
    steps = x.shape[1]
    _, state = model.layer.forward(x[:, :t + 1])
    if t == steps - 1:  # h_t is the final state: only the readout lies between
        _, dh = model.loss_grad(state[0][-1] if model.cell == "lstm" else state[-1], y)
        return dh, None
    h = model.final_hidden(x[:, t + 1:], state=state, training=True)
    _, dh_n = model.loss_grad(h, y)
    if model.cell == "lstm":
        _, _, (dh0, dc0) = model.layer.backward(None, dh_n[None], return_state_grads=True)
        return dh0[0], dc0[0]
    _, _, dh0 = model.layer.backward(None, dh_n[None], return_state_grads=True)
    return dh0[0], None


def finite_difference_check(m64: Model, x: np.ndarray, y: np.ndarray, t: int) -> float:
    """Largest error of dL/dh_t against central differences, relative to its largest entry.

    ``m64`` is a float64 model; one sequence is checked.
    """
    x64 = x[:1].astype(np.float64)
    dh, _ = state_grads(m64, x64, y[:1], t)
    _, state = m64.layer.forward(x64[:, :t + 1])
    h0 = state[0] if m64.cell == "lstm" else state
    numeric = np.zeros(h0.shape[-1])
    eps = 1e-6
    for j in range(h0.shape[-1]):
        losses = []
        for sign in (1, -1):
            h = h0.copy()
            h[0, 0, j] += sign * eps
            s = (h, state[1]) if m64.cell == "lstm" else h
            loss, _ = m64.loss_grad(m64.final_hidden(x64[:, t + 1:], state=s), y[:1])
            losses.append(loss[0])
        numeric[j] = (losses[0] - losses[1]) / (2 * eps)
    return float(np.max(np.abs(numeric - dh[0])) / np.max(np.abs(dh[0])))


def measure(model: Model, x: np.ndarray, y: np.ndarray, distances: list[int]
            ) -> dict[str, list[float | None]]:
    """Median over sequences of ||dL_i/dh_t|| / ||dL_i/dh_{T-1}|| at each distance.

    The loss gradient at the last step carries the error of sequence i as a
    factor; the ratio removes it, so a trained model with small errors is
    compared on how much of its gradient reaches step t. The LSTM's cell
    gradient ||dL_i/dc_t|| is relative to the same denominator.
    """
    steps = x.shape[1]
    last, _ = state_grads(model, x, y, steps - 1)
    scale = np.linalg.norm(last, axis=1)
    result: dict[str, list[float | None]] = {"dh": [], "dh_p90": [], "dh_max": [], "dc": []}
    for k in distances:
        dh, dc = state_grads(model, x, y, steps - 1 - k)
        rel = np.linalg.norm(dh, axis=1) / scale
        result["dh"].append(float(np.median(rel)))
        result["dh_p90"].append(float(np.percentile(rel, 90)))
        result["dh_max"].append(float(rel.max()))
        result["dc"].append(None if dc is None
                            else float(np.median(np.linalg.norm(dc, axis=1) / scale)))
    return result


def train(model: Model, steps: int, updates: int) -> dict[str, float]:
    """``updates`` Adam steps on mini-batches of 32 fresh sequences; returns the CPU time."""
    rng = np.random.default_rng([SEED, 1])
    adam = Adam(model.params(), LEARNING_RATE[model.cell])
    cpu = 0.0
    for _ in range(updates):
        x, y = adding_problem(32, steps, rng)
        start = time.process_time()
        model.train_step(x, y, adam)
        cpu += time.process_time() - start
    return {"cpu_s": round(cpu, 2), "updates": updates}


def plot(results: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    d = np.asarray(results["distances"])
    colors = {"lstm": "C0", "rnn": "C3"}
    names = {"lstm": "LSTM", "rnn": "RNN (tanh)"}
    for cell in ("lstm", "rnn"):
        for when, ls in (("init", "--"), ("trained", "-")):
            label = "at initialization" if when == "init" else "trained"
            ax.plot(d, results[cell][when]["dh"], ls=ls, color=colors[cell],
                    label=f"{names[cell]} {label}, ||dL/dh_t||")
    dc = [np.nan if v is None else v for v in results["lstm"]["trained"]["dc"]]
    ax.plot(d, dc, ls=":", color=colors["lstm"],
            label="LSTM trained, ||dL/dc_t||")
    ax.set_yscale("log")
    ax.set_xlabel("distance from the loss, T - 1 - t (time steps)")
    ax.set_ylabel(f"||dL/dh_t|| / ||dL/dh_T-1||, median of {results['n_test']} sequences")
    ax.set_title(f"Adding problem, T = {results['steps']}: "
                 f"{results['lstm']['parameters']} vs {results['rnn']['parameters']} parameters")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    steps, updates, n_test = (30, 1500, 64) if args.quick else (100, 8000, 256)
    distances = sorted({int(round(v)) for v in np.geomspace(1, steps, 25)} | {0}
                       | {steps - 1})
    distances = [k for k in distances if k < steps]
    x, y = adding_problem(n_test, steps, np.random.default_rng([SEED, 2]))
    x64 = x.astype(np.float64)
    fd_t = steps - 1 - 10  # 10 steps from the loss: gradients well above rounding noise
    results: dict[str, Any] = {"quick": args.quick, "steps": steps, "updates": updates,
                               "n_test": n_test,
                               "distances": distances}
    start = time.perf_counter()
    lines = []
    for cell in ("lstm", "rnn"):
        hidden = LSTM_HIDDEN if cell == "lstm" else matched_rnn_size(LSTM_HIDDEN, 2, 1)
        model = Model(cell, hidden, SEED)
        # measured in float64: float32 flushes the RNN's smallest gradients to zero
        entry: dict[str, Any] = {
            "hidden_size": hidden, "parameters": int(sum(p.size for p in model.params())),
            "init": measure(model.to_float64(), x64, y, distances),
            "fd_rel_error_init": finite_difference_check(model.to_float64(), x, y, fd_t)}
        entry["training"] = train(model, steps, updates)
        err = model.final_hidden(x) @ model.w + model.b[0] - y
        entry["test_mse_trained"] = float(np.mean(err ** 2))
        entry["trained"] = measure(model.to_float64(), x64, y, distances)
        entry["fd_rel_error_trained"] = finite_difference_check(model.to_float64(), x, y, fd_t)
        results[cell] = entry
        far = distances[-1]
        lines.append(f"{cell}: H={hidden} params={entry['parameters']} trained "
              f"{entry['training']['updates']} updates in {entry['training']['cpu_s']} CPU s, "
              f"test MSE {entry['test_mse_trained']:.4f}")
        for when in ("init", "trained"):
            r = entry[when]
            lines.append(f"  {when:7s} ||dL/dh_t|| / ||dL/dh_T-1|| at distance {far}: median "
                         f"{r['dh'][-1]:.2e}, 90th percentile {r['dh_p90'][-1]:.2e}, "
                         f"max {r['dh_max'][-1]:.2e}")
        lines.append(f"  finite differences at distance 10, max relative error: init "
              f"{entry['fd_rel_error_init']:.1e}, trained {entry['fd_rel_error_trained']:.1e}")
    results["wall_s"] = round(time.perf_counter() - start, 1)
    lines.append(f"wall time {results['wall_s']:.0f} s")
    plot(results, args.out / "vanishing_gradient.png")
    publish(args.out, "vanishing_gradient", results, lines)


if __name__ == "__main__":
    main()
