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
    Evolution,
    as_matrix,
    cx_blend,
    cx_two_point,
    individual,
    init_scale_param,
    mut_gaussian,
    run_streams,
    sel_tournament,
    var_and,
)
from toolkit.train.registry import Method, register

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
    rnd, _ = run_streams(seed_seq)  # private: selection and varAnd draw from it
    evo = Evolution(net, data, budget=budget, target_loss=target_loss, solved=solved, trace=trace)
    n = int(net.n_params)
    tb = base.Toolbox()
    if crossover == "blend":
        tb.register("mate", cx_blend, alpha=alpha, rng=rng)
    else:
        tb.register("mate", cx_two_point, rng=rng)
    tb.register("mutate", mut_gaussian, sigma=mut_sigma, indpb=mut_indpb, rng=rng)
    tb.register("select", sel_tournament, tournsize=tournsize, rnd=rnd)
    hof = tools.HallOfFame(elite, similar=np.array_equal) if elite else None

    def evaluate(pop) -> bool:
        invalid = [ind for ind in pop if not ind.fitness.valid]
        X = as_matrix(invalid) if invalid else np.empty((0, n))
        losses = evo.evaluate(X)
        evo.assign(invalid, losses)
        return evo.tell(X, losses)

    population = [individual(net.init(rng, scale=init_scale)) for _ in range(pop_size)]
    if evaluate(population):
        return evo.finish()
    if hof is not None:
        hof.update(population)
    while True:
        offspring = tb.select(population, len(population))
        offspring = var_and(offspring, tb, cxpb, mutpb, rnd)
        if evaluate(offspring):
            return evo.finish()
        if hof is not None:
            hof.update(offspring)
            worst = sorted(range(len(offspring)), key=lambda i: offspring[i].fitness)[:elite]
            for i, best in zip(worst, hof, strict=False):
                offspring[i] = tb.clone(best)
        population[:] = offspring


register(
    Method(
        name="ga",
        family="evolution",
        params=PARAMS,
        check=check,
        label="GA",
        color="#999933",  # olive (Tol)
        marker="h",
        order=8,
        train=train,
        doc="Real-coded GA (DEAP eaSimple: tournament, blend/two-point crossover, Gaussian "
        "mutation) with hall-of-fame elitism.",
        tags=("deap", "ga"),
    )
)
