"""PGPE: policy gradients with parameter-based exploration, with symmetric sampling.

Paper: Sehnke, Osendorfer, Rückstieß, Graves, Peters & Schmidhuber 2010, "Parameter-exploring
policy gradients", Neural Networks 23(4):551-559 -- sec. 2.3 (symmetric sampling) and 2.4
(reward normalisation); step sizes alpha_mu = 0.2, alpha_sigma = 0.1 as in its experiments.

Each parameter i has a mean mu_i and a standard deviation sigma_i. Per generation, ``pairs``
perturbations eps ~ N(0, diag(sigma^2)) (from the run's Generator) are evaluated
symmetrically, at mu + eps and mu - eps. With rewards r = -loss, the best reward seen so far m
and a baseline b (a moving average of the mean reward), the normalised updates are, averaged
over the pairs:

    mu_i    += alpha_mu    * eps_i (r+ - r-) / (2 m - r+ - r-)
    sigma_i += alpha_sigma * ((r+ + r-)/2 - b) / (m - b) * (eps_i^2 - sigma_i^2) / sigma_i

A pair whose normaliser is 0 (both at the best reward so far) contributes nothing.
``sigma_min`` (an addition of the toolkit) floors sigma so it stays positive.
"""

from __future__ import annotations

import numpy as np

from toolkit.params import Param
from toolkit.train.strategy import Context, Strategy, init_scale_param, register_strategy

PARAMS = {
    "pairs": Param(32, "int", lo=1, doc="symmetric pairs per generation (P = 2 pairs)"),
    "sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="initial std of every parameter"),
    "alpha_mu": Param(0.2, "float", lo=0.0, lo_open=True, doc="mean step size (paper: 0.2)"),
    "alpha_sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="std step size (paper: 0.1)"),
    "baseline_decay": Param(0.9, "float", lo=0.0, hi=1.0, hi_open=True, doc="b <- d b + (1-d) r"),
    "sigma_min": Param(1e-12, "float", lo=0.0, lo_open=True, doc="floor of sigma"),
    "init_scale": init_scale_param("first mean"),
}


class PGPE(Strategy):
    """State: mu (n,), sigma (n,), best reward m, baseline b."""

    def __init__(
        self, ctx: Context, *, pairs, sigma, alpha_mu, alpha_sigma, baseline_decay,
        sigma_min, init_scale,
    ):  # fmt: skip
        self.rng, self.pairs = ctx.rng, pairs
        self.a_mu, self.a_sigma, self.decay, self.sigma_min = (
            alpha_mu, alpha_sigma, baseline_decay, sigma_min
        )  # fmt: skip
        self.mu = np.array(ctx.init(init_scale), dtype=np.float64)
        self.sigma = np.full(ctx.n, float(sigma))
        self.m = -np.inf  # best reward so far
        self.b = None  # baseline
        self.X = np.empty((2 * pairs, ctx.n))

    def ask(self) -> np.ndarray:
        self.eps = self.rng.standard_normal((self.pairs, self.mu.shape[0])) * self.sigma
        np.add(self.mu, self.eps, out=self.X[: self.pairs])
        np.subtract(self.mu, self.eps, out=self.X[self.pairs :])
        return self.X

    def tell(self, losses) -> None:
        p = self.pairs
        r_plus, r_minus = -losses[:p], -losses[p:]
        finite = np.isfinite(r_plus) & np.isfinite(r_minus)
        if finite.any():
            self.m = max(self.m, float(np.max(np.maximum(r_plus, r_minus)[finite])))
        r_mean = 0.5 * (r_plus + r_minus)
        if self.b is None:
            self.b = float(np.mean(r_mean[finite])) if finite.any() else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            norm_mu = 2 * self.m - r_plus - r_minus
            c_mu = np.where(finite & (norm_mu > 0), (r_plus - r_minus) / norm_mu, 0.0)
            norm_s = self.m - self.b
            c_s = np.where(finite, (r_mean - self.b) / norm_s, 0.0) if norm_s > 0 else 0 * r_mean
        eps, s = self.eps, self.sigma
        self.mu += self.a_mu * (c_mu @ eps) / p
        d_sigma = self.a_sigma * (c_s @ ((eps * eps - s * s) / s)) / p
        self.sigma = np.maximum(s + d_sigma, self.sigma_min)
        if finite.any():
            self.b = self.decay * self.b + (1 - self.decay) * float(np.mean(r_mean[finite]))

    def stats(self) -> dict:
        return {"sigma_median": float(np.median(self.sigma))}


register_strategy(
    "pgpe",
    PGPE,
    params=PARAMS,
    label="PGPE",
    color="#CC6677",  # rose (Tol)
    marker="d",
    order=13,
    doc="PGPE with symmetric sampling and reward normalisation (Sehnke et al. 2010).",
    tags=("nes",),
)
