"""Natural evolution strategies: SNES (separable) and xNES (full covariance).

Paper: Wierstra, Schaul, Glasmachers, Sun, Peters & Schmidhuber 2014, "Natural evolution
strategies", JMLR 15:949-980 -- xNES is Algorithm 5 (Glasmachers et al. 2010, "Exponential
natural evolution strategies", GECCO), SNES Algorithm 6 (Schaul, Glasmachers & Schmidhuber
2011, "High dimensions and heavy tails for natural evolution strategies", GECCO). Defaults are
the paper's Table 1: lambda = 4 + floor(3 ln n), eta_mu = 1,
SNES eta_sigma = (3 + ln n) / (5 sqrt n), xNES eta_sigma = eta_B = 3 (3 + ln n) / (5 n sqrt n),
and the rank-based utilities of :func:`toolkit.train.shaping.nes_utilities`.

SNES, per generation: s_k ~ N(0, I) (lambda, n), z_k = mu + sigma * s_k; with the utilities u_k
of the sorted losses: mu += eta_mu sigma sum u_k s_k, sigma *= exp(eta_sigma / 2 sum u_k (s_k^2
- 1)). O(lambda n) per generation.

xNES: z_k = mu + sigma B s_k (A = sigma B, det B = 1); G_delta = sum u_k s_k, G_M = sum u_k
(s_k s_k^T - I), G_sigma = tr(G_M) / n, G_B = G_M - G_sigma I; mu += eta_mu sigma B G_delta,
sigma *= exp(eta_sigma / 2 G_sigma), B <- B expm(eta_B / 2 G_B). The matrix exponential of the
symmetric G_B costs an eigendecomposition, O(n^3) per generation: xNES is refused above
:data:`XNES_MAX_N` parameters (use ``snes`` or ``cmaes`` with ``diagonal = true`` there).
"""

from __future__ import annotations

import math

import numpy as np

from toolkit.params import Param
from toolkit.train.shaping import nes_utilities
from toolkit.train.strategy import Context, Strategy, init_scale_param, register_strategy

#: largest n_params xNES accepts: at n = 400 one eigendecomposition took 16 ms on one core here
#: (n = 1121: 220 ms), plus the n^3 product B expm(.) each generation
XNES_MAX_N = 400


def default_lambda(n: int) -> int:
    return 4 + int(math.floor(3 * math.log(n)))


def _params(what: str) -> dict:
    return {
        "sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="initial step size"),
        "lambda_": Param(None, "int", lo=2, allow_none=True, doc="population; None: 4+⌊3 ln n⌋"),
        "eta_mu": Param(1.0, "float", lo=0.0, lo_open=True, doc="mean learning rate"),
        "eta_sigma": Param(None, "float", lo=0.0, lo_open=True, allow_none=True, doc=what),
        "init_scale": init_scale_param("first mean"),
    }


class _NES(Strategy):
    def __init__(self, ctx: Context, sigma, lambda_, eta_mu, init_scale):
        n = ctx.n
        self.rng, self.n = ctx.rng, n
        self.lam = default_lambda(n) if lambda_ is None else int(lambda_)
        self.u = nes_utilities(self.lam)
        self.eta_mu = eta_mu
        self.mu = np.array(ctx.init(init_scale), dtype=np.float64)

    def _sorted_utilities(self, losses) -> np.ndarray:
        """u_k of each sample in ask order (the best sample gets u_1)."""
        w = np.empty(self.lam)
        w[np.argsort(losses, kind="stable")] = self.u
        return w


class SNES(_NES):
    """State: mu (n,), sigma (n,)."""

    def __init__(self, ctx: Context, *, sigma, lambda_, eta_mu, eta_sigma, init_scale):
        super().__init__(ctx, sigma, lambda_, eta_mu, init_scale)
        n = self.n
        self.eta_sigma = (3 + math.log(n)) / (5 * math.sqrt(n)) if eta_sigma is None else eta_sigma
        self.sigma = np.full(n, float(sigma))

    def ask(self) -> np.ndarray:
        self.s = self.rng.standard_normal((self.lam, self.n))
        return self.mu + self.sigma * self.s

    def tell(self, losses) -> None:
        w = self._sorted_utilities(losses)
        s = self.s
        g_mu = w @ s
        g_sigma = w @ (s * s - 1.0)
        self.mu += self.eta_mu * self.sigma * g_mu
        self.sigma *= np.exp(0.5 * self.eta_sigma * g_sigma)

    def stats(self) -> dict:
        return {"sigma_median": float(np.median(self.sigma))}


class XNES(_NES):
    """State: mu (n,), sigma (scalar), B (n, n) with det B = 1."""

    def __init__(self, ctx: Context, *, sigma, lambda_, eta_mu, eta_sigma, eta_B, init_scale):
        super().__init__(ctx, sigma, lambda_, eta_mu, init_scale)
        n = self.n
        default = 3 * (3 + math.log(n)) / (5 * n * math.sqrt(n))
        self.eta_sigma = default if eta_sigma is None else eta_sigma
        self.eta_B = default if eta_B is None else eta_B
        self.sigma = float(sigma)
        self.B = np.eye(n)

    def ask(self) -> np.ndarray:
        self.s = self.rng.standard_normal((self.lam, self.n))
        return self.mu + self.sigma * (self.s @ self.B.T)

    def tell(self, losses) -> None:
        w = self._sorted_utilities(losses)
        s, n = self.s, self.n
        g_delta = w @ s
        G_M = (s.T * w) @ s - w.sum() * np.eye(n)  # sum_k u_k (s_k s_k^T - I)
        g_sigma = np.trace(G_M) / n
        G_B = G_M - g_sigma * np.eye(n)
        self.mu += self.eta_mu * self.sigma * (self.B @ g_delta)
        self.sigma *= math.exp(0.5 * self.eta_sigma * g_sigma)
        d, V = np.linalg.eigh(0.5 * self.eta_B * G_B)  # expm of a symmetric matrix
        self.B = self.B @ ((V * np.exp(d)) @ V.T)

    def stats(self) -> dict:
        return {"sigma": self.sigma}


def check_xnes_size(hyper: dict, n: int) -> list[tuple[str, str]]:
    if n > XNES_MAX_N:
        return [
            (
                "n_params",
                f"xnes adapts a full n x n matrix with an O(n^3) eigendecomposition per "
                f"generation and accepts n_params <= {XNES_MAX_N}; this net has {n} (use snes, "
                "or cmaes with diagonal = true)",
            )
        ]
    return []


register_strategy(
    "snes",
    SNES,
    params=_params("sigma learning rate; None: (3 + ln n) / (5 sqrt n)"),
    label="SNES",
    color="#44AA99",  # teal (Tol)
    marker="p",
    order=11,
    doc="Separable NES (Schaul et al. 2011; Wierstra et al. 2014, Alg. 6).",
    tags=("nes",),
)
register_strategy(
    "xnes",
    XNES,
    params={
        **_params("sigma learning rate; None: 3 (3 + ln n) / (5 n sqrt n)"),
        "eta_B": Param(
            None, "float", lo=0.0, lo_open=True, allow_none=True, doc="B's; as eta_sigma"
        ),
    },
    check_net=check_xnes_size,
    label="xNES",
    color="#88CCEE",  # cyan (Tol)
    marker="H",
    order=12,
    doc="Exponential NES, full covariance (Glasmachers et al. 2010; Wierstra et al. 2014, Alg. 5).",
    tags=("nes",),
)
