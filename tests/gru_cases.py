"""GRU problems shared by the reference's tests and the layer's: cases, the reference, torch.

Importable from the tests (conftest puts this folder on ``sys.path``), as
``reference`` is.  Results are keyed as ``reference.gru_run``: out, h_n, dx,
dh0, grad_<name>.
"""

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
