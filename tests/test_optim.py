"""Optimizers, clipping and schedules on the flat theta (toolkit.train.optim)."""

import math

import numpy as np
import pytest

from toolkit.train.optim import (
    SGD,
    Adam,
    clip_by_norm,
    lr_at,
    make_optimizer,
    sum_squares,
    update,
)


def readout_problem(seed=0, N=60, H=5, O=2):
    """A linear-readout fit: fixed features (hidden states) F (N,H), targets Y (N,O);
    L(W, b) = 0.5 ||F W^T + b - Y||^2 over theta = [W.ravel(), b] is convex (quadratic)."""
    rng = np.random.default_rng(seed)
    F = rng.uniform(-1, 1, size=(N, H))
    Y = F @ rng.normal(size=(H, O)) + 0.3 + 0.1 * rng.normal(size=(N, O))
    X = np.hstack([F, np.ones((N, 1))])  # (N, H+1)
    opt = np.linalg.lstsq(X, Y, rcond=None)[0]  # (H+1, O)

    def grad(theta):
        Wb = theta.reshape(O, H + 1).T
        return (X.T @ (X @ Wb - Y)).T.ravel()

    lam_max = np.linalg.eigvalsh(X.T @ X).max()
    return grad, opt.T.ravel(), lam_max, O * (H + 1)


@pytest.mark.parametrize(
    "name, kw, lr_scale, steps, schedule",
    [
        ("sgd", {}, 1.0, 3000, "constant"),
        ("momentum", {"momentum": 0.9}, 0.1, 1500, "constant"),
        ("momentum", {"momentum": 0.9, "nesterov": True}, 0.1, 1500, "constant"),
        ("adam", {}, None, 4000, "cosine"),
    ],
)
def test_each_optimizer_reaches_the_readout_optimum(name, kw, lr_scale, steps, schedule):
    grad, theta_star, lam_max, n = readout_problem()
    lr = 0.05 if lr_scale is None else lr_scale / lam_max
    opt = make_optimizer(name, **kw)
    theta = np.zeros(n)
    for u in range(steps):
        opt.step(theta, grad(theta), lr_at(u, lr, schedule, decay_steps=steps))
    np.testing.assert_allclose(theta, theta_star, atol=1e-6)


def test_momentum_and_nesterov_by_hand():
    g1, g2, lr, mu = np.array([1.0, -2.0]), np.array([0.5, 0.5]), 0.1, 0.9
    th = np.zeros(2)
    opt = SGD(mu)
    opt.step(th, g1, lr)
    opt.step(th, g2, lr)
    np.testing.assert_allclose(th, -lr * g1 - lr * (mu * g1 + g2))
    th = np.zeros(2)
    opt = SGD(mu, nesterov=True)
    opt.step(th, g1, lr)
    np.testing.assert_allclose(th, -lr * (g1 + mu * g1))


def test_adam_first_step_is_lr_times_sign():
    # with bias correction the first Adam step is lr * g / (|g| + eps) per coordinate
    g = np.array([3.0, -1e-3, 0.0])
    th = np.zeros(3)
    Adam().step(th, g, 0.01)
    np.testing.assert_allclose(th, -0.01 * g / (np.abs(g) + 1e-8))


def test_optimizers_work_on_stacked_copies_row_by_row():
    # one optimizer on a (k, n) stack == k optimizers on the rows (elementwise)
    rng = np.random.default_rng(1)
    for name in ("sgd", "momentum", "adam"):
        stack, rows = np.zeros((3, 4)), np.zeros((3, 4))
        opt, opts = make_optimizer(name), [make_optimizer(name) for _ in range(3)]
        for _ in range(5):
            G = rng.normal(size=(3, 4))
            opt.step(stack, G, 0.1)
            for i in range(3):
                opts[i].step(rows[i], G[i], 0.1)
        np.testing.assert_array_equal(stack, rows)


def test_clip_by_norm_bounds_the_gradient_and_keeps_its_direction():
    g = np.array([3.0, 4.0])
    gc, norm = clip_by_norm(g, 1.0)
    assert norm == 5.0 and math.isclose(np.linalg.norm(gc), 1.0)
    np.testing.assert_allclose(gc, g / 5.0)
    same, norm = clip_by_norm(g, 10.0)
    assert same is g and norm == 5.0
    same, _ = clip_by_norm(g, None)
    assert same is g


def test_clipping_bounds_the_step():
    rng = np.random.default_rng(2)
    lr, c = 0.5, 0.1
    for _ in range(20):
        g = rng.normal(size=7) * 10.0 ** rng.uniform(-3, 6)
        th = np.zeros(7)
        SGD().step(th, clip_by_norm(g, c)[0], lr)
        assert np.linalg.norm(th) <= lr * c * (1 + 1e-12)


def test_schedules():
    assert lr_at(123, 0.1) == 0.1
    assert [lr_at(u, 1.0, "step", 10, gamma=0.5) for u in (0, 9, 10, 25)] == [1, 1, 0.5, 0.25]
    assert lr_at(0, 1.0, "cosine", 100, lr_min=0.1) == 1.0
    assert math.isclose(lr_at(50, 1.0, "cosine", 100, lr_min=0.1), 0.55)
    assert lr_at(100, 1.0, "cosine", 100, lr_min=0.1) == pytest.approx(0.1)
    assert lr_at(500, 1.0, "cosine", 100, lr_min=0.1) == pytest.approx(0.1)


def test_bad_names():
    with pytest.raises(ValueError, match="optimizer.*rmsprop"):
        make_optimizer("rmsprop")
    with pytest.raises(ValueError, match="schedule.*linear"):
        lr_at(0, 0.1, "linear")


# -- the compiled steps against the NumPy code they replaced (issue 18), bit for bit ---------
def _bits(a):
    return np.asarray(a, dtype=np.float64).view(np.uint64)


def _numpy_step(name, state, theta, g, lr, mu=0.9, nesterov=False, b1=0.9, b2=0.999, eps=1e-8):
    """The NumPy optimizer steps as they were before the compiled kernels."""
    if name == "sgd":
        theta -= lr * g
    elif name == "momentum":
        state.setdefault("v", np.zeros_like(theta))
        state["v"] *= mu
        state["v"] += g
        theta -= lr * (g + mu * state["v"]) if nesterov else lr * state["v"]
    else:
        if "m" not in state:
            state.update(m=np.zeros_like(theta), v=np.zeros_like(theta), t=0)
        state["t"] += 1
        state["m"] = b1 * state["m"] + (1.0 - b1) * g
        state["v"] = b2 * state["v"] + (1.0 - b2) * (g * g)
        m_hat = state["m"] / (1.0 - b1 ** state["t"])
        v_hat = state["v"] / (1.0 - b2 ** state["t"])
        theta -= lr * m_hat / (np.sqrt(v_hat) + eps)
    return theta


@pytest.mark.parametrize(
    "name,kw",
    [
        ("sgd", {}),
        ("momentum", {"momentum": 0.8}),
        ("momentum", {"momentum": 0.7, "nesterov": True}),
        ("adam", {"beta1": 0.85, "beta2": 0.99, "eps": 1e-6}),
    ],
)
@pytest.mark.parametrize("shape", [(7,), (3, 41), (300,)])
def test_compiled_steps_are_numpys_bit_for_bit(name, kw, shape):
    rng = np.random.default_rng(5)
    opt = make_optimizer(name, **kw)
    ref = {k.replace("momentum", "mu").replace("beta", "b"): v for k, v in kw.items()}
    theta, state = rng.normal(size=shape), {}
    expect = theta.copy()
    for u in range(25):
        g = rng.normal(size=shape) * 10.0 ** rng.integers(-4, 3)
        lr = 0.1 / (1 + u)
        opt.step(theta, g, lr)
        _numpy_step(name, state, expect, g, lr, **ref)
        assert np.array_equal(_bits(theta), _bits(expect)), u


def test_sum_squares_is_numpys_pairwise_sum():
    rng = np.random.default_rng(0)
    for n in [*range(0, 300), 511, 1000, 1121, 4096, 10_007]:
        g = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5, size=n)
        assert _bits(sum_squares(g)) == _bits(np.sum(g * g)), n


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize(
    "clip,wd,mean,scaled", [(None, 0.0, True, False), (0.3, 1e-3, False, True)]
)
def test_update_is_the_numpy_sequence_bit_for_bit(name, clip, wd, mean, scaled):
    """optim.update = g * scale, / n, + wd * theta, clip_by_norm, step -- in one call."""
    rng = np.random.default_rng(1)
    n_params = 137
    opt, state = make_optimizer(name, nesterov=True), {}
    theta = rng.normal(size=n_params)
    expect = theta.copy()
    prev, gw = np.empty(n_params), np.empty(n_params)
    scale = np.where(np.arange(n_params) < 100, 1.0 / 3, 1.0) if scaled else None
    for _ in range(20):
        g, n = rng.normal(size=n_params), float(rng.integers(1, 9))
        before = theta.copy()
        norm, finite = update(
            opt, theta, g, prev, gw, 0.05, n=n, mean=mean, wd=wd, clip=clip, scale=scale
        )
        h = g * scale if scaled else g
        h = h / n if mean else h
        h = h + wd * expect if wd else h
        h, norm_ref = clip_by_norm(h, clip)
        _numpy_step(name, state, expect, h, 0.05, nesterov=True)
        assert finite and np.array_equal(_bits(prev), _bits(before))
        assert _bits(norm) == _bits(norm_ref)
        assert np.array_equal(_bits(theta), _bits(expect))
    theta[0] = 1e308
    g = np.full(n_params, -1e308)
    assert not update(opt, theta, g, prev, gw, 1e10)[1]  # overflow: not finite
