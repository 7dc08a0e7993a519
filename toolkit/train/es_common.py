"""What every evolutionary baseline shares: DEAP classes, random streams, batched fitness, stopping.

* :data:`Individual` -- a ``numpy.ndarray`` genome (the flat ``theta``) with a minimising
  ``fitness`` and an optional per-gene ``strategy`` vector (evolution strategies). The classes are
  created at module top level so that loky workers (spawned processes) can unpickle individuals.
* :func:`run_streams` (defined in :mod:`toolkit.train.strategy`) -- the run's private
  ``random.Random`` and ``numpy.random.RandomState``, seeded from its own ``SeedSequence``. No
  run reads or writes global random state (Python's ``random`` module, the legacy
  ``numpy.random`` functions), so two runs in threads of one process (a dask worker with
  several threads) cannot disturb each other.
* Local versions of the DEAP functions that draw randomness (:func:`sel_random`,
  :func:`sel_tournament`, :func:`var_and`, :func:`var_or`): the same code as DEAP's, making the
  same draws in the same order, but from the run's private ``random.Random`` instead of the
  ``random`` module -- so results are those DEAP gives after ``random.seed(...)`` with the same
  seed. DEAP stays the engine where it draws nothing (Toolbox, HallOfFame, selBest, Logbook,
  ``cma.Strategy``'s parameters and update).
* :class:`Evolution` (defined in :mod:`toolkit.train.strategy`, the one generation loop every
  population method runs on) -- evaluates a whole generation in one ``net.population_loss``
  call, charges the cost to the :class:`~toolkit.train.trace.Trace`, keeps DEAP's Logbook and
  decides when the run stops.
* Copy-safe variation operators for NumPy individuals. DEAP's ``tools`` crossovers swap slices,
  which are *views* for NumPy arrays, so one child silently keeps its genes (DEAP tutorial
  "Inheriting from Numpy"); the operators here copy before they write and draw their numbers
  from the run's ``numpy.random.Generator`` (vectorised, one call per individual).
"""

from __future__ import annotations

import functools
import math
import random
from operator import attrgetter

import numpy as np
from deap import base, creator
from numba import njit

from toolkit.train.strategy import Evolution, init_scale_param, run_streams

__all__ = ["Evolution", "init_scale_param", "run_streams"]  # re-exported (moved to strategy)

# -- DEAP classes (module top level: picklable in loky workers) ---------------------------------
FITNESS_NAME = "BpttFitnessMin"
INDIVIDUAL_NAME = "BpttIndividual"
if not hasattr(creator, FITNESS_NAME):
    creator.create(FITNESS_NAME, base.Fitness, weights=(-1.0,))
if not hasattr(creator, INDIVIDUAL_NAME):
    # strategy: per-gene step sizes of an evolution strategy (None for the other methods)
    creator.create(
        INDIVIDUAL_NAME, np.ndarray, fitness=getattr(creator, FITNESS_NAME), strategy=None
    )
Fitness = getattr(creator, FITNESS_NAME)
Individual = getattr(creator, INDIVIDUAL_NAME)


# -- DEAP's randomised selection and variation, drawing from a private random.Random ------------
def sel_random(individuals, k: int, rnd: random.Random) -> list:
    """``deap.tools.selRandom`` with ``rnd``: k individuals chosen with replacement."""
    return [rnd.choice(individuals) for _ in range(k)]


def sel_tournament(individuals, k: int, tournsize: int, rnd: random.Random) -> list:
    """``deap.tools.selTournament`` with ``rnd``: k times the best of ``tournsize`` random
    individuals (references, not copies)."""
    chosen = []
    for _ in range(k):
        aspirants = sel_random(individuals, tournsize, rnd)
        chosen.append(max(aspirants, key=attrgetter("fitness")))
    return chosen


def var_and(population, toolbox, cxpb: float, mutpb: float, rnd: random.Random) -> list:
    """``deap.algorithms.varAnd`` with ``rnd``: clone all; cross consecutive pairs with
    probability ``cxpb``, then mutate each with probability ``mutpb`` (Bäck, Fogel &
    Michalewicz 2000); changed individuals lose their fitness."""
    offspring = [toolbox.clone(ind) for ind in population]
    for i in range(1, len(offspring), 2):
        if rnd.random() < cxpb:
            offspring[i - 1], offspring[i] = toolbox.mate(offspring[i - 1], offspring[i])
            del offspring[i - 1].fitness.values, offspring[i].fitness.values
    for i in range(len(offspring)):
        if rnd.random() < mutpb:
            (offspring[i],) = toolbox.mutate(offspring[i])
            del offspring[i].fitness.values
    return offspring


def var_or(population, toolbox, lambda_: int, cxpb: float, mutpb: float, rnd: random.Random):
    """``deap.algorithms.varOr`` with ``rnd``: ``lambda_`` offspring, each from crossover of two
    random parents (first child kept), or mutation of one, or reproduction (the parent object
    itself, as in DEAP), with probabilities cxpb, mutpb, 1 - cxpb - mutpb."""
    if cxpb + mutpb > 1.0:
        raise ValueError(f"var_or: cxpb + mutpb must be <= 1, got {cxpb + mutpb!r}")
    offspring = []
    for _ in range(lambda_):
        op_choice = rnd.random()
        if op_choice < cxpb:  # crossover
            ind1, ind2 = [toolbox.clone(i) for i in rnd.sample(population, 2)]
            ind1, ind2 = toolbox.mate(ind1, ind2)
            del ind1.fitness.values
            offspring.append(ind1)
        elif op_choice < cxpb + mutpb:  # mutation
            ind = toolbox.clone(rnd.choice(population))
            (ind,) = toolbox.mutate(ind)
            del ind.fitness.values
            offspring.append(ind)
        else:  # reproduction
            offspring.append(rnd.choice(population))
    return offspring


#: the compiled entry points here (the trainers look them up on this module at call time, so a
#: benchmark can wrap them: benchmarks/bench_train.py)
ENTRY_POINTS = ("mutant_parents",)


@njit(cache=True)
def mutant_parents(words, pos, lambda_, mu, k, js):
    """The parents ``var_or`` picks for ``lambda_`` offspring that are all mutants, from the
    32-bit Mersenne Twister outputs ``words[pos:]`` of its ``random.Random``: per offspring,
    ``rnd.random()`` (the op choice: two words, any value mutates when cxpb = 0, mutpb = 1),
    then ``rnd.choice`` of mu parents (CPython's ``_randbelow``: the top k = mu.bit_length()
    bits of one word, drawn again while >= mu) into ``js``. Returns the position after the
    last word used, or -1 when ``words`` ran out first (js then incomplete)."""
    nw = words.shape[0]
    shift = 32 - k
    for i in range(lambda_):
        pos += 2
        while True:
            if pos >= nw:
                return -1
            r = words[pos] >> shift
            pos += 1
            if r < mu:
                js[i] = r
                break
    return pos


class MutantParents:
    """``var_or``'s draws from ``rnd`` when every offspring is a mutant (cxpb = 0, mutpb = 1),
    in one compiled call per generation (:func:`mutant_parents`) instead of two Python calls
    per offspring: the words come from a ``numpy.random.MT19937`` given ``rnd``'s state, which
    continues CPython's Mersenne Twister word for word, so the parents are the ones
    ``rnd.random()``, ``rnd.choice(range(mu))`` pick (tests/test_evolve.py). ``rnd`` itself is
    not advanced: the caller draws nothing else from it afterwards.

    :func:`mutant_draws_match` says whether this Python's ``random`` draws as assumed (checked
    once against ``random.Random``); where it does not, callers keep the Python calls."""

    def __init__(self, rnd: random.Random, mu: int):
        version, internal, _gauss = rnd.getstate()
        bg = np.random.MT19937()
        bg.state = {
            "bit_generator": "MT19937",
            "state": {"key": np.array(internal[:-1], dtype=np.uint32), "pos": internal[-1]},
        }
        self.bg, self.mu, self.k = bg, int(mu), int(mu).bit_length()
        self.words, self.pos = np.zeros(0, dtype=np.uint64), 0

    def draw(self, lambda_: int) -> np.ndarray:
        """The parents (indices < mu) of the next ``lambda_`` mutants."""
        js = np.empty(lambda_, dtype=np.int64)
        while True:
            pos = mutant_parents(self.words, self.pos, lambda_, self.mu, self.k, js)
            if pos >= 0:
                self.pos = pos
                return js
            more = self.bg.random_raw(max(1024, 8 * lambda_))  # 32-bit outputs, in order
            self.words, self.pos = np.concatenate((self.words[self.pos :], more)), 0


@functools.cache
def mutant_draws_match() -> bool:
    """Whether :class:`MutantParents` picks what ``random.Random`` picks (CPython's
    ``random()`` and ``_randbelow`` as this module reads them) on a fixed stream."""
    for mu in (1, 2, 3, 5, 8, 15, 17, 100):
        rnd = random.Random(1000 + mu)
        parents = MutantParents(rnd, mu)
        want = []
        for _ in range(300):
            rnd.random()
            want.append(rnd.choice(range(mu)))
        got = np.concatenate([parents.draw(n) for n in (1, 7, 92, 200)])
        if got.tolist() != want:
            return False
    return True


def individual(theta: np.ndarray) -> Individual:
    """A fresh Individual holding a copy of ``theta`` (1-D float64) and an invalid fitness."""
    ind = np.array(theta, dtype=np.float64, copy=True).view(Individual)
    ind.fitness = Fitness()
    return ind


def clone(ind) -> Individual:
    """A copy of an Individual: genes, fitness values and strategy vector copied -- what
    ``toolbox.clone`` (``copy.deepcopy``) gives, about 10x faster (no generic deepcopy)."""
    new = np.array(ind, dtype=np.float64, copy=True).view(Individual)
    new.fitness = Fitness()
    if ind.fitness.valid:
        new.fitness.values = ind.fitness.values
    if ind.strategy is not None:
        new.strategy = np.array(ind.strategy, copy=True)
    return new


def individuals(X: np.ndarray) -> list:
    """Rows of ``X`` (P, n) as Individuals (views of ``X``, no copy), each with a new fitness.

    Much faster than DEAP's ``creator`` constructor, which goes through a Python list.
    """
    V = np.ascontiguousarray(X, dtype=np.float64).view(Individual)
    pop = list(V)
    for ind in pop:
        ind.fitness = Fitness()
    return pop


def as_matrix(pop) -> np.ndarray:
    """Individuals -> contiguous float64 array (P, n) for ``population_loss``."""
    return np.array(pop, dtype=np.float64).reshape(len(pop), -1)


# -- copy-safe variation operators (NumPy versions of deap.tools operators) ---------------------
def cx_two_point(ind1, ind2, rng: np.random.Generator):
    """Two-point crossover (as ``deap.tools.cxTwoPoint``), copy-safe for NumPy individuals.

    The segment [a, b) is swapped; the points are drawn as in DEAP (1 <= a < b <= n).
    Returns the two children (modified in place).
    """
    n = min(len(ind1), len(ind2))
    if n < 2:
        return ind1, ind2
    a = int(rng.integers(1, n + 1))
    b = int(rng.integers(1, n))
    if b >= a:
        b += 1
    else:
        a, b = b, a
    seg = ind1[a:b].copy()  # the copy DEAP's slice swap lacks
    ind1[a:b] = ind2[a:b]
    ind2[a:b] = seg
    return ind1, ind2


def cx_blend(ind1, ind2, alpha: float, rng: np.random.Generator):
    """Blend crossover BLX-alpha (as ``deap.tools.cxBlend``; Eshelman & Schaffer 1993).

    Per gene gamma ~ U(-alpha, 1 + alpha); child1 = (1-gamma) x1 + gamma x2,
    child2 = gamma x1 + (1-gamma) x2. Both parents are read before either child is written.
    """
    x1 = np.array(ind1, dtype=np.float64)
    x2 = np.array(ind2, dtype=np.float64)
    g = (1.0 + 2.0 * alpha) * rng.random(x1.shape[0]) - alpha
    ind1[:] = (1.0 - g) * x1 + g * x2
    ind2[:] = g * x1 + (1.0 - g) * x2
    return ind1, ind2


def cx_es_blend(ind1, ind2, alpha: float, sigma_min: float, rng: np.random.Generator):
    """Blend crossover of genes and step sizes (as ``deap.tools.cxESBlend``), copy-safe.

    Step sizes are floored at ``sigma_min`` afterwards (DEAP's ``checkStrategy`` pattern).
    """
    cx_blend(ind1, ind2, alpha, rng)
    s1 = np.array(ind1.strategy, dtype=np.float64)
    s2 = np.array(ind2.strategy, dtype=np.float64)
    g = (1.0 + 2.0 * alpha) * rng.random(s1.shape[0]) - alpha
    ind1.strategy = np.maximum((1.0 - g) * s1 + g * s2, sigma_min)
    ind2.strategy = np.maximum(g * s1 + (1.0 - g) * s2, sigma_min)
    return ind1, ind2


def mut_gaussian(ind, sigma: float, indpb: float, rng: np.random.Generator):
    """Gaussian mutation (as ``deap.tools.mutGaussian`` with mu=0): each gene with probability
    ``indpb`` gets ``+ N(0, sigma^2)``. Returns a 1-tuple, as DEAP's mutations do."""
    n = len(ind)
    if indpb >= 1.0:
        ind += sigma * rng.standard_normal(n)
    else:
        m = rng.random(n) < indpb
        k = int(m.sum())
        if k:
            ind[m] += sigma * rng.standard_normal(k)
    return (ind,)


def mut_es_lognormal(ind, c: float, indpb: float, sigma_min: float, rng: np.random.Generator):
    """Self-adaptive mutation with per-gene step sizes (as ``deap.tools.mutESLogNormal``).

    Beyer & Schwefel 2002, "Evolution strategies -- A comprehensive introduction", eq. (15):
    sigma_i <- sigma_i exp(tau0 N(0,1) + tau N_i(0,1)), x_i <- x_i + sigma_i N_i(0,1), with
    tau0 = c / sqrt(2 n) and tau = c / sqrt(2 sqrt(n)); genes are touched with probability
    ``indpb``; step sizes are floored at ``sigma_min``.
    """
    n = len(ind)
    tau = c / math.sqrt(2.0 * math.sqrt(n))
    tau0 = c / math.sqrt(2.0 * n)
    g0 = tau0 * rng.standard_normal()
    s = np.array(ind.strategy, dtype=np.float64)
    s_new = np.maximum(s * np.exp(g0 + tau * rng.standard_normal(n)), sigma_min)
    step = s_new * rng.standard_normal(n)
    if indpb >= 1.0:
        ind.strategy = s_new
        ind += step
    else:
        m = rng.random(n) < indpb
        s[m] = s_new[m]
        ind.strategy = s
        ind[m] += step[m]
    return (ind,)
