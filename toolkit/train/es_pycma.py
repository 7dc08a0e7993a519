"""The reference CMA-ES: pycma (the ``cma`` package) as an ask/tell strategy, IPOP and BIPOP.

Papers: Hansen & Ostermeier 2001 (CMA-ES); Hansen 2016, "The CMA evolution strategy: a
tutorial", arXiv:1604.00772 (pycma is its author's reference implementation, with its default
parameters, termination criteria and lazy eigendecomposition); Auger & Hansen 2005, "A restart
CMA evolution strategy with increasing population size", CEC (IPOP); Hansen 2009,
"Benchmarking a BI-population CMA-ES on the BBOB-2009 function testbed", GECCO workshop
(BIPOP).

``cma.CMAEvolutionStrategy`` is built with ``seed = nan`` (pycma then seeds nothing global)
and ``randn`` drawing from the run's Generator, so sampling is seeded from the run's stream
and global random state is never touched; logging and display are off. Each (re)start takes its
mean from ``net.init(rng, scale=init_scale)``. A restart happens when one of pycma's own
termination criteria fires (its ``stop()``): with ``restart_mode = "ipop"`` the population is
multiplied by ``incpopsize`` while fewer than ``restarts`` increases were made, then kept;
with ``"bipop"`` (Hansen 2009) the restart alternates between the large-population regime
(IPOP's increase, initial sigma) and a small one, lambda_s = floor(lambda_def (lambda_l /
(2 lambda_def))^(U^2)), sigma_s = sigma 10^(-2 U), U ~ U(0, 1) from the run's Generator, run
whenever the small regime has used fewer evaluations than the large one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from toolkit.params import Param
from toolkit.train.strategy import Context, Strategy, init_scale_param, register_strategy

PARAMS = {
    "sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="initial step size (sigma0)"),
    "lambda_": Param(None, "int", lo=2, allow_none=True, doc="population; None: 4 + ⌊3 ln n⌋"),
    "diagonal": Param(False, "bool", doc="pycma's CMA_diagonal: sep-CMA-ES throughout"),
    "restart_mode": Param(
        "ipop", "choice", choices=("ipop", "bipop"), doc="restart scheme on termination"
    ),
    "restarts": Param(0, "int", lo=0, doc="population increases (IPOP, BIPOP's large regime)"),
    "incpopsize": Param(2.0, "float", lo=1.0, doc="population factor per increase"),
    "init_scale": init_scale_param("first mean"),
}


def _options(ctx: Context, lam: int, diagonal: bool) -> dict:
    rng = ctx.rng
    return {
        "popsize": lam,
        "seed": math.nan,  # pycma seeds nothing global
        "randn": lambda *shape: rng.standard_normal(shape),
        "verbose": -9,
        "verb_disp": 0,
        "verb_log": 0,
        "verb_time": False,
        "CMA_diagonal": bool(diagonal),
    }


class PyCMA(Strategy):
    """ask/tell on ``cma.CMAEvolutionStrategy``; ``stop()`` is pycma's termination."""

    def __init__(
        self, ctx: Context, *, sigma, lambda_, diagonal, restart_mode, restarts, incpopsize,
        init_scale,
    ):  # fmt: skip
        import cma

        n, mem = ctx.n, ctx.memory
        lam_def = 4 + int(3 * math.log(n)) if lambda_ is None else int(lambda_)
        if ctx.restart == 0:
            mem.update(large=0, small=0, increases=0, regime="large")
            lam, sigma0 = lam_def, sigma
        else:
            small = restart_mode == "bipop" and mem["small"] < mem["large"]
            if not small:
                mem["increases"] = min(mem["increases"] + 1, restarts)
            lam_large = max(2, int(round(lam_def * incpopsize ** mem["increases"])))
            if small:
                u = ctx.rng.random(2)
                lam = max(2, int(math.floor(lam_def * (0.5 * lam_large / lam_def) ** (u[0] ** 2))))
                sigma0 = sigma * 10.0 ** (-2.0 * u[1])
            else:
                lam, sigma0 = lam_large, sigma
            mem["regime"] = "small" if small else "large"
        self.mem, self.lam = mem, lam
        x0 = np.array(ctx.init(init_scale), dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pycma's notes on unusual options
            self.es = cma.CMAEvolutionStrategy(x0, sigma0, _options(ctx, lam, diagonal))

    def ask(self) -> np.ndarray:
        self.X = np.array(self.es.ask(), dtype=np.float64)
        return self.X

    def tell(self, losses) -> None:
        self.mem[self.mem["regime"]] += int(losses.shape[0])
        f = np.asarray(losses, dtype=np.float64)
        if not np.isfinite(f).all():  # pycma needs numbers: non-finite ranks last
            finite = f[np.isfinite(f)]
            top = float(finite.max()) if finite.size else 0.0
            f = np.where(np.isfinite(f), f, top + 1.0 + abs(top))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.es.tell(list(self.X), f.tolist())

    def stop(self) -> str | None:
        reasons = self.es.stop()
        return min(reasons) if reasons else None

    def stats(self) -> dict:
        return {"sigma": float(self.es.sigma), "lambda_": self.lam}


register_strategy(
    "cmaes_pycma",
    PyCMA,
    params=PARAMS,
    label="CMA-ES (pycma)",
    color="#DDCC77",  # sand (Tol)
    marker=">",
    order=6,
    doc="The reference CMA-ES, pycma (Hansen 2016), with IPOP (Auger & Hansen 2005) and BIPOP "
    "(Hansen 2009) restarts.",
    tags=("cma",),
    restarts=True,
)
