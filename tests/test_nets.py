"""The Numba core against the slow NumPy reference, finite differences, and bad input."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import Elman

OUTPUTS = ["linear", "sigmoid", "softmax"]
HIDDENS = ["tanh", "sigmoid", "relu"]


def make_problem(I, H, O, B, T, output, seed, hidden="tanh", mask_kind="random"):
    rng = np.random.default_rng(seed)
    net = Elman(I, H, O, hidden=hidden, output=output)
    theta = net.init(rng, scale=0.8 if hidden != "relu" else 0.25)
    x = rng.normal(size=(B, T, I))
    if output == "linear":
        y = rng.normal(size=(B, T, O))
    elif output == "sigmoid":
        y = rng.uniform(size=(B, T, O))
    else:
        y = rng.dirichlet(np.ones(O), size=(B, T))
    if mask_kind == "random":
        mask = rng.uniform(0, 2, size=(B, T)) * (rng.uniform(size=(B, T)) < 0.7)
    elif mask_kind == "last":
        mask = np.zeros((B, T))
        mask[:, -1] = 1.0
    else:
        mask = None
    return net, theta, x, y, mask


CASES = [
    # I, H, O, B, T
    (1, 1, 1, 1, 1),
    (2, 3, 2, 2, 5),
    (3, 8, 1, 3, 12),
    (1, 16, 3, 1, 20),
    # the register tiles: 8 x 16 and 1 x 32 with 5 scalar columns (H=37, B=9); 4 x 16,
    # 4 x 8, 1 x 16 and 1 x 8 (H=24, B=5)
    (2, 37, 2, 9, 6),
    (1, 24, 1, 5, 7),
]


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", CASES)
def test_forward_and_loss_match_reference(case, output):
    I, H, O, B, T = case
    for mask_kind in ("random", "none"):
        net, theta, x, y, mask = make_problem(I, H, O, B, T, output, 1, mask_kind=mask_kind)
        h, yhat = net.forward(theta, x)
        h_r, yhat_r = ref.forward(theta, x, (I, H, O), "tanh", output)
        np.testing.assert_allclose(h, h_r, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(yhat, yhat_r, rtol=1e-12, atol=1e-13)
        L = net.loss(theta, x, y, mask)
        L_r = ref.loss(theta, x, y, mask, (I, H, O), "tanh", output)
        assert L == pytest.approx(L_r, rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("hidden", HIDDENS)
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", CASES)
def test_full_gradient_matches_reference(case, output, hidden):
    I, H, O, B, T = case
    net, theta, x, y, mask = make_problem(I, H, O, B, T, output, 2, hidden=hidden)
    L, g = net.loss_and_grad(theta, x, y, mask)
    g_r = ref.grad_full(theta, x, y, mask, (I, H, O), hidden, output)
    assert L == pytest.approx(ref.loss(theta, x, y, mask, (I, H, O), hidden, output), rel=1e-11)
    np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("k", [1, 2, 3, 7])
@pytest.mark.parametrize("case", CASES[1:])
def test_truncated_gradient_matches_reference(case, k, output):
    I, H, O, B, T = case
    net, theta, x, y, mask = make_problem(I, H, O, B, T, output, 3)
    L, g = net.loss_and_grad(theta, x, y, mask, k=k)
    g_r = ref.grad_truncated(theta, x, y, mask, k, (I, H, O), "tanh", output)
    np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-12)
    assert L == pytest.approx(ref.loss(theta, x, y, mask, (I, H, O), "tanh", output), rel=1e-11)


def test_initial_state_h0_matches_reference():
    I, H, O, B, T = 2, 5, 2, 3, 6
    net, theta, x, y, mask = make_problem(I, H, O, B, T, "linear", 4)
    h0 = np.random.default_rng(5).normal(size=(B, H))
    h, _ = net.forward(theta, x, h0=h0)
    np.testing.assert_allclose(h, ref.forward(theta, x, (I, H, O), h0=h0)[0], rtol=1e-12)
    for k in (None, 1, 3):
        _, g = net.loss_and_grad(theta, x, y, mask, k=k, h0=h0)
        if k is None:
            g_r = ref.grad_full(theta, x, y, mask, (I, H, O), h0=h0)
        else:
            g_r = ref.grad_truncated(theta, x, y, mask, k, (I, H, O), h0=h0)
        np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-12)
    assert net.loss(theta, x, y, mask, h0=h0) == pytest.approx(
        ref.loss(theta, x, y, mask, (I, H, O), h0=h0), rel=1e-12
    )
    np.testing.assert_allclose(net.step(theta, h0, x[:, 0]), h[:, 0], rtol=1e-14)


def _rel_err(g, g_fd):
    return np.abs(g - g_fd) / np.maximum(np.abs(g) + np.abs(g_fd), 1e-7)


@pytest.mark.parametrize("hidden", HIDDENS)
@pytest.mark.parametrize("output", OUTPUTS)
def test_full_gradient_central_differences(output, hidden):
    I, H, O, B, T = 2, 4, 3, 2, 7
    net, theta, x, y, mask = make_problem(I, H, O, B, T, output, 6, hidden=hidden)
    if hidden == "relu":  # keep away from the kink, where the derivative does not exist
        theta = theta + 0.05
    _, g = net.loss_and_grad(theta, x, y, mask)
    g_fd = ref.central_diff(lambda th: net.loss(th, x, y, mask), theta)
    err = _rel_err(g, g_fd)
    assert err.max() < 1e-6, err.max()
    assert err.mean() < 5e-8, err.mean()


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("output", OUTPUTS)
def test_truncated_gradient_central_differences_of_truncated_objective(k, output):
    I, H, O, B, T = 2, 4, 2, 2, 8
    net, theta, x, y, mask = make_problem(I, H, O, B, T, output, 7)
    _, g = net.loss_and_grad(theta, x, y, mask, k=k)
    sizes = (I, H, O)
    g_fd = ref.central_diff(
        lambda th: ref.truncated_objective(th, theta, x, y, mask, k, sizes, "tanh", output),
        theta,
    )
    err = _rel_err(g, g_fd)
    assert err.max() < 1e-6, err.max()
    assert err.mean() < 5e-8, err.mean()


def test_k_at_least_T_equals_full_and_k1_is_copy_back():
    I, H, O, B, T = 1, 6, 1, 2, 9
    net, theta, x, y, mask = make_problem(I, H, O, B, T, "linear", 8)
    _, g_full = net.loss_and_grad(theta, x, y, mask)
    for k in (T, T + 5):
        _, g_k = net.loss_and_grad(theta, x, y, mask, k=k)
        np.testing.assert_array_equal(g_k, g_full)
    # k = T - 1 differs from full: the first step's weight use is cut for the last error
    _, g_short = net.loss_and_grad(theta, x, y, mask, k=T - 1)
    assert np.abs(g_short - g_full).max() > 1e-8
    # k = 1: the context is an input (Elman's copy-back): only the current step's weight use
    _, g1 = net.loss_and_grad(theta, x, y, mask, k=1)
    W_xh, W_hh, b_h, W_hy, b_y = ref.unpack(theta, I, H, O)
    h, _ = ref.forward(theta, x, (I, H, O))
    expect = np.zeros_like(theta)
    ex = ref.unpack(expect, I, H, O)
    for b in range(B):
        for t in range(T):
            e = mask[b, t] * (W_hy @ h[b, t] + b_y - y[b, t])
            delta = (W_hy.T @ e) * (1 - h[b, t] ** 2)
            hprev = h[b, t - 1] if t else np.zeros(H)
            ex[0][...] += np.outer(delta, x[b, t])
            ex[1][...] += np.outer(delta, hprev)
            ex[2][...] += delta
            ex[3][...] += np.outer(e, h[b, t])
            ex[4][...] += e
    np.testing.assert_allclose(g1, expect, rtol=1e-11, atol=1e-13)


def test_population_loss_equals_loop_over_loss():
    net, theta, x, y, mask = make_problem(2, 5, 2, 3, 10, "softmax", 9)
    rng = np.random.default_rng(10)
    thetas = rng.normal(size=(7, net.n_params))
    Ls = net.population_loss(thetas, x, y, mask)
    expect = [net.loss(t, x, y, mask) for t in thetas]
    np.testing.assert_array_equal(Ls, expect)
    thetas[3, 0] = np.nan
    thetas[4] *= 1e300  # overflowing
    Ls = net.population_loss(thetas, x, y, mask)
    assert Ls[3] == np.inf and np.isfinite(Ls[[0, 1, 2, 5, 6]]).all()


def test_pack_unpack_roundtrip_and_layout():
    net = Elman(3, 4, 2)
    theta = np.arange(net.n_params, dtype=float)
    p = net.unpack(theta)
    assert p["W_xh"].shape == (4, 3) and p["W_hh"].shape == (4, 4) and p["b_h"].shape == (4,)
    assert p["W_hy"].shape == (2, 4) and p["b_y"].shape == (2,)
    assert p["W_xh"][0, 1] == 1 and p["W_hh"][0, 0] == 12 and p["b_h"][0] == 28
    assert p["W_hy"][1, 0] == 36 and p["b_y"][1] == net.n_params - 1
    np.testing.assert_array_equal(net.pack(p), theta)
    p["b_h"][0] = -1.0  # views
    assert theta[28] == -1.0


@pytest.mark.parametrize("k", [None, 1, 3])
def test_loss_and_grad_loss_is_bitwise_loss(k):
    net, theta, x, y, mask = make_problem(2, 7, 2, 5, 13, "softmax", 15)
    assert net.loss_and_grad(theta, x, y, mask, k=k)[0] == net.loss(theta, x, y, mask)


def test_determinism_same_bits():
    net, theta, x, y, mask = make_problem(2, 16, 2, 4, 30, "sigmoid", 11)
    a = net.loss_and_grad(theta, x, y, mask, k=5)
    b = net.loss_and_grad(theta, x, y, mask, k=5)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_init_reproducible_and_scaled():
    net = Elman(2, 9, 1)
    a, b = net.init(3), net.init(np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() <= 1 / 3 and a.dtype == np.float64 and a.shape == (net.n_params,)
    assert np.abs(net.init(0, scale=100.0)).max() > 1


def test_int_and_float32_inputs_are_converted():
    net, theta, x, y, mask = make_problem(1, 3, 1, 2, 4, "linear", 12)
    L = net.loss(theta, x, y)
    assert net.loss(theta.astype(np.float32).astype(np.float64), x.astype(np.float32), y) != 0
    xi = np.ones((2, 4, 1), dtype=np.int64)
    assert net.loss(theta, xi, y) == pytest.approx(net.loss(theta, xi.astype(float), y))
    assert isinstance(L, float)
    h, yhat = net.forward(theta, x.tolist())
    assert h.dtype == np.float64


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda n, t, x, y: n.loss(t, x[0], y), ValueError, ["x", "3-D", "(4, 1)"]),
        (lambda n, t, x, y: n.loss(t, x, y[:, :3]), ValueError, ["y", "(2, 4, 1)", "(2, 3, 1)"]),
        (lambda n, t, x, y: n.loss(t, x, y[:1]), ValueError, ["y", "(1, 4, 1)"]),
        (lambda n, t, x, y: n.loss(t[:-1], x, y), ValueError, ["theta", "(19,)", "(18,)"]),
        (lambda n, t, x, y: n.loss(t, x, y, mask=np.ones((2, 5))), ValueError, ["mask", "(2, 5)"]),
        (lambda n, t, x, y: n.loss(t, x, y, mask=-np.ones((2, 4))), ValueError, ["mask", "negat"]),
        (lambda n, t, x, y: n.loss(t, x * np.nan, y), ValueError, ["x", "non-finite"]),
        (lambda n, t, x, y: n.loss(t, x, y * np.inf), ValueError, ["y", "non-finite"]),
        (lambda n, t, x, y: n.loss(t * np.nan, x, y), ValueError, ["theta", "non-finite"]),
        (lambda n, t, x, y: n.loss_and_grad(t, x, y, k=0), ValueError, ["k", ">= 1", "0"]),
        (lambda n, t, x, y: n.loss_and_grad(t, x, y, k=1.5), TypeError, ["k"]),
        (lambda n, t, x, y: n.loss(t, "abc", y), TypeError, ["x"]),
        (lambda n, t, x, y: n.forward(t, np.ones((2, 4, 3))), ValueError, ["x", "(B, T, 1)"]),
        (lambda n, t, x, y: n.population_loss(t, x, y), ValueError, ["thetas", "2-D"]),
        (lambda n, t, x, y: n.population_loss(t[None, :-1], x, y), ValueError, ["thetas"]),
        (lambda n, t, x, y: n.init("seed"), TypeError, ["rng"]),
        (lambda n, t, x, y: n.pack({"W_xh": 1}), ValueError, ["missing"]),
    ],
)
def test_bad_input_names_the_argument(call, exc, words):
    net, theta, x, y, _ = make_problem(1, 3, 1, 2, 4, "linear", 13)
    with pytest.raises(exc) as info:
        call(net, theta, x, y)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(n_in=1, n_hidden=0, n_out=1), ["n_hidden", ">= 1", "0"]),
        (dict(n_in=0, n_hidden=2, n_out=1), ["n_in"]),
        (dict(n_in=1, n_hidden=2, n_out=1, hidden="gelu"), ["hidden", "tanh", "gelu"]),
        (dict(n_in=1, n_hidden=2, n_out=1, output="poisson"), ["output", "softmax", "poisson"]),
    ],
)
def test_bad_constructor_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        Elman(**kwargs)
    for w in words:
        assert w in str(info.value)
    with pytest.raises(TypeError, match="n_hidden"):
        Elman(1, 2.5, 1)


@settings(max_examples=25, deadline=None)
@given(
    I=st.integers(1, 3),
    H=st.integers(1, 6),
    O=st.integers(1, 3),
    B=st.integers(1, 3),
    T=st.integers(1, 8),
    k=st.one_of(st.none(), st.integers(1, 10)),
    output=st.sampled_from(OUTPUTS),
    seed=st.integers(0, 2**16),
)
def test_shapes_property(I, H, O, B, T, k, output, seed):
    net, theta, x, y, mask = make_problem(I, H, O, B, T, output, seed)
    h, yhat = net.forward(theta, x)
    assert h.shape == (B, T, H) and yhat.shape == (B, T, O)
    L, g = net.loss_and_grad(theta, x, y, mask, k=k)
    assert g.shape == theta.shape and np.isfinite(g).all() and L >= -1e-12
    assert L == pytest.approx(net.loss(theta, x, y, mask), rel=1e-12, abs=1e-12)
    np.testing.assert_array_equal(net.pack(net.unpack(theta)), theta)
    if output == "softmax":
        np.testing.assert_allclose(yhat.sum(-1), 1.0, rtol=1e-12)


def test_unchecked_calls_fill_default_mask_and_h0():
    net, theta, x, y, _ = make_problem(2, 3, 1, 2, 5, "linear", 14)
    L, g = net.loss_and_grad(theta, x, y)
    L2, g2 = net.loss_and_grad(theta, x, y, check=False)
    assert L == L2 and np.array_equal(g, g2)
    assert net.loss(theta, x, y, check=False) == net.loss(theta, x, y)
    assert np.array_equal(net.population_loss(theta[None], x, y, check=False), [L])
    h, _ = net.forward(theta, x, check=False)
    np.testing.assert_array_equal(net.step(theta, np.zeros((2, 3)), x[:, 0], check=False), h[:, 0])


def test_fixed_parameters_and_feed_forward_window():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(3, 9, 2))
    y = rng.normal(size=(3, 9, 1))
    full = Elman(2, 3, 1)
    # recurrent=False is the full net with W_hh = 0, and its theta lacks W_hh
    ff = Elman(2, 3, 1, recurrent=False)
    assert ff.n_params == full.n_params - 9
    th = ff.init(rng)
    p = ff.unpack(th)
    assert np.array_equal(p["W_hh"], np.zeros((3, 3)))
    np.testing.assert_array_equal(ff.pack(p), th)
    th_full = full.pack(p)
    assert ff.loss(th, x, y) == full.loss(th_full, x, y)
    L, g = ff.loss_and_grad(th, x, y)
    L_f, g_f = full.loss_and_grad(th_full, x, y)
    keep = np.ones(full.n_params, bool)
    keep[6:15] = False  # the W_hh block of the full layout
    assert L == L_f and np.array_equal(g, g_f[keep])
    assert np.array_equal(ff.population_loss(np.stack([th, th]), x, y), [L, L])
    # element-level fixing: NaN entries free
    net = Elman(1, 1, 1, fixed={"W_hy": 1.0, "b_y": 0.0, "b_h": [np.nan]})
    assert net.n_params == 3 and net.unpack(net.init(0))["W_hy"][0, 0] == 1.0
    g_fd = ref.central_diff(lambda t: net.loss(t, x[..., :1], y), np.array([0.3, -0.2, 0.1]))
    np.testing.assert_allclose(
        net.loss_and_grad([0.3, -0.2, 0.1], x[..., :1], y)[1], g_fd, rtol=1e-6
    )
    # window: the input at t is [a_t, a_{t-1}, a_{t-2}]
    w = Elman(2, 3, 1, window=3)
    xw = w._windowed(x)
    assert xw.shape == (3, 9, 6)
    np.testing.assert_array_equal(xw[:, 4, 2:4], x[:, 3])
    np.testing.assert_array_equal(xw[:, 1, 4:6], 0.0)
    big = Elman(6, 3, 1)
    th = w.init(rng)
    assert w.loss(th, x, y) == big.loss(th, xw, y)
    assert np.array_equal(w.loss_and_grad(th, x, y)[1], big.loss_and_grad(th, xw, y)[1])
    assert "window=3" in repr(w) and "recurrent=False" in repr(ff)


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(window=0), ValueError, ["window"]),
        (dict(recurrent=1), TypeError, ["recurrent"]),
        (dict(fixed={"W_zz": 0}), ValueError, ["W_zz", "W_xh"]),
        (dict(fixed={"W_hh": [1, 2, 3]}), ValueError, ["W_hh", "(2, 2)"]),
        (dict(fixed={"W_hh": 0}, recurrent=False), ValueError, ["W_hh", "recurrent"]),
        (dict(fixed={k: 0 for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y")}), ValueError, ["free"]),
    ],
)
def test_bad_variant_arguments(kwargs, exc, words):
    with pytest.raises(exc) as info:
        Elman(1, 2, 1, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_gradient_over_many_small_shapes_against_reference():
    """Many shapes in a row, with an initial state, full and truncated: every call must match
    the reference whatever the allocator did before it. (A scratch array freed while a raw
    pointer to it was still in use once gave gradients that depended on earlier calls.)"""
    rng = np.random.default_rng(7)
    for I, H, O, B, T in [(2, 3, 2, 1, 1), (1, 3, 1, 1, 2), (1, 3, 1, 3, 1), (2, 5, 1, 2, 3),
                          (1, 9, 2, 1, 2), (3, 2, 1, 4, 2), (1, 17, 1, 2, 3)]:  # fmt: skip
        net = Elman(I, H, O)
        theta = net.init(rng, scale=0.8)
        x = rng.normal(size=(B, T, I))
        y = rng.normal(size=(B, T, O))
        h0 = rng.normal(size=(B, H)) * 0.5
        for k in (None, 1):
            _, g = net.loss_and_grad(theta, x, y, k=k, h0=h0)
            if k is None or k >= T:
                g_r = ref.grad_full(theta, x, y, None, (I, H, O), h0=h0)
            else:
                g_r = ref.grad_truncated(theta, x, y, None, k, (I, H, O), h0=h0)
            np.testing.assert_allclose(
                g, g_r, rtol=1e-10, atol=1e-12, err_msg=f"{(I, H, O, B, T, k)}"
            )


def test_fixed_free_word_equals_nan():
    """Experiment files mark a free entry with "free" (a config holding nan never equals its
    stored copy): the same net as with nan."""
    nan = float("nan")
    a = Elman(3, 1, 1, fixed={"W_xh": [["free", "free", 1.0]], "b_h": 0.0})
    b = Elman(3, 1, 1, fixed={"W_xh": [[nan, nan, 1.0]], "b_h": 0.0})
    assert a.n_params == b.n_params == 2 + 1 + 1 + 1  # 2 of W_xh, W_hh, W_hy, b_y
    np.testing.assert_array_equal(a._free_idx, b._free_idx)
    np.testing.assert_array_equal(a._base, b._base)
    from toolkit.nets import _check_fixed

    assert _check_fixed({"W_xh": [["free", 1.0]]})[0]
    ok, msg = _check_fixed({"W_xh": [["loose", 1.0]]})
    assert not ok and '"free" = free' in msg


def test_inf_for_nonfinite_maps_every_nonfinite_loss_to_inf():
    """population_loss's rule (non-finite -> +inf), also where the sum of finite losses
    overflows, which takes the full path, and without touching finite entries."""
    from toolkit.nets import _inf_for_nonfinite

    cases = (
        [1.0, 2.0],
        [np.nan, 1.0],
        [-np.inf, 3.0],
        [np.inf, np.nan, 0.5],
        [1e308, 1e308, 2.0],
        [-0.0, 5e-324],
    )
    for values in cases:
        a = np.array(values)
        want = np.where(np.isfinite(a), a, np.inf)
        _inf_for_nonfinite(a)
        assert np.array_equal(a.view(np.uint64), want.view(np.uint64))


@pytest.mark.parametrize("k", [0, 1, 3])
def test_loss_and_grad_rows_is_the_gathered_batch(k):
    """kernels.loss_and_grad_rows (the minibatch chunk's gradient: no gathers) gives the bits
    of loss_and_grad on x[rows], y[rows], mask[rows], rows in any order or repeated; at H = 8
    too (the fused weight gradients read the inputs by row)."""
    from toolkit import kernels

    rng = np.random.default_rng(11 + k)
    for I, H, O, N, T in [(1, 2, 1, 7, 9), (2, 8, 1, 10, 13), (3, 5, 2, 4, 6)]:
        net = Elman(I, H, O)
        theta = net.init(rng, scale=0.8)
        x = rng.normal(size=(N, T, I))
        y = rng.normal(size=(N, T, O))
        mask = (rng.random((N, T)) < 0.6).astype(float)
        for rows in (np.arange(N), rng.permutation(N)[: N // 2 + 1], np.array([N - 1, 0, N - 1])):
            B = rows.shape[0]
            h0 = rng.normal(size=(B, H)) * 0.3
            work = np.empty(kernels.grad_work_size(T, B, I, H, O))
            L, g = kernels.loss_and_grad_rows(theta, x, y, mask, rows, h0, I, H, O, 0, 0, k, work)
            L2, g2 = kernels.loss_and_grad(
                theta, x[rows], y[rows], mask[rows], h0, I, H, O, 0, 0, k, work
            )
            assert L == L2
            np.testing.assert_array_equal(g.view(np.int64), g2.view(np.int64))
