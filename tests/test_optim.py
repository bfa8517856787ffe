"""Optimizers and gradient clipping (fastlstm.train.optim), held against PyTorch."""

import math
import pickle

import numpy as np
import pytest

from fastlstm.train.optim import SGD, Adam, AdamW, clip_grad_norm, make_optimizer


def _problem(seed=0):
    rng = np.random.RandomState(seed)
    params = [rng.normal(size=(3, 4)), rng.normal(size=5)]
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(6)]
    return params, grads


def _run_ours(cls, kwargs, params, grads):
    params = [p.copy() for p in params]
    opt = cls(params, **kwargs)
    for g in grads:
        opt.step(params, [x.copy() for x in g])
    return params


def _run_torch(torch_cls, kwargs, params, grads):
    torch = pytest.importorskip("torch")
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    opt = getattr(torch.optim, torch_cls)(tparams, **kwargs)
    for g in grads:
        for tp, x in zip(tparams, g, strict=True):
            tp.grad = torch.tensor(x.copy())
        opt.step()
    return [tp.detach().numpy() for tp in tparams]


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ((SGD, dict(learning_rate=0.1, momentum=0.0)), ("SGD", dict(lr=0.1))),
        ((SGD, dict(learning_rate=0.1, momentum=0.9)), ("SGD", dict(lr=0.1, momentum=0.9))),
        (
            (SGD, dict(learning_rate=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
            ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
        ),
        ((Adam, dict(learning_rate=0.01)), ("Adam", dict(lr=0.01))),
        (
            (Adam, dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, weight_decay=0.1)),
            ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1)),
        ),
        ((AdamW, dict(learning_rate=0.01)), ("AdamW", dict(lr=0.01))),
        (
            (AdamW, dict(learning_rate=0.02, weight_decay=0.3)),
            ("AdamW", dict(lr=0.02, weight_decay=0.3)),
        ),
    ],
)
def test_matches_torch_optim(ours, theirs):
    params, grads = _problem()
    got = _run_ours(*ours, params, grads)
    want = _run_torch(*theirs, params, grads)
    for g, w, p in zip(got, want, params, strict=True):
        assert not np.allclose(g, p)  # the parameters moved
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_sgd_plain_step_formula():
    w = np.array([1.0, 2.0])
    SGD([w], learning_rate=0.5, momentum=0.0).step([w], [np.array([2.0, -2.0])])
    np.testing.assert_array_equal(w, [0.0, 3.0])


def test_adam_first_step_is_learning_rate_times_sign():
    w = np.array([0.0, 0.0, 0.0])
    Adam([w], learning_rate=0.1).step([w], [np.array([5.0, -0.01, 300.0])])
    np.testing.assert_allclose(w, [-0.1, 0.1, -0.1], rtol=1e-6)


def test_updates_are_in_place_and_keep_dtype():
    w = np.ones(4, dtype=np.float32)
    ref = w
    opt = Adam([w], learning_rate=0.1)
    opt.step([w], [np.ones(4, dtype=np.float32)])
    assert ref is w and w.dtype == np.float32
    assert opt.ms[0].dtype == np.float32
    np.testing.assert_allclose(w, 0.9, rtol=1e-6)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd"])
def test_minimizes_a_quadratic(name):
    rng = np.random.RandomState(1)
    target = rng.normal(size=10)
    w = np.zeros(10)
    opt = make_optimizer(name, [w], learning_rate=0.05)
    for _ in range(500):
        opt.step([w], [2 * (w - target)])
    # AdamW's default weight_decay is 0 through make_optimizer: exact minimum
    np.testing.assert_allclose(w, target, atol=1e-2)


def test_state_round_trip_reproduces_steps():
    params, grads = _problem(3)
    w = [p.copy() for p in params]
    opt = Adam(w, learning_rate=0.01)
    opt.step(w, grads[0])
    saved_w, saved_state = [p.copy() for p in w], opt.get_state()
    opt.step(w, grads[1])
    after_one = [p.copy() for p in w]
    for p, s in zip(w, saved_w, strict=True):
        p[...] = s
    opt.step(w, grads[2])  # diverge, then restore
    for p, s in zip(w, saved_w, strict=True):
        p[...] = s
    opt.set_state(saved_state)
    opt.step(w, grads[1])
    for a, b in zip(w, after_one, strict=True):
        np.testing.assert_array_equal(a, b)
    assert opt.t == 2


def test_pickled_optimizer_updates_the_arrays_it_is_given():
    w = np.zeros(3)
    opt = pickle.loads(pickle.dumps(SGD([w], learning_rate=1.0, momentum=0.5)))
    opt.step([w], [np.ones(3)])
    np.testing.assert_array_equal(w, -1.0)


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (Adam, dict(learning_rate=0.0), "learning_rate"),
        (Adam, dict(beta_1=1.0), "beta_1"),
        (Adam, dict(weight_decay=-1.0), "weight_decay"),
        (SGD, dict(momentum=1.0), "momentum"),
        (SGD, dict(momentum=0.0, nesterov=True), "nesterov"),
    ],
)
def test_invalid_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls([np.zeros(2)], **kwargs)


def test_make_optimizer_unknown_name():
    with pytest.raises(ValueError, match="rmsprop"):
        make_optimizer("rmsprop", [np.zeros(2)], learning_rate=0.1)


def test_clip_scales_to_max_norm_and_returns_the_norm():
    grads = [np.full((2, 2), 3.0), np.array([4.0, 0.0])]
    norm = clip_grad_norm(grads, 2.5)
    assert norm == pytest.approx(math.sqrt(4 * 9 + 16))
    after = math.sqrt(sum(float((g**2).sum()) for g in grads))
    assert after == pytest.approx(2.5, rel=1e-5)
    # direction kept
    np.testing.assert_allclose(grads[0] / grads[1][0], 0.75)


def test_clip_leaves_small_gradients_alone():
    grads = [np.array([0.3, 0.4])]
    assert clip_grad_norm(grads, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads[0], [0.3, 0.4])
    assert clip_grad_norm(grads, None) == pytest.approx(0.5)


def test_clip_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    grads = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=7).astype(np.float32)]
    tparams = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tparams, grads, strict=True):
        tp.grad = torch.tensor(g.copy())
    want_norm = float(torch.nn.utils.clip_grad_norm_(tparams, 1.0))
    got_norm = clip_grad_norm(grads, 1.0)
    assert got_norm == pytest.approx(want_norm, rel=1e-6)
    for g, tp in zip(grads, tparams, strict=True):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_reports_non_finite_and_does_not_scale(bad):
    grads = [np.array([1.0, bad]), np.array([100.0])]
    norm = clip_grad_norm(grads, 1.0)
    assert not math.isfinite(norm)
    assert grads[1][0] == 100.0


def test_clip_float32_norm_does_not_overflow():
    grads = [np.full(10, 1e20, dtype=np.float32)]  # squares overflow float32
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(math.sqrt(10) * 1e20, rel=1e-5)
    assert np.all(np.isfinite(grads[0]))
