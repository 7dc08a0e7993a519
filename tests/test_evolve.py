"""Evolutionary baselines (issue 5): registry, sanity fits, determinism, DEAP details, budget."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deap import cma, tools

import toolkit.train as T
from toolkit.nets import Elman
from toolkit.tasks import Dataset
from toolkit.train import es_common
from toolkit.train.es_cmaes import LazyStrategy, SepStrategy, auto_eigen_gap, default_lambda
from toolkit.train.registry import by_family

ROOT = Path(__file__).resolve().parent.parent


# -- a small teacher-student problem: fit a 2-unit Elman net to a known 2-unit net ---------------
def problem(H=2, B=4, T_=10, seed=1, n_in=1):
    net = Elman(n_in, H, 1)
    rng = np.random.default_rng(seed)
    teacher = net.init(rng, scale=1.0)
    x = rng.standard_normal((B, T_, n_in))
    _, y = net.forward(teacher, x)
    return net, Dataset(x, y, np.ones((B, T_)))


def fingerprint(trace) -> str:
    """sha256 of every deterministic part of a trace (all but wall_s) and its Logbook."""
    h = hashlib.sha256()
    for c in ("evals", "fwd_steps", "grad_steps", "fwd_equiv", "loss", "best_loss"):
        h.update(np.asarray(trace.points[c], dtype=np.float64).tobytes())
    h.update(trace.best_theta.tobytes())
    h.update(trace.final_theta.tobytes())
    h.update(repr([sorted(r.items()) for r in trace.logbook]).encode())
    h.update(f"{trace.outcome}|{trace.evals}|{trace.best_loss!r}".encode())
    return h.hexdigest()


DET_RUNS = (
    ("cmaes", {}),
    ("es_comma", {"lambda_": 20, "cxpb": 0.3, "mutpb": 0.6}),
    ("ga", {"pop_size": 20}),
    ("random", {"r": 1.0}),
)


def determinism_job(seed: int = 3) -> list[str]:
    """Runs DET_RUNS (DEAP's random, numpy.random and the run's Generator all in use)."""
    net, data = problem()
    out = []
    for name, hyper in DET_RUNS:
        tr = T.run(name, net, None, data, seed=seed, budget={"evals": 600}, **hyper)
        out.append(fingerprint(tr))
    return out


# -- registry and bad input ---------------------------------------------------------------------
def test_registered_with_defaults_that_validate():
    for name in by_family("evolution"):
        m = T.METHODS[name]
        assert m.family == "evolution"
        assert m.validate({}) == m.validate(dict(m.defaults)) == m.defaults


@pytest.mark.parametrize(
    "method, hyper, word",
    [
        ("cmaes", {"lambda_": 1}, "lambda_"),
        ("cmaes", {"sigma": 0.0}, "sigma"),
        ("cmaes", {"sigma": -1.0}, "sigma"),
        ("cmaes", {"lambda_": 6, "mu": 7}, "mu"),
        ("cmaes", {"eigen_gap": 0}, "eigen_gap"),
        ("cmaes", {"weights": "cubic"}, "weights"),
        ("cmaes", {"diagonal": "yes"}, "diagonal"),
        ("es_comma", {"mu": 20, "lambda_": 10}, "mu"),
        ("es_comma", {"sigma": 0}, "sigma"),
        ("es_plus", {"lambda_": 1}, "lambda_"),
        ("es_plus", {"cxpb": 0.7, "mutpb": 0.7}, "cxpb + mutpb"),
        ("ga", {"pop_size": 1}, "pop_size"),
        ("ga", {"elite": 10, "pop_size": 10}, "elite"),
        ("ga", {"mut_sigma": 0}, "mut_sigma"),
        ("ga", {"crossover": "uniform"}, "crossover"),
        ("random", {"r": 0}, "r"),
        ("random", {"batch": 0}, "batch"),
        ("random", {"batch": 2.5}, "batch"),
        ("cmaes", {"popsize": 10}, "popsize"),
    ],
)
def test_bad_hyperparameters_name_the_parameter_before_work(method, hyper, word):
    net, data = problem()
    with pytest.raises(ValueError, match=word.replace("+", r"\+")):
        T.run(method, net, None, data, seed=0, budget={"evals": 10}, **hyper)


def test_unknown_method_name():
    net, data = problem()
    with pytest.raises(ValueError, match="method"):
        T.run("cma_es", net, None, data, seed=0, budget={"evals": 10})


def test_es_plus_allows_mu_above_lambda():
    assert T.METHODS["es_plus"].validate({"mu": 20, "lambda_": 10})["mu"] == 20


# -- each method solves a small sanity problem --------------------------------------------------
# A single seed's trajectory is luck: CPUs whose kernels round differently (AVX2 vs AVX-512)
# follow other trajectories, and one seed that needed 7,414 evaluations against a 5,000 budget
# failed the old one-seed test. Each method therefore runs SANITY_SEEDS and the margin is:
# the MEDIAN cost (evaluations to reach the target; a miss counts as infinite) is at most
# HALF the budget, i.e. at least 3 of the 5 seeds reach the target within budget / 2.
# The budgets were set from 20 seeds on an AVX-512 machine so that at most 15 % of the seeds
# need more than budget / 2 (heavy tails: the ES and sep-CMA sometimes stall); with 5
# independent seeds the margin then fails with probability < 3 %, per method, on another CPU.
SANITY_SEEDS = (1, 2, 3, 4, 5)
SANITY = [  # (method, hyper, target loss, evals budget); the zero predictor's loss is ~15
    ("cmaes", {}, 1e-4, 12_000),
    ("cmaes", {"diagonal": True}, 1e-4, 32_000),
    ("cmaes", {"eigen_gap": 1}, 1e-4, 12_000),
    ("es_comma", {}, 0.05, 40_000),
    ("es_plus", {}, 0.05, 30_000),
    ("ga", {}, 0.2, 20_000),
    ("ga", {"crossover": "two_point"}, 0.3, 20_000),
    ("random", {"r": 1.0}, 1.0, 20_000),
]


@pytest.mark.trajectory
@pytest.mark.parametrize("method, hyper, target, evals", SANITY)
def test_sanity_teacher_student(method, hyper, target, evals):
    net, data = problem()
    costs = []
    for seed in SANITY_SEEDS:
        tr = T.run(
            method, net, None, data, seed=seed, budget={"evals": evals}, target_loss=target, **hyper
        )
        assert tr.outcome in ("target", "budget"), (seed, tr.outcome, tr.message)
        if tr.outcome == "target":  # exact properties of every run that reached the target
            assert tr.best_loss <= target
            costs.append(tr.evals)
        else:
            costs.append(math.inf)
        assert net.loss(tr.final_theta, data.x, data.y, data.mask) == pytest.approx(tr.best_loss)
    # the margin (see above): median cost over the seeds <= budget / 2
    assert np.median(costs) <= evals / 2, (method, hyper, costs)


@pytest.mark.trajectory
def test_solved_callable_wins_and_is_checked_on_best_theta():
    net, data = problem()

    class Task:
        def __init__(self):
            self.calls = []

        def solved(self, net_, theta):
            L = net_.loss(theta, data.x, data.y, data.mask)
            self.calls.append(L)
            return L < 0.5

    n_solved = 0
    for seed in SANITY_SEEDS:  # loss 0.5 takes ~100-300 evaluations: 20,000 is a wide margin
        task = Task()
        tr = T.run("cmaes", net, task, data, seed=seed, budget={"evals": 20_000}, target_loss=0.5)
        assert all(c >= 0.5 for c in task.calls[:-1])  # solved() is checked until it holds
        if tr.outcome == "solved":  # solved > target at the same check, on the best theta
            n_solved += 1
            assert task.calls[-1] == pytest.approx(tr.best_loss) and tr.best_loss < 0.5
    # margin: at least 4 of the 5 seeds reach the loss (a trajectory may be unlucky)
    assert n_solved >= len(SANITY_SEEDS) - 1


# -- determinism ----------------------------------------------------------------------------------
def test_same_seed_identical_trace_in_processes_and_under_loky():
    from joblib import Parallel, delayed

    here = determinism_job()
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r}); "
        "import test_evolve, json; print(json.dumps(test_evolve.determinism_job()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == here
    loky = Parallel(n_jobs=2, backend="loky")(delayed(determinism_job)() for _ in range(2))
    assert loky == [here, here]
    assert determinism_job(seed=4) != here


def test_individuals_pickle_with_fitness_and_strategy():
    ind = es_common.individual(np.arange(5.0))
    ind.fitness.values = (1.5,)
    ind.strategy = np.full(5, 0.1)
    back = pickle.loads(pickle.dumps(ind))
    assert np.array_equal(back, ind) and back.fitness.values == (1.5,)
    assert np.array_equal(back.strategy, ind.strategy)
    c = copy.deepcopy(ind)
    c[0] = 99.0
    c.strategy[0] = 9.0
    assert ind[0] == 0.0 and ind.strategy[0] == 0.1


# -- DEAP with NumPy individuals ------------------------------------------------------------------
def _pair(n=50):
    a = es_common.individual(np.zeros(n))
    b = es_common.individual(np.ones(n))
    a.strategy, b.strategy = np.full(n, 0.1), np.full(n, 0.3)
    return a, b


def test_deap_slice_crossover_is_unsafe_for_numpy():  # the hazard our operators avoid
    import random

    random.seed(0)
    a, b = _pair()
    tools.cxTwoPoint(a, b)
    assert (a == 1).any() and not (b == 0).any()  # b silently kept its own genes


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b, r: es_common.cx_two_point(a, b, r),
        lambda a, b, r: es_common.cx_blend(a, b, 0.5, r),
        lambda a, b, r: es_common.cx_es_blend(a, b, 0.5, 1e-9, r),
    ],
    ids=["two_point", "blend", "es_blend"],
)
def test_copy_safe_crossover_changes_both_children(op):
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = _pair()
        c1, c2 = op(a, b, rng)
        assert c1 is a and c2 is b
        assert (a != 0).any() and (b != 1).any()  # both children changed
        assert np.allclose(a + b, 1.0)  # genes exchanged or blended, none lost


def test_es_blend_also_recombines_step_sizes_and_hall_of_fame_of_arrays():
    rng = np.random.default_rng(1)
    a, b = _pair()
    es_common.cx_es_blend(a, b, 0.5, 1e-9, rng)
    assert not np.allclose(a.strategy, 0.1) and not np.allclose(b.strategy, 0.3)
    hof = tools.HallOfFame(2, similar=np.array_equal)
    for ind, f in ((a, 1.0), (b, 2.0)):
        ind.fitness.values = (f,)
    hof.update([a, b, a])
    assert len(hof) == 2 and np.array_equal(hof[0], a)


def test_mutations_touch_the_right_genes():
    rng = np.random.default_rng(2)
    a = es_common.individual(np.zeros(1000))
    (m,) = es_common.mut_gaussian(a, 0.5, 0.1, rng)
    assert m is a and 40 < np.count_nonzero(a) < 180
    a.strategy = np.full(1000, 0.2)
    es_common.mut_es_lognormal(a, 1.0, 1.0, 1e-3, rng)
    assert np.all(a.strategy >= 1e-3) and np.count_nonzero(a.strategy != 0.2) == 1000


# -- batched fitness ------------------------------------------------------------------------------
def test_population_fitness_equals_per_individual_loss_and_inf_for_nonfinite():
    net, data = problem(H=3, B=3, T_=7)
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, (9, net.n_params))
    X[4, 0] = np.nan
    X[6] *= 1e200
    tr = T.Trace(method="x")
    evo = es_common.Evolution(
        net, data, budget=T.Budget(evals=100), target_loss=None, solved=None, trace=tr
    )
    L = evo.evaluate(X)
    for i in (0, 1, 2, 3, 5, 7, 8):
        assert L[i] == pytest.approx(net.loss(X[i], data.x, data.y, data.mask), rel=1e-12)
    assert L[4] == np.inf
    assert np.isfinite(L[6]) or L[6] == np.inf
    pop = es_common.individuals(X)
    evo.assign(pop, L)
    assert pop[4].fitness.values == (np.inf,) and pop[0].fitness.values == (L[0],)
    assert max(pop, key=lambda ind: ind.fitness) is pop[int(np.argmin(L))]


class _Diverging(Elman):
    def population_loss(self, thetas, *a, **k):
        return np.full(thetas.shape[0], np.nan)


@pytest.mark.parametrize("method", by_family("evolution"))
def test_all_nonfinite_population_ends_diverged(method):
    _, data = problem()
    tr = T.run(method, _Diverging(1, 2, 1), None, data, seed=0, budget={"evals": 10_000})
    assert tr.outcome == "diverged" and "non-finite" in tr.message
    assert tr.best_loss == math.inf and tr.evals > 0


# -- budget accounting ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, hyper, per_gen",
    [
        ("cmaes", {}, default_lambda(11)),
        ("cmaes", {"lambda_": 16, "diagonal": True}, 16),
        ("random", {"batch": 64}, 64),
        ("es_plus", {"lambda_": 30}, 30),
        ("ga", {"pop_size": 30}, 30),
    ],
)
@pytest.mark.parametrize("limit", ["evals", "fwd_equiv"])
def test_budget_stops_within_one_generation_with_exact_counts(method, hyper, per_gen, limit):
    net, data = problem()
    BT = data.x.shape[0] * data.x.shape[1]
    E = 1000
    budget = {"evals": E} if limit == "evals" else {"fwd_equiv": E * BT}
    tr = T.run(method, net, None, data, seed=5, budget=budget, **hyper)
    assert tr.outcome == "budget"
    assert E <= tr.evals < E + per_gen
    assert tr.fwd_steps == tr.evals * BT and tr.grad_steps == 0 and tr.fwd_equiv == tr.fwd_steps
    assert tr.points["evals"][-1] == tr.evals and tr.points["fwd_steps"][-1] == tr.fwd_steps
    if method in ("cmaes", "random"):  # every individual is evaluated
        assert tr.evals == math.ceil(E / per_gen) * per_gen
    assert tr.points["best_loss"][-1] == tr.best_loss == min(tr.points["best_loss"])
    assert np.all(np.diff(tr.points["best_loss"]) <= 0)
    rows = tr.logbook
    assert rows[0]["gen"] == 0 and all(r["best"] >= r["best_so_far"] for r in rows)
    assert rows[-1]["evals"] == tr.evals and rows[-1]["best_so_far"] == tr.best_loss


# -- lazy eigendecomposition vs deap.cma.Strategy --------------------------------------------------
def _sphere_like(X):
    w = np.arange(1, X.shape[1] + 1.0)
    return ((X - 1.0) ** 2 * w).sum(axis=1)


def _tell(strategy, X, pop):
    f = _sphere_like(np.asarray(X))
    for ind, v in zip(pop, f):
        ind.fitness.values = (float(v),)
    strategy.update(pop)


def test_lazy_strategy_with_gap_1_equals_deap_exactly():
    n, gens = 12, 25
    ref = cma.Strategy(np.full(n, 0.3), 0.5, lambda_=10)
    lazy = LazyStrategy(np.full(n, 0.3), 0.5, eigen_gap=1, lambda_=10)
    for _ in range(gens):
        np.random.seed(7)  # noqa: NPY002  (deap.cma draws from the global numpy.random)
        pop_ref = ref.generate(es_common.individual)
        lazy.random_state = np.random.RandomState(7)  # ours: the same draws, privately
        X, pop = lazy.ask()
        assert np.array_equal(np.array(pop_ref), X)
        _tell(ref, pop_ref, pop_ref)
        _tell(lazy, X, pop)
        for a in ("centroid", "C", "pc", "ps", "B", "diagD", "BD"):
            assert np.array_equal(getattr(ref, a), getattr(lazy, a)), a
        assert ref.sigma == lazy.sigma and ref.cond == lazy.cond
    assert lazy.n_eigen == gens


def test_lazy_strategy_updates_C_like_deap_and_samples_with_stale_BD():
    n, gap, gens = 15, 4, 21
    lazy = LazyStrategy(np.zeros(n), 0.8, eigen_gap=gap, lambda_=12)
    for g in range(gens):
        BD_stale = lazy.BD.copy()
        z = np.random.RandomState(g).standard_normal((12, n))
        lazy.random_state = np.random.RandomState(g)
        X, pop = lazy.ask()
        assert np.array_equal(X, lazy.centroid + lazy.sigma * np.dot(z, BD_stale.T))
        # DEAP's update from the very same state (stale B, D included) and population
        ref = copy.deepcopy(lazy)
        ref.__class__ = cma.Strategy
        pop_ref = [es_common.individual(p) for p in pop]
        _tell(ref, pop_ref, pop_ref)
        _tell(lazy, X, pop)
        for a in ("centroid", "C", "pc", "ps"):
            assert np.array_equal(getattr(ref, a), getattr(lazy, a)), (g, a)
        assert ref.sigma == lazy.sigma
        if lazy.update_count % gap == 0:  # decomposed now: B, D are DEAP's
            assert np.array_equal(ref.B, lazy.B) and np.array_equal(ref.diagD, lazy.diagD)
        else:  # stale: still the ones used for sampling
            assert np.array_equal(lazy.BD, BD_stale)
    assert lazy.n_eigen == gens // gap


def test_auto_eigen_gap_follows_hansen_reference():
    # DEAP's rates at n = 1121 from the O(n) strategy (no n x n identity to decompose)
    for lam, gap in ((64, 3), (default_lambda(1121), 9)):
        s = SepStrategy(np.zeros(1121), 0.1, sep_rates=False, lambda_=lam)
        assert auto_eigen_gap(1121, s.ccov1, s.ccovmu) == gap  # ~ 0.2 n / lambda
    s = LazyStrategy(np.zeros(100), 0.1, eigen_gap="auto", lambda_=6)
    assert s.eigen_gap == auto_eigen_gap(100, s.ccov1, s.ccovmu) == 3
    assert LazyStrategy(np.zeros(5), 0.1, eigen_gap="auto").eigen_gap == 1
    with pytest.raises(ValueError, match="eigen_gap"):
        LazyStrategy(np.zeros(5), 0.1, eigen_gap=0)


def test_sep_strategy_update_is_the_diagonal_of_deaps_update():
    n = 20
    sep = SepStrategy(np.full(n, 0.5), 0.3, lambda_=14)
    ref = cma.Strategy(np.full(n, 0.5), 0.3, lambda_=14, ccov1=sep.ccov1, ccovmu=sep.ccovmu)
    assert sep.ccov1 == pytest.approx(2.0 / ((n + 1.3) ** 2 + sep.mueff) * (n + 2) / 3)
    sep.random_state = np.random.RandomState(3)
    X, pop = sep.ask()
    pop_ref = [es_common.individual(p) for p in pop]
    _tell(sep, X, pop)
    _tell(ref, pop_ref, pop_ref)
    assert np.allclose(np.diag(ref.C), sep.diagC, rtol=1e-13, atol=0)
    for a in ("centroid", "pc", "ps"):
        assert np.allclose(getattr(ref, a), getattr(sep, a), rtol=1e-13, atol=1e-15), a
    assert sep.sigma == pytest.approx(ref.sigma, rel=1e-13)


def test_ipop_restarts_double_the_population():
    net, data = problem()
    lam0 = default_lambda(net.n_params)
    # tolx = 1e9 makes the TolX criterion fire after every generation: restart each time
    tr = T.run("cmaes", net, None, data, seed=1, budget={"evals": 40 * lam0}, restarts=2, tolx=1e9)
    lams = [r["lambda_"] for r in tr.logbook]
    assert sorted(set(lams)) == [lam0, 2 * lam0, 4 * lam0]
    assert "restarts (tolx x" in tr.message and tr.outcome == "budget"


def test_mutant_parents_are_random_choices():
    """es_common.MutantParents picks the parents rnd.random(), rnd.choice(range(mu)) pick
    (CPython's Mersenne Twister continued in NumPy's MT19937), across refills of its words."""
    import random

    assert es_common.mutant_draws_match()  # this CPython draws as the compiled path assumes
    for mu, seed in ((1, 0), (5, 1), (6, 2), (64, 3), (65, 4)):
        rnd = random.Random(seed)
        rnd.random()  # mid-stream, not at a fresh seed
        parents = es_common.MutantParents(rnd, mu)
        want = []
        for _ in range(5000):
            rnd.random()
            want.append(rnd.choice(range(mu)))
        got = np.concatenate([parents.draw(n) for n in (35, 1, 964, 4000)])
        assert got.tolist() == want


@pytest.mark.parametrize("method", ["es_comma", "es_plus"])
def test_mutant_draws_compiled_or_not_give_the_same_run(method, monkeypatch):
    """The (mu, lambda)- and (mu + lambda)-ES's default path gives the same run with the
    compiled parent draws as with one Python call per draw."""
    net, data = problem()
    kw = dict(seed=7, budget={"evals": 3000}, mu=4, lambda_=28)
    a = T.run(method, net, None, data, **kw)
    monkeypatch.setattr(es_common, "mutant_draws_match", lambda: False)
    b = T.run(method, net, None, data, **kw)
    assert fingerprint(a) == fingerprint(b)
