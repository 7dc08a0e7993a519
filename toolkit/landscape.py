"""Error-surface data: the single-unit cliff, Doya's bifurcation, and Elman-net loss slices.

Every function returns plain arrays or pandas DataFrames; the caller stores them (e.g.
``df.to_parquet(results_dir / f"{name}.parquet")`` for each item of :func:`cliff_tables` or
:func:`net_tables`) and :mod:`toolkit.plots` draws them from disk. The table names in
:data:`TABLES` are the file stems the plotting code looks for.

(a) The cliff (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
    networks", Sec. 3 and Fig. 6): one sigmoid unit iterated T = 50 times,

        x_t = w * sigmoid(x_{t-1}) + b,   x_0 = 0.5,   L(w, b) = (sigmoid(x_T) - 0.7)^2.

    For w > 1 / sigmoid'(x_0) the map is bistable over a band of b, and x_0 lies exactly on the
    boundary between the two basins when it is the unstable fixed point, i.e. on the line
    b = x_0 - w sigmoid(x_0): there L jumps between two levels (a "cliff"), and the gradient
    explodes. :func:`cliff_loss_and_grad` gives L and its exact gradient by BPTT over the
    scalar recursion; :func:`cliff_trajectories` runs plain gradient descent, gradient descent
    with norm clipping (Pascanu et al. 2013, Alg. 1) and CMA-ES (Hansen 2016, "The CMA
    evolution strategy: a tutorial") on the surface.
(b) Doya 1992/1993 ("Bifurcations in the learning of recurrent neural networks"): the fixed
    points of x = w sigmoid(x) + b at w = 5 as b varies -- two saddle-node bifurcations bound
    the bistable band; crossing one makes the state after T steps jump (:func:`bifurcation`).
(c) Li, Xu, Taylor, Studer & Goldstein 2018 ("Visualizing the loss landscape of neural nets"):
    loss along random directions with *filter normalisation*; for an Elman net each row of
    W_xh, W_hh and W_hy is a filter (the weights into one unit) and each bias vector one more
    (or zero with ``bias="zero"``, as Li et al.'s ``ignore biasbn``). Also the straight line
    between two solutions (Goodfellow, Vinyals & Saxe 2015): a barrier on it shows that the
    two seeds ended in different basins.
(d) The gradient norm along a 1-D slice, where the exploding-gradient cliffs show as spikes;
    and the cosine between truncated BPTT(k) and full gradients (:func:`gradient_fidelity`).

The ``net`` arguments need only ``n_params``, ``unpack(theta) -> dict of arrays``,
``loss(theta, x, y, mask)`` (and ``population_loss`` if present, ``loss_and_grad`` for (d)):
:class:`toolkit.nets.Elman` has them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TABLES = (
    "cliff_surface",
    "cliff_trajectories",
    "bifurcation",
    "slice_1d",
    "slice_2d",
    "interpolation",
    "grad_norm_slice",
    "gradient_fidelity",
)
CLIFF_T = 50
CLIFF_X0 = 0.5
CLIFF_TARGET = 0.7
CLIFF_W_RANGE = (-2.0, 10.0)
CLIFF_B_RANGE = (-6.0, 2.0)

__all__ = [
    "TABLES",
    "bifurcation",
    "cliff_boundary",
    "cliff_loss",
    "cliff_loss_and_grad",
    "cliff_surface",
    "cliff_tables",
    "cliff_trajectories",
    "cmaes_minimize",
    "filter_normalized_direction",
    "grad_norm_slice",
    "gradient_fidelity",
    "loss_interpolation",
    "loss_slice_1d",
    "loss_slice_2d",
    "net_tables",
    "param_groups",
    "sigmoid",
]


def sigmoid(x):
    """Logistic function, overflow-free (0.5 (1 + tanh(x / 2)))."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer):
        raise TypeError(f"rng: expected a numpy.random.Generator or an int seed, got {rng!r}")
    return np.random.default_rng(int(rng))


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, int | np.integer) or T < 1:
        raise ValueError(f"T: expected an int >= 1, got {T!r}")
    return int(T)


# ------------------------------------------------------------------------------------------
# (a) the single-unit cliff
# ------------------------------------------------------------------------------------------
def cliff_loss(w, b, *, T: int = CLIFF_T, x0: float = CLIFF_X0, target: float = CLIFF_TARGET):
    """L(w, b) = (sigmoid(x_T) - target)^2 with x_t = w sigmoid(x_{t-1}) + b; w, b broadcast."""
    T = _check_T(T)
    w, b = np.broadcast_arrays(np.asarray(w, np.float64), np.asarray(b, np.float64))
    x = np.full(w.shape, float(x0))
    for _ in range(T):
        x = w * sigmoid(x) + b
    return (sigmoid(x) - target) ** 2


def cliff_loss_and_grad(
    w, b, *, T: int = CLIFF_T, x0: float = CLIFF_X0, target: float = CLIFF_TARGET
):
    """(L, dL/dw, dL/db) by backpropagation through time over the scalar recursion.

    Forward x_t = w s_{t-1} + b with s_t = sigmoid(x_t); backward from
    delta_T = dL/dx_T = 2 (s_T - target) s_T (1 - s_T):
        dL/dw += delta_t s_{t-1},  dL/db += delta_t,  delta_{t-1} = delta_t w s_{t-1}(1 - s_{t-1}).
    w, b broadcast; arrays of the broadcast shape (floats for scalar input).
    """
    T = _check_T(T)
    w, b = np.broadcast_arrays(np.asarray(w, np.float64), np.asarray(b, np.float64))
    s = np.empty((T + 1, *w.shape))
    x = np.full(w.shape, float(x0))
    s[0] = sigmoid(x)
    for t in range(1, T + 1):
        x = w * s[t - 1] + b
        s[t] = sigmoid(x)
    L = (s[T] - target) ** 2
    delta = 2.0 * (s[T] - target) * s[T] * (1.0 - s[T])
    gw = np.zeros(w.shape)
    gb = np.zeros(w.shape)
    for t in range(T, 0, -1):
        gw += delta * s[t - 1]
        gb += delta
        delta = delta * w * s[t - 1] * (1.0 - s[t - 1])
    if L.ndim == 0:
        return float(L), float(gw), float(gb)
    return L, gw, gb


def cliff_boundary(w, *, x0: float = CLIFF_X0):
    """b on the cliff for each w: x0 is the unstable fixed point, b = x0 - w sigmoid(x0).
    NaN where the unit has no unstable fixed point at x0 (w sigmoid'(x0) <= 1)."""
    w = np.asarray(w, np.float64)
    s = sigmoid(x0)
    b = x0 - w * s
    return np.where(w * s * (1 - s) > 1, b, np.nan)


def cliff_surface(
    *,
    w_range: tuple[float, float] = CLIFF_W_RANGE,
    b_range: tuple[float, float] = CLIFF_B_RANGE,
    n_w: int = 201,
    n_b: int = 201,
    T: int = CLIFF_T,
    x0: float = CLIFF_X0,
    target: float = CLIFF_TARGET,
) -> pd.DataFrame:
    """The loss and gradient norm on a regular (w, b) grid.

    Returns a long frame with columns w, b, loss, grad_norm (n_w * n_b rows, b varying fastest)
    and T, x0, target (constant, so the stored table describes itself).
    """
    for name, r in (("w_range", w_range), ("b_range", b_range)):
        if len(r) != 2 or not r[0] < r[1]:
            raise ValueError(f"{name}: expected (low, high) with low < high, got {r!r}")
    if n_w < 2 or n_b < 2:
        raise ValueError(f"n_w, n_b: expected >= 2 grid points each, got {n_w}, {n_b}")
    ws = np.linspace(*w_range, n_w)
    bs = np.linspace(*b_range, n_b)
    W, B = np.meshgrid(ws, bs, indexing="ij")
    L, gw, gb = cliff_loss_and_grad(W, B, T=T, x0=x0, target=target)
    return pd.DataFrame(
        {
            "w": W.ravel(),
            "b": B.ravel(),
            "loss": L.ravel(),
            "grad_norm": np.hypot(gw, gb).ravel(),
            "T": T,
            "x0": float(x0),
            "target": float(target),
        }
    )


def _gd(f_grad, start, *, lr: float, steps: int, clip: float | None, bounds) -> pd.DataFrame:
    th = np.array(start, dtype=np.float64)
    rows = []
    for i in range(steps + 1):
        L, gw, gb = f_grad(th[0], th[1])
        g = np.array([gw, gb])
        gn = float(np.hypot(gw, gb))
        rows.append((i, i, th[0], th[1], L, gn))
        if i == steps or not np.isfinite(gn):
            break
        if clip is not None and gn > clip:
            g = g * (clip / gn)
        th = th - lr * g
        if bounds is not None:  # keep the path on the drawn surface (report where it left)
            th = np.clip(th, bounds[0], bounds[1])
    return pd.DataFrame(rows, columns=["step", "evals", "w", "b", "loss", "grad_norm"])


def cmaes_minimize(
    f,
    mean0,
    sigma0: float,
    *,
    generations: int,
    rng,
    popsize: int | None = None,
) -> pd.DataFrame:
    """Minimal (mu/mu_w, lambda)-CMA-ES (Hansen 2016, tutorial, Table 1 defaults) in numpy.

    f maps a (lambda, n) array to (lambda,) losses. Returns one row per generation with the
    mean after the update: columns step (generation), evals (cumulative f-evaluations),
    x0..x{n-1} (the mean), sigma. Deterministic for a seeded ``rng``.
    """
    rng = _rng(rng)
    m = np.array(mean0, dtype=np.float64)
    N = m.size
    lam = popsize or 4 + int(3 * math.log(N))
    mu = lam // 2
    wts = math.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    wts /= wts.sum()
    mueff = 1.0 / (wts**2).sum()
    cc = (4 + mueff / N) / (N + 4 + 2 * mueff / N)
    cs = (mueff + 2) / (N + mueff + 5)
    c1 = 2 / ((N + 1.3) ** 2 + mueff)
    cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((N + 2) ** 2 + mueff))
    damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (N + 1)) - 1) + cs
    chiN = math.sqrt(N) * (1 - 1 / (4 * N) + 1 / (21 * N * N))
    pc, ps, C = np.zeros(N), np.zeros(N), np.eye(N)
    sigma = float(sigma0)
    rows = [(0, 0, *m, sigma)]
    evals = 0
    for g in range(1, generations + 1):
        C = np.triu(C) + np.triu(C, 1).T
        D2, Bm = np.linalg.eigh(C)
        D = np.sqrt(np.maximum(D2, 1e-300))
        z = rng.standard_normal((lam, N))
        y = (z * D) @ Bm.T
        xs = m + sigma * y
        fx = np.asarray(f(xs), dtype=np.float64)
        fx = np.where(np.isfinite(fx), fx, np.inf)
        evals += lam
        order = np.argsort(fx, kind="mergesort")[:mu]
        m_old = m
        m = wts @ xs[order]
        yw = (m - m_old) / sigma
        invsqrtC = Bm @ np.diag(1 / D) @ Bm.T
        ps = (1 - cs) * ps + math.sqrt(cs * (2 - cs) * mueff) * (invsqrtC @ yw)
        hsig = np.linalg.norm(ps) / math.sqrt(1 - (1 - cs) ** (2 * g)) / chiN < 1.4 + 2 / (N + 1)
        pc = (1 - cc) * pc + hsig * math.sqrt(cc * (2 - cc) * mueff) * yw
        art = (xs[order] - m_old) / sigma
        C = (
            (1 - c1 - cmu) * C
            + c1 * (np.outer(pc, pc) + (1 - hsig) * cc * (2 - cc) * C)
            + cmu * (art.T * wts) @ art
        )
        sigma *= math.exp((cs / damps) * (np.linalg.norm(ps) / chiN - 1))
        rows.append((g, evals, *m, sigma))
        if not np.isfinite(sigma) or sigma < 1e-12:
            break
    return pd.DataFrame(rows, columns=["step", "evals", *[f"x{i}" for i in range(N)], "sigma"])


def cliff_trajectories(
    start: tuple[float, float] = (5.0, -2.8),
    *,
    lr: float = 0.5,
    steps: int = 80,
    clip: float = 1.0,
    sigma0: float = 0.5,
    generations: int = 40,
    seed=0,
    T: int = CLIFF_T,
    x0: float = CLIFF_X0,
    target: float = CLIFF_TARGET,
    bounds: tuple[tuple[float, float], tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Optimizer paths on the cliff surface from one start.

    * ``gd``: plain gradient descent, w,b <- w,b - lr g;
    * ``gd_clipped``: the same with the gradient norm clipped to ``clip`` (Pascanu et al. 2013);
    * ``cmaes``: :func:`cmaes_minimize` from mean ``start`` with step size ``sigma0``, seeded by
      ``seed``; one row per generation (the mean), evals = loss evaluations so far.

    bounds ((w_lo, b_lo), (w_hi, b_hi)): gradient steps are clipped into the box (a path that
    is catapulted off the drawn surface stays visible at its edge); None = no box.
    Columns: method, step, evals, w, b, loss, grad_norm.
    """
    f_grad = lambda w, b: cliff_loss_and_grad(w, b, T=T, x0=x0, target=target)
    parts = []
    for name, c in (("gd", None), ("gd_clipped", clip)):
        df = _gd(f_grad, start, lr=lr, steps=steps, clip=c, bounds=bounds)
        df.insert(0, "method", name)
        parts.append(df)
    es = cmaes_minimize(
        lambda X: cliff_loss(X[:, 0], X[:, 1], T=T, x0=x0, target=target),
        start,
        sigma0,
        generations=generations,
        rng=seed,
    )
    L, gw, gb = cliff_loss_and_grad(
        es["x0"].to_numpy(), es["x1"].to_numpy(), T=T, x0=x0, target=target
    )
    parts.append(
        pd.DataFrame(
            {
                "method": "cmaes",
                "step": es["step"],
                "evals": es["evals"],
                "w": es["x0"],
                "b": es["x1"],
                "loss": L,
                "grad_norm": np.hypot(gw, gb),
            }
        )
    )
    out = pd.concat(parts, ignore_index=True)
    out["T"] = T
    return out


# ------------------------------------------------------------------------------------------
# (b) Doya's bifurcation
# ------------------------------------------------------------------------------------------
def bifurcation(
    *,
    w: float = 5.0,
    b_range: tuple[float, float] = (-4.0, -1.0),
    n_b: int = 301,
    T: int = CLIFF_T,
    x0: float = CLIFF_X0,
    n_x: int = 4001,
) -> pd.DataFrame:
    """Fixed points x* = w sigmoid(x*) + b of the single unit as b varies (Doya 1992).

    Roots of h(x) = x - w sigmoid(x) - b, bracketed on an ``n_x`` grid over [b + min(w,0) - 1,
    b + max(w,0) + 1] (every fixed point lies in it) and refined by bisection. A fixed point
    is stable when |w sigmoid'(x*)| < 1. Also the state after T steps from x0 (``kind="x_T"``),
    which jumps where x0 changes basin.
    Columns: b, x, kind ("stable" | "unstable" | "x_T"), w, T, x0.
    """
    if n_b < 2:
        raise ValueError(f"n_b: expected >= 2, got {n_b}")
    bs = np.linspace(*b_range, n_b)
    lo = bs + min(w, 0.0) - 1.0
    hi = bs + max(w, 0.0) + 1.0
    u = np.linspace(0.0, 1.0, n_x)
    X = lo[:, None] + (hi - lo)[:, None] * u[None, :]
    H = X - w * sigmoid(X) - bs[:, None]
    sign_change = np.signbit(H[:, :-1]) != np.signbit(H[:, 1:])
    bi, xi = np.nonzero(sign_change)
    a = X[bi, xi]
    c = X[bi, xi + 1]
    ha = H[bi, xi]
    bb = bs[bi]
    for _ in range(60):
        mid = 0.5 * (a + c)
        hm = mid - w * sigmoid(mid) - bb
        left = np.signbit(hm) == np.signbit(ha)
        a = np.where(left, mid, a)
        ha = np.where(left, hm, ha)
        c = np.where(left, c, mid)
    xs = 0.5 * (a + c)
    s = sigmoid(xs)
    stable = np.abs(w * s * (1 - s)) < 1
    fp = pd.DataFrame({"b": bb, "x": xs, "kind": np.where(stable, "stable", "unstable")})
    x = np.full(bs.shape, float(x0))
    for _ in range(_check_T(T)):
        x = w * sigmoid(x) + bs
    xt = pd.DataFrame({"b": bs, "x": x, "kind": "x_T"})
    out = pd.concat([fp, xt], ignore_index=True)
    out["w"] = float(w)
    out["T"] = int(T)
    out["x0"] = float(x0)
    return out


def cliff_tables(
    *,
    n_w: int = 201,
    n_b: int = 201,
    start: tuple[float, float] = (5.0, -2.8),
    seed=0,
    **trajectory_kw,
) -> dict[str, pd.DataFrame]:
    """Everything figure 7(a, b) needs: {"cliff_surface", "cliff_trajectories", "bifurcation"}.
    Trajectories are kept inside the surface's box."""
    bounds = ((CLIFF_W_RANGE[0], CLIFF_B_RANGE[0]), (CLIFF_W_RANGE[1], CLIFF_B_RANGE[1]))
    return {
        "cliff_surface": cliff_surface(n_w=n_w, n_b=n_b),
        "cliff_trajectories": cliff_trajectories(start, seed=seed, bounds=bounds, **trajectory_kw),
        "bifurcation": bifurcation(),
    }


# ------------------------------------------------------------------------------------------
# (c, d) Elman-net slices
# ------------------------------------------------------------------------------------------
def param_groups(net) -> list[tuple[str, np.ndarray]]:
    """The filters of ``net``'s flat parameter vector, as (name, flat indices) pairs: one per
    row of every weight matrix (``"W_hh[3]"``: the weights into hidden unit 3) and one per
    bias vector. Found by unpacking ``arange(n_params)``, so only ``net.unpack`` knows the
    layout."""
    idx = net.unpack(np.arange(net.n_params, dtype=np.float64))
    groups = []
    for name, a in idx.items():
        a = np.asarray(a)
        if a.ndim >= 2:
            rows = a.reshape(a.shape[0], -1)
            groups += [(f"{name}[{i}]", rows[i].astype(np.intp)) for i in range(rows.shape[0])]
        else:
            groups.append((name, a.ravel().astype(np.intp)))
    return groups


def filter_normalized_direction(net, theta, rng, *, bias: str = "filter") -> np.ndarray:
    """A random direction d ~ N(0, I) rescaled filter-wise to the norms of ``theta``
    (Li et al. 2018): d_f <- d_f / ||d_f|| * ||theta_f|| for every filter f of
    :func:`param_groups` (weight-matrix rows; each bias vector is one filter, or zero with
    ``bias="zero"``). Filters of theta that are zero get a zero direction."""
    if bias not in ("filter", "zero"):
        raise ValueError(f"bias: expected 'filter' or 'zero', got {bias!r}")
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (net.n_params,):
        raise ValueError(f"theta: expected shape ({net.n_params},), got {theta.shape}")
    d = _rng(rng).standard_normal(net.n_params)
    for name, ix in param_groups(net):
        if bias == "zero" and "[" not in name:
            d[ix] = 0.0
            continue
        nd = np.linalg.norm(d[ix])
        d[ix] = d[ix] / nd * np.linalg.norm(theta[ix]) if nd > 0 else 0.0
    return d


def _losses(net, thetas: np.ndarray, x, y, mask) -> np.ndarray:
    if hasattr(net, "population_loss"):
        return np.asarray(net.population_loss(thetas, x, y, mask), dtype=np.float64)
    out = np.array([net.loss(t, x, y, mask) for t in thetas], dtype=np.float64)
    return np.where(np.isfinite(out), out, np.inf)


def _alphas(alphas, default):
    a = np.asarray(default if alphas is None else alphas, dtype=np.float64).ravel()
    if a.size < 2 or not np.isfinite(a).all():
        raise ValueError("alphas: expected at least two finite step sizes")
    return a


def loss_slice_1d(
    net,
    theta,
    x,
    y,
    mask=None,
    *,
    directions=None,
    n_directions: int = 3,
    alphas=None,
    rng=0,
    bias: str = "filter",
) -> pd.DataFrame:
    """L(theta + alpha d) for filter-normalised random directions d.

    directions: (n, n_params) array, or None to draw ``n_directions`` with ``rng``.
    alphas: default linspace(-1, 1, 41) (alpha = 1 moves every filter by its own norm).
    Columns: direction (int), alpha, loss.
    """
    theta = np.asarray(theta, dtype=np.float64)
    a = _alphas(alphas, np.linspace(-1, 1, 41))
    if directions is None:
        g = _rng(rng)
        directions = [
            filter_normalized_direction(net, theta, g, bias=bias) for _ in range(n_directions)
        ]
    D = np.atleast_2d(np.asarray(directions, dtype=np.float64))
    rows = []
    for i, d in enumerate(D):
        L = _losses(net, theta[None, :] + a[:, None] * d[None, :], x, y, mask)
        rows.append(pd.DataFrame({"direction": i, "alpha": a, "loss": L}))
    return pd.concat(rows, ignore_index=True)


def loss_slice_2d(
    net,
    theta,
    x,
    y,
    mask=None,
    *,
    d1=None,
    d2=None,
    alphas=None,
    betas=None,
    rng=0,
    bias: str = "filter",
) -> pd.DataFrame:
    """L(theta + alpha d1 + beta d2) on a grid (two filter-normalised random directions unless
    given). Default alphas = betas = linspace(-1, 1, 25). Columns: alpha, beta, loss."""
    theta = np.asarray(theta, dtype=np.float64)
    a = _alphas(alphas, np.linspace(-1, 1, 25))
    bt = _alphas(betas, np.linspace(-1, 1, 25))
    g = _rng(rng)
    if d1 is None:
        d1 = filter_normalized_direction(net, theta, g, bias=bias)
    if d2 is None:
        d2 = filter_normalized_direction(net, theta, g, bias=bias)
    A, Bt = np.meshgrid(a, bt, indexing="ij")
    thetas = theta[None, :] + A.ravel()[:, None] * d1[None, :] + Bt.ravel()[:, None] * d2[None, :]
    L = _losses(net, thetas, x, y, mask)
    return pd.DataFrame({"alpha": A.ravel(), "beta": Bt.ravel(), "loss": L})


def loss_interpolation(
    net, theta_a, theta_b, x, y, mask=None, *, alphas=None, pair: str = "a-b"
) -> pd.DataFrame:
    """L((1 - alpha) theta_a + alpha theta_b): alpha = 0 at theta_a, 1 at theta_b; default
    alphas linspace(-0.25, 1.25, 61). Columns: pair, alpha, distance (alpha ||b - a||), loss."""
    ta = np.asarray(theta_a, dtype=np.float64)
    tb = np.asarray(theta_b, dtype=np.float64)
    if ta.shape != tb.shape:
        raise ValueError(f"theta_b: expected shape {ta.shape} like theta_a, got {tb.shape}")
    a = _alphas(alphas, np.linspace(-0.25, 1.25, 61))
    L = _losses(net, (1 - a)[:, None] * ta[None, :] + a[:, None] * tb[None, :], x, y, mask)
    return pd.DataFrame(
        {"pair": pair, "alpha": a, "distance": a * float(np.linalg.norm(tb - ta)), "loss": L}
    )


def grad_norm_slice(
    net,
    theta,
    x,
    y,
    mask=None,
    *,
    direction=None,
    alphas=None,
    rng=0,
    k: int | None = None,
    bias: str = "filter",
) -> pd.DataFrame:
    """Loss, gradient norm ||dL/dtheta|| and slope d . dL/dtheta along theta + alpha d
    (BPTT with unfold depth k; None = full). Default alphas linspace(-1, 1, 81).
    Columns: alpha, loss, grad_norm, slope (NaN/inf where the loss is not finite)."""
    theta = np.asarray(theta, dtype=np.float64)
    a = _alphas(alphas, np.linspace(-1, 1, 81))
    if direction is None:
        direction = filter_normalized_direction(net, theta, _rng(rng), bias=bias)
    d = np.asarray(direction, dtype=np.float64)
    rows = []
    for al in a:
        L, g = net.loss_and_grad(theta + al * d, x, y, mask, k=k)
        g = np.asarray(g, dtype=np.float64)
        ok = np.isfinite(L) and np.isfinite(g).all()
        rows.append(
            (
                al,
                L if np.isfinite(L) else np.inf,
                float(np.linalg.norm(g)) if ok else np.inf,
                float(g @ d) if ok else np.nan,
            )
        )
    return pd.DataFrame(rows, columns=["alpha", "loss", "grad_norm", "slope"])


def gradient_fidelity(net, thetas, x, y, mask=None, *, ks) -> pd.DataFrame:
    """How well truncated BPTT(k) gradients point along the full gradient.

    thetas: (n, n_params) parameter vectors (e.g. initial and partly trained ones); ks: unfold
    depths (ints >= 1). Columns: theta_index, k, cosine (g_k . g / (|g_k| |g|)), norm_ratio
    (|g_k| / |g|), T (sequence length of x)."""
    thetas = np.atleast_2d(np.asarray(thetas, dtype=np.float64))
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"ks: expected unfold depths >= 1, got {ks}")
    T = int(np.shape(x)[1])
    rows = []
    for i, th in enumerate(thetas):
        _, g = net.loss_and_grad(th, x, y, mask, k=None)
        gn = float(np.linalg.norm(g))
        for k in ks:
            _, gk = net.loss_and_grad(th, x, y, mask, k=k)
            gkn = float(np.linalg.norm(gk))
            cos = float(gk @ g / (gkn * gn)) if gkn > 0 and gn > 0 else math.nan
            rows.append((i, k, cos, gkn / gn if gn > 0 else math.nan, T))
    return pd.DataFrame(rows, columns=["theta_index", "k", "cosine", "norm_ratio", "T"])


def net_tables(
    net,
    thetas,
    x,
    y,
    mask=None,
    *,
    labels=None,
    rng=0,
    n_directions: int = 3,
    n_1d: int = 41,
    n_2d: int = 21,
    n_interp: int = 61,
    bias: str = "filter",
    task: str = "",
) -> dict[str, pd.DataFrame]:
    """Figure 7(c, d) data around trained solutions ``thetas`` (list of >= 1 flat vectors,
    e.g. different seeds' final thetas; ``labels`` names them, default "0", "1", ...):
    1-D and 2-D filter-normalised slices and the gradient-norm slice around thetas[0], and the
    straight line from thetas[0] to each other theta. Returns {"slice_1d", "slice_2d",
    "interpolation", "grad_norm_slice"}, each with a ``task`` column."""
    thetas = [np.asarray(t, dtype=np.float64) for t in thetas]
    if not thetas:
        raise ValueError("thetas: expected at least one parameter vector")
    labels = [str(i) for i in range(len(thetas))] if labels is None else [str(s) for s in labels]
    if len(labels) != len(thetas):
        raise ValueError(f"labels: expected {len(thetas)} labels, got {len(labels)}")
    g = _rng(rng)
    th = thetas[0]
    dirs = [filter_normalized_direction(net, th, g, bias=bias) for _ in range(max(2, n_directions))]
    out = {
        "slice_1d": loss_slice_1d(
            net, th, x, y, mask, directions=dirs[:n_directions], alphas=np.linspace(-1, 1, n_1d)
        ),
        "slice_2d": loss_slice_2d(
            net,
            th,
            x,
            y,
            mask,
            d1=dirs[0],
            d2=dirs[1],
            alphas=np.linspace(-1, 1, n_2d),
            betas=np.linspace(-1, 1, n_2d),
        ),
        "grad_norm_slice": grad_norm_slice(
            net, th, x, y, mask, direction=dirs[0], alphas=np.linspace(-1, 1, 2 * n_1d - 1)
        ),
    }
    pairs = [
        loss_interpolation(
            net,
            th,
            t,
            x,
            y,
            mask,
            alphas=np.linspace(-0.25, 1.25, n_interp),
            pair=f"{labels[0]} → {labels[j]}",
        )
        for j, t in enumerate(thetas[1:], start=1)
    ]
    out["interpolation"] = (
        pd.concat(pairs, ignore_index=True)
        if pairs
        else pd.DataFrame(columns=["pair", "alpha", "distance", "loss"])
    )
    for df in out.values():
        df["task"] = task
    return out
