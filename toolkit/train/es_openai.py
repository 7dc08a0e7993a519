"""OpenAI-ES: the natural-evolution-strategy gradient estimate fed to a first-order optimizer.

Paper: Salimans, Ho, Chen, Sidor & Sutskever 2017, "Evolution strategies as a scalable
alternative to reinforcement learning", arXiv:1703.03864 (Algorithm 1 and sec. 2.2), and its
reference code (openai/evolution-strategies-starter).

Per generation, P/2 directions eps_i ~ N(0, I_n) are drawn from the run's Generator and
evaluated *mirrored* (antithetic sampling): theta + sigma eps_i and theta - sigma eps_i. The
losses are replaced by their centred ranks u in [-0.5, 0.5] (fitness shaping), and the loss
gradient is estimated as g = sum_i (u_i^+ - u_i^-) eps_i / P (the reference code's
``batched_weighted_sum`` divided by the number of returns), plus L2 weight decay
``weight_decay * theta``; g goes to Adam (Kingma & Ba 2015; the paper's choice) or SGD with
momentum. The paper's defaults: sigma = 0.02, Adam step size 0.01, L2 coefficient 0.005.
The run's answer is the best sampled theta (the loop keeps it); theta itself is not evaluated.
"""

from __future__ import annotations

import numpy as np

from toolkit.params import Param
from toolkit.train.optim import SGD, Adam
from toolkit.train.shaping import centered_ranks
from toolkit.train.strategy import Context, Strategy, init_scale_param, register_strategy

PARAMS = {
    "pop_size": Param(64, "int", lo=2, doc="P, even: P/2 mirrored pairs per generation"),
    "sigma": Param(0.02, "float", lo=0.0, lo_open=True, doc="noise std (the paper: 0.02)"),
    "lr": Param(0.01, "float", lo=0.0, lo_open=True, doc="optimizer step size (paper: 0.01)"),
    "optimizer": Param("adam", "choice", choices=("adam", "momentum"), doc="Adam or SGD+momentum"),
    "momentum": Param(0.9, "float", lo=0.0, hi=1.0, hi_open=True, doc="for optimizer=momentum"),
    "beta1": Param(0.9, "float", lo=0.0, hi=1.0, hi_open=True, doc="Adam"),
    "beta2": Param(0.999, "float", lo=0.0, hi=1.0, hi_open=True, doc="Adam"),
    "weight_decay": Param(0.005, "float", lo=0.0, doc="L2 coefficient (paper: 0.005; 0: none)"),
    "init_scale": init_scale_param("theta"),
}


def check(h: dict) -> list[tuple[str, str]]:
    if h["pop_size"] % 2:
        return [("pop_size", f"must be even (mirrored pairs), got {h['pop_size']}")]
    return []


class OpenAIES(Strategy):
    """State: theta (n,), the optimizer's moments, the last directions eps (P/2, n)."""

    def __init__(
        self, ctx: Context, *, pop_size, sigma, lr, optimizer, momentum, beta1, beta2,
        weight_decay, init_scale,
    ):  # fmt: skip
        self.rng, self.half, self.sigma, self.lr = ctx.rng, pop_size // 2, sigma, lr
        self.wd = weight_decay
        self.theta = np.array(ctx.init(init_scale), dtype=np.float64)
        self.opt = Adam(beta1, beta2) if optimizer == "adam" else SGD(momentum)
        self.X = np.empty((2 * self.half, ctx.n))

    def ask(self) -> np.ndarray:
        self.eps = self.rng.standard_normal((self.half, self.theta.shape[0]))
        h, X, step = self.half, self.X, self.sigma * self.eps
        np.add(self.theta, step, out=X[:h])
        np.subtract(self.theta, step, out=X[h:])
        return X

    def tell(self, losses) -> None:
        u = centered_ranks(losses)
        h = self.half
        g = (u[:h] - u[h:]) @ self.eps
        g /= 2 * h
        if self.wd:
            g += self.wd * self.theta
        self.opt.step(self.theta, g, self.lr)

    def stats(self) -> dict:
        return {"theta_norm": float(np.linalg.norm(self.theta))}


register_strategy(
    "openai_es",
    OpenAIES,
    params=PARAMS,
    check=check,
    label="OpenAI-ES",
    color="#117733",  # green (Tol)
    marker="8",
    order=10,
    doc="OpenAI-ES (Salimans et al. 2017): mirrored sampling, centred ranks, Adam.",
    tags=("nes",),
)
