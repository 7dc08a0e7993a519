"""(mu, lambda)- and (mu + lambda)-evolution strategies with self-adaptive per-gene step sizes.

Papers: Schwefel 1981/1995, "Numerical optimization of computer models" / "Evolution and optimum
seeking"; Beyer & Schwefel 2002, "Evolution strategies -- A comprehensive introduction", Natural
Computing 1(1) (log-normal self-adaptation of n step sizes, eq. 15).

The loop is DEAP's ``eaMuCommaLambda`` / ``eaMuPlusLambda`` with its strategy-vector pattern
(examples/es/fctmin.py): every individual carries a ``strategy`` vector of step sizes; offspring
come from ``varOr`` -- blend crossover of genes and step sizes (``cxESBlend``), or log-normal
self-adaptive mutation (``mutESLogNormal``), or reproduction -- and the mu best of the offspring
(comma) or of parents + offspring (plus) survive (``tools.selBest``). ``varOr`` is DEAP's code
in ``es_common.var_or``, drawing from the run's private ``random.Random``: no global random
state is used. Only the offspring with an invalid fitness are evaluated, all in one
``net.population_loss`` call; a reproduced individual keeps its fitness and costs nothing (the
loss on fixed data is deterministic). The operators are copy-safe NumPy versions of DEAP's
(``es_common``).

Defaults: every offspring is a mutant (cxpb=0, mutpb=1), Schwefel's ES without recombination;
on teacher-student fits of 2- and 8-unit Elman nets the DEAP example's cxpb=0.6, mutpb=0.3
ended 2-20x higher in loss at equal evaluations. Set cxpb > 0 for blend recombination.
"""

from __future__ import annotations

import math

import numpy as np
from deap import base, tools

from toolkit.params import Param
from toolkit.train import es_common
from toolkit.train.es_common import (
    as_matrix,
    clone,
    cx_es_blend,
    individual,
    mut_es_lognormal,
    var_or,
)
from toolkit.train.strategy import Context, Evolution, Strategy, init_scale_param, register_strategy


def _unit(default, doc, lo_open=False):
    return Param(default, "float", lo=0.0, hi=1.0, lo_open=lo_open, doc=doc)


PARAMS = {
    "mu": Param(15, "int", lo=1, doc="parents"),
    "lambda_": Param(100, "int", lo=2, doc="offspring per generation"),
    "sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="initial step size of every gene"),
    "cxpb": _unit(0.0, "probability that an offspring comes from crossover (varOr)"),
    "mutpb": _unit(1.0, "... from mutation; reproduction otherwise (cxpb + mutpb <= 1)"),
    "alpha": Param(0.1, "float", lo=0.0, doc="blend-crossover extent (cxESBlend)"),
    "c": Param(1.0, "float", lo=0.0, lo_open=True, doc="log-normal rule: tau0 = c/sqrt(2n), ..."),
    "indpb": _unit(1.0, "probability that a gene (and its step size) is mutated", lo_open=True),
    "sigma_min": Param(1e-10, "float", lo=0.0, doc="floor of the step sizes"),
    "init_scale": init_scale_param("parents"),
}


def _check(comma: bool):
    def check(h: dict) -> list[tuple[str, str]]:
        if comma and h["mu"] > h["lambda_"]:
            return [
                (
                    "mu",
                    f"mu must be <= lambda_ for the comma strategy, got mu={h['mu']} "
                    f"> lambda_={h['lambda_']}",
                )
            ]
        if not 0.0 < h["cxpb"] + h["mutpb"] <= 1.0:
            return [("cxpb", f"cxpb + mutpb must be in (0, 1], got {h['cxpb'] + h['mutpb']!r}")]
        if h["mu"] < 2 and h["cxpb"] > 0:
            return [("cxpb", "must be 0 when mu < 2 (crossover needs 2 parents)")]
        return []

    return check


class MuLambda(Strategy):
    """DEAP's ``eaMuCommaLambda`` / ``eaMuPlusLambda`` as ask/tell: ask = ``varOr`` offspring
    (the ones without a fitness; generation 0: the parents), tell = fitness, then the mu best
    of the offspring (comma) or of parents + offspring (plus) survive (``tools.selBest``)."""

    def __init__(
        self,
        ctx: Context,
        *,
        comma,
        mu,
        lambda_,
        sigma,
        cxpb,
        mutpb,
        alpha,
        c,
        indpb,
        sigma_min,
        init_scale,
    ):
        rng, self.rnd = ctx.rng, ctx.random  # private: varOr draws from rnd
        self.n, self.comma, self.mu, self.lambda_ = ctx.n, comma, mu, lambda_
        self.cxpb, self.mutpb = cxpb, mutpb
        tb = self.tb = base.Toolbox()
        tb.register("clone", clone)  # deepcopy's result, without deepcopy's cost
        tb.register("mate", cx_es_blend, alpha=alpha, sigma_min=sigma_min, rng=rng)
        tb.register("mutate", mut_es_lognormal, c=c, indpb=indpb, sigma_min=sigma_min, rng=rng)
        self.population = []
        for _ in range(mu):
            ind = individual(ctx.init(init_scale))
            ind.strategy = np.full(ctx.n, float(sigma))
            self.population.append(ind)
        self.offspring = None
        # every offspring a mutant of all genes (the defaults): the same draws and arithmetic
        # on arrays, one Generator call per generation instead of DEAP individuals
        self.fast = cxpb == 0.0 and mutpb == 1.0 and indpb >= 1.0
        if self.fast:
            self.rng, self.sigma_min = rng, sigma_min
            self.tau = c / math.sqrt(2.0 * math.sqrt(ctx.n))
            self.tau0 = c / math.sqrt(2.0 * ctx.n)
            self.px = np.array(self.population, dtype=np.float64)  # parents (mu, n)
            self.ps = np.array([ind.strategy for ind in self.population])  # their steps
            self.pf = None  # their losses
            self.ox = None
            self.parents = (
                es_common.MutantParents(self.rnd, mu) if es_common.mutant_draws_match() else None
            )

    def ask(self) -> np.ndarray:
        if self.fast:
            return self._ask_fast()
        if self.offspring is None:  # generation 0: the parents
            self.offspring = self.population
        else:
            self.offspring = var_or(
                self.population, self.tb, self.lambda_, self.cxpb, self.mutpb, self.rnd
            )
        self.invalid = [ind for ind in self.offspring if not ind.fitness.valid]
        return as_matrix(self.invalid) if self.invalid else np.empty((0, self.n))

    def stats(self) -> dict:
        if self.fast:
            return {"median_step": float(np.median(self.ps))}
        return {"median_step": float(np.median([ind.strategy for ind in self.population]))}

    def _ask_fast(self) -> np.ndarray:
        """varOr with cxpb = 0, mutpb = 1 and mutESLogNormal with indpb = 1, vectorised: per
        offspring varOr's draws from ``rnd`` (op choice, parent), then ``mut_es_lognormal``'s
        1 + 2n normals in one (lambda, 1 + 2n) block (the same numbers the per-offspring calls
        draw, in the same order)."""
        if self.pf is None:  # generation 0: the parents
            return self.px
        rnd, mu, n = self.rnd, self.mu, self.n
        if self.parents is not None:  # the same draws, compiled (es_common.MutantParents)
            js = self.parents.draw(self.lambda_)
        else:
            js = np.empty(self.lambda_, dtype=np.intp)
            for i in range(self.lambda_):
                rnd.random()  # varOr's op choice: always mutation here
                js[i] = rnd.choice(range(mu))
        Z = self.rng.standard_normal((self.lambda_, 1 + 2 * n))
        g0 = self.tau0 * Z[:, :1]
        self.os = np.maximum(self.ps[js] * np.exp(g0 + self.tau * Z[:, 1 : n + 1]), self.sigma_min)
        self.ox = self.px[js] + self.os * Z[:, n + 1 :]
        return self.ox

    def _tell_fast(self, losses) -> None:
        if self.pf is None:
            self.pf = np.array(losses, dtype=np.float64)
            return
        if self.comma:
            fx, fs, ff = self.ox, self.os, losses
        else:
            fx = np.concatenate([self.px, self.ox])
            fs = np.concatenate([self.ps, self.os])
            ff = np.concatenate([self.pf, losses])
        best = np.argsort(ff, kind="stable")[: self.mu]  # selBest: DEAP's stable sort
        self.px, self.ps, self.pf = fx[best], fs[best], ff[best]

    def tell(self, losses) -> None:
        if self.fast:
            return self._tell_fast(losses)
        Evolution.assign(self.invalid, losses)
        offspring = self.offspring
        if offspring is self.population:  # generation 0
            return
        pool = offspring if self.comma else self.population + offspring
        self.population[:] = tools.selBest(pool, self.mu)


def _make(comma: bool):
    def make(ctx: Context, **hyper) -> MuLambda:
        return MuLambda(ctx, comma=comma, **hyper)

    return make


for _name, _comma, _paper, _style in (
    ("es_comma", True, "(mu, lambda)", ("(μ,λ)-ES", "#E69F00", "P", 6)),  # orange
    ("es_plus", False, "(mu + lambda)", ("(μ+λ)-ES", "#882255", "X", 7)),  # wine (Tol)
):
    register_strategy(
        _name,
        _make(_comma),
        params=PARAMS,
        check=_check(_comma),
        doc=f"{_paper}-ES with self-adaptive per-gene step sizes (Beyer & Schwefel 2002), "
        "DEAP's varOr / strategy-vector pattern.",
        tags=("deap", "es"),
        **dict(zip(("label", "color", "marker", "order"), _style, strict=True)),
    )
