"""Error-surface data (toolkit.landscape): the single-unit cliff, Doya's bifurcation, and
Elman-net slices (with a stand-in net and with toolkit.nets.Elman)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from toolkit import landscape as L


# -- (a) the cliff ----------------------------------------------------------------------------
def test_cliff_gradient_matches_finite_differences():
    """BPTT over the scalar recursion vs central differences in float64 (max and mean error),
    at random (w, b) away from the cliff line where the loss is smooth on the scale of h."""
    rng = np.random.default_rng(0)
    w = rng.uniform(-2, 10, 400)
    b = rng.uniform(-6, 2, 400)
    bl = L.cliff_boundary(w)
    keep = ~(np.abs(b - bl) < 0.3)  # NaN boundary (no bistability) is kept
    w, b = w[keep], b[keep]
    _, gw, gb = L.cliff_loss_and_grad(w, b)
    h = 1e-6
    fw = (L.cliff_loss(w + h, b) - L.cliff_loss(w - h, b)) / (2 * h)
    fb = (L.cliff_loss(w, b + h) - L.cliff_loss(w, b - h)) / (2 * h)
    err = np.abs(np.r_[gw - fw, gb - fb])
    scale = np.abs(np.r_[fw, fb]) + 1e-3
    assert (err / scale).max() < 1e-5
    assert (err / scale).mean() < 1e-7
    # scalar input gives floats; broadcasting works
    Ls, gws, gbs = L.cliff_loss_and_grad(3.0, -1.0)
    assert isinstance(Ls, float) and isinstance(gws, float)
    assert L.cliff_loss(np.array([1.0, 2.0]), 0.0).shape == (2,)


def test_cliff_loss_jumps_by_more_than_an_order_of_magnitude_across_a_narrow_band():
    """Pascanu et al. (2013), Fig. 6: the loss surface has a wall where x0 = 0.5 switches
    basin; the jump sits on the analytic line b = x0 - w sigmoid(x0) and stays a jump when the
    grid is refined (it is a cliff, not a slope)."""
    n = 60
    df = L.cliff_surface(n_w=n, n_b=n)
    Z = df["loss"].to_numpy().reshape(n, n)  # [w, b]
    ws = np.sort(df["w"].unique())
    bs = np.sort(df["b"].unique())
    lo, hi = np.minimum(Z[:, :-1], Z[:, 1:]), np.maximum(Z[:, :-1], Z[:, 1:])
    jump = (hi > 10 * lo) & (hi - lo > 0.1)  # >10x and large in absolute terms (not a zero)
    wi, bi = np.nonzero(jump)
    assert len(wi) >= 3  # the wall crosses several w columns
    # every such jump straddles the line b = x0 - w sigmoid(x0), within one grid cell: the
    # cliff where x0 is the unstable fixed point (bistable w), and just below the bistable
    # range its continuation, where T = 50 steps pass slowly by the vanished fixed points
    bc = 0.5 - ws[wi] * L.sigmoid(0.5)
    db = bs[1] - bs[0]
    assert np.all((bc > bs[bi] - db) & (bc < bs[bi + 1] + db))
    assert np.isfinite(L.cliff_boundary(ws[wi])).mean() > 0.75
    # refined: across a band of width 2e-3 in b (of a range of 8) the loss changes > 10x
    for w in (4.6, 5.0, 5.5):
        b0 = float(L.cliff_boundary(w))
        below, above = L.cliff_loss(w, b0 - 1e-3), L.cliff_loss(w, b0 + 1e-3)
        assert below > 10 * above, (w, below, above)
    # the gradient explodes on the wall
    b0 = float(L.cliff_boundary(5.0))
    _, gw, gb = L.cliff_loss_and_grad(5.0, b0 - 1e-4)
    assert np.hypot(gw, gb) > 1e4 * np.median(df["grad_norm"])
    # away from bistability (w < 1 / sigmoid'(x0)) there is no cliff
    assert np.isnan(L.cliff_boundary(3.0))


def test_cliff_trajectories_gd_is_thrown_clipped_gd_is_not():
    bounds = ((-2.0, -6.0), (10.0, 2.0))
    tr = L.cliff_trajectories(
        (5.0, -2.8), lr=0.5, clip=1.0, steps=80, generations=30, seed=0, bounds=bounds
    )
    assert set(tr["method"]) == {"gd", "gd_clipped", "cmaes"}
    assert list(tr.columns[:7]) == ["method", "step", "evals", "w", "b", "loss", "grad_norm"]

    def steps(m):
        s = tr[tr["method"] == m]
        return np.hypot(np.diff(s["w"]), np.diff(s["b"])), s

    st_gd, gd = steps("gd")
    st_cl, cl = steps("gd_clipped")
    assert st_gd.max() > 4.0  # one step on the wall throws plain GD far away
    assert st_cl.max() <= 0.5 + 1e-12  # lr * clip
    assert cl["loss"].iloc[-1] < 0.01 < gd["loss"].iloc[-1]
    es = tr[tr["method"] == "cmaes"]
    assert es["loss"].iloc[-1] < es["loss"].iloc[0] / 100
    assert es["evals"].is_monotonic_increasing and es["evals"].iloc[-1] == 30 * 6
    # deterministic for a seed
    again = L.cliff_trajectories((5.0, -2.8), steps=80, generations=30, seed=0, bounds=bounds)
    pd.testing.assert_frame_equal(tr, again)
    other = L.cliff_trajectories((5.0, -2.8), steps=5, generations=30, seed=1)
    assert not np.allclose(other.loc[other["method"] == "cmaes", "w"].to_numpy(), es["w"])


def test_cmaes_minimizes_a_quadratic():
    f = lambda X: ((X - np.array([1.0, -2.0, 0.5])) ** 2).sum(axis=1)
    es = L.cmaes_minimize(f, np.zeros(3), 1.0, generations=80, rng=3)
    m = es[["x0", "x1", "x2"]].iloc[-1].to_numpy()
    np.testing.assert_allclose(m, [1.0, -2.0, 0.5], atol=1e-3)


# -- (b) bifurcation --------------------------------------------------------------------------
def test_bifurcation_fixed_points_at_w5():
    df = L.bifurcation(w=5.0, b_range=(-3.5, -1.5), n_b=201)
    fp = df[df["kind"] != "x_T"]
    x, b = fp["x"].to_numpy(), fp["b"].to_numpy()
    np.testing.assert_allclose(x - 5 * L.sigmoid(x) - b, 0, atol=1e-9)
    # saddle-node points where 5 sigmoid'(x) = 1: x = +-0.9624, b = x - 5 sigmoid(x)
    xs = np.log((1 + np.sqrt(0.2)) / (1 - np.sqrt(0.2)))
    b_lo, b_hi = xs - 5 * L.sigmoid(xs), -xs - 5 * L.sigmoid(-xs)
    count = fp.groupby("b").size()
    inside = (count.index > b_lo + 0.01) & (count.index < b_hi - 0.01)
    outside = (count.index < b_lo - 0.01) | (count.index > b_hi + 0.01)
    assert (count[inside] == 3).all() and (count[outside] == 1).all()
    # in the band: lowest and highest stable, the middle one unstable
    for _, g in fp[fp["b"].between(b_lo + 0.01, b_hi - 0.01)].groupby("b"):
        assert g.sort_values("x")["kind"].tolist() == ["stable", "unstable", "stable"]
    # the state after T steps from x0 = 0.5 jumps where 0.5 is the unstable fixed point
    xt = df[df["kind"] == "x_T"].set_index("b")["x"]
    b_c = 0.5 - 5 * L.sigmoid(0.5)
    assert xt[xt.index < b_c - 0.01].max() < -1 and xt[xt.index > b_c + 0.01].min() > 1


# -- (c, d) slices ----------------------------------------------------------------------------
class StandIn:
    """A tiny quadratic 'net' with the Elman parameter layout for n_in=1, n_hidden=2,
    n_out=1 and no population_loss (exercises the loop path)."""

    n_params = 11

    def unpack(self, theta):
        t = np.asarray(theta)
        return {
            "W_xh": t[0:2].reshape(2, 1),
            "W_hh": t[2:6].reshape(2, 2),
            "b_h": t[6:8],
            "W_hy": t[8:10].reshape(1, 2),
            "b_y": t[10:11],
        }

    def loss(self, theta, x, y, mask=None):
        return float(np.sum((np.asarray(theta) - 1.0) ** 2) * x.sum())

    def loss_and_grad(self, theta, x, y, mask=None, k=None):
        return self.loss(theta, x, y), 2 * (np.asarray(theta) - 1.0) * x.sum()


@pytest.fixture(scope="module")
def elman():
    from toolkit import Elman

    net = Elman(2, 3, 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 8, 2))
    y = rng.normal(size=(4, 8, 1))
    return net, x, y, net.init(1, scale=1.0), net.init(2, scale=1.0)


def test_filter_normalized_direction(elman):
    net, x, y, th, _ = elman
    groups = L.param_groups(net)
    assert [g[0] for g in groups][:4] == ["W_xh[0]", "W_xh[1]", "W_xh[2]", "W_hh[0]"]
    allidx = np.sort(np.concatenate([ix for _, ix in groups]))
    np.testing.assert_array_equal(allidx, np.arange(net.n_params))
    assert len(groups) == 3 + 3 + 1 + 1 + 1
    d = L.filter_normalized_direction(net, th, np.random.default_rng(5))
    for _, ix in groups:
        assert np.linalg.norm(d[ix]) == pytest.approx(np.linalg.norm(th[ix]))
    np.testing.assert_array_equal(d, L.filter_normalized_direction(net, th, 5))
    dz = L.filter_normalized_direction(net, th, 5, bias="zero")
    p = net.unpack(dz)
    assert not p["b_h"].any() and not p["b_y"].any() and p["W_hh"].any()
    th0 = th.copy()
    net.unpack(th0)["W_hh"][1] = 0.0  # a zero filter gets a zero direction
    assert not net.unpack(L.filter_normalized_direction(net, th0, 5))["W_hh"][1].any()
    with pytest.raises(ValueError, match="bias"):
        L.filter_normalized_direction(net, th, 5, bias="yes")
    with pytest.raises(ValueError, match="theta"):
        L.filter_normalized_direction(net, th[:-1], 5)


@pytest.mark.parametrize("which", ["elman", "stand-in"])
def test_slices_agree_with_the_net(elman, which):
    net, x, y, th, th2 = elman
    if which == "stand-in":
        net = StandIn()
        th, th2 = np.linspace(-1, 1, 11), np.linspace(2, 0, 11)
    s1 = L.loss_slice_1d(net, th, x, y, n_directions=2, alphas=np.linspace(-1, 1, 5), rng=0)
    assert list(s1.columns) == ["direction", "alpha", "loss"] and len(s1) == 10
    at0 = s1[s1["alpha"] == 0]["loss"].to_numpy()
    np.testing.assert_allclose(at0, net.loss(th, x, y), rtol=1e-12)
    s2 = L.loss_slice_2d(
        net, th, x, y, alphas=np.linspace(-1, 1, 3), betas=np.linspace(-1, 1, 5), rng=0
    )
    assert len(s2) == 15
    c = s2[(s2["alpha"] == 0) & (s2["beta"] == 0)]["loss"].iloc[0]
    assert c == pytest.approx(net.loss(th, x, y), rel=1e-12)
    ip = L.loss_interpolation(net, th, th2, x, y, alphas=[0.0, 0.5, 1.0], pair="1 → 2")
    assert ip["loss"].iloc[0] == pytest.approx(net.loss(th, x, y), rel=1e-12)
    assert ip["loss"].iloc[2] == pytest.approx(net.loss(th2, x, y), rel=1e-12)
    assert ip["distance"].iloc[2] == pytest.approx(np.linalg.norm(th2 - th))
    d = L.filter_normalized_direction(net, th, 3)
    gs = L.grad_norm_slice(net, th, x, y, direction=d, alphas=np.linspace(-0.5, 0.5, 11))
    L0, g0 = net.loss_and_grad(th, x, y)
    row = gs[gs["alpha"] == 0].iloc[0]
    assert row["grad_norm"] == pytest.approx(np.linalg.norm(g0))
    assert row["slope"] == pytest.approx(g0 @ d)
    # the slope is the derivative of the loss along the slice
    h = 1e-5
    fd = (net.loss(th + h * d, x, y) - net.loss(th - h * d, x, y)) / (2 * h)
    assert row["slope"] == pytest.approx(fd, rel=1e-5, abs=1e-8)
    with pytest.raises(ValueError, match="alphas"):
        L.loss_slice_1d(net, th, x, y, alphas=[0.0])


def test_gradient_fidelity_and_net_tables(elman):
    net, x, y, th, th2 = elman
    gf = L.gradient_fidelity(net, [th, th2], x, y, ks=[1, 2, 8, 20])
    assert list(gf.columns) == ["theta_index", "k", "cosine", "norm_ratio", "T"]
    full = gf[gf["k"] >= 8]  # k >= T is full BPTT
    np.testing.assert_allclose(full["cosine"], 1.0, atol=1e-12)
    np.testing.assert_allclose(full["norm_ratio"], 1.0, atol=1e-12)
    assert (gf["cosine"].abs() <= 1 + 1e-12).all() and (gf["T"] == 8).all()
    with pytest.raises(ValueError, match="ks"):
        L.gradient_fidelity(net, [th], x, y, ks=[0])
    tabs = L.net_tables(
        net, [th, th2], x, y, labels=["seed 1", "seed 2"], n_1d=5, n_2d=3, n_interp=5, task="toy"
    )
    assert set(tabs) == {"slice_1d", "slice_2d", "interpolation", "grad_norm_slice"}
    assert set(tabs) <= set(L.TABLES)
    assert all((df["task"] == "toy").all() for df in tabs.values())
    assert tabs["interpolation"]["pair"].iloc[0] == "seed 1 → seed 2"
    one = L.net_tables(net, [th], x, y, n_1d=3, n_2d=2, n_interp=3)
    assert one["interpolation"].empty
