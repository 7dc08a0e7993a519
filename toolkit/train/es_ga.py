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

from toolkit.train.es_common import (
    Evolution,
    as_choice,
    as_float,
    as_int,
    as_matrix,
    check_keys,
    cx_blend,
    cx_two_point,
    individual,
    mut_gaussian,
    run_streams,
    sel_tournament,
    var_and,
)
from toolkit.train.registry import Method, register

DEFAULTS = {
    "pop_size": 100,  # population size
    "tournsize": 3,  # tournament size
    "cxpb": 0.5,  # probability that a pair is crossed (varAnd)
    "mutpb": 0.2,  # probability that an individual is mutated (varAnd)
    "crossover": "blend",  # blend (BLX-alpha) | two_point
    "alpha": 0.5,  # BLX-alpha extent
    "mut_sigma": 0.1,  # std of the Gaussian mutation
    "mut_indpb": 0.1,  # probability that a gene is mutated
    "elite": 1,  # hall-of-fame size copied into every generation (0: no elitism)
    "init_scale": None,  # population drawn from net.init(rng, scale=init_scale)
}


def validate(hyper: dict) -> dict:
    m = "ga"
    h = check_keys(m, DEFAULTS, hyper)
    p = as_int(m, h, "pop_size", 2)
    as_int(m, h, "tournsize", 1)
    as_float(m, h, "cxpb", 0.0, lo_open=False, hi=1.0)
    as_float(m, h, "mutpb", 0.0, lo_open=False, hi=1.0)
    if h["cxpb"] + h["mutpb"] <= 0:
        raise ValueError(f"{m}: cxpb + mutpb must be > 0 (no variation), got 0")
    as_choice(m, h, "crossover", ("blend", "two_point"))
    as_float(m, h, "alpha", 0.0, lo_open=False)
    as_float(m, h, "mut_sigma", 0.0)
    as_float(m, h, "mut_indpb", 0.0, hi=1.0)
    e = as_int(m, h, "elite", 0)
    if e >= p:
        raise ValueError(f"{m}: elite must be < pop_size ({p}), got {e}")
    as_float(m, h, "init_scale", 0.0, none_ok=True)
    return h


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
    pop_size=100,
    tournsize=3,
    cxpb=0.5,
    mutpb=0.2,
    crossover="blend",
    alpha=0.5,
    mut_sigma=0.1,
    mut_indpb=0.1,
    elite=1,
    init_scale=None,
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
        defaults=dict(DEFAULTS),
        label="GA",
        color="#999933",  # olive (Tol)
        marker="h",
        order=8,
        validate=validate,
        train=train,
        doc="Real-coded GA (DEAP eaSimple: tournament, blend/two-point crossover, Gaussian "
        "mutation) with hall-of-fame elitism.",
        tags=("deap", "ga"),
    )
)
