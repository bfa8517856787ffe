"""fastlstm.GRU in float32 on the packed SIMD kernels, on every kernel variant.

The shapes come from the variant's panel (``packed_units``) and register
tile (``packed_tile_rows``): a partial panel, several panels with a ragged
last one, tiles with remainders.  On the portable variant (no packed
kernels) the same cases run the BLAS kernels.  Held against the float64
NumPy reference, torch.nn.GRU with ``PackedSequence`` and finite
differences of the layer itself, through both engines (padded and ragged),
with hidden slices, dropout and initial states.
"""

import numpy as np
import pytest
from gru_cases import make_case, run_reference, run_torch

import fastlstm
from fastlstm import _kernels
from fastlstm.nn import packed as _packed
from fastlstm.nn import plan as _plan_module

pytestmark = pytest.mark.usefixtures("kernel")


def _sizes():
    """(hidden sizes, batch sizes) for the variant the ``kernel`` fixture picked."""
    k = _kernels.load()
    if k.packed_width() == 0:
        return (5, 11), (3, 7)
    units, tile = k.packed_units(k.CELL_GRU), k.packed_tile_rows()
    # a partial panel, three panels with a ragged last one; tiles with remainders
    return (units - 3, 2 * units + 3), (tile + 1, 2 * tile + 3)


def _rounded(case):
    """The case with every array rounded to float32 (kept as float64)."""
    out = dict(case, params={n: v.astype(np.float32).astype(np.float64)
                             for n, v in case["params"].items()})
    for key in ("x", "initial_state", "d_out", "d_h_n"):
        if out[key] is not None:
            out[key] = out[key].astype(np.float32).astype(np.float64)
    return out


def _run(case, n_jobs=1, dropout=0.0, random_state=0, dtype="float32", slices=False):
    params = case["params"]
    hidden = params["weight_hh_l0"].shape[1]
    num_layers = sum(1 for n in params if n.startswith("weight_ih_l") and "reverse" not in n)
    layer = fastlstm.GRU(case["x"].shape[2], hidden, num_layers=num_layers,
                         bidirectional="weight_ih_l0_reverse" in params, dtype=dtype,
                         n_jobs=n_jobs, dropout=dropout, random_state=random_state)
    layer.load_state_dict({n: v.astype(dtype) for n, v in params.items()})
    simd = _kernels.load().packed_width() > 0
    assert _packed.uses_packed(layer) == (simd and dtype == "float32")
    if slices and simd:  # the hidden-slice axis really runs
        batch, steps = case["x"].shape[:2]
        lengths = layer._check_lengths(case["lengths"], batch, steps)
        assert layer._plan(batch, steps, lengths).slice_threads > 1
    out, h_n = layer.forward(case["x"].astype(dtype), lengths=case["lengths"],
                             initial_state=case["initial_state"], training=True)
    grads, dx, dh0 = layer.backward(case["d_out"], case["d_h_n"], return_state_grads=True)
    result = dict(out=out, h_n=h_n, dx=dx, dh0=dh0)
    result.update({f"grad_{n}": v for n, v in grads.items()})
    return result


def _assert_float32_close(got, want):
    assert set(got) == set(want)
    for key, value in want.items():
        scale = max(1.0, float(np.abs(value).max()))
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=2e-5 * scale, err_msg=key)


def _case(rng, hidden, batch, **kw):
    kw = {"time": 7, "input_size": 5, "num_layers": 2, "bidirectional": True,
          "lengths": "random", "initial_state": True, **kw}
    case = make_case(rng, batch=batch, hidden_size=hidden, **kw)
    if case["lengths"] is not None:
        case["lengths"][0] = kw["time"]  # the longest runs every step
    return _rounded(case)


def _slices(monkeypatch):
    """Force hidden slices for every shape that has two panels (any core count):
    one row chunk for the whole batch, and no shape too small to share."""
    monkeypatch.setattr(_plan_module, "MIN_CHUNK_ROWS", 10**6)
    monkeypatch.setattr(_packed, "SHARD_MIN_ROWS", 10**6)
    monkeypatch.setattr(_packed, "SLICE_MIN_STEP_FLOPS", 0)
    monkeypatch.setattr(_packed, "SLICE_MIN_FLOPS", 0)
    monkeypatch.setattr(_packed, "usable_cores", lambda: 4)


# hidden slices need two panels: the second size
@pytest.mark.parametrize("engine,which", [("padded", 0), ("padded", 1), ("ragged", 0),
                                          ("ragged", 1), ("slices", 1)])
def test_float32_matches_the_float64_reference(rng, monkeypatch, engine, which):
    hidden = _sizes()[0][which]
    batch = _sizes()[1][which]
    if engine == "slices":
        _slices(monkeypatch)
    case = _case(rng, hidden, batch, lengths=None if engine == "padded" else "random")
    _assert_float32_close(_run(case, n_jobs=4 if engine == "slices" else 1,
                               slices=engine == "slices"), run_reference(case))


@pytest.mark.parametrize("kw", [dict(), dict(num_layers=1, bidirectional=False),
                                dict(initial_state=False, d_out=False),
                                dict(lengths=None, d_h_n=False)],
                         ids=["stack-bi", "one-layer", "only-d_h_n", "padded-only-d_out"])
def test_float32_matches_torch_including_packed_sequences(rng, kw):
    hidden, batch = _sizes()[0][1], _sizes()[1][1]
    case = _case(rng, hidden, batch, **kw)
    _assert_float32_close(_run(case, n_jobs=2), run_torch(case))


def test_gradients_match_finite_differences_of_the_float32_layer(rng):
    """Central differences of the float32 layer's own loss (no reference involved)."""
    hidden, batch = _sizes()[0][0], _sizes()[1][0]
    case = _case(rng, hidden, batch, time=5, input_size=3)
    got = _run(case)
    params = {n: v.astype(np.float32) for n, v in case["params"].items()}
    layer = fastlstm.GRU(3, hidden, num_layers=2, bidirectional=True)
    h0 = case["initial_state"].astype(np.float32)

    def loss(x, h0):
        layer.load_state_dict(params)
        out, h_n = layer.forward(x, lengths=case["lengths"], initial_state=h0)
        return (np.sum(out.astype(np.float64) * case["d_out"])
                + np.sum(h_n.astype(np.float64) * case["d_h_n"]))

    eps = np.float32(1e-2)

    def check(array, grad, name, x=None):
        for i in [tuple(rng.integers(0, n) for n in array.shape) for _ in range(6)]:
            keep = array[i]
            array[i] = keep + eps
            up = loss(x if x is not None else case["x"].astype(np.float32), h0)
            array[i] = keep - eps
            down = loss(x if x is not None else case["x"].astype(np.float32), h0)
            array[i] = keep
            np.testing.assert_allclose(grad[i], (up - down) / (2 * eps), rtol=2e-2, atol=2e-3,
                                       err_msg=f"{name}{i}")

    for name in ("weight_ih_l0", "weight_hh_l0_reverse", "bias_hh_l1", "bias_ih_l1_reverse",
                 "weight_hh_l1"):
        check(params[name], got[f"grad_{name}"], name)
    x = case["x"].astype(np.float32)
    check(x, got["dx"], "x", x=x)
    check(h0, got["dh0"], "h0")


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_draws_the_float64_layers_masks(rng, bidirectional):
    """Same seed, same masks: the packed float32 layer with dropout against the float64 one
    (BLAS, itself held to the reference with the drawn mask in test_gru.py)."""
    hidden, batch = _sizes()[0][1], _sizes()[1][0]
    case = _case(rng, hidden, batch, bidirectional=bidirectional)
    got = _run(case, dropout=0.4, random_state=7)
    want = _run(case, dropout=0.4, random_state=7, dtype="float64")
    _assert_float32_close(got, want)
    assert not np.allclose(got["out"], _run(case)["out"], atol=1e-3)


def test_shards_slices_and_one_thread_agree(rng, monkeypatch):
    """Batch shards, hidden slices and one thread: the same outputs bit for bit (a
    row's arithmetic does not depend on the split); gradients to rounding (the
    whole-sequence BLAS products are split over the threads too)."""
    hidden, batch = _sizes()[0][1], 4 * max(1, _kernels.load().packed_tile_rows()) + 3
    case = _case(rng, hidden, batch, lengths=None)
    one = _run(case, n_jobs=1)
    shards = _run(case, n_jobs=2)
    _slices(monkeypatch)
    sliced = _run(case, n_jobs=4, slices=True)  # two directions x two slices
    for other in (shards, sliced):
        for key in ("out", "h_n"):
            assert np.array_equal(other[key], one[key]), key
        for key in one:
            np.testing.assert_allclose(other[key], one[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("rows,n_in,hidden", [(1, 1, 1), (3, 5, 9), (7, 16, 33), (6, 2, 129)])
def test_gru_packing_keeps_the_candidate_parts_apart(rng, rows, n_in, hidden):
    """The GRU's panel: r and z over [x | h] with b_ih + b_hh; n_x = x W_in^T + b_in
    and n_h = h W_hn^T + b_hn, each with zeros over the other part; zeros past H."""
    k = _kernels.load()
    if k.packed_width() == 0:  # the portable variant: BLAS only
        assert not _packed.uses_packed(fastlstm.GRU(n_in, hidden))
        return
    g = 3 * hidden
    w_ih, w_hh, b_ih, b_hh = [rng.standard_normal(s).astype(np.float32)
                              for s in ((g, n_in), (g, hidden), (g,), (g,))]
    wp, bp = k.pack(k.CELL_GRU, w_ih, w_hh, b_ih, b_hh)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    h = rng.standard_normal((rows, hidden)).astype(np.float32)
    x64, h64 = x.astype(np.float64), h.astype(np.float64)
    n = slice(2 * hidden, 3 * hidden)
    full = x64 @ w_ih.T + h64 @ w_hh.T + b_ih + b_hh
    want = [full[:, :hidden], full[:, hidden:n.start], x64 @ w_ih[n].T + b_ih[n],
            h64 @ w_hh[n].T + b_hh[n]]
    vw = k.packed_width()
    assert k.packed_units(k.CELL_GRU) == vw
    for tile_rows in range(1, k.packed_tile_rows() + 1):
        out = k.packed_gemm(k.CELL_GRU, x, h, wp, bp, tile_rows)
        panels = out.reshape(rows, -1, 4, vw)  # (row, panel, vector, lane)
        for v in range(4):
            got = panels[:, :, v, :].reshape(rows, -1)
            np.testing.assert_allclose(got[:, :hidden], want[v], rtol=0,
                                       atol=2e-6 * np.sqrt(n_in + hidden), err_msg=str(v))
            assert (got[:, hidden:] == 0).all()


def test_step_by_step_equals_forward_on_packed_sizes(rng):
    hidden = _sizes()[0][1]
    layer = fastlstm.GRU(3, hidden, num_layers=2, random_state=0)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    out, h_n = layer.forward(x)
    state, steps = None, []
    for t in range(8):
        h_t, state = layer.step(x[:, t], state)
        steps.append(h_t)
    np.testing.assert_allclose(np.stack(steps, axis=1), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, h_n, rtol=1e-5, atol=1e-6)
