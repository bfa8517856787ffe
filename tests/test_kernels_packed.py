"""The packed SIMD kernels directly: packing, register tiles, gate math, threads, step.

Run against every SIMD variant this CPU supports (AVX2, AVX-512); the portable
variant has no packed kernels (width 0) and runs the BLAS path instead.
"""

import threading
import tracemalloc

import numpy as np
import pytest
import reference
from staggered import run_staggered

import fastlstm
from fastlstm import _kernels
from fastlstm.nn import packed as _packed
from fastlstm.nn import plan as _plan_module

SIMD = [v for v in _kernels.available_variants() if _kernels.load(v).packed_width() > 0]
pytestmark = pytest.mark.skipif(not SIMD, reason="this CPU runs no SIMD kernel variant")

CELLS = {"lstm": (0, 4), "rnn": (1, 1)}

# Stated error of the kernels' exp-based gate functions against float64 over
# [-20, 20] (docs/math.rst); the measured maxima are 1.9e-7 and 2.4e-7.
SIGMOID_MAX_ERR = 2.5e-7
TANH_MAX_ERR = 3.0e-7


@pytest.fixture(params=SIMD)
def k(request, monkeypatch):
    """The kernel module of one SIMD variant; layers built in the test use it too."""
    monkeypatch.setenv("FASTLSTM_KERNEL", request.param)
    return _kernels.load(request.param)


def _weights(rng, cell, n_in, hidden):
    g = CELLS[cell][1] * hidden
    return [rng.standard_normal(shape).astype(np.float32)
            for shape in ((g, n_in), (g, hidden), (g,), (g,))]


def _unpack_columns(k, cell, out, hidden):
    """Map packed-order product columns back to PyTorch's gate-block columns."""
    code, gates = CELLS[cell]
    vw = k.packed_width()
    result = np.full((out.shape[0], gates * hidden), np.nan)
    for p in range(k.packed_panels(code, hidden)):
        for v in range(4):
            for lane in range(vw):
                col = p * 4 * vw + v * vw + lane
                if cell == "lstm":
                    unit = p * vw + lane
                    if unit < hidden:
                        result[:, v * hidden + unit] = out[:, col]
                else:
                    unit = (p * 4 + v) * vw + lane
                    if unit < hidden:
                        result[:, unit] = out[:, col]
    return result


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("rows,n_in,hidden", [
    (1, 1, 1), (2, 1, 7), (3, 5, 9), (5, 3, 17), (7, 16, 64), (13, 33, 70), (6, 2, 129),
])
def test_packed_product_matches_numpy(k, rng, cell, rows, n_in, hidden):
    w_ih, w_hh, b_ih, b_hh = _weights(rng, cell, n_in, hidden)
    wp, bp = k.pack(CELLS[cell][0], w_ih, w_hh, b_ih, b_hh)
    x = rng.standard_normal((rows, n_in)).astype(np.float32)
    h = rng.standard_normal((rows, hidden)).astype(np.float32)
    expected = (x.astype(np.float64) @ w_ih.T + h.astype(np.float64) @ w_hh.T
                + b_ih + b_hh)
    scale = np.sqrt(n_in + hidden)
    # every tile height, so that each register-tile specialization is checked
    for tile_rows in range(1, k.packed_tile_rows() + 1):
        out = k.packed_gemm(CELLS[cell][0], x, h, wp, bp, tile_rows)
        got = _unpack_columns(k, cell, out, hidden)
        np.testing.assert_allclose(got, expected, atol=2e-6 * scale, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_padding_columns_are_zero(k, rng, cell):
    """Columns past H (H not a multiple of the panel) hold zero weights and bias."""
    hidden = k.packed_width() + 3
    w = _weights(rng, cell, 4, hidden)
    wp, bp = k.pack(CELLS[cell][0], *w)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    h = rng.standard_normal((3, hidden)).astype(np.float32)
    out = k.packed_gemm(CELLS[cell][0], x, h, wp, bp)
    mapped = _unpack_columns(k, cell, out, hidden)
    n_real = CELLS[cell][1] * hidden
    assert np.isfinite(mapped).all() and mapped.shape[1] == n_real
    # the packed product has exactly as many nonzero columns as real ones
    assert np.count_nonzero(np.any(out != 0, axis=0)) == n_real


def test_pack_rejects_mismatched_shapes(k, rng):
    w_ih, w_hh, b_ih, b_hh = _weights(rng, "lstm", 3, 5)
    with pytest.raises(ValueError, match="shapes"):
        k.pack(0, w_ih, w_hh[:-1], b_ih, b_hh)
    with pytest.raises(ValueError, match="shapes"):
        k.pack(1, w_ih, w_hh, b_ih, b_hh)  # LSTM-sized weights for the RNN
    with pytest.raises(ValueError, match="shapes"):
        k.pack(k.CELL_GRU, w_ih, w_hh, b_ih, b_hh)  # LSTM-sized weights for the GRU
    for code in (-1, 99):
        with pytest.raises(ValueError, match="unknown cell code"):
            k.pack(code, w_ih, w_hh, b_ih, b_hh)


def test_gate_functions_error_against_float64(k):
    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    xd = x.astype(np.float64)
    sig = k.packed_sigmoid(x)
    tanh = k.packed_tanh(x)
    assert np.abs(sig - 1 / (1 + np.exp(-xd))).max() <= SIGMOID_MAX_ERR
    assert np.abs(tanh - np.tanh(xd)).max() <= TANH_MAX_ERR
    # odd lengths go through the masked tail
    assert np.array_equal(k.packed_tanh(x[:13]), tanh[:13])


def test_gate_functions_saturate_and_pass_nan(k):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, 100.0, -100.0], np.float32)
    sig = k.packed_sigmoid(x)
    tanh = k.packed_tanh(x)
    assert np.isnan(sig[0]) and np.isnan(tanh[0])
    assert tanh[5] == 0.0 and sig[5] == pytest.approx(0.5, abs=1e-7)
    np.testing.assert_allclose(tanh[[1, 2, 3, 4, 6, 7]], [1, -1, 1, -1, 1, -1], atol=1.2e-7)
    np.testing.assert_allclose(sig[[1, 2, 3, 4, 6, 7]], [1, 0, 1, 0, 1, 0], atol=1.2e-7)
    assert ((sig[1:] >= 0) & (sig[1:] <= 1)).all() and (np.abs(tanh[1:]) <= 1).all()


def _layer_pair(cls, n_in, hidden, **kwargs):
    """A float32 layer on the packed kernels and a float64 copy of its weights."""
    layer = cls(n_in, hidden, random_state=0, **kwargs)
    ref = cls(n_in, hidden, dtype="float64", random_state=0, **kwargs)
    ref.load_state_dict({n: v.astype(np.float64) for n, v in layer.state_dict().items()})
    return layer, ref


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN, fastlstm.GRU])
@pytest.mark.parametrize("batch,hidden,n_in", [(1, 1, 1), (5, 9, 1), (7, 17, 3), (13, 33, 2)])
def test_forward_tails_match_reference(k, rng, cls, batch, hidden, n_in):
    """Batch and hidden sizes that are no multiple of the tile, against float64.

    The LSTM against the NumPy reference, the RNN and the GRU against the
    float64 layer (BLAS path; held to its own NumPy reference in test_rnn.py,
    test_gru.py).
    """
    layer, ref = _layer_pair(cls, n_in, hidden, num_layers=2, bidirectional=True)
    assert _packed.uses_packed(layer) and not _packed.uses_packed(ref)
    x = rng.standard_normal((batch, 6, n_in)).astype(np.float32)
    lengths = rng.integers(1, 7, size=batch)
    if cls is fastlstm.LSTM:
        params = {n: v.astype(np.float64) for n, v in layer.state_dict().items()}
        expected = reference.forward(params, x, lengths=lengths)[0]
    else:
        expected = ref.forward(x.astype(np.float64), lengths=lengths)[0]
    out = layer.forward(x, lengths=lengths)[0]
    np.testing.assert_allclose(out, expected, atol=2e-5, rtol=0)
    assert (out[np.arange(6)[None, :] >= lengths[:, None]] == 0).all()


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN, fastlstm.GRU])
def test_results_do_not_depend_on_order_threads_or_axis(k, rng, cls):
    """A row's arithmetic is the same wherever it sits and however threads split the batch.

    Row tiles are always full when a step runs at least a tile of rows (the
    last one padded), so permuting the batch permutes the outputs bit for
    bit, and batch shards, hidden slices and one thread agree bit for bit.
    """
    batch = 4 * k.packed_tile_rows() + 3
    code = cls.spec.kernel_code
    # three panels and a ragged last one on this variant's vector width, so
    # both axes (batch shards and hidden slices) run on every CPU
    hidden = 2 * k.packed_units(code) + 3
    assert k.packed_panels(code, hidden) == 3
    x = rng.standard_normal((batch, 9, 5)).astype(np.float32)
    lengths = rng.integers(1, 10, size=batch)
    results = []
    chunk_rows = _plan_module.MIN_CHUNK_ROWS
    for n_jobs, shard_min, chunk_min in ((1, 4, chunk_rows), (2, 10**6, 10**6),
                                         (2, 1, chunk_rows), (3, 1, chunk_rows)):
        # huge SHARD_MIN_ROWS and MIN_CHUNK_ROWS (one row chunk) force hidden
        # slices, 1 batch shards (the batch's fixed row chunks)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_packed, "SHARD_MIN_ROWS", shard_min)
            mp.setattr(_plan_module, "MIN_CHUNK_ROWS", chunk_min)
            mp.setattr(_packed, "SLICE_MIN_STEP_FLOPS", 0)
            mp.setattr(_packed, "SLICE_MIN_FLOPS", 0)
            # the axis is chosen for any core count (a one-core runner too)
            mp.setattr(_packed, "usable_cores", lambda: 4)
            layer = cls(5, hidden, num_layers=2, n_jobs=n_jobs, random_state=0)
            plan = layer._plan(batch, 9, lengths.astype(np.int64))
            results.append((plan.slice_threads, layer.forward(x, lengths=lengths)))
    assert {s for s, _ in results} >= {1, 2}  # both axes were exercised
    for _, (out, _state) in results[1:]:
        assert np.array_equal(out, results[0][1][0])
    perm = rng.permutation(batch)
    out_p = cls(5, hidden, num_layers=2, n_jobs=1, random_state=0).forward(
        x[perm], lengths=lengths[perm])[0]
    assert np.array_equal(out_p, results[0][1][0][perm])


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.GRU, fastlstm.RNN])
def test_training_on_hidden_slices_gives_the_bits_of_one_thread(k, rng, cls):
    """A narrow batch whose forward and backward split each step's hidden units
    over threads (bidirectional, two layers, rows ending early): the outputs,
    every gradient and dx of one thread, bit for bit."""
    batch = 3
    code = cls.spec.kernel_code
    hidden = 2 * k.packed_units(code) + 3  # three panels, the last one ragged
    x = rng.standard_normal((batch, 9, 5)).astype(np.float32)
    lengths = np.array([9, 6, 2])
    d_out = rng.standard_normal((batch, 9, 2 * hidden)).astype(np.float32)
    results = []
    for n_jobs in (1, 2, 3):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_packed, "SLICE_MIN_STEP_FLOPS", 0)
            mp.setattr(_packed, "SLICE_MIN_FLOPS", 0)
            mp.setattr(_packed, "usable_cores", lambda: 8)
            layer = cls(5, hidden, num_layers=2, bidirectional=True, n_jobs=2 * n_jobs,
                        random_state=0)
            plan = layer._plan(batch, 9, lengths.astype(np.int64))
            out, _ = layer.forward(x, lengths=lengths, training=True)
            grads, dx = layer.backward(d_out)
            results.append((plan.slice_threads, out, grads, dx))
    assert [r[0] for r in results] == [1, 2, 3]  # one thread, then slices of 2 and 3
    for _, out, grads, dx in results[1:]:
        assert np.array_equal(out, results[0][1]) and np.array_equal(dx, results[0][3])
        assert grads.keys() == results[0][2].keys()
        for name, g in grads.items():
            assert np.array_equal(g, results[0][2][name]), name


def test_hidden_slices_with_concurrent_callers(k, rng, monkeypatch):
    """Four Python threads running slice-parallel forwards at once neither hang nor mix.

    Their gang threads queue behind each other in the shared pool: a gang
    never waits for a thread that has not started.
    """
    monkeypatch.setattr(_packed, "SLICE_MIN_STEP_FLOPS", 0)
    monkeypatch.setattr(_packed, "SLICE_MIN_FLOPS", 0)
    layer = fastlstm.LSTM(4, 48, n_jobs=2, random_state=0)
    assert (layer._plan(3, 50, None).slice_threads == 2
            or fastlstm.runtime.parallel.usable_cores() < 2)
    xs = [rng.standard_normal((3, 50, 4)).astype(np.float32) for _ in range(4)]
    expected = [fastlstm.LSTM(4, 48, n_jobs=1, random_state=0).forward(x)[0] for x in xs]
    errors = []

    def work(i):
        for _ in range(20):
            if not np.array_equal(layer.forward(xs[i])[0], expected[i]):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []


def test_training_forward_keeps_what_backward_needs(k, rng):
    """Activations and cell states stored by the fused epilogue give torch-exact gradients."""
    layer, ref = _layer_pair(fastlstm.LSTM, 3, 11, bidirectional=True)
    x = rng.standard_normal((8, 7, 3))
    lengths = rng.integers(1, 8, size=8)
    d_out = rng.standard_normal((8, 7, 22))
    layer.forward(x, lengths=lengths, training=True)
    grads, dx = layer.backward(d_out)
    ref.forward(x.astype(np.float32).astype(np.float64), lengths=lengths, training=True)
    grads64, dx64 = ref.backward(d_out.astype(np.float32).astype(np.float64))
    for name in grads:
        np.testing.assert_allclose(grads[name], grads64[name], atol=5e-5, rtol=1e-4)
    np.testing.assert_allclose(dx, dx64, atol=5e-5, rtol=1e-4)


def test_inference_memory_is_not_proportional_to_gates(k, rng):
    """forward(training=False) keeps no (T, B, 4H) buffer: peak memory ~ input + output."""
    steps, batch, hidden = 20_000, 2, 64
    layer = fastlstm.LSTM(3, hidden, random_state=0)
    x = rng.standard_normal((batch, steps, 3)).astype(np.float32)
    out_bytes = steps * batch * hidden * 4
    tracemalloc.start()
    try:
        layer.forward(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # out is copied once to batch-first; a (T, B, 4H) gate buffer alone is 4 * out_bytes
    assert peak < 2.5 * out_bytes + 2 * x.nbytes


def test_forward_sees_in_place_weight_updates(k, rng):
    """Weights are packed at every forward: an optimizer's in-place update is never stale."""
    layer = fastlstm.LSTM(3, 10, random_state=0)
    live = layer.named_parameters()
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    before = layer.forward(x)[0]
    live["weight_hh_l0"] *= 0.5
    live["bias_ih_l0"] += 0.1
    fresh = fastlstm.LSTM(3, 10, random_state=1)
    fresh.load_state_dict(layer.state_dict())
    after = layer.forward(x)[0]
    assert not np.array_equal(before, after)
    assert np.array_equal(after, fresh.forward(x)[0])


def test_step_repacks_when_parameters_change(k, rng):
    """step() caches packed weights per parameter version."""
    layer = fastlstm.LSTM(3, 10, num_layers=2, random_state=0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h1, _ = layer.step(x)
    other = fastlstm.LSTM(3, 10, num_layers=2, random_state=5)
    layer.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(layer.step(x)[0], other.step(x)[0])
    live = layer.named_parameters()  # handing out live arrays invalidates the cache
    live["weight_ih_l0"][...] = 0
    live["weight_hh_l0"][...] = 0
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(layer.step(x)[0], other.step(x)[0])
    assert not np.array_equal(layer.step(x)[0], h1)


def test_step_matches_forward_for_tile_tails(k, rng):
    for batch in (1, 2, k.packed_tile_rows() + 1):
        layer = fastlstm.LSTM(3, 19, num_layers=2, random_state=0)
        x = rng.standard_normal((batch, 6, 3)).astype(np.float32)
        out, (h_n, c_n) = layer.forward(x)
        state = None
        for t in range(6):
            h_t, state = layer.step(x[:, t], state)
            np.testing.assert_allclose(h_t, out[:, t], atol=1e-6)
        np.testing.assert_allclose(state[1], c_n, atol=1e-6)


def test_step_checks_state_after_the_cast(k):
    layer = fastlstm.LSTM(2, 4, random_state=0)
    x = np.zeros((1, 2), np.float32)
    big = np.full((1, 1, 4), 1e39)  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="state contains NaN or infinity"):
        layer.step(x, (big, np.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match="x_t contains NaN or infinity"):
        layer.step(np.full((1, 2), 1e39), None)
    h, state = layer.step(x)
    bad = (state[0].copy(), state[1].copy())
    bad[1][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="state"):
        layer.step(x, bad)
    with pytest.raises(ValueError, match="shape"):
        layer.step(x, (state[0][:, :, :3], state[1]))


def test_step_does_not_modify_the_state_passed_in(k, rng):
    layer = fastlstm.LSTM(2, 6, random_state=0)
    _, state = layer.step(rng.standard_normal((3, 2)))
    kept = (state[0].copy(), state[1].copy())
    _, new = layer.step(rng.standard_normal((3, 2)), state)
    assert np.array_equal(state[0], kept[0]) and np.array_equal(state[1], kept[1])
    assert not np.array_equal(new[1], kept[1])


def test_gang_needs_a_panel_per_chunk():
    k = _kernels.load(SIMD[-1])
    with pytest.raises(ValueError):
        k.Gang(0)


@pytest.mark.parametrize("chunk", [1, 3])
def test_a_gang_finishes_with_any_number_of_threads(k, rng, chunk):
    """One thread alone, or threads joining late, finish a gang's sequence exactly."""
    layer = fastlstm.LSTM(5, 50, random_state=0)
    x = rng.standard_normal((7, 40, 5)).astype(np.float32)
    expected = layer.forward(x)[0]
    p = layer.named_parameters()
    wp, bp = k.pack(0, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    panels = k.packed_panels(0, 50)
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))
    nact = np.full(40, 7, np.int32)
    for n_threads in (1, 2, 3):
        out = np.empty((40, 7, 50), np.float32)
        c = k.aligned_empty((7, panels * k.packed_width()))
        c[...] = 0
        gang = k.Gang(chunk)

        run_staggered(n_threads, 0.01, lambda gang=gang, out=out, c=c: k.packed_forward(
            0, xt, wp, bp, np.zeros((7, 50), np.float32), c, out, 0, None, None, nact, False,
            0, 7, 0, panels, gang))
        np.testing.assert_array_equal(out.transpose(1, 0, 2), expected)


def test_fma_peak_loop_counts_its_flops(k):
    flops = k.fma_peak_flops(1000)
    assert flops == 2 * k.packed_width() * 12 * 1000


def test_thread_axis_rule(k, monkeypatch):
    """Shards for wide batches, slices for narrow ones with enough work, else one thread."""
    monkeypatch.setattr(_packed, "usable_cores", lambda: 2)
    big = fastlstm.LSTM(64, 256, n_jobs=2)
    assert big._plan(64, 100, None).slice_threads == 1          # wide: batch shards
    # the row chunks follow from the batch, not from the threads
    assert big._plan(64, 100, None).shards == [
        (lo, hi - lo) for lo, hi in _plan_module.packed_chunks(64, k.packed_tile_rows())]
    assert fastlstm.LSTM(64, 256, n_jobs=1)._plan(64, 100, None).shards == \
        big._plan(64, 100, None).shards
    wide = fastlstm.LSTM(64, 512, n_jobs=2)  # a thread's share of a step: 2 * 2048 * 576 / 2
    assert 2 * 2048 * 576 / 2 >= _packed.SLICE_MIN_STEP_FLOPS > 2 * 1024 * 320 / 2
    assert wide._plan(1, 100, None).slice_threads == 2          # narrow, big steps: slices
    assert big._plan(1, 100, None).slice_threads == 1           # a share under the threshold
    assert wide._plan(1, 2, None).slice_threads == 1            # too short to start a gang
    assert fastlstm.LSTM(8, 16, n_jobs=2)._plan(1, 1000, None).slice_threads == 1  # tiny steps
    assert fastlstm.LSTM(64, 512, n_jobs=1)._plan(1, 100, None).slice_threads == 1
    assert fastlstm.LSTM(64, 512, n_jobs=2, bidirectional=True)._plan(
        1, 100, None).slice_threads == 1                        # directions take the threads


def _available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@pytest.mark.skipif(_available_bytes() < 12 * 2**30,
                    reason="needs about 7 GiB of free memory for 2^26-row states")
def test_step_past_32_bit_sizes():
    """B * 4H = 2^31 gate values: sizes that overflow 32-bit arithmetic
    (such sizes once crashed the process).

    The smallest hidden size keeps the work small (about 40 GFLOP); the
    states themselves need 2^26 x 8 floats each.
    """
    batch, hidden = 2**26, 8
    layer = fastlstm.LSTM(1, hidden, random_state=0)
    x = np.zeros((batch, 1), np.float32)
    x[::1024] = 1.0
    h_t, (h, c) = layer.step(x)
    small, _ = layer.step(x[:2048])
    # rows are independent: every row equals the same row of a small batch
    np.testing.assert_array_equal(h_t[-2048:], small)
    np.testing.assert_array_equal(h_t[:2048], small)
    assert np.isfinite(c[0, -1]).all()


# ------------------------------------------------------------------ backward


def _check_backward_product(k, rng, cell, hidden):
    """dG W_hh on the backward packing against float64: tails in rows and tile heights."""
    code, gates = {**CELLS, "gru": (k.CELL_GRU, 3)}[cell]
    w_hh = rng.standard_normal((gates * hidden, hidden)).astype(np.float32)
    wp = k.pack_backward(code, w_hh)
    for rows in (1, 4, k.packed_tile_rows() + 1, 3 * k.packed_tile_rows()):
        a = rng.standard_normal((rows, gates * hidden)).astype(np.float32)
        expected = a.astype(np.float64) @ w_hh
        for tile_rows in (0, 1, 2):
            got = k.backward_gemm(code, a, wp, hidden, tile_rows)
            np.testing.assert_allclose(got, expected, atol=2e-5 * np.sqrt(gates * hidden),
                                       rtol=0)


@pytest.mark.parametrize("cell", [*CELLS, "gru"])
@pytest.mark.parametrize("hidden", [1, 5, 8, 33, 70])
def test_backward_product_matches_numpy(k, rng, cell, hidden):
    """dG W_hh on the backward packing: tails in rows, units and tile heights."""
    _check_backward_product(k, rng, cell, hidden)


@pytest.mark.parametrize("cell", [*CELLS, "gru"])
@pytest.mark.parametrize("vectors", [1, 2, 3, 4])
def test_backward_product_every_count_of_live_vectors(k, rng, cell, vectors):
    """The last panel's padding is skipped: 1, 2, 3 or 4 vectors of it hold columns.

    Hidden sizes from the variant's vector width (a panel is 4 vectors), with
    and without a full panel before the partial one.
    """
    vw = k.packed_width()
    for hidden in ((vectors - 1) * vw + 1, vectors * vw, 4 * vw + vectors * vw - 1):
        _check_backward_product(k, rng, cell, hidden)


def test_pack_backward_rejects_mismatched_shapes(k, rng):
    with pytest.raises(ValueError, match="w_hh must be"):
        k.pack_backward(0, np.zeros((12, 4), np.float32))
    wp = k.pack_backward(1, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="do not align"):
        k.backward_gemm(1, np.zeros((2, 5), np.float32), wp, 4)


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN, fastlstm.GRU])
@pytest.mark.parametrize("batch,hidden,n_in", [(1, 1, 1), (5, 9, 1), (7, 17, 3), (13, 33, 2)])
def test_backward_tails_match_float64(k, rng, cls, batch, hidden, n_in):
    """Gradients on the packed backward against the float64 layer, odd sizes, ragged.

    The float64 layer runs the BLAS path, itself held to the NumPy reference
    and finite differences (test_layer_reference.py, test_rnn.py).
    """
    layer, ref = _layer_pair(cls, n_in, hidden, num_layers=2, bidirectional=True)
    x = rng.standard_normal((batch, 6, n_in)).astype(np.float32)
    lengths = rng.integers(1, 7, size=batch)
    states = len(layer._states)
    init = [rng.standard_normal((4, batch, hidden)).astype(np.float32) for _ in range(states)]
    d_out = rng.standard_normal((batch, 6, 2 * hidden)).astype(np.float32)
    d_fin = [rng.standard_normal((4, batch, hidden)).astype(np.float32) for _ in range(states)]
    results = []
    for lay, dtype in ((layer, np.float32), (ref, np.float64)):
        kw = {"initial_state": tuple(a.astype(dtype) for a in init)}
        if states == 1:
            kw["initial_state"] = kw["initial_state"][0]
        lay.forward(x.astype(dtype), lengths=lengths, training=True, **kw)
        args = [d.astype(dtype) for d in d_fin]
        results.append(lay.backward(d_out.astype(dtype), *args, return_state_grads=True))
    (grads, dx, d_init), (grads64, dx64, d_init64) = results
    np.testing.assert_allclose(dx, dx64, atol=5e-5, rtol=0)
    for got, want in zip(d_init, d_init64, strict=True):
        np.testing.assert_allclose(got, want, atol=5e-5, rtol=0)
    for name, want in grads64.items():
        np.testing.assert_allclose(grads[name], want, atol=2e-4, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN, fastlstm.GRU])
def test_gradients_do_not_depend_on_order_or_threads(k, rng, cls):
    """From a tile of rows up, dx and the state gradients are the same bit for bit
    whatever the batch order and the thread split (weight gradients sum over
    rows, so there only the rounding may differ)."""
    batch = 4 * k.packed_tile_rows() + 3
    x = rng.standard_normal((batch, 9, 5)).astype(np.float32)
    d_out = rng.standard_normal((batch, 9, 40)).astype(np.float32)
    lengths = rng.integers(1, 10, size=batch)

    def run(n_jobs, perm):
        layer = cls(5, 40, n_jobs=n_jobs, random_state=0)
        layer.forward(x[perm], lengths=lengths[perm], training=True)
        grads, dx, d_init = layer.backward(d_out[perm], return_state_grads=True)
        # the RNN returns its one state's gradient as an array
        return grads, dx, (d_init,) if isinstance(d_init, np.ndarray) else d_init

    ident = np.arange(batch)
    grads, dx, d_init = run(1, ident)
    for n_jobs, perm in ((2, ident), (1, rng.permutation(batch))):
        g2, dx2, d_init2 = run(n_jobs, perm)
        assert np.array_equal(dx2, dx[perm])
        for a, b in zip(d_init2, d_init, strict=True):
            assert np.array_equal(a, b[:, perm])
        for name, value in grads.items():
            np.testing.assert_allclose(g2[name], value, rtol=1e-5, atol=1e-5, err_msg=name)


def _hidden_sizes_for_step(k):
    """Hidden sizes on both sides of this variant's vector width, and the reported ones."""
    vw = k.packed_width()
    return sorted({20, 32, 40, vw + 4, 2 * vw, 2 * vw + 1})


def _run_in_threads(work, n_threads=2):
    barrier = threading.Barrier(n_threads)
    results = [None] * n_threads
    errors = []

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and errors == []
    return results


def test_step_from_two_threads_matches_sequential(k, rng):
    """Two threads stepping one layer on states of their own get the sequential numbers.

    The stepper holds no scratch that a step writes: the padded cell state
    a hidden size off the vector width needs is each call's own.
    """
    steps, batch = 200, 16
    for hidden in _hidden_sizes_for_step(k):
        layer = fastlstm.LSTM(6, hidden, num_layers=2, random_state=1)
        xs = [rng.standard_normal((batch, steps, 6)).astype(np.float32) for _ in range(2)]

        def stream(i, layer=layer, xs=xs):
            state, outs = None, []
            for t in range(steps):
                h, state = layer.step(xs[i][:, t], state)
                outs.append(h)
            return np.stack(outs, axis=1), state

        expected = [stream(i) for i in range(2)]
        for _ in range(3):
            got = _run_in_threads(stream)
            for (out, (h, c)), (out_e, (h_e, c_e)) in zip(got, expected, strict=True):
                assert np.array_equal(out, out_e), hidden
                assert np.array_equal(h, h_e) and np.array_equal(c, c_e), hidden


def test_predict_step_from_two_threads_matches_sequential(k, rng):
    """An estimator's streaming predictions from two threads equal the sequential ones."""
    vw = k.packed_width()
    x = rng.standard_normal((24, 10, 3)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(int)
    clf = fastlstm.LSTMClassifier(hidden_size=vw + 4, max_epochs=1, random_state=0).fit(x, y)
    streams = [rng.standard_normal((64, 60, 3)).astype(np.float32) for _ in range(2)]

    def stream(i):
        state, probs = None, []
        for t in range(streams[i].shape[1]):
            p, state = clf.predict_step(streams[i][:, t], state)
            probs.append(p)
        return np.stack(probs)

    expected = [stream(i) for i in range(2)]
    for _ in range(3):
        got = _run_in_threads(stream)
        for a, b in zip(got, expected, strict=True):
            assert np.array_equal(a, b)


def _backward_split_case(k, rng, cell, chunk, H, B, T, reverse):
    # one layer-direction's backward on random activations: one thread alone,
    # then the same on a gang at 1-3 threads (one starting late), bit for bit
    G = {0: 4, 1: 1, 2: 3}[cell] * H
    A = k.packed_aux(cell) * H
    two = k.packed_states(cell) == 2
    nact = np.array(sorted(rng.integers(1, B + 1, size=T), reverse=True), np.int32)
    nact[0] = B
    wp = k.pack_backward(cell, rng.standard_normal((G, H)).astype(np.float32) * 0.2)
    start = dict(dg=rng.uniform(0.05, 0.95, (T * B, G)).astype(np.float32),
                 aux=rng.uniform(-1, 1, (T * B, A)).astype(np.float32) if A else None,
                 dh=rng.standard_normal((B, H)).astype(np.float32),
                 dc=rng.standard_normal((B, H)).astype(np.float32) if two else None,
                 db=np.zeros(G))
    c0 = rng.uniform(-1, 1, (B, H)).astype(np.float32) if two else None
    dy = rng.standard_normal((T * B, H)).astype(np.float32)

    def run(arrays, gang=None):
        k.packed_backward(cell, arrays["dg"], arrays["aux"], c0, wp, dy, 0, arrays["dh"],
                          arrays["dc"], arrays["db"], nact, None, reverse, 0, B,
                          B >= k.packed_tile_rows(), None, gang)

    def fresh():
        return {n: None if a is None else a.copy() for n, a in start.items()}

    want = fresh()
    run(want)
    assert not np.array_equal(want["dh"], start["dh"])  # the backward ran
    for n_threads in (1, 2, 3):
        got = fresh()
        gang = k.Gang(chunk)

        run_staggered(n_threads, 0.005, lambda got=got, gang=gang: run(got, gang))
        for name, a in want.items():
            if a is not None:
                assert np.array_equal(got[name], a), (name, H, n_threads)


@pytest.mark.parametrize("chunk", [1, 2])
@pytest.mark.parametrize("cell", [0, 1, 2])
def test_a_backward_split_by_hidden_units_gives_the_bits_of_one_thread(k, rng, cell, chunk):
    """The backward shared by a gang (every row's gate gradients, then panels of
    dL/dh, ticket by ticket): the bits of one thread alone, at 1-3 threads, in
    both directions, rows ending early, and one thread joining late."""
    for H, B, T, reverse in [(37, 5, 9, False), (50, 7, 6, True), (16, 1, 4, False),
                             (130, 2, 5, True)]:
        _backward_split_case(k, rng, cell, chunk, H, B, T, reverse)
