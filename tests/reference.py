"""A plain NumPy float64 LSTM, forward and backward, to hold fastlstm against.

Written for obviousness, not speed: it loops over sequences, layers,
directions and time steps, one vector at a time, and runs each sequence only
over its own length (so padding needs no masking).  Parameter names, shapes
and gate order (i, f, g, o) are PyTorch's ``nn.LSTM``:

    weight_ih_l{k}[_reverse]  (4H, I_k)    I_0 = input_size, I_k = D*H
    weight_hh_l{k}[_reverse]  (4H, H)
    bias_ih_l{k}[_reverse]    (4H,)
    bias_hh_l{k}[_reverse]    (4H,)

One step:

    G = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i, f, o = sigmoid(G_i, G_f, G_o);  g = tanh(G_g)
    c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)

This module imports only NumPy, so it can be checked against PyTorch
independently of the code under test.

>>> rng = np.random.default_rng(0)
>>> params = init_params(3, 2, num_layers=2, bidirectional=True, rng=rng)
>>> x = rng.standard_normal((4, 5, 3))
>>> out, (h_n, c_n), cache = forward(params, x, lengths=[5, 2, 1, 5])
>>> out.shape, h_n.shape
((4, 5, 4), (4, 4, 2))
>>> grads, dx, (dh0, dc0) = backward(params, cache, d_out=np.ones_like(out))
>>> sorted(grads) == sorted(params), dx.shape == x.shape
(True, True)
"""

import numpy as np

__all__ = ["backward", "forward", "init_params", "param_names", "run", "sigmoid"]


def sigmoid(z):
    """Logistic function; the tanh form cannot overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _suffix(direction):
    return "_reverse" if direction == 1 else ""


def param_names(num_layers, bidirectional):
    """The PyTorch parameter names, in PyTorch's order."""
    names = []
    for layer in range(num_layers):
        for direction in range(2 if bidirectional else 1):
            sfx = _suffix(direction)
            names += [
                f"weight_ih_l{layer}{sfx}",
                f"weight_hh_l{layer}{sfx}",
                f"bias_ih_l{layer}{sfx}",
                f"bias_hh_l{layer}{sfx}",
            ]
    return names


def param_shapes(input_size, hidden_size, num_layers=1, bidirectional=False):
    """Map each parameter name to its shape."""
    d = 2 if bidirectional else 1
    shapes = {}
    for layer in range(num_layers):
        fan_in = input_size if layer == 0 else d * hidden_size
        for direction in range(d):
            sfx = _suffix(direction)
            shapes[f"weight_ih_l{layer}{sfx}"] = (4 * hidden_size, fan_in)
            shapes[f"weight_hh_l{layer}{sfx}"] = (4 * hidden_size, hidden_size)
            shapes[f"bias_ih_l{layer}{sfx}"] = (4 * hidden_size,)
            shapes[f"bias_hh_l{layer}{sfx}"] = (4 * hidden_size,)
    return shapes


def init_params(input_size, hidden_size, num_layers=1, bidirectional=False, rng=None,
                scale=None):
    """Random float64 parameters, uniform(-scale, scale) (default 1/sqrt(H), as PyTorch)."""
    rng = np.random.default_rng(rng)
    scale = 1.0 / np.sqrt(hidden_size) if scale is None else scale
    return {
        name: rng.uniform(-scale, scale, size=shape)
        for name, shape in param_shapes(input_size, hidden_size, num_layers,
                                        bidirectional).items()
    }


def _structure(params):
    """(num_layers, D, H) read off the parameter names and shapes."""
    num_layers = sum(1 for k in params if k.startswith("weight_ih_l") and "reverse" not in k)
    d = 2 if "weight_ih_l0_reverse" in params else 1
    hidden = params["weight_hh_l0"].shape[1]
    return num_layers, d, hidden


def _run_direction(w_ih, w_hh, b, xs, h, c, reverse):
    """One layer-direction over one sequence xs (L, I); returns outputs and the tape."""
    hidden = w_hh.shape[1]
    steps = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    ys = np.zeros((len(xs), hidden))
    tape = []
    for t in steps:
        gates = w_ih @ xs[t] + w_hh @ h + b
        i = sigmoid(gates[:hidden])
        f = sigmoid(gates[hidden:2 * hidden])
        g = np.tanh(gates[2 * hidden:3 * hidden])
        o = sigmoid(gates[3 * hidden:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        tape.append(dict(t=t, h_prev=h, c_prev=c, i=i, f=f, g=g, o=o, c=c_new))
        h, c = h_new, c_new
        ys[t] = h
    return ys, h, c, tape


def _backprop_direction(w_ih, w_hh, xs, tape, dys, dh, dc):
    """Manual BPTT through one layer-direction of one sequence.

    dys (L, H) is the gradient of the outputs, dh/dc that of the final state.
    Returns (dW_ih, dW_hh, db, dxs, dh0, dc0).
    """
    hidden = w_hh.shape[1]
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db = np.zeros(4 * hidden)
    dxs = np.zeros_like(xs)
    for s in reversed(tape):
        i, f, g, o, c = s["i"], s["f"], s["g"], s["o"], s["c"]
        dh = dh + dys[s["t"]]
        tc = np.tanh(c)
        d_o = dh * tc
        dc = dc + dh * o * (1.0 - tc**2)
        d_i = dc * g
        d_g = dc * i
        d_f = dc * s["c_prev"]
        dgates = np.concatenate([
            d_i * i * (1.0 - i),
            d_f * f * (1.0 - f),
            d_g * (1.0 - g**2),
            d_o * o * (1.0 - o),
        ])
        dw_ih += np.outer(dgates, xs[s["t"]])
        dw_hh += np.outer(dgates, s["h_prev"])
        db += dgates
        dxs[s["t"]] = w_ih.T @ dgates
        dh = w_hh.T @ dgates
        dc = dc * f
    return dw_ih, dw_hh, db, dxs, dh, dc


def _lengths(lengths, batch, time):
    if lengths is None:
        return [time] * batch
    return [int(n) for n in lengths]


def forward(params, x, lengths=None, initial_state=None, dropout_masks=None):
    """Run the LSTM stack on batch-first ``x`` (B, T, I).

    ``dropout_masks[k-1]`` (B, T, D*H), if given, multiplies the input of layer
    k >= 1 (already scaled by 1/(1-p), as inverted dropout does).
    Returns ``out (B, T, D*H), (h_n, c_n) (num_layers*D, B, H), cache``.
    """
    num_layers, d, hidden = _structure(params)
    x = np.asarray(x, dtype=np.float64)
    batch, time, _ = x.shape
    lengths = _lengths(lengths, batch, time)
    if initial_state is None:
        h0 = np.zeros((num_layers * d, batch, hidden))
        c0 = np.zeros((num_layers * d, batch, hidden))
    else:
        h0, c0 = (np.asarray(a, dtype=np.float64) for a in initial_state)
    h_n = np.zeros((num_layers * d, batch, hidden))
    c_n = np.zeros((num_layers * d, batch, hidden))
    inputs = []
    tapes = {}
    layer_in = x
    for layer in range(num_layers):
        if layer > 0 and dropout_masks is not None:
            layer_in = layer_in * dropout_masks[layer - 1]
        inputs.append(layer_in)
        layer_out = np.zeros((batch, time, d * hidden))
        for direction in range(d):
            sfx = _suffix(direction)
            w_ih = params[f"weight_ih_l{layer}{sfx}"]
            w_hh = params[f"weight_hh_l{layer}{sfx}"]
            b = params[f"bias_ih_l{layer}{sfx}"] + params[f"bias_hh_l{layer}{sfx}"]
            k = layer * d + direction
            for n in range(batch):
                xs = layer_in[n, :lengths[n]]
                ys, h, c, tape = _run_direction(w_ih, w_hh, b, xs, h0[k, n], c0[k, n],
                                                reverse=direction == 1)
                layer_out[n, :lengths[n], direction * hidden:(direction + 1) * hidden] = ys
                h_n[k, n], c_n[k, n] = h, c
                tapes[k, n] = tape
        layer_in = layer_out
    cache = dict(inputs=inputs, tapes=tapes, lengths=lengths, dropout_masks=dropout_masks,
                 shape=(batch, time, x.shape[2]))
    return layer_in, (h_n, c_n), cache


def backward(params, cache, d_out=None, d_h_n=None, d_c_n=None):
    """Gradients of a scalar loss given its gradients wrt the outputs of ``forward``.

    Any of ``d_out``, ``d_h_n``, ``d_c_n`` may be None (zeros).  Padded
    positions of ``d_out`` are ignored (those outputs are constant zeros).
    Returns ``grads (dict like params), dx (B, T, I), (dh0, dc0)``.
    """
    num_layers, d, hidden = _structure(params)
    batch, time, _ = cache["shape"]
    lengths = cache["lengths"]
    if d_out is None:
        d_out = np.zeros((batch, time, d * hidden))
    if d_h_n is None:
        d_h_n = np.zeros((num_layers * d, batch, hidden))
    if d_c_n is None:
        d_c_n = np.zeros((num_layers * d, batch, hidden))
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dh0 = np.zeros((num_layers * d, batch, hidden))
    dc0 = np.zeros((num_layers * d, batch, hidden))
    d_layer_out = np.asarray(d_out, dtype=np.float64)
    for layer in reversed(range(num_layers)):
        layer_in = cache["inputs"][layer]
        d_layer_in = np.zeros_like(layer_in)
        for direction in range(d):
            sfx = _suffix(direction)
            w_ih = params[f"weight_ih_l{layer}{sfx}"]
            w_hh = params[f"weight_hh_l{layer}{sfx}"]
            k = layer * d + direction
            cols = slice(direction * hidden, (direction + 1) * hidden)
            for n in range(batch):
                length = lengths[n]
                dw_ih, dw_hh, db, dxs, dh, dc = _backprop_direction(
                    w_ih, w_hh, layer_in[n, :length], cache["tapes"][k, n],
                    d_layer_out[n, :length, cols], d_h_n[k, n], d_c_n[k, n])
                grads[f"weight_ih_l{layer}{sfx}"] += dw_ih
                grads[f"weight_hh_l{layer}{sfx}"] += dw_hh
                grads[f"bias_ih_l{layer}{sfx}"] += db
                grads[f"bias_hh_l{layer}{sfx}"] += db
                d_layer_in[n, :length] += dxs
                dh0[k, n], dc0[k, n] = dh, dc
        if layer > 0 and cache["dropout_masks"] is not None:
            d_layer_in = d_layer_in * cache["dropout_masks"][layer - 1]
        d_layer_out = d_layer_in
    return grads, d_layer_out, (dh0, dc0)


def run(params, x, lengths=None, initial_state=None, d_out=None, d_h_n=None, d_c_n=None,
        dropout_masks=None):
    """Forward then backward; everything in one flat dict of float64 arrays."""
    out, (h_n, c_n), cache = forward(params, x, lengths, initial_state, dropout_masks)
    grads, dx, (dh0, dc0) = backward(params, cache, d_out, d_h_n, d_c_n)
    result = dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0, dc0=dc0)
    result.update({f"grad_{k}": v for k, v in grads.items()})
    return result


# ---------------------------------------------------------------------------
# GRU
#
# The same loops, names and conventions as the LSTM above, for PyTorch's
# ``nn.GRU``: the stacked weights hold 3H rows in gate order (r, z, n),
#
#     weight_ih_l{k}[_reverse]  (3H, I_k)    I_0 = input_size, I_k = D*H
#     weight_hh_l{k}[_reverse]  (3H, H)
#     bias_ih_l{k}[_reverse]    (3H,)
#     bias_hh_l{k}[_reverse]    (3H,)
#
# and one step is
#
#     r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
#     z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
#     n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
#     h' = (1 - z) * n + z * h
#
# b_hn sits inside the product with r, so the two biases are never summed
# (unlike the LSTM's).  The state is h alone: ``gru_forward`` returns
# ``out, h_n, cache``, ``initial_state`` is h0 itself (not a tuple), and
# ``gru_backward`` returns ``grads, dx, dh0`` -- as ``fastlstm.RNN`` does.
# Lengths behave as for the LSTM: outputs past a sequence's end are 0, h_n is
# the state at the sequence's own last step, and the reverse direction starts
# at the sequence's own end (PyTorch's packed sequences).
# ---------------------------------------------------------------------------

# the parameter names are the LSTM's (only the row count differs)
gru_param_names = param_names


def gru_param_shapes(input_size, hidden_size, num_layers=1, bidirectional=False):
    """Map each GRU parameter name to its shape (3H rows, gate order r, z, n)."""
    return {
        name: (3 * shape[0] // 4, *shape[1:])
        for name, shape in param_shapes(input_size, hidden_size, num_layers,
                                        bidirectional).items()
    }


def gru_init_params(input_size, hidden_size, num_layers=1, bidirectional=False, rng=None,
                    scale=None):
    """Random float64 GRU parameters, uniform(-scale, scale) (default 1/sqrt(H), as PyTorch)."""
    rng = np.random.default_rng(rng)
    scale = 1.0 / np.sqrt(hidden_size) if scale is None else scale
    return {
        name: rng.uniform(-scale, scale, size=shape)
        for name, shape in gru_param_shapes(input_size, hidden_size, num_layers,
                                            bidirectional).items()
    }


def _gru_run_direction(w_ih, w_hh, b_ih, b_hh, xs, h, reverse):
    """One GRU layer-direction over one sequence xs (L, I); returns outputs and the tape."""
    hidden = w_hh.shape[1]
    steps = range(len(xs) - 1, -1, -1) if reverse else range(len(xs))
    ys = np.zeros((len(xs), hidden))
    tape = []
    for t in steps:
        gi = w_ih @ xs[t] + b_ih
        gh = w_hh @ h + b_hh
        r = sigmoid(gi[:hidden] + gh[:hidden])
        z = sigmoid(gi[hidden:2 * hidden] + gh[hidden:2 * hidden])
        hn = gh[2 * hidden:]  # W_hn h + b_hn, which r multiplies
        n = np.tanh(gi[2 * hidden:] + r * hn)
        h_new = (1.0 - z) * n + z * h
        tape.append(dict(t=t, h_prev=h, r=r, z=z, n=n, hn=hn))
        h = h_new
        ys[t] = h
    return ys, h, tape


def _gru_backprop_direction(w_ih, w_hh, xs, tape, dys, dh):
    """Manual BPTT through one GRU layer-direction of one sequence.

    dys (L, H) is the gradient of the outputs, dh that of the final state.
    Returns (dW_ih, dW_hh, db_ih, db_hh, dxs, dh0).
    """
    hidden = w_hh.shape[1]
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db_ih = np.zeros(3 * hidden)
    db_hh = np.zeros(3 * hidden)
    dxs = np.zeros_like(xs)
    for s in reversed(tape):
        r, z, n, hn, h_prev = s["r"], s["z"], s["n"], s["hn"], s["h_prev"]
        dh = dh + dys[s["t"]]
        dn_pre = dh * (1.0 - z) * (1.0 - n**2)
        dz_pre = dh * (h_prev - n) * z * (1.0 - z)
        dr_pre = dn_pre * hn * r * (1.0 - r)
        # r and z see the same pre-activation gradient on both sides; the n
        # gate's hidden side (W_hn h + b_hn) is scaled by r
        d_gi = np.concatenate([dr_pre, dz_pre, dn_pre])
        d_gh = np.concatenate([dr_pre, dz_pre, dn_pre * r])
        dw_ih += np.outer(d_gi, xs[s["t"]])
        dw_hh += np.outer(d_gh, h_prev)
        db_ih += d_gi
        db_hh += d_gh
        dxs[s["t"]] = w_ih.T @ d_gi
        dh = dh * z + w_hh.T @ d_gh
    return dw_ih, dw_hh, db_ih, db_hh, dxs, dh


def gru_forward(params, x, lengths=None, initial_state=None, dropout_masks=None):
    """Run the GRU stack on batch-first ``x`` (B, T, I).

    ``initial_state`` is h0 (num_layers*D, B, H) or None (zeros).
    ``dropout_masks[k-1]`` (B, T, D*H), if given, multiplies the input of layer
    k >= 1 (already scaled by 1/(1-p), as inverted dropout does).
    Returns ``out (B, T, D*H), h_n (num_layers*D, B, H), cache``.

    >>> rng = np.random.default_rng(0)
    >>> params = gru_init_params(3, 2, num_layers=2, bidirectional=True, rng=rng)
    >>> x = rng.standard_normal((4, 5, 3))
    >>> out, h_n, cache = gru_forward(params, x, lengths=[5, 2, 1, 5])
    >>> out.shape, h_n.shape
    ((4, 5, 4), (4, 4, 2))
    >>> grads, dx, dh0 = gru_backward(params, cache, d_out=np.ones_like(out))
    >>> sorted(grads) == sorted(params), dx.shape == x.shape, dh0.shape == h_n.shape
    (True, True, True)
    """
    num_layers, d, hidden = _structure(params)
    x = np.asarray(x, dtype=np.float64)
    batch, time, _ = x.shape
    lengths = _lengths(lengths, batch, time)
    if initial_state is None:
        h0 = np.zeros((num_layers * d, batch, hidden))
    else:
        h0 = np.asarray(initial_state, dtype=np.float64)
    h_n = np.zeros((num_layers * d, batch, hidden))
    inputs = []
    tapes = {}
    layer_in = x
    for layer in range(num_layers):
        if layer > 0 and dropout_masks is not None:
            layer_in = layer_in * dropout_masks[layer - 1]
        inputs.append(layer_in)
        layer_out = np.zeros((batch, time, d * hidden))
        for direction in range(d):
            sfx = _suffix(direction)
            w_ih = params[f"weight_ih_l{layer}{sfx}"]
            w_hh = params[f"weight_hh_l{layer}{sfx}"]
            b_ih = params[f"bias_ih_l{layer}{sfx}"]
            b_hh = params[f"bias_hh_l{layer}{sfx}"]
            k = layer * d + direction
            for n in range(batch):
                xs = layer_in[n, :lengths[n]]
                ys, h, tape = _gru_run_direction(w_ih, w_hh, b_ih, b_hh, xs, h0[k, n],
                                                 reverse=direction == 1)
                layer_out[n, :lengths[n], direction * hidden:(direction + 1) * hidden] = ys
                h_n[k, n] = h
                tapes[k, n] = tape
        layer_in = layer_out
    cache = dict(inputs=inputs, tapes=tapes, lengths=lengths, dropout_masks=dropout_masks,
                 shape=(batch, time, x.shape[2]))
    return layer_in, h_n, cache


def gru_backward(params, cache, d_out=None, d_h_n=None):
    """Gradients of a scalar loss given its gradients wrt the outputs of ``gru_forward``.

    Either of ``d_out``, ``d_h_n`` may be None (zeros).  Padded positions of
    ``d_out`` are ignored (those outputs are constant zeros).
    Returns ``grads (dict like params), dx (B, T, I), dh0 (num_layers*D, B, H)``.
    """
    num_layers, d, hidden = _structure(params)
    batch, time, _ = cache["shape"]
    lengths = cache["lengths"]
    if d_out is None:
        d_out = np.zeros((batch, time, d * hidden))
    if d_h_n is None:
        d_h_n = np.zeros((num_layers * d, batch, hidden))
    d_h_n = np.asarray(d_h_n, dtype=np.float64)
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dh0 = np.zeros((num_layers * d, batch, hidden))
    d_layer_out = np.asarray(d_out, dtype=np.float64)
    for layer in reversed(range(num_layers)):
        layer_in = cache["inputs"][layer]
        d_layer_in = np.zeros_like(layer_in)
        for direction in range(d):
            sfx = _suffix(direction)
            w_ih = params[f"weight_ih_l{layer}{sfx}"]
            w_hh = params[f"weight_hh_l{layer}{sfx}"]
            k = layer * d + direction
            cols = slice(direction * hidden, (direction + 1) * hidden)
            for n in range(batch):
                length = lengths[n]
                dw_ih, dw_hh, db_ih, db_hh, dxs, dh = _gru_backprop_direction(
                    w_ih, w_hh, layer_in[n, :length], cache["tapes"][k, n],
                    d_layer_out[n, :length, cols], d_h_n[k, n])
                grads[f"weight_ih_l{layer}{sfx}"] += dw_ih
                grads[f"weight_hh_l{layer}{sfx}"] += dw_hh
                grads[f"bias_ih_l{layer}{sfx}"] += db_ih
                grads[f"bias_hh_l{layer}{sfx}"] += db_hh
                d_layer_in[n, :length] += dxs
                dh0[k, n] = dh
        if layer > 0 and cache["dropout_masks"] is not None:
            d_layer_in = d_layer_in * cache["dropout_masks"][layer - 1]
        d_layer_out = d_layer_in
    return grads, d_layer_out, dh0


def gru_run(params, x, lengths=None, initial_state=None, d_out=None, d_h_n=None,
            dropout_masks=None):
    """GRU forward then backward; one flat dict of float64 arrays (no c_n/dc0)."""
    out, h_n, cache = gru_forward(params, x, lengths, initial_state, dropout_masks)
    grads, dx, dh0 = gru_backward(params, cache, d_out, d_h_n)
    result = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    result.update({f"grad_{k}": v for k, v in grads.items()})
    return result


__all__ += ["gru_backward", "gru_forward", "gru_init_params", "gru_param_names",
            "gru_param_shapes", "gru_run"]
