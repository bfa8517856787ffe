"""fastlstm.LSTM against the plain NumPy reference: values, gradients, threads, seeds.

Every comparison covers out, h_n, c_n, dx, dh0, dc0 and the gradient of
every parameter (see ``conftest.run_fastlstm`` / ``reference.run``).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import reference

import fastlstm

# every exactness test runs once per kernel variant this CPU supports (the
# SIMD variants run float32 on the packed kernels, float64 through BLAS)
pytestmark = pytest.mark.usefixtures("kernel")

# float32 against the float64 reference run on the float32-rounded problem.
# Measured over all three kernel variants, 5 seeds each of the configurations
# below plus (B, T, I, H) = (8, 50, 5, 32), (13, 20, 8, 16) 2-layer bidirectional:
# max abs error 4.7e-7 on out/h_n/c_n/dx/dh0/dc0 and 6.4e-6 on weight
# gradients of magnitude ~20 (sums over B*T = 400 rows).  The gate
# nonlinearities alone contribute up to 3.6e-7 per evaluation.
F32_TOL = dict(rtol=1e-5, atol=2e-5)

# (id, make_problem kwargs): layers, directions, lengths, initial states,
# which cotangents are present, and degenerate sizes.
CONFIGS = [
    ("1layer", dict()),
    ("1layer-bi", dict(bidirectional=True)),
    ("2layers", dict(num_layers=2)),
    ("2layers-bi", dict(num_layers=2, bidirectional=True)),
    ("3layers-bi-init", dict(num_layers=3, bidirectional=True, initial_state=True)),
    # lengths: unsorted, duplicated, some = T (5), some = 1
    ("lengths", dict(batch=6, time=5, lengths=[3, 5, 1, 3, 5, 2])),
    ("lengths-bi-2layers", dict(batch=6, time=5, num_layers=2, bidirectional=True,
                                lengths=[3, 5, 1, 3, 5, 2])),
    ("lengths-bi-3layers-init", dict(batch=6, time=5, num_layers=3, bidirectional=True,
                                     lengths=[2, 1, 5, 5, 4, 1], initial_state=True)),
    ("lengths-all-1-bi", dict(batch=3, time=4, bidirectional=True, lengths=[1, 1, 1])),
    ("init", dict(initial_state=True)),
    ("init-bi-2layers", dict(num_layers=2, bidirectional=True, initial_state=True)),
    ("only-d_h_n", dict(num_layers=2, bidirectional=True, d_out=False, d_c_n=False,
                        lengths=[4, 2, 3], initial_state=True)),
    ("only-d_c_n", dict(num_layers=2, bidirectional=True, d_out=False, d_h_n=False,
                        lengths=[4, 2, 3], initial_state=True)),
    ("d_out-none-states-none", dict(d_out=False, d_h_n=False, d_c_n=False,
                                    initial_state=True)),
    ("only-d_out", dict(num_layers=2, d_h_n=False, d_c_n=False, lengths=[1, 4, 2])),
    ("batch1", dict(batch=1, num_layers=2, bidirectional=True, initial_state=True)),
    ("batch1-lengths", dict(batch=1, time=5, bidirectional=True, lengths=[3])),
    ("T1", dict(time=1, num_layers=2, bidirectional=True, initial_state=True)),
    ("H1", dict(hidden_size=1, num_layers=2, bidirectional=True, lengths=[4, 1, 2])),
    ("I1", dict(input_size=1, num_layers=2, lengths=[2, 4, 4])),
    ("all-ones", dict(batch=1, time=1, input_size=1, hidden_size=1, initial_state=True)),
    # bigger and saturating: gates near 0/1, many steps
    ("large-x", dict(batch=4, time=12, input_size=4, hidden_size=5, x_scale=4.0,
                     initial_state=True, bidirectional=True, lengths="random")),
    ("long", dict(batch=8, time=50, input_size=5, hidden_size=32, num_layers=2,
                  lengths="random", initial_state=True)),
]
CONFIG_IDS = [c[0] for c in CONFIGS]
CONFIG_KW = [c[1] for c in CONFIGS]


def test_reference_gradients_match_finite_differences(rng, h):
    """The reference's manual BPTT is itself right (no torch needed for this)."""
    masks = [(rng.random((2, 3, 4)) > 0.4) / 0.6]
    problem = h.make_problem(rng, batch=2, time=3, input_size=2, hidden_size=2, num_layers=2,
                             bidirectional=True, lengths=[3, 2], initial_state=True)

    def forward(p):
        out, (h_n, c_n), _ = reference.forward(p.params, p.x, p.lengths, p.initial_state,
                                               masks)
        return out, h_n, c_n

    numerical = h.numerical_results(problem, forward)
    analytic = h.run_reference(problem, masks)
    h.assert_results_close({k: analytic[k] for k in numerical}, numerical,
                           rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kw", CONFIG_KW, ids=CONFIG_IDS)
def test_float64_matches_reference(rng, h, kw):
    problem = h.make_problem(rng, **kw)
    h.assert_results_close(h.run_fastlstm(problem, "float64"), h.run_reference(problem),
                           **h.F64_TOL)


@pytest.mark.parametrize("kw", CONFIG_KW, ids=CONFIG_IDS)
def test_float32_matches_reference(rng, h, kw):
    problem = h.make_problem(rng, **kw).rounded(np.float32)
    h.assert_results_close(h.run_fastlstm(problem, "float32"), h.run_reference(problem),
                           **F32_TOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_kernel_variant_matches_reference(rng, h, kernel, dtype):
    """Each instruction-set build (base, avx2, avx512) computes the same thing."""
    problem = h.make_problem(rng, batch=9, time=6, input_size=3, hidden_size=9, num_layers=2,
                             bidirectional=True, lengths="random", initial_state=True)
    problem = problem.rounded(np.float32) if dtype == "float32" else problem
    tol = F32_TOL if dtype == "float32" else h.F64_TOL
    h.assert_results_close(h.run_fastlstm(problem, dtype), h.run_reference(problem), **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.float64])
def test_results_have_the_layer_dtype(rng, h, dtype):
    problem = h.make_problem(rng, num_layers=2, initial_state=True)
    result = h.run_fastlstm(problem, dtype)
    for key, value in result.items():
        assert value.dtype == np.dtype(dtype), key
    # an input of another dtype is converted, not rejected or upcast
    layer = h.new_layer(problem, dtype)
    out, (h_n, c_n) = layer.forward(problem.x.astype(np.float64).tolist())
    assert out.dtype == h_n.dtype == c_n.dtype == np.dtype(dtype)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_is_ignored(rng, h, bidirectional):
    """Values of x and d_out past a sequence's end change nothing; those outputs are 0."""
    lengths = np.array([2, 5, 1, 4])
    problem = h.make_problem(rng, batch=4, time=5, num_layers=2, bidirectional=bidirectional,
                             lengths=lengths, initial_state=True)
    pad = np.arange(5)[None, :] >= lengths[:, None]
    base = h.run_fastlstm(problem)
    problem.x[pad] = 1e3 * rng.standard_normal(problem.x[pad].shape)
    problem.d_out[pad] = rng.standard_normal(problem.d_out[pad].shape)
    noisy = h.run_fastlstm(problem)
    for key in base:
        np.testing.assert_array_equal(noisy[key], base[key], err_msg=key)
    assert np.all(base["out"][pad] == 0)
    assert np.all(base["dx"][pad] == 0)
    assert np.all(base["out"][~pad] != 0)
    # padding is not data, so even NaN there is ignored (as packed sequences do)
    problem.x[pad] = np.nan
    nan_padded = h.run_fastlstm(problem)
    for key in base:
        np.testing.assert_array_equal(nan_padded[key], base[key], err_msg=key)


def test_inputs_are_neither_modified_nor_aliased(rng, h):
    """forward/backward leave the caller's arrays alone and keep their own copies.

    Changing x, the initial state or the cotangents after the call (a caller
    reusing buffers) must not change what backward computes.
    """
    problem = h.make_problem(rng, batch=5, time=4, num_layers=2, bidirectional=True,
                             initial_state=True)
    for lengths in (None, np.array([4, 2, 3, 1, 4])):
        problem.lengths = lengths
        want = h.run_reference(problem)
        layer = h.new_layer(problem)
        args = dict(x=problem.x.copy(), lengths=None if lengths is None else lengths.copy(),
                    initial_state=tuple(a.copy() for a in problem.initial_state))
        out, (h_n, c_n) = layer.forward(**args, training=True)
        np.testing.assert_array_equal(args["x"], problem.x)
        for given, orig in zip(args["initial_state"], problem.initial_state, strict=True):
            np.testing.assert_array_equal(given, orig)
        # scribble over everything the caller handed in before backward
        args["x"][...] = 1.0
        for a in args["initial_state"]:
            a[...] = 2.0
        if lengths is not None:
            args["lengths"][...] = 1
        out[...] = 3.0
        cot = [problem.d_out.copy(), problem.d_h_n.copy(), problem.d_c_n.copy()]
        grads, dx, (dh0, dc0) = layer.backward(*cot, return_state_grads=True)
        for given, orig in zip(cot, [problem.d_out, problem.d_h_n, problem.d_c_n], strict=True):
            np.testing.assert_array_equal(given, orig)
        got = dict(dx=dx, dh0=dh0, dc0=dc0, **{f"grad_{k}": v for k, v in grads.items()})
        for key, value in got.items():
            np.testing.assert_allclose(value, want[key], **h.F64_TOL, err_msg=key)


def test_non_contiguous_inputs(rng, h):
    """Strided views and Fortran order give the same results as contiguous copies."""
    problem = h.make_problem(rng, batch=4, time=6, num_layers=2, bidirectional=True,
                             lengths=[6, 2, 5, 3], initial_state=True)
    want = h.run_fastlstm(problem)
    wide = np.zeros((8, 12, problem.input_size))
    wide[::2, ::2] = problem.x
    problem.x = wide[::2, ::2]
    problem.initial_state = tuple(np.asfortranarray(a) for a in problem.initial_state)
    problem.d_out = np.asfortranarray(problem.d_out)
    problem.d_h_n = problem.d_h_n.transpose(1, 0, 2).copy().transpose(1, 0, 2)
    assert not problem.x.flags.c_contiguous and not problem.d_h_n.flags.c_contiguous
    h.assert_results_close(h.run_fastlstm(problem), want, **h.F64_TOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_layer_many_shapes_in_turn(rng, h, dtype):
    """Workspaces/plans from an earlier call never leak into a later one of another shape."""
    layer = fastlstm.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=dtype, n_jobs=2,
                          random_state=0)
    params = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    shapes = [(9, 7, [7, 3, 1, 7, 5, 2, 6, 4, 4]), (2, 3, None), (9, 7, None), (1, 1, None),
              (12, 4, [1] * 12), (9, 7, [2, 7, 7, 1, 3, 5, 4, 6, 1]), (2, 3, [3, 1])]
    tol = F32_TOL if dtype == "float32" else h.F64_TOL
    for batch, time, lengths in shapes + shapes[::-1]:
        x = rng.standard_normal((batch, time, 3)).astype(dtype)
        d_out = rng.standard_normal((batch, time, 10)).astype(dtype)
        init = tuple(rng.standard_normal((4, batch, 5)).astype(dtype) for _ in range(2))
        out, (h_n, c_n) = layer.forward(x, lengths, init, training=True)
        grads, dx, (dh0, _) = layer.backward(d_out, return_state_grads=True)
        want = reference.run(params, x, lengths, init, d_out)
        for key, value in dict(out=out, h_n=h_n, c_n=c_n, dx=dx, dh0=dh0,
                               grad_weight_hh_l1_reverse=grads["weight_hh_l1_reverse"],
                               grad_weight_ih_l0=grads["weight_ih_l0"]).items():
            np.testing.assert_allclose(value, want[key], **tol, err_msg=key)


def test_returned_arrays_are_not_reused_buffers(rng, h):
    """Results handed out stay intact through later forwards and backwards."""
    problem = h.make_problem(rng, batch=9, time=5, num_layers=2, bidirectional=True,
                             lengths="random", initial_state=True)
    layer = h.new_layer(problem, n_jobs=2)
    first = h.run_fastlstm(problem, layer=layer)
    kept = {k: v.copy() for k, v in first.items()}
    other = h.make_problem(rng, batch=9, time=5, num_layers=2, bidirectional=True,
                           lengths="random", initial_state=True)
    h.run_fastlstm(other, layer=layer)
    layer.forward(other.x, other.lengths)
    for key, value in kept.items():
        np.testing.assert_array_equal(first[key], value, err_msg=key)
    # and the parameters handed out as live arrays were not swapped for new ones
    live = layer.named_parameters()
    h.run_fastlstm(other, layer=layer)
    assert all(np.shares_memory(live[k], v) for k, v in layer.named_parameters().items())


def test_lengths_all_full_equal_no_lengths(rng, h):
    problem = h.make_problem(rng, batch=5, time=4, num_layers=2, bidirectional=True,
                             initial_state=True)
    plain = h.run_fastlstm(problem)
    problem.lengths = np.full(5, 4)
    h.assert_results_close(h.run_fastlstm(problem), plain, **h.F64_TOL)


@pytest.mark.parametrize("as_type", [list, tuple, np.int32, np.int64, np.uint8])
def test_lengths_accept_integer_sequences(rng, h, as_type):
    lengths = [3, 1, 4]
    problem = h.make_problem(rng, time=4, bidirectional=True)
    layer = h.new_layer(problem)
    arg = as_type(lengths) if as_type in (list, tuple) else np.array(lengths, dtype=as_type)
    out, (h_n, c_n) = layer.forward(problem.x, lengths=arg)
    want, (want_h, want_c), _ = reference.forward(problem.params, problem.x, lengths)
    np.testing.assert_allclose(out, want, **h.F64_TOL)
    np.testing.assert_allclose(h_n, want_h, **h.F64_TOL)
    np.testing.assert_allclose(c_n, want_c, **h.F64_TOL)


def test_sequences_do_not_interact(rng, h):
    """Each sequence run alone, cut to its length, equals its row of the batch run.

    Checks the sort-by-length permutation and the shards (n_jobs=4, batch 11)
    against the layer itself, without the reference.
    """
    lengths = np.array([3, 7, 1, 7, 5, 2, 6, 4, 7, 1, 3])
    problem = h.make_problem(rng, batch=11, time=7, hidden_size=4, num_layers=2,
                             bidirectional=True, lengths=lengths, initial_state=True)
    layer = h.new_layer(problem, n_jobs=4)
    out, (h_n, c_n) = layer.forward(problem.x, lengths, problem.initial_state)
    single = h.new_layer(problem)
    for n, length in enumerate(lengths):
        init = tuple(a[:, n:n + 1] for a in problem.initial_state)
        o, (hn, cn) = single.forward(problem.x[n:n + 1, :length], initial_state=init)
        np.testing.assert_allclose(out[n:n + 1, :length], o, **h.F64_TOL)
        np.testing.assert_allclose(h_n[:, n:n + 1], hn, **h.F64_TOL)
        np.testing.assert_allclose(c_n[:, n:n + 1], cn, **h.F64_TOL)


def test_inference_forward_equals_training_forward(rng, h):
    """Without dropout, training=True only adds bookkeeping."""
    problem = h.make_problem(rng, batch=4, num_layers=2, bidirectional=True, lengths="random",
                             initial_state=True)
    layer = h.new_layer(problem, dropout=0.5, random_state=0)
    single = h.new_layer(problem, dropout=0.0)
    args = (problem.x, problem.lengths, problem.initial_state)
    for a, b in zip(layer.forward(*args), single.forward(*args, training=True), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_backward_defaults_are_zero_cotangents(rng, h):
    """d_out=None, d_h_n=None, d_c_n=None mean zeros; return_state_grads=False drops dh0/dc0."""
    problem = h.make_problem(rng, num_layers=2, bidirectional=True, lengths=[4, 1, 3],
                             d_out=False, d_c_n=False)
    layer = h.new_layer(problem)
    layer.forward(problem.x, problem.lengths, training=True)
    returned = layer.backward(None, problem.d_h_n)
    assert len(returned) == 2
    grads, dx = returned
    layer.forward(problem.x, problem.lengths, training=True)
    zeros_out = np.zeros((3, 4, 4))
    zeros_state = np.zeros_like(problem.d_h_n)
    grads0, dx0, _ = layer.backward(zeros_out, problem.d_h_n, zeros_state,
                                    return_state_grads=True)
    np.testing.assert_array_equal(dx, dx0)
    for key in grads0:
        np.testing.assert_array_equal(grads[key], grads0[key], err_msg=key)
    want = h.run_reference(problem)
    np.testing.assert_allclose(dx, want["dx"], **h.F64_TOL)


# ---------------------------------------------------------------- parameters
def test_state_dict_names_shapes_and_copies(h, rng):
    layer = fastlstm.LSTM(3, 4, num_layers=3, bidirectional=True, dtype="float64",
                          random_state=0)
    sd = layer.state_dict()
    shapes = reference.param_shapes(3, 4, 3, True)
    assert list(sd) == reference.param_names(3, True)
    assert {k: v.shape for k, v in sd.items()} == shapes
    assert list(layer.named_parameters()) == list(sd)
    # state_dict() hands out copies
    before = layer.state_dict()
    sd["weight_hh_l1"][...] = 7.0
    np.testing.assert_array_equal(layer.state_dict()["weight_hh_l1"], before["weight_hh_l1"])
    # load_state_dict copies in
    new = reference.init_params(3, 4, 3, True, rng)
    layer.load_state_dict(new)
    got = layer.state_dict()
    for key in new:
        np.testing.assert_array_equal(got[key], new[key])
    new["bias_ih_l2_reverse"][...] = 1.0
    assert not np.any(layer.state_dict()["bias_ih_l2_reverse"] == 1.0)


def test_named_parameters_are_live(rng, h):
    """In-place edits (what an optimizer does) take effect on the next forward."""
    problem = h.make_problem(rng, num_layers=2, bidirectional=True, lengths=[4, 2, 3])
    layer = h.new_layer(problem)
    other = reference.init_params(3, 2, 2, True, rng)
    live = layer.named_parameters()
    for key, value in live.items():
        value[...] = other[key]
    out, (h_n, _) = layer.forward(problem.x, problem.lengths)
    want, (want_h, _), _ = reference.forward(other, problem.x, problem.lengths)
    np.testing.assert_allclose(out, want, **h.F64_TOL)
    np.testing.assert_allclose(h_n, want_h, **h.F64_TOL)
    # and they stay live across load_state_dict
    layer.load_state_dict(problem.params)
    np.testing.assert_array_equal(live["weight_ih_l1"], problem.params["weight_ih_l1"])


@pytest.mark.parametrize("hidden_size", [1, 4, 25])
def test_default_init_is_uniform_in_inverse_sqrt_h(hidden_size):
    bound = 1 / np.sqrt(hidden_size)
    sd = fastlstm.LSTM(6, hidden_size, num_layers=2, bidirectional=True, dtype="float64",
                       random_state=3).state_dict()
    values = np.concatenate([v.ravel() for v in sd.values()])
    assert np.all(np.abs(values) <= bound)
    # spread over the whole interval, both signs, not a constant
    assert values.max() > 0.8 * bound and values.min() < -0.8 * bound
    assert abs(values.mean()) < 0.25 * bound
    assert len(np.unique(values)) == values.size


def test_init_depends_on_random_state_only():
    def sd(seed, dtype="float64"):
        return fastlstm.LSTM(3, 4, num_layers=2, dtype=dtype, random_state=seed).state_dict()

    a, b, c = sd(0), sd(0), sd(1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
    # a Generator is accepted and used
    g = fastlstm.LSTM(3, 4, random_state=np.random.default_rng(5)).state_dict()
    g2 = fastlstm.LSTM(3, 4, random_state=np.random.default_rng(5)).state_dict()
    np.testing.assert_array_equal(g["weight_ih_l0"], g2["weight_ih_l0"])


# ------------------------------------------------------------------- threads
SMALL = dict(batch=13, time=7, input_size=5, hidden_size=9, num_layers=2)
# Large enough (>= ~1.6e7 flops per whole-sequence GEMM) that the layer also
# splits the input projection, dW and dX GEMMs across threads, not only the
# batch shards of the recurrence.
LARGE = dict(batch=16, time=64, input_size=64, hidden_size=32, num_layers=2)
THREAD_CASES = [
    ("uni", SMALL),
    ("uni-lengths", dict(SMALL, lengths="random")),
    ("bi-lengths-init", dict(SMALL, bidirectional=True, lengths="random", initial_state=True)),
    ("large-uni-lengths", dict(LARGE, lengths="random", initial_state=True)),
    ("large-bi-lengths", dict(LARGE, bidirectional=True, lengths="random")),
]


# Thread count changes summation order only, so differences scale with each
# array's magnitude: measured max |diff| / max |value| over 4 seeds, uni and
# bi, n_jobs 2-4: float32 2.5e-7 (small) / 4.3e-7 (large), float64 2.0e-15.
THREAD_REL_TOL = {"float32": 2e-6, "float64": 1e-13}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_jobs", [2, 3, 4])
@pytest.mark.parametrize("kw", [c[1] for c in THREAD_CASES], ids=[c[0] for c in THREAD_CASES])
def test_thread_count_changes_only_rounding(rng, h, kw, n_jobs, dtype):
    """Batch shards (>= 4 rows each) and GEMM row blocks change only rounding."""
    problem = h.make_problem(rng, **kw)
    one = h.run_fastlstm(problem, dtype, n_jobs=1)
    many = h.run_fastlstm(problem, dtype, n_jobs=n_jobs)
    assert sorted(many) == sorted(one)
    for key, want in one.items():
        atol = THREAD_REL_TOL[dtype] * float(np.max(np.abs(want)))
        np.testing.assert_allclose(many[key], want, rtol=0, atol=atol, err_msg=key)


def test_layers_used_from_several_threads_at_once(rng, h):
    """Separate layers driven concurrently (e.g. a server) match sequential runs."""
    problems = [h.make_problem(rng, batch=9, time=6, hidden_size=5, num_layers=2,
                               bidirectional=bool(k % 2), lengths="random",
                               initial_state=True) for k in range(4)]
    sequential = [h.run_fastlstm(p, n_jobs=2) for p in problems]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            concurrent = list(pool.map(lambda p: h.run_fastlstm(p, n_jobs=2), problems))
            for got, want in zip(concurrent, sequential, strict=True):
                h.assert_results_close(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("n_jobs", [None, -1, 1, 2])
def test_default_and_negative_n_jobs_work(rng, h, n_jobs):
    problem = h.make_problem(rng, batch=9, num_layers=2, lengths="random")
    h.assert_results_close(h.run_fastlstm(problem, n_jobs=n_jobs), h.run_reference(problem),
                           **h.F64_TOL)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_same_seed_same_results_bit_for_bit(rng, h, n_jobs, dtype):
    """Same random_state, input and n_jobs: identical init, dropout masks and results."""
    x = rng.standard_normal((10, 6, 3))
    lengths = rng.integers(1, 7, size=10)
    d_out = rng.standard_normal((10, 6, 8))

    def run(seed):
        layer = fastlstm.LSTM(3, 4, num_layers=3, bidirectional=True, dropout=0.4,
                              dtype=dtype, n_jobs=n_jobs, random_state=seed)
        results = []
        for _ in range(2):  # two steps: the masks of the second come from the advanced RNG
            out, (h_n, c_n) = layer.forward(x, lengths, training=True)
            grads, dx = layer.backward(d_out)
            results.append([out, h_n, c_n, dx, *grads.values()])
        return results

    first, second, other = run(11), run(11), run(12)
    for step in range(2):
        for a, b in zip(first[step], second[step], strict=True):
            np.testing.assert_array_equal(a, b)
    # the seed matters, and so does the step (fresh masks each training forward)
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][0], first[1][0])


def test_dropout_masks_do_not_depend_on_n_jobs(rng, h):
    """The mask is drawn per user row, so thread count still changes only rounding."""
    problem = h.make_problem(rng, batch=12, time=6, hidden_size=8, num_layers=3,
                             bidirectional=True, lengths="random", initial_state=True)
    one = h.run_fastlstm(problem, n_jobs=1, dropout=0.3, random_state=4)
    many = h.run_fastlstm(problem, n_jobs=4, dropout=0.3, random_state=4)
    h.assert_results_close(many, one, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------- dropout
def _recover_masks(problem, p, seed, n_jobs):
    """The dropout mask a seeded 2-layer layer applies to layer 1's input, read exactly.

    A probe layer-1 makes each output unit h_j = tanh(tanh(z_j)) of one input
    unit z_j: W_hh = 0, i = o = 1 and f = 0 exactly (biases of +-800 saturate
    the float64 sigmoid), g's rows select input j.  So h_j == 0 exactly where
    z_j was dropped.  The seeded layer redraws the same mask on each probe.
    """
    H = problem.hidden_size
    D = 2 if problem.bidirectional else 1
    keep = np.zeros(problem.x.shape[:2] + (D * H,), dtype=bool)
    for part in range(D):
        probe = dict(problem.params)
        w = np.zeros((4 * H, D * H))
        w[2 * H:3 * H, part * H:(part + 1) * H] = np.eye(H)
        b = np.concatenate([np.full(H, 800.0), np.full(H, -800.0), np.zeros(H),
                            np.full(H, 800.0)])
        for sfx in ["", "_reverse"][:D]:
            probe[f"weight_ih_l1{sfx}"] = w
            probe[f"weight_hh_l1{sfx}"] = np.zeros((4 * H, H))
            probe[f"bias_ih_l1{sfx}"] = b
            probe[f"bias_hh_l1{sfx}"] = np.zeros(4 * H)
        layer = fastlstm.LSTM(problem.input_size, H, num_layers=2,
                              bidirectional=problem.bidirectional, dropout=p,
                              dtype="float64", n_jobs=n_jobs, random_state=seed)
        layer.load_state_dict(probe)
        out, _ = layer.forward(problem.x, problem.lengths, problem.initial_state,
                               training=True)
        # forward direction's columns suffice: both directions read the same input
        keep[..., part * H:(part + 1) * H] = out[..., :H] != 0
    return keep


@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_matches_reference_with_the_drawn_mask(rng, h, bidirectional):
    """Training with dropout = the reference with the layer's own mask, scaled 1/(1-p)."""
    p, seed = 0.4, 123
    problem = h.make_problem(rng, batch=5, time=6, input_size=3, hidden_size=4, num_layers=2,
                             bidirectional=bidirectional, lengths=[6, 2, 5, 1, 6],
                             initial_state=True)
    keep = _recover_masks(problem, p, seed, n_jobs=2)
    valid = np.arange(6)[None, :] < problem.lengths[:, None]
    dropped = ~keep[valid]
    # a real mask: roughly a fraction p dropped, some of each
    assert 0.15 < dropped.mean() < 0.65
    masks = [keep / (1 - p)]
    got = h.run_fastlstm(problem, n_jobs=2, dropout=p, random_state=seed)
    h.assert_results_close(got, h.run_reference(problem, masks), **h.F64_TOL)
    # and it is not the same as running without dropout
    assert not np.allclose(got["out"], h.run_reference(problem)["out"])


def test_single_layer_ignores_dropout(rng, h):
    """Dropout sits between layers only, so one layer never drops anything."""
    problem = h.make_problem(rng, bidirectional=True, lengths="random", initial_state=True)
    got = h.run_fastlstm(problem, dropout=0.9, random_state=0)
    h.assert_results_close(got, h.run_reference(problem), **h.F64_TOL)


def test_dropout_not_applied_in_inference(rng, h):
    problem = h.make_problem(rng, num_layers=3, bidirectional=True, lengths="random")
    layer = h.new_layer(problem, dropout=0.5, random_state=0)
    out, (h_n, c_n) = layer.forward(problem.x, problem.lengths)
    want, (want_h, want_c), _ = reference.forward(problem.params, problem.x, problem.lengths)
    np.testing.assert_allclose(out, want, **h.F64_TOL)
    np.testing.assert_allclose(h_n, want_h, **h.F64_TOL)
    np.testing.assert_allclose(c_n, want_c, **h.F64_TOL)
    train_out, _ = layer.forward(problem.x, problem.lengths, training=True)
    assert not np.allclose(train_out, out)


# --------------------------------------------------------------- streaming
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("num_layers, batch", [(1, 1), (3, 5)])
def test_step_by_step_equals_the_reference(rng, h, dtype, num_layers, batch):
    """step() fed one time step at a time gives the reference's outputs and states."""
    problem = h.make_problem(rng, batch=batch, time=6, num_layers=num_layers,
                             initial_state=True)
    problem = problem.rounded(np.float32) if dtype == "float32" else problem
    tol = F32_TOL if dtype == "float32" else h.F64_TOL
    want, (want_h, want_c), _ = reference.forward(problem.params, problem.x,
                                                  initial_state=problem.initial_state)
    layer = h.new_layer(problem, dtype)
    state = tuple(a.astype(dtype) for a in problem.initial_state)
    for t in range(6):
        h_t, state = layer.step(problem.x[:, t].astype(dtype), state)
        assert h_t.dtype == np.dtype(dtype)
        np.testing.assert_allclose(h_t, want[:, t], **tol)
    np.testing.assert_allclose(state[0], want_h, **tol)
    np.testing.assert_allclose(state[1], want_c, **tol)


def test_step_starts_from_zeros_and_leaves_its_state_argument_alone(rng, h):
    problem = h.make_problem(rng, num_layers=2)
    layer = h.new_layer(problem)
    h_1, state = layer.step(problem.x[:, 0])
    kept = tuple(a.copy() for a in state)
    h_2, _ = layer.step(problem.x[:, 1], state)
    for a, b in zip(state, kept, strict=True):
        np.testing.assert_array_equal(a, b)
    want, _, _ = reference.forward(problem.params, problem.x[:, :2])
    np.testing.assert_allclose(h_1, want[:, 0], **h.F64_TOL)
    np.testing.assert_allclose(h_2, want[:, 1], **h.F64_TOL)


def test_step_sees_parameter_updates(rng, h):
    """After load_state_dict or an in-place edit, step() uses the new weights."""
    problem = h.make_problem(rng, num_layers=2)
    layer = h.new_layer(problem)
    _, state = layer.step(problem.x[:, 0])
    new = reference.init_params(3, 2, 2, False, rng)
    layer.load_state_dict(new)
    h_t, _ = layer.step(problem.x[:, 1], state)
    want, _, _ = reference.forward(new, problem.x[:, 1:2], initial_state=state)
    np.testing.assert_allclose(h_t, want[:, 0], **h.F64_TOL)
    newer = reference.init_params(3, 2, 2, False, rng)
    for key, value in layer.named_parameters().items():
        value[...] = newer[key]
    h_t, _ = layer.step(problem.x[:, 1], state)
    want, _, _ = reference.forward(newer, problem.x[:, 1:2], initial_state=state)
    np.testing.assert_allclose(h_t, want[:, 0], **h.F64_TOL)


@pytest.mark.parametrize("cls", [fastlstm.LSTM, fastlstm.RNN])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ragged", [False, True])
def test_backward_without_input_gradient(rng, cls, dtype, ragged):
    """input_grad=False: dx is None and every parameter gradient is unchanged, bit for bit."""
    x = rng.standard_normal((7, 5, 3)).astype(dtype)
    lengths = np.array([5, 2, 4, 1, 3, 5, 4]) if ragged else None
    d_out = rng.standard_normal((7, 5, 16)).astype(dtype)
    results = []
    for input_grad in (True, False):
        layer = cls(3, 8, num_layers=2, bidirectional=True, dropout=0.3, dtype=dtype,
                    random_state=0)
        layer.forward(x, lengths=lengths, training=True)
        results.append(layer.backward(d_out, input_grad=input_grad))
    (grads, dx), (grads2, dx2) = results
    assert dx is not None and dx.shape == x.shape and dx2 is None
    for name, value in grads.items():
        np.testing.assert_array_equal(grads2[name], value, err_msg=name)
