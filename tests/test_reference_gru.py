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

# (id, make_case kwargs): shapes, layers, directions, lengths, initial states,
# which cotangents are present, degenerate and saturating sizes.
CONFIGS = [
    ("1layer", dict()),
    ("1layer-bi", dict(bidirectional=True)),
    ("2layers", dict(num_layers=2)),
    ("2layers-bi", dict(num_layers=2, bidirectional=True)),
    ("3layers-bi-init", dict(num_layers=3, bidirectional=True, initial_state=True)),
    ("wide", dict(batch=5, time=7, input_size=6, hidden_size=9, num_layers=2)),
    # lengths: unsorted, duplicated, some = T (5), some = 1
    ("lengths", dict(batch=6, time=5, lengths=[3, 5, 1, 3, 5, 2])),
    ("lengths-bi", dict(batch=6, time=5, bidirectional=True, lengths=[3, 5, 1, 3, 5, 2])),
    ("lengths-bi-2layers-init", dict(batch=6, time=5, num_layers=2, bidirectional=True,
                                     lengths=[2, 1, 5, 5, 4, 1], initial_state=True)),
    ("lengths-all-1-bi", dict(batch=3, time=4, bidirectional=True, lengths=[1, 1, 1])),
    ("init", dict(initial_state=True)),
    ("init-bi-2layers", dict(num_layers=2, bidirectional=True, initial_state=True)),
    ("only-d_h_n", dict(num_layers=2, bidirectional=True, d_out=False, lengths=[4, 2, 3],
                        initial_state=True)),
    ("only-d_out", dict(num_layers=2, bidirectional=True, d_h_n=False, lengths=[1, 4, 2])),
    ("batch1", dict(batch=1, num_layers=2, bidirectional=True, initial_state=True)),
    ("T1", dict(time=1, num_layers=2, bidirectional=True, initial_state=True)),
    ("H1", dict(hidden_size=1, num_layers=2, bidirectional=True, lengths=[4, 1, 2])),
    ("I1", dict(input_size=1, num_layers=2, lengths=[2, 4, 4])),
    ("large-x", dict(batch=4, time=12, input_size=4, hidden_size=5, x_scale=4.0,
                     initial_state=True, bidirectional=True, lengths="random")),
    ("long", dict(batch=8, time=50, input_size=5, hidden_size=32, num_layers=2,
                  lengths="random", initial_state=True)),
]
CONFIG_IDS = [c[0] for c in CONFIGS]
CONFIG_KW = [c[1] for c in CONFIGS]


def make_case(rng, batch=3, time=4, input_size=3, hidden_size=2, num_layers=1,
              bidirectional=False, lengths=None, initial_state=False, d_out=True, d_h_n=True,
              x_scale=1.0):
    """A random GRU problem (as conftest.make_problem, with no c); ``lengths="random"``."""
    d = 2 if bidirectional else 1
    state_shape = (num_layers * d, batch, hidden_size)
    if isinstance(lengths, str):
        lengths = rng.integers(1, time + 1, size=batch)
    elif lengths is not None:
        lengths = np.asarray(lengths, dtype=np.int64)
    return dict(
        params=reference.gru_init_params(input_size, hidden_size, num_layers, bidirectional,
                                         rng),
        x=x_scale * rng.standard_normal((batch, time, input_size)),
        lengths=lengths,
        initial_state=rng.standard_normal(state_shape) if initial_state else None,
        d_out=rng.standard_normal((batch, time, d * hidden_size)) if d_out else None,
        d_h_n=rng.standard_normal(state_shape) if d_h_n else None,
    )


def run_reference(case, dropout_masks=None):
    return reference.gru_run(case["params"], case["x"], case["lengths"],
                             case["initial_state"], case["d_out"], case["d_h_n"],
                             dropout_masks)


def loss(case, out, h_n):
    """sum(out * d_out) + sum(h_n * d_h_n), None terms left out."""
    total = 0.0
    for value, weight in ((out, case["d_out"]), (h_n, case["d_h_n"])):
        if weight is not None:
            total += float(np.sum(value * weight))
    return total


def torch_module(torch, case):
    """A float64 torch.nn.GRU holding the case's parameters."""
    params = case["params"]
    num_layers, d, hidden = reference._structure(params)
    module = torch.nn.GRU(case["x"].shape[2], hidden, num_layers=num_layers,
                          bidirectional=d == 2, batch_first=True, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    return module


def torch_forward(torch, module, x, lengths, h0):
    """Forward of ``module`` on padded x; packs when lengths are given (unsorted)."""
    if lengths is None:
        return module(x, h0)
    rnn_utils = torch.nn.utils.rnn
    packed = rnn_utils.pack_padded_sequence(x, torch.as_tensor(lengths, dtype=torch.int64),
                                            batch_first=True, enforce_sorted=False)
    out_packed, h_n = module(packed, h0)
    out, _ = rnn_utils.pad_packed_sequence(out_packed, batch_first=True,
                                           total_length=x.shape[1])
    return out, h_n


def run_torch(case):
    """Forward + autograd of torch.nn.GRU on a case; keys as ``reference.gru_run``.

    h0 is always a leaf (zeros when the case has none), so dh0 is compared too.
    """
    torch = pytest.importorskip("torch")
    module = torch_module(torch, case)
    num_layers, d, hidden = reference._structure(case["params"])
    batch = case["x"].shape[0]
    x = torch.tensor(case["x"], requires_grad=True)
    h0 = (np.zeros((num_layers * d, batch, hidden)) if case["initial_state"] is None
          else case["initial_state"])
    h0 = torch.tensor(h0, requires_grad=True)
    out, h_n = torch_forward(torch, module, x, case["lengths"], h0)
    total = torch.zeros((), dtype=torch.float64)
    if case["d_out"] is not None:
        total = total + (out * torch.from_numpy(case["d_out"])).sum()
    if case["d_h_n"] is not None:
        total = total + (h_n * torch.from_numpy(case["d_h_n"])).sum()
    total.backward()
    result = dict(out=out.detach().numpy(), h_n=h_n.detach().numpy(),
                  dx=x.grad.numpy(), dh0=h0.grad.numpy())
    result.update({f"grad_{k}": p.grad.numpy() for k, p in module.named_parameters()})
    return result


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
