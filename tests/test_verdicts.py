"""The verdict statistics (toolkit.analysis, toolkit.claims): restart-aware ERT against a
direct simulation of restarts, Holm against a hand-worked example and statsmodels, the
interaction test on planted effects, selection outside the bootstrap against a declared
pairing, and every statistic scipy or statsmodels also computes against their values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from toolkit import analysis as A


def simulate_restarts(cost, reached, cap, n_sim, rng):
    """Mean total cost to a first success when runs are drawn from the sample and each is cut
    at ``cap`` (a run with cost > cap, or a failure, is restarted after min(cost, cap))."""
    cost, reached = np.asarray(cost, float), np.asarray(reached, bool)
    tot = np.zeros(n_sim)
    for s in range(n_sim):
        while True:
            i = rng.integers(cost.size)
            if reached[i] and cost[i] <= cap:
                tot[s] += cost[i]
                break
            tot[s] += min(cost[i], cap)
    return tot.mean()


def test_ert_at_cap_matches_simulated_restarts():
    rng = np.random.default_rng(1)
    # successes at 1..10, failures spend the budget 100 (a latch-like heavy tail)
    cost = np.r_[np.arange(1.0, 11.0), np.full(10, 100.0), [30.0, 60.0]]
    reached = np.r_[np.ones(10, bool), np.zeros(10, bool), [True, True]]
    for cap in (5.0, 10.0, 60.0, 100.0):
        want = simulate_restarts(cost, reached, cap, 20000, rng)
        assert A.ert_at_cap(cost, reached, cap) == pytest.approx(want, rel=0.03), cap
    # the cap at the budget is the ordinary ERT; the best cap here is 10, far below it
    assert A.ert_at_cap(cost, reached, 100.0) == pytest.approx(A.ert(cost, reached))
    best, cap = A.best_cap_ert(cost, reached)
    grid = np.unique(cost)
    assert best == pytest.approx(A.ert_curve(cost, reached, grid).min())
    assert cap == 10.0 and best < A.ert(cost, reached) / 2
    none = A.best_cap_ert(cost, np.zeros_like(reached))
    assert math.isinf(none[0]) and math.isnan(none[1])
    assert math.isinf(A.ert_at_cap(cost, reached, 0.5))


def test_best_cap_rows_handles_ties_like_the_scalar():
    rng = np.random.default_rng(2)
    for _ in range(50):
        c = rng.integers(1, 6, size=8).astype(float)
        r = rng.random(8) < 0.5
        if not r.any():
            continue
        want = min(A.ert_at_cap(c, r, b) for b in np.unique(c))
        assert A.best_cap_ert(c, r)[0] == pytest.approx(want)


def test_holm_hand_worked_and_statsmodels():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.047 -> 0.04, 0.06, 0.06 (running max), 0.06
    p = [0.047, 0.01, 0.03, 0.02]
    assert A.holm(p) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # two conditions: p = 0.047 alone is significant, after Holm it is not
    assert A.holm([0.047, 0.011]) == pytest.approx([0.047, 0.022])
    assert A.holm([0.047, 0.3])[0] == pytest.approx(0.094)
    assert np.isnan(A.holm([np.nan, 0.2])[0]) and A.holm([np.nan, 0.2])[1] == 0.2
    mt = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.random(rng.integers(1, 9)) ** 3
        assert A.holm(q) == pytest.approx(mt.multipletests(q, method="holm")[1])


def test_interaction_planted_and_main_effect_only():
    n = [100, 100, 100, 100]
    # planted: recurrence costs BPTT 0.4 of success, CMA-ES nothing
    r = A.interaction([40, 80, 80, 80], n, n_boot=4000, seed=0)
    assert r["delta"] == pytest.approx(-0.4) and r["hi"] < 0 and r["p"] < 0.001
    # main effects only: recurrence costs both 0.3, BPTT lower overall: no interaction
    r = A.interaction([30, 60, 60, 90], n, n_boot=4000, seed=0)
    assert r["delta"] == pytest.approx(0.0) and r["lo"] < 0 < r["hi"] and r["p"] > 0.5
    # the measured case of the issue: BPTT -0.15, CMA-ES -0.32 -> recurrence hurts CMA-ES more
    r = A.interaction([38, 53, 57, 89], n, n_boot=4000, seed=0)
    assert r["d_grad"] == pytest.approx(-0.15) and r["d_evo"] == pytest.approx(-0.32)
    assert r["delta"] == pytest.approx(0.17) and r["delta"] > 0
    # calibration: under no interaction the p-value is rarely below 0.05
    rng = np.random.default_rng(5)
    rates = np.array([0.3, 0.6, 0.6, 0.9])
    ps = [
        A.interaction(rng.binomial(50, rates), [50] * 4, n_boot=500, seed=i)["p"]
        for i in range(200)
    ]
    assert np.mean(np.array(ps) < 0.05) < 0.1


def _null_sample(rng, n):
    c = rng.lognormal(10, 1, n)
    r = rng.random(n) < 0.7
    return np.where(r, c, 1e6), r


def test_selection_outside_the_bootstrap_is_biased_a_declared_pairing_is_not():
    """Eight BPTT variants and one CMA-ES, all with the same run-time distribution: the true
    ratio is 1. Picking the best BPTT variant on the data and then bootstrapping only it
    declares 'BPTT faster' more often than alpha; the declared pairing (no selection) does
    not. Re-selecting the best of eight inside a percentile bootstrap does not cure it (the
    minimum is biased in every resample too): hence the report's declared primary pairing."""
    rng = np.random.default_rng(3)
    out_hits = in_hits = decl_hits = 0
    n_rep = 60
    for i in range(n_rep):
        grad = [_null_sample(rng, 20) for _ in range(8)]
        evo = [_null_sample(rng, 20)]
        pick = min(range(8), key=lambda j: A.best_cap_ert(*grad[j])[0])
        outside = A.family_ert_ratio(evo, [grad[pick]], n_boot=300, seed=i)
        inside = A.family_ert_ratio(evo, grad, n_boot=300, seed=i)
        declared = A.family_ert_ratio(evo, [grad[0]], n_boot=300, seed=i)
        out_hits += outside["p"] < 0.05 and outside["ratio"] > 1
        in_hits += inside["p"] < 0.05 and inside["ratio"] > 1
        decl_hits += declared["p"] < 0.05 and declared["ratio"] > 1
    assert out_hits / n_rep > 0.1 and out_hits >= 2 * decl_hits  # the winner's curse
    assert in_hits / n_rep > 0.1
    assert decl_hits / n_rep < 0.08


def test_family_ratio_fixed_and_restart():
    c_fast = np.r_[np.full(10, 10.0), np.full(10, 1000.0)]
    r_fast = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    c_slow = np.full(20, 100.0)
    r_slow = np.ones(20, bool)
    fixed = A.family_ert_ratio([(c_slow, r_slow)], [(c_fast, r_fast)], restart=False, n_boot=500)
    assert fixed["ratio"] == pytest.approx(100 / 1010)  # the budget as restart period: slower
    best = A.family_ert_ratio([(c_slow, r_slow)], [(c_fast, r_fast)], n_boot=500)
    assert best["ratio"] == pytest.approx(100 / 20)  # restarted at 10: ERT 20
    assert best["lo"] > 1 and best["p"] < 0.01


def test_newcombe_wilson_fisher_against_scipy_and_statsmodels():
    stats = pytest.importorskip("scipy.stats")
    prop = pytest.importorskip("statsmodels.stats.proportion")
    for k1, n1, k2, n2 in [(56, 70, 48, 80), (38, 100, 57, 100), (0, 10, 7, 10), (9, 30, 14, 30)]:
        d, lo, hi = A.diff_interval(k1, n1, k2, n2)
        ci = prop.confint_proportions_2indep(k1, n1, k2, n2, method="newcomb")
        assert (lo, hi) == pytest.approx(tuple(ci), abs=1e-9)
        p = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
        assert A.fisher_exact(k1, n1, k2, n2) == pytest.approx(p, rel=1e-9)
        for k, n in ((k1, n1), (k2, n2)):
            w = stats.binomtest(k, n).proportion_ci(method="wilson")
            assert A.wilson_interval(k, n) == pytest.approx((w.low, w.high), abs=1e-12)


def test_newcombe_and_fisher_known_values():
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II example (a), method 10
    d, lo, hi = A.diff_interval(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # Fisher's tea-tasting table: 3/4 against 1/4, two-sided p = 34/70
    assert A.fisher_exact(3, 4, 1, 4) == pytest.approx(34 / 70)
    assert A.fisher_exact(5, 5, 5, 5) == pytest.approx(1.0)
    assert math.isnan(A.fisher_exact(0, 0, 1, 2))


def test_mann_whitney_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    for _ in range(10):
        x, y = rng.random(rng.integers(3, 15)), rng.random(rng.integers(3, 15))
        want = stats.mannwhitneyu(x, y, method="exact").pvalue
        assert A.mann_whitney_u(x, y)["p_value"] == pytest.approx(want, rel=1e-9)
    x = np.r_[rng.random(25), [np.inf] * 5]
    y = np.r_[rng.random(20) + 0.3, [np.inf] * 10]
    want = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True).pvalue
    assert A.mann_whitney_u(x, y)["p_value"] == pytest.approx(want, rel=1e-9)


# -- anatomy of failures on constructed end points -----------------------------------------
def test_classify_end_points():
    from toolkit import anatomy as N

    def quad(diag, c=0.5):  # loss = c + sum(d_i x_i^2) / 2
        d = np.asarray(diag, float)
        return lambda t: (c + 0.5 * float((d * t * t).sum()), d * t)

    zero = np.zeros(3)
    r = N.classify_end_point(quad([1.0, 2.0, 3.0]), zero)
    assert r["label"] == "local minimum" and r["n_negative"] == 0
    assert r["eig_min"] == pytest.approx(1.0, rel=1e-6) and r["eig_max"] == pytest.approx(3.0)
    r = N.classify_end_point(quad([1.0, -2.0, 3.0]), zero)
    assert r["label"] == "saddle" and r["n_negative"] == 1
    assert N.classify_end_point(quad([1e-9, 1e-9, 0.0]), zero)["label"] == "plateau"
    # a saturated tanh unit: flat in every direction that moves it
    sat = lambda t: (0.5 + float(np.tanh(t[0] + 20.0)), np.r_[1 - np.tanh(t[0] + 20.0) ** 2, 0])
    assert N.classify_end_point(sat, np.zeros(2), saturated=1.0)["label"] == "plateau"
    assert N.classify_end_point(quad([1.0, 2.0]), np.ones(2))["label"] == "slow"
    assert N.classify_end_point(quad([1.0], c=0.0), np.zeros(1))["label"] == "solved"


def test_jitter_at_a_minimum_is_not_slow_and_saturation_is_counted():
    from toolkit import anatomy as N

    d = np.array([1.0, 2.0, 3.0])

    def quad(t):
        return 0.5 + 0.5 * float((d * t * t).sum()), d * t

    # gradient norm 3e-4 > GRAD_TOL, but the quadratic model predicts a decrease of ~1e-8 to the
    # minimum: Adam's jitter around a local minimum, not a slow run
    r = N.classify_end_point(quad, np.full(3, 1e-4))
    assert r["grad_norm"] > N.GRAD_TOL and r["decrement"] < N.LOSS_TOL
    assert r["label"] == "local minimum"
    # the thresholds can be given: a huge loss_tol makes any end point "solved"
    assert N.classify_end_point(quad, np.zeros(3), loss_tol=1.0)["label"] == "solved"
    h = np.array([[[0.995, 0.0], [-0.999, 0.5]]])  # (B=1, T=2, H=2)
    assert N.saturated_fraction(h) == 0.5
    assert N.saturated_fraction(h, mask=np.array([[0.0, 1.0]])) == 0.5
    assert N.saturated_fraction(h, mask=np.array([[1.0, 0.0]])) == 0.5
    assert N.saturated_fraction(np.zeros((1, 2, 2))) == 0.0
