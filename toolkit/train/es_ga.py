"""A real-coded genetic algorithm: DEAP's ``eaSimple`` with elitism through a hall of fame.

Papers: Bäck, Fogel & Michalewicz 2000, "Evolutionary Computation 1: Basic Algorithms and
Operators", ch. 7 (the generational loop of ``deap.algorithms.eaSimple``); Eshelman & Schaffer
1993, "Real-coded genetic algorithms and interval-schemata" (blend crossover BLX-alpha);
Montana & Davis 1989, "Training feedforward neural networks using genetic algorithms" (GAs on
network weights).

Per generation: tournament selection (``selTournament``) of ``pop_size`` parents,
``varAnd`` (pairwise crossover with probability ``cxpb`` -- blend or two-point, both
copy-safe for NumPy individuals -- then Gaussian mutation with probability ``mutpb``), one
``net.population_loss`` call for the changed individuals, then elitism: the ``elite`` worst
offspring are replaced by the hall of fame (``tools.HallOfFame(similar=numpy.array_equal)``,
the best individuals ever seen). Selection and ``varAnd`` are DEAP's code in ``es_common``
(``sel_tournament``, ``var_and``), drawing from the run's private ``random.Random`` instead of
Python's global ``random``; no global random state is used.
"""

from __future__ import annotations

import numpy as np
from deap import base, tools

from toolkit.params import Param
from toolkit.train.es_common import (
    as_matrix,
    clone,
    cx_blend,
    cx_two_point,
    individual,
    mut_gaussian,
    sel_tournament,
    var_and,
)
from toolkit.train.strategy import Context, Evolution, Strategy, init_scale_param, register_strategy

PARAMS = {
    "pop_size": Param(100, "int", lo=2, doc="population size"),
    "tournsize": Param(3, "int", lo=1, doc="tournament size"),
    "cxpb": Param(0.5, "float", lo=0.0, hi=1.0, doc="probability that a pair is crossed (varAnd)"),
    "mutpb": Param(0.2, "float", lo=0.0, hi=1.0, doc="probability that one is mutated (varAnd)"),
    "crossover": Param(
        "blend", "choice", choices=("blend", "two_point"), doc="BLX-alpha or two-point"
    ),
    "alpha": Param(0.5, "float", lo=0.0, doc="BLX-alpha extent"),
    "mut_sigma": Param(0.1, "float", lo=0.0, lo_open=True, doc="std of the Gaussian mutation"),
    "mut_indpb": Param(
        0.1, "float", lo=0.0, hi=1.0, lo_open=True, doc="probability a gene mutates"
    ),
    "elite": Param(1, "int", lo=0, doc="hall-of-fame size kept every generation (0: none)"),
    "init_scale": init_scale_param("population"),
}


def check(h: dict) -> list[tuple[str, str]]:
    """Cross-parameter constraints: some variation, elite < pop_size."""
    if h["cxpb"] + h["mutpb"] <= 0:
        return [("cxpb", "cxpb + mutpb must be > 0 (no variation), got 0")]
    if h["elite"] >= h["pop_size"]:
        return [("elite", f"expected < pop_size ({h['pop_size']}), got {h['elite']}")]
    return []


class GA(Strategy):
    """DEAP's ``eaSimple`` as ask/tell: ask = selection + ``varAnd`` (the changed individuals
    only; generation 0: the initial population), tell = fitness, hall of fame, elitism."""

    def __init__(
        self,
        ctx: Context,
        *,
        pop_size,
        tournsize,
        cxpb,
        mutpb,
        crossover,
        alpha,
        mut_sigma,
        mut_indpb,
        elite,
        init_scale,
    ):
        rng, self.rnd = ctx.rng, ctx.random  # private: selection and varAnd draw from rnd
        self.n, self.cxpb, self.mutpb, self.elite = ctx.n, cxpb, mutpb, elite
        tb = self.tb = base.Toolbox()
        tb.register("clone", clone)  # deepcopy's result, without deepcopy's cost
        if crossover == "blend":
            tb.register("mate", cx_blend, alpha=alpha, rng=rng)
        else:
            tb.register("mate", cx_two_point, rng=rng)
        tb.register("mutate", mut_gaussian, sigma=mut_sigma, indpb=mut_indpb, rng=rng)
        tb.register("select", sel_tournament, tournsize=tournsize, rnd=self.rnd)
        self.hof = tools.HallOfFame(elite, similar=np.array_equal) if elite else None
        self.population = [individual(ctx.init(init_scale)) for _ in range(pop_size)]
        self.gen = 0

    def ask(self) -> np.ndarray:
        if self.gen == 0:
            self.offspring = self.population
        else:
            offspring = self.tb.select(self.population, len(self.population))
            self.offspring = var_and(offspring, self.tb, self.cxpb, self.mutpb, self.rnd)
        self.invalid = [ind for ind in self.offspring if not ind.fitness.valid]
        return as_matrix(self.invalid) if self.invalid else np.empty((0, self.n))

    def tell(self, losses) -> None:
        Evolution.assign(self.invalid, losses)
        offspring, hof = self.offspring, self.hof
        self.gen += 1
        if hof is not None:
            hof.update(offspring)
        if offspring is self.population:  # generation 0: the initial population
            return
        if hof is not None:
            worst = sorted(range(len(offspring)), key=lambda i: offspring[i].fitness)[: self.elite]
            for i, best in zip(worst, hof, strict=False):
                offspring[i] = self.tb.clone(best)
        self.population[:] = offspring


register_strategy(
    "ga",
    GA,
    params=PARAMS,
    check=check,
    label="GA",
    color="#999933",  # olive (Tol)
    marker="h",
    order=8,
    doc="Real-coded GA (DEAP eaSimple: tournament, blend/two-point crossover, Gaussian "
    "mutation) with hall-of-fame elitism.",
    tags=("deap", "ga"),
)
