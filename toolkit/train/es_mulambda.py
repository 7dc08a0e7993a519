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

import numpy as np
from deap import base, tools

from toolkit.params import Param
from toolkit.train.es_common import (
    Evolution,
    as_matrix,
    cx_es_blend,
    individual,
    init_scale_param,
    mut_es_lognormal,
    run_streams,
    var_or,
)
from toolkit.train.registry import Method, register


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


def _trainer(comma: bool):
    def train(
        net,
        data,
        *,
        rng,
        seed_seq,
        budget,
        target_loss=None,
        solved=None,
        trace,
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
        rnd, _ = run_streams(seed_seq)  # private: varOr draws from it
        evo = Evolution(
            net, data, budget=budget, target_loss=target_loss, solved=solved, trace=trace
        )
        n = int(net.n_params)
        tb = base.Toolbox()
        tb.register("mate", cx_es_blend, alpha=alpha, sigma_min=sigma_min, rng=rng)
        tb.register("mutate", mut_es_lognormal, c=c, indpb=indpb, sigma_min=sigma_min, rng=rng)

        population = []
        for _ in range(mu):
            ind = individual(net.init(rng, scale=init_scale))
            ind.strategy = np.full(n, float(sigma))
            population.append(ind)

        def evaluate(pop) -> bool:
            invalid = [ind for ind in pop if not ind.fitness.valid]
            X = as_matrix(invalid) if invalid else np.empty((0, n))
            losses = evo.evaluate(X)
            evo.assign(invalid, losses)
            med = float(np.median([ind.strategy for ind in population]))
            return evo.tell(X, losses, median_step=med)

        if evaluate(population):  # generation 0: the parents
            return evo.finish()
        while True:
            offspring = var_or(population, tb, lambda_, cxpb, mutpb, rnd)
            if evaluate(offspring):
                return evo.finish()
            pool = offspring if comma else population + offspring
            population[:] = tools.selBest(pool, mu)

    return train


for _name, _comma, _paper, _style in (
    ("es_comma", True, "(mu, lambda)", ("(μ,λ)-ES", "#E69F00", "P", 6)),  # orange
    ("es_plus", False, "(mu + lambda)", ("(μ+λ)-ES", "#882255", "X", 7)),  # wine (Tol)
):
    register(
        Method(
            name=_name,
            family="evolution",
            params=PARAMS,
            check=_check(_comma),
            train=_trainer(_comma),
            doc=f"{_paper}-ES with self-adaptive per-gene step sizes (Beyer & Schwefel 2002), "
            "DEAP's varOr / strategy-vector pattern.",
            tags=("deap", "es"),
            **dict(zip(("label", "color", "marker", "order"), _style, strict=True)),
        )
    )
