"""What every evolutionary baseline shares: DEAP classes, random streams, batched fitness, stopping.

* :data:`Individual` -- a ``numpy.ndarray`` genome (the flat ``theta``) with a minimising
  ``fitness`` and an optional per-gene ``strategy`` vector (evolution strategies). The classes are
  created at module top level so that loky workers (spawned processes) can unpickle individuals.
* :func:`run_streams` -- the run's private ``random.Random`` and ``numpy.random.RandomState``,
  seeded from its own ``SeedSequence``. No run reads or writes global random state (Python's
  ``random`` module, the legacy ``numpy.random`` functions), so two runs in threads of one
  process (a dask worker with several threads) cannot disturb each other.
* Local versions of the DEAP functions that draw randomness (:func:`sel_random`,
  :func:`sel_tournament`, :func:`var_and`, :func:`var_or`): the same code as DEAP's, making the
  same draws in the same order, but from the run's private ``random.Random`` instead of the
  ``random`` module -- so results are those DEAP gives after ``random.seed(...)`` with the same
  seed. DEAP stays the engine where it draws nothing (Toolbox, HallOfFame, selBest, Logbook,
  ``cma.Strategy``'s parameters and update).
* :class:`Evolution` -- evaluates a whole generation in one ``net.population_loss`` call, writes
  fitness tuples back, charges the cost to the :class:`~toolkit.train.trace.Trace`, keeps DEAP's
  Logbook (best and median fitness per logged generation) and decides when the run stops.
* Copy-safe variation operators for NumPy individuals. DEAP's ``tools`` crossovers swap slices,
  which are *views* for NumPy arrays, so one child silently keeps its genes (DEAP tutorial
  "Inheriting from Numpy"); the operators here copy before they write and draw their numbers
  from the run's ``numpy.random.Generator`` (vectorised, one call per individual).
"""

from __future__ import annotations

import math
import random
from operator import attrgetter

import numpy as np
from deap import base, creator, tools

from toolkit.params import Param

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

# spawn-key word that separates the run's DEAP-style streams from the run's own Generator
_GLOBAL_STREAM_KEY = 0xDEA9


def init_scale_param(what: str) -> Param:
    """The ``init_scale`` hyperparameter every population method shares: ``what`` (the first
    mean, the population, the parents) is drawn from ``net.init(rng, scale=init_scale)``."""
    return Param(
        None,
        "float",
        lo=0.0,
        lo_open=True,
        allow_none=True,
        doc=f"{what} from net.init(rng, scale=init_scale)",
    )


def run_streams(seed_seq: np.random.SeedSequence) -> tuple[random.Random, np.random.RandomState]:
    """The run's private ``(random.Random, numpy.random.RandomState)``, from its ``seed_seq``.

    They replace the global ``random`` and ``numpy.random`` that DEAP's operators and
    ``deap.cma`` draw from, and are seeded with exactly the state the toolkit used to put into
    those globals before (the same int for ``random``, the same uint32 array for the legacy
    ``numpy.random``), so results are
    unchanged bit for bit. Nothing global is read or written: runs in threads of one process
    are independent. The child stream is derived from ``seed_seq`` with an extra spawn-key word,
    so it differs from ``default_rng(seed_seq)``.
    """
    if not isinstance(seed_seq, np.random.SeedSequence):
        raise TypeError(f"seed_seq: expected numpy.random.SeedSequence, got {seed_seq!r}")
    child = np.random.SeedSequence(
        seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, _GLOBAL_STREAM_KEY)
    )
    state = child.generate_state(8)  # 8 x uint32
    return random.Random(int.from_bytes(state.tobytes(), "little")), np.random.RandomState(state)


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


def individual(theta: np.ndarray) -> Individual:
    """A fresh Individual holding a copy of ``theta`` (1-D float64) and an invalid fitness."""
    ind = np.array(theta, dtype=np.float64, copy=True).view(Individual)
    ind.fitness = Fitness()
    return ind


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


# -- the generation loop's bookkeeping ----------------------------------------------------------
class Evolution:
    """Per-generation cost, trace, Logbook and stopping rules shared by every evolutionary method.

    Usage per generation: ``L = evo.evaluate(X)`` with X (P, n) the generation's thetas, then
    ``if evo.tell(X, L, **stats): return evo.finish()``. The run's answer is the best theta seen
    so far; it is what ``trace.record`` receives, what ``solved`` is checked on and the final
    theta. DEAP's Logbook (``trace.logbook``) gets one row per stored trace point (log-spaced,
    so it stays bounded like the trace) and one for the last generation: generation,
    evaluations so far, best and median loss of the generation, best loss so far, ``stats``.
    """

    def __init__(self, net, data, *, budget, target_loss, solved, trace):
        self.net = net
        # validate and convert the data once; population_loss then skips its checks
        self.x, self.y, self.mask, self.h0 = net.check_data(
            data.x, data.y, getattr(data, "mask", None)
        )
        self.seq_steps = int(data.x.shape[0]) * int(data.x.shape[1])  # B * T per evaluation
        self.budget = budget
        self.target_loss = None if target_loss is None else float(target_loss)
        self.solved = solved
        self.trace = trace
        self.gen = 0
        self.best_loss = math.inf
        self.best_theta: np.ndarray | None = None
        self._unchecked = False  # best theta changed since the last solved() check
        self.outcome: str | None = None
        self.message = ""
        self.logbook = tools.Logbook()
        self.logbook.header = ["gen", "evals", "best", "median", "best_so_far"]
        trace.logbook = self.logbook

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """Losses of the P thetas in X (P, n), one jitted call; non-finite -> +inf."""
        if X.shape[0] == 0:
            return np.empty(0)
        L = np.asarray(
            self.net.population_loss(X, self.x, self.y, self.mask, self.h0, check=False),
            dtype=np.float64,
        )
        return np.where(np.isfinite(L), L, np.inf)

    @staticmethod
    def assign(pop, losses) -> None:
        """Write fitness tuples back to the individuals."""
        for ind, L in zip(pop, losses, strict=True):
            ind.fitness.values = (float(L),)

    def tell(self, X: np.ndarray, losses: np.ndarray, **stats) -> bool:
        """Charge one generation of P = len(losses) evaluations; True when the run must stop."""
        P = int(losses.shape[0])
        tr = self.trace
        tr.add_cost(evals=P, fwd_steps=P * self.seq_steps)
        if P:
            i = int(np.argmin(losses))
            if losses[i] < self.best_loss:
                self.best_loss = float(losses[i])
                self.best_theta = np.array(X[i], dtype=np.float64, copy=True)
                self._unchecked = True
        logged = tr.record(self.best_loss, self.best_theta)
        stop = self._decide(P, losses, logged)
        if logged or stop:  # Logbook rows at the trace's (log-spaced) points and at the end
            finite = losses[np.isfinite(losses)]
            self.logbook.record(
                gen=self.gen,
                evals=tr.evals,
                best=float(losses.min()) if P else math.nan,
                median=float(np.median(finite)) if finite.size else math.inf,
                best_so_far=self.best_loss,
                **stats,
            )
        self.gen += 1
        return stop

    def _decide(self, P: int, losses: np.ndarray, logged: bool) -> bool:
        """Stopping rules after a generation; precedence diverged > solved > target > budget."""
        tr = self.trace
        if P and not np.isfinite(losses).any():
            return self.stop("diverged", f"generation {self.gen}: all {P} losses are non-finite")
        target = self.target_loss is not None and self.best_loss <= self.target_loss
        spent = self.budget.spent(tr.evals, tr.fwd_equiv, tr.wall_s)
        if self.solved is not None and self._unchecked and (logged or target or spent):
            self._unchecked = False  # solved() is only re-run when the best theta changed
            if self.solved(self.best_theta):
                return self.stop("solved", f"solved after {tr.evals} evaluations")
        if target:
            return self.stop("target", f"best loss {self.best_loss:.6g} <= {self.target_loss:g}")
        if spent:
            return self.stop("budget", f"budget spent after {tr.evals} evaluations")
        return False

    def stop(self, outcome: str, message: str = "") -> bool:
        self.outcome = outcome
        self.message = message if not self.message else f"{self.message}; {message}"
        return True

    def note(self, message: str) -> None:
        """Add a remark to the final message (restarts, ...)."""
        self.message = message if not self.message else f"{self.message}; {message}"

    def finish(self):
        """End the trace with the outcome and the best theta; returns the Trace."""
        return self.trace.finish(self.outcome, theta=self.best_theta, message=self.message)
