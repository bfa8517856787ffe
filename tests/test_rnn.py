"""fastlstm.RNN against a NumPy float64 reference, finite differences and torch.nn.RNN."""

import numpy as np
import pytest

import fastlstm

# every exactness test runs once per kernel variant this CPU supports (the
# SIMD variants run float32 on the packed kernels, float64 through BLAS)
pytestmark = pytest.mark.usefixtures("kernel")


def reference_rnn(params, x, lengths, h0, num_layers, bidirectional):
    """Plain float64 Elman RNN, one sequence and one step at a time (no fastlstm code)."""
    batch, time, _ = x.shape
    D = 2 if bidirectional else 1
    hidden = params["weight_hh_l0"].shape[0]
    lengths = np.full(batch, time) if lengths is None else np.asarray(lengths)
    layer_in = x
    h_n = np.zeros((D * num_layers, batch, hidden))
    for layer in range(num_layers):
        out = np.zeros((batch, time, D * hidden))
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params["weight_ih" + s], params["weight_hh" + s]
            b = params["bias_ih" + s] + params["bias_hh" + s]
            for n in range(batch):
                h = h0[layer * D + d, n].copy()
                steps = range(lengths[n]) if d == 0 else reversed(range(lengths[n]))
                for t in steps:
                    h = np.tanh(w_ih @ layer_in[n, t] + w_hh @ h + b)
                    out[n, t, d * hidden:(d + 1) * hidden] = h
                h_n[layer * D + d, n] = h
        layer_in = out
    return layer_in, h_n


def make_case(rng, batch=4, time=6, n_in=3, hidden=5, num_layers=2, bidirectional=True,
              ragged=True):
    D = 2 if bidirectional else 1
    rnn = fastlstm.RNN(n_in, hidden, num_layers=num_layers, bidirectional=bidirectional,
                       dtype="float64", random_state=int(rng.integers(1 << 30)))
    x = rng.standard_normal((batch, time, n_in))
    lengths = rng.integers(1, time + 1, size=batch) if ragged else None
    h0 = rng.standard_normal((D * num_layers, batch, hidden))
    return rnn, x, lengths, h0


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_forward_matches_reference(bidirectional, ragged, n_jobs):
    rng = np.random.default_rng(3)
    rnn, x, lengths, h0 = make_case(rng, bidirectional=bidirectional, ragged=ragged)
    rnn.n_jobs = n_jobs
    out, h_n = rnn.forward(x, lengths=lengths, initial_state=h0)
    ref_out, ref_h = reference_rnn(rnn.state_dict(), x, lengths, h0, 2, bidirectional)
    np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n, ref_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradients_match_finite_differences(bidirectional):
    rng = np.random.default_rng(4)
    rnn, x, lengths, h0 = make_case(rng, batch=3, time=5, n_in=2, hidden=3,
                                    bidirectional=bidirectional)
    out, h_n = rnn.forward(x, lengths=lengths, initial_state=h0, training=True)
    r_out, r_h = rng.standard_normal(out.shape), rng.standard_normal(h_n.shape)
    grads, dx, dh0 = rnn.backward(r_out, r_h, return_state_grads=True)

    def loss():
        o, h = rnn.forward(x, lengths=lengths, initial_state=h0)
        return float((o * r_out).sum() + (h * r_h).sum())

    def numeric(array):
        g = np.zeros_like(array)
        for i in np.ndindex(array.shape):
            keep = array[i]
            array[i] = keep + 1e-6
            up = loss()
            array[i] = keep - 1e-6
            down = loss()
            array[i] = keep
            g[i] = (up - down) / 2e-6
        return g

    for name, value in rnn.named_parameters().items():
        np.testing.assert_allclose(grads[name], numeric(value), rtol=1e-6, atol=1e-8,
                                   err_msg=name)
    np.testing.assert_allclose(dx, numeric(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dh0, numeric(h0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ragged", [False, True])
def test_matches_torch_rnn(ragged):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    rnn, x, lengths, h0 = make_case(rng, batch=5, time=7, ragged=ragged)
    out, h_n = rnn.forward(x, lengths=lengths, initial_state=h0, training=True)
    r_out = rng.standard_normal(out.shape)
    if lengths is not None:
        for n, length in enumerate(lengths):
            r_out[n, length:] = 0  # torch's padded outputs carry no gradient
    r_h = rng.standard_normal(h_n.shape)
    grads, dx, dh0 = rnn.backward(r_out, r_h, return_state_grads=True)

    module = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in rnn.state_dict().items()})
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0, requires_grad=True)
    inp = tx
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths),
                                                      batch_first=True, enforce_sorted=False)
    t_out, t_h = module(inp, th0)
    if lengths is not None:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_out, batch_first=True,
                                                          total_length=x.shape[1])
    ((t_out * torch.from_numpy(r_out)).sum() + (t_h * torch.from_numpy(r_h)).sum()).backward()
    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n, t_h.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dh0, th0.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in module.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-11,
                                   err_msg=name)


def test_float32_close_to_float64():
    rng = np.random.default_rng(6)
    rnn64, x, lengths, h0 = make_case(rng, batch=8, time=20, n_in=4, hidden=16)
    rnn32 = fastlstm.RNN(4, 16, num_layers=2, bidirectional=True, dtype="float32")
    rnn32.load_state_dict(rnn64.state_dict())
    out64, h64 = rnn64.forward(x, lengths=lengths, initial_state=h0)
    out32, h32 = rnn32.forward(x, lengths=lengths, initial_state=h0)
    # float32 tanh (rational approximation, |error| < 4e-7) and float32 GEMMs
    np.testing.assert_allclose(out32, out64, atol=2e-5)
    np.testing.assert_allclose(h32, h64, atol=2e-5)


def test_rnn_validation_names_the_problem():
    rnn = fastlstm.RNN(3, 4, random_state=0)
    with pytest.raises(ValueError, match="input_size"):
        rnn.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="h0"):
        rnn.forward(np.zeros((2, 5, 3)), initial_state=np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="training=True"):
        rnn.backward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="missing"):
        rnn.load_state_dict({"weight_ih_l0": np.zeros((4, 3))})
    out, h_n = rnn.forward(np.zeros((2, 5, 3)))  # still usable
    assert out.shape == (2, 5, 4) and h_n.shape == (1, 2, 4)

