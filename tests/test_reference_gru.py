"""The float64 NumPy GRU reference (``reference.gru_*``) against torch.nn.GRU and itself.

``fastlstm.GRU`` will be held to this reference, so the reference is held
here to PyTorch's float64 ``nn.GRU`` (values and autograd gradients, rtol
1e-10) and to central finite differences of its own forward (no torch).
Results are keyed as ``reference.gru_run``: out, h_n, dx, dh0, grad_<name>.
"""

import doctest

import numpy as np
import pytest
import reference
from gru_cases import (
    CONFIG_IDS,
    CONFIG_KW,
    loss,
    make_case,
    run_reference,
    run_torch,
    torch_forward,
    torch_module,
)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True), (3, True)])
def test_param_names_and_shapes_are_torch_grus(num_layers, bidirectional):
    torch = pytest.importorskip("torch")
    module = torch.nn.GRU(4, 3, num_layers=num_layers, bidirectional=bidirectional)
    state = module.state_dict()
    assert reference.gru_param_names(num_layers, bidirectional) == list(state)
    shapes = reference.gru_param_shapes(4, 3, num_layers, bidirectional)
    assert shapes == {k: tuple(v.shape) for k, v in state.items()}
    params = reference.gru_init_params(4, 3, num_layers, bidirectional, rng=0)
    assert {k: v.shape for k, v in params.items()} == shapes
    assert all(v.dtype == np.float64 for v in params.values())
    # uniform(-1/sqrt(H), 1/sqrt(H)), as PyTorch draws them
    bound = max(float(np.abs(v).max()) for v in params.values())
    assert 0.5 / np.sqrt(3) < bound <= 1 / np.sqrt(3)


@pytest.mark.parametrize("kw", CONFIG_KW, ids=CONFIG_IDS)
def test_forward_matches_torch(rng, h, kw):
    case = make_case(rng, **kw)
    expected = run_torch(case)
    out, h_n, _ = reference.gru_forward(case["params"], case["x"], case["lengths"],
                                        case["initial_state"])
    h.assert_results_close(dict(out=out, h_n=h_n),
                           dict(out=expected["out"], h_n=expected["h_n"]), **h.F64_TOL)


@pytest.mark.parametrize("kw", CONFIG_KW, ids=CONFIG_IDS)
def test_gradients_match_torch_autograd(rng, h, kw):
    case = make_case(rng, **kw)
    expected = run_torch(case)
    result = run_reference(case)
    h.assert_results_close(result, expected, **h.F64_TOL)
    # a case with no cotangent on outputs or state would compare zeros with zeros
    assert max(float(np.abs(v).max()) for k, v in expected.items() if k[0] == "g") > 1e-3


def test_dropout_masks_match_torch_layer_by_layer(rng, h):
    """Masks multiply the input of layer k >= 1, forward and backward."""
    torch = pytest.importorskip("torch")
    case = make_case(rng, batch=4, time=5, input_size=3, hidden_size=3, num_layers=2,
                     bidirectional=True, lengths=[5, 2, 4, 1], initial_state=True)
    mask = (rng.random((4, 5, 6)) > 0.4) / 0.6
    result = run_reference(case, [mask])

    params = case["params"]
    layers = []
    for layer in range(2):
        own = {k.replace(f"_l{layer}", "_l0"): v for k, v in params.items()
               if f"_l{layer}" in k}
        layers.append(torch_module(torch, dict(params=own, x=case["x"] if layer == 0
                                               else np.zeros((1, 1, 6)))))
    x = torch.tensor(case["x"], requires_grad=True)
    h0 = torch.tensor(case["initial_state"], requires_grad=True)
    out0, h_n0 = torch_forward(torch, layers[0], x, case["lengths"], h0[:2])
    out, h_n1 = torch_forward(torch, layers[1], out0 * torch.from_numpy(mask),
                              case["lengths"], h0[2:])
    h_n = torch.cat([h_n0, h_n1])
    total = ((out * torch.from_numpy(case["d_out"])).sum()
             + (h_n * torch.from_numpy(case["d_h_n"])).sum())
    total.backward()
    expected = dict(out=out.detach().numpy(), h_n=h_n.detach().numpy(), dx=x.grad.numpy(),
                    dh0=h0.grad.numpy())
    for layer, module in enumerate(layers):
        for name, p in module.named_parameters():
            expected["grad_" + name.replace("_l0", f"_l{layer}")] = p.grad.numpy()
    h.assert_results_close(result, expected, **h.F64_TOL)
    # and the mask does matter
    assert not np.allclose(run_reference(case)["out"], result["out"])


def numerical_results(case, dropout_masks=None, eps=1e-6):
    """Central finite differences of ``loss`` wrt every parameter, x and h0."""

    def value():
        out, h_n, _ = reference.gru_forward(case["params"], case["x"], case["lengths"],
                                            case["initial_state"], dropout_masks)
        return loss(case, out, h_n)

    def grad(a):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = value()
            a[idx] = old - eps
            down = value()
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        return g

    result = {f"grad_{k}": grad(v) for k, v in case["params"].items()}
    result["dx"] = grad(case["x"])
    result["dh0"] = grad(case["initial_state"])
    return result


@pytest.mark.parametrize("with_masks", [False, True])
def test_gradients_match_finite_differences(rng, h, with_masks):
    """The reference's manual BPTT is itself right (no torch needed for this)."""
    case = make_case(rng, batch=3, time=4, input_size=2, hidden_size=3, num_layers=2,
                     bidirectional=True, lengths=[4, 2, 1], initial_state=True, x_scale=1.5)
    # biases large enough that r, z and b_hn all matter
    case["params"] = {k: 2.0 * v for k, v in case["params"].items()}
    masks = [(rng.random((3, 4, 6)) > 0.4) / 0.6] if with_masks else None
    numerical = numerical_results(case, masks)
    analytic = run_reference(case, masks)
    # eps = 1e-6 measured best here: max abs error 2.4e-9 on gradients up to 21
    # (roundoff of the loss / eps); eps = 1e-5 already has 9e-9 of truncation
    h.assert_results_close({k: analytic[k] for k in numerical}, numerical,
                           rtol=1e-7, atol=1e-8)
    for key in numerical:
        assert np.abs(numerical[key]).max() > 1e-3, key


def test_padding_and_final_state(rng):
    """Outputs past the end are 0; h_n is each sequence's own last step; reverse starts
    at the sequence's own end; padded d_out and padded x do not matter."""
    case = make_case(rng, batch=4, time=6, num_layers=2, bidirectional=True,
                     lengths=[6, 3, 1, 4], initial_state=True)
    params, x, lengths, h0 = case["params"], case["x"], case["lengths"], case["initial_state"]
    hidden = params["weight_hh_l0"].shape[1]
    out, h_n, _ = reference.gru_forward(params, x, lengths, h0)
    for n, length in enumerate(lengths):
        assert np.all(out[n, length:] == 0.0)
        assert np.all(out[n, :length] != 0.0)
        np.testing.assert_array_equal(h_n[2, n], out[n, length - 1, :hidden])
        np.testing.assert_array_equal(h_n[3, n], out[n, 0, hidden:])
        # the sequence alone, cut to its length, gives the same numbers
        alone, alone_h, _ = reference.gru_forward(params, x[n:n + 1, :length], None,
                                                  h0[:, n:n + 1])
        np.testing.assert_array_equal(alone[0], out[n, :length])
        np.testing.assert_array_equal(alone_h[:, 0], h_n[:, n])

    result = run_reference(case)
    junk = dict(case, x=x.copy(), d_out=case["d_out"].copy())
    for n, length in enumerate(lengths):
        junk["x"][n, length:] = 1e3
        junk["d_out"][n, length:] = 1e3
        assert np.all(result["dx"][n, length:] == 0.0)
    other = run_reference(junk)
    for key, value in result.items():
        if key != "dx":
            np.testing.assert_array_equal(other[key], value, err_msg=key)
    np.testing.assert_array_equal(other["dx"], result["dx"])


def test_b_hn_is_kept_apart_from_b_in(rng):
    """Moving b_hn into b_in changes the result: r multiplies b_hn, not b_in."""
    case = make_case(rng, initial_state=True)
    params = case["params"]
    hidden = params["weight_hh_l0"].shape[1]
    folded = {k: v.copy() for k, v in params.items()}
    folded["bias_ih_l0"][2 * hidden:] += folded["bias_hh_l0"][2 * hidden:]
    folded["bias_hh_l0"][2 * hidden:] = 0.0
    out, _, _ = reference.gru_forward(params, case["x"], initial_state=case["initial_state"])
    out_folded, _, _ = reference.gru_forward(folded, case["x"],
                                             initial_state=case["initial_state"])
    assert np.abs(out - out_folded).max() > 1e-3
    # the r and z biases, by contrast, only ever enter as a sum
    moved = {k: v.copy() for k, v in params.items()}
    moved["bias_ih_l0"][:2 * hidden] += moved["bias_hh_l0"][:2 * hidden]
    moved["bias_hh_l0"][:2 * hidden] = 0.0
    out_moved, _, _ = reference.gru_forward(moved, case["x"],
                                            initial_state=case["initial_state"])
    np.testing.assert_allclose(out_moved, out, rtol=1e-14, atol=1e-15)


def test_missing_cotangents_are_zeros(rng, h):
    case = make_case(rng, num_layers=2, bidirectional=True, lengths=[4, 2, 3],
                     initial_state=True)
    zeros = dict(case, d_out=np.zeros_like(case["d_out"]), d_h_n=np.zeros_like(case["d_h_n"]))
    h.assert_results_close(run_reference(dict(case, d_out=None, d_h_n=None)),
                           run_reference(zeros), rtol=0, atol=0)
    result = run_reference(dict(case, d_out=None))
    assert np.abs(result["dx"]).max() > 1e-3


def test_docstring_example_runs():
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    for test in finder.find(reference.gru_forward, "gru_forward", globs={"np": np, **vars(
            reference)}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted >= 4 and results.failed == 0
