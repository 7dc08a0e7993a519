"""Metrics on hand-built tables with known answers (toolkit.analysis)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit import analysis as A


def runs_table(rows):
    """runs.parquet-like frame from (run_id, method, outcome, fwd_equiv, solved_at) tuples."""
    out = []
    for rid, method, outcome, fe, solved_at in rows:
        out.append(
            {
                "run_id": rid,
                "task": "xor",
                "task_params": json.dumps({"T": 10}),
                "method": method,
                "method_params": json.dumps({}),
                "n_hidden": 2,
                "n_params": 13,
                "hidden": "tanh",
                "output": "linear",
                "outcome": outcome,
                "evals": int(fe),
                "fwd_equiv": float(fe),
                "wall_s": fe / 1000,
                "final_loss": 0.1,
                "best_loss": 0.1,
                "solved_at_evals": float(solved_at) if solved_at is not None else np.nan,
                "solved_at_fwd_equiv": float(solved_at) if solved_at is not None else np.nan,
            }
        )
    return pd.DataFrame(out)


def trace_table(curves):
    """traces.parquet-like frame from {run_id: [(fwd_equiv, best_loss), ...]}."""
    parts = []
    for rid, pts in curves.items():
        c = np.array([p[0] for p in pts], float)
        b = np.array([p[1] for p in pts], float)
        parts.append(
            pd.DataFrame(
                {
                    "run_id": rid,
                    "method": "m",
                    "task": "xor",
                    "evals": c,
                    "fwd_equiv": c,
                    "wall_s": c / 1000,
                    "loss": b,
                    "best_loss": b,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# -- Wilson -----------------------------------------------------------------------------------
def test_wilson_known_values():
    # reference values (e.g. statsmodels proportion_confint(method="wilson"))
    assert A.wilson_interval(5, 10) == pytest.approx((0.236593, 0.763407), abs=1e-6)
    assert A.wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert A.wilson_interval(10, 10) == pytest.approx((0.722467, 1.0), abs=1e-6)
    assert A.wilson_interval(1, 20) == pytest.approx((0.008881, 0.236131), abs=1e-6)
    lo, hi = A.wilson_interval(np.array([0, 3]), np.array([0, 4]))
    assert math.isnan(lo[0]) and math.isnan(hi[0]) and 0 < lo[1] < 0.75 < hi[1] <= 1
    with pytest.raises(ValueError, match="level"):
        A.wilson_interval(1, 2, level=1.5)
    with pytest.raises(ValueError, match="successes"):
        A.wilson_interval(3, 2)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500), st.data())
def test_wilson_contains_estimate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = A.wilson_interval(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


# -- cost to target and ERT -------------------------------------------------------------------
def test_ert_with_censored_runs():
    runs = runs_table(
        [
            ("a", "bptt_adam", "solved", 10, 10),
            ("b", "bptt_adam", "solved", 20, 20),
            ("c", "bptt_adam", "budget", 100, None),
            ("d", "bptt_adam", "diverged", 100, None),
        ]
    )
    ctt = A.cost_to_target(runs)
    assert ctt["reached"].tolist() == [True, True, False, False]
    assert ctt["censored"].tolist() == [False, False, True, True]  # kept, not dropped
    assert ctt["cost"].tolist() == [10, 20, 100, 100]
    assert A.ert(ctt["cost"], ctt["reached"]) == pytest.approx((10 + 20 + 100 + 100) / 2)
    tab = A.ert_table(ctt, n_boot=500, seed=1)
    r = tab.iloc[0]
    assert r["ert"] == pytest.approx(115.0)
    assert r["n_runs"] == 4 and r["n_reached"] == 2 and r["success_rate"] == 0.5
    assert r["ert_lo"] <= 115 <= r["ert_hi"]
    assert math.isinf(r["ert_hi"])  # some resamples contain no success
    assert A.ert([5.0, 5.0], [False, False]) == math.inf
    assert math.isnan(A.ert([], []))


def test_cost_to_loss_target_from_traces():
    runs = runs_table([("a", "m", "budget", 1000, None), ("b", "m", "budget", 500, None)])
    traces = trace_table(
        {
            "a": [(1, 1.0), (10, 0.5), (100, 0.09), (1000, 0.01)],
            "b": [(1, 2.0), (50, 0.6), (500, 0.3)],
        }
    )
    ctt = A.cost_to_target(runs, traces, target=0.1)
    assert ctt["reached"].tolist() == [True, False]
    assert ctt["cost"].tolist() == [100.0, 500.0]  # b censored at the cost it spent
    H, spent = A.hitting_costs(runs, traces, [1.0, 0.5, 0.1, 1e-3])
    np.testing.assert_array_equal(H, [[1, 10, 100, np.inf], [50, 500, np.inf, np.inf]])
    np.testing.assert_array_equal(spent, [1000, 500])
    # wall seconds at the solved point come from the trace
    runs2 = runs_table([("a", "m", "solved", 100, 100)]).drop(columns="solved_at_fwd_equiv")
    ctt2 = A.cost_to_target(runs2, traces, cost="wall_s")
    assert ctt2["cost"].iloc[0] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="traces"):
        A.cost_to_target(runs, None, target=0.1)
    with pytest.raises(ValueError, match="cost"):
        A.cost_to_target(runs, cost="seconds")
    with pytest.raises(ValueError, match="missing column"):
        A.cost_to_target(runs.drop(columns="fwd_equiv"))


def test_bootstrap_is_seeded_and_per_group():
    rng = np.random.default_rng(0)
    c = rng.uniform(1, 100, 30)
    r = rng.random(30) < 0.4
    df = pd.DataFrame({"task": "t", "method": "a", "cost": c, "reached": r})
    t1 = A.ert_table(df, n_boot=300, seed=7)
    t2 = A.ert_table(df, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(t1, t2)
    t3 = A.ert_table(df, n_boot=300, seed=8)
    assert (t3["ert_lo"].iloc[0], t3["ert_hi"].iloc[0]) != (
        t1["ert_lo"].iloc[0],
        t1["ert_hi"].iloc[0],
    )
    # a group's interval does not depend on the other groups in the table
    other = df.assign(method="b", cost=df["cost"] * 2)
    t4 = A.ert_table(pd.concat([other, df]), n_boot=300, seed=7)
    pd.testing.assert_frame_equal(t4[t4["method"] == "a"].reset_index(drop=True), t1)
    # a Generator is accepted and consumed deterministically
    g1 = A.ert_table(df, n_boot=300, seed=np.random.default_rng(3))
    g2 = A.ert_table(df, n_boot=300, seed=np.random.default_rng(3))
    pd.testing.assert_frame_equal(g1, g2)
    est, lo, hi = A.bootstrap(c, lambda m: m.mean(axis=1), n_boot=400, seed=1)
    assert est == pytest.approx(c.mean()) and lo < est < hi
    assert A.bootstrap(c, lambda m: m.mean(axis=1), n_boot=400, seed=1) == (est, lo, hi)
    with pytest.raises(ValueError, match="n_boot"):
        A.ert_table(df, n_boot=0)
    with pytest.raises(TypeError, match="seed"):
        A.ert_table(df, seed="x")


# -- ECDF -------------------------------------------------------------------------------------
def test_runtime_ecdf_steps():
    runs = runs_table([("a", "m", "budget", 1000, None), ("b", "m", "budget", 500, None)])
    traces = trace_table(
        {
            "a": [(1, 2.0), (10, 0.9), (100, 0.05), (1000, 0.05)],
            "b": [(1, 2.0), (50, 0.8), (500, 0.3)],
        }
    )
    ec = A.runtime_ecdf(runs, traces, targets=[1.0, 0.1])
    assert ec["cost"].tolist() == [10.0, 10.0, 50.0, 100.0]
    assert ec["fraction"].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert (ec["n_pairs"] == 4).all() and (ec["max_cost"] == 1000).all()
    # default targets: log-spaced from the median first best loss to the lowest reached
    tg = A.default_targets(runs, traces, n_targets=5)
    assert tg[0] == pytest.approx(2.0) and tg[-1] == pytest.approx(0.05)
    assert np.allclose(np.diff(np.log10(tg)), np.log10(0.05 / 2) / 4)


def test_convergence_curves_median_and_carry_forward():
    runs = runs_table([(r, "m", "budget", 100, None) for r in "abc"])
    traces = trace_table(
        {
            "a": [(1, 1.0), (10, 0.1), (100, 0.01)],
            "b": [(1, 2.0), (10, 0.2)],  # stops at 10: carried forward
            "c": [(10, 3.0), (100, 0.3)],  # starts at 10: missing before
        }
    )
    cc = A.convergence_curves(runs, traces, n_grid=3)
    assert cc["cost"].tolist() == pytest.approx([1, 10, 100])
    assert cc["median"].tolist() == pytest.approx([1.5, 0.2, 0.2])
    assert cc["n_runs"].tolist() == [2, 3, 3]
    assert cc["n_active"].tolist() == [3, 3, 2]


# -- success rate, final loss, basins --------------------------------------------------------
def test_success_rate_table():
    runs = runs_table(
        [
            ("a", "x", "solved", 1, 1),
            ("b", "x", "budget", 1, None),
            ("c", "y", "target", 1, None),
            ("d", "y", "error", 1, None),
        ]
    )
    sr = A.success_rate(runs)
    assert sr["method"].tolist() == ["x", "y"]
    assert sr["rate"].tolist() == [0.5, 0.5]
    assert sr["lo"].iloc[0] == pytest.approx(A.wilson_interval(1, 2)[0])
    runs["best_loss"] = [0.01, 0.5, 0.2, 0.001]
    assert A.success_rate(runs, target=0.05)["successes"].tolist() == [1, 1]


def test_iqm_quantile_and_final_loss_stats():
    assert A.iqm(np.arange(1, 9)) == 4.5  # cut 2 from each end of 8
    assert A.iqm([1, 2, 3, 4, 100]) == 3.0  # cut int(1.25) = 1 from each end
    assert A.quantile([1, 2, 3, 4], 0.5) == 2.5
    assert A.quantile([1, 2, np.inf, np.inf], 0.5) == math.inf  # diverged runs rank worst
    assert A.quantile([1, 2, 3, np.nan], 0.25) == pytest.approx(1.75)
    runs = pd.DataFrame({"task": "t", "method": "m", "final_loss": np.arange(1.0, 9.0)})
    st_ = A.final_loss_stats(runs, n_boot=500, seed=0).iloc[0]
    assert st_["median"] == 4.5 and st_["iqm"] == 4.5
    assert st_["q25"] == pytest.approx(2.75) and st_["q75"] == pytest.approx(6.25)
    for s in ("median", "iqm", "q25", "q75"):
        assert st_[f"{s}_lo"] <= st_[s] <= st_[f"{s}_hi"]
    # stratified: resampling within tasks keeps each task's share of the pooled sample
    pooled = pd.DataFrame(
        {
            "task": ["a"] * 4 + ["b"] * 4,
            "method": "m",
            "final_loss": [1, 1, 1, 1, 100, 100, 100, 100.0],
        }
    )
    s1 = A.final_loss_stats(pooled, by=["method"], strata=["task"], n_boot=300).iloc[0]
    assert s1["median_lo"] == s1["median_hi"] == pytest.approx(50.5)
    s2 = A.final_loss_stats(pooled, by=["method"], n_boot=300).iloc[0]
    assert s2["median_lo"] < 50.5 < s2["median_hi"]


def test_basins():
    v = [1e-5, 2e-5, 1e-3, 0.25, 0.26, np.inf, 0.0]
    k, lab = A.count_basins(v)
    assert k == 4  # {0 -> floor 1e-12}, {1e-5, 2e-5}, {1e-3}, {0.25, 0.26}; inf apart
    assert lab.tolist() == [1, 1, 2, 3, 3, -1, 0]
    assert A.count_basins(v, floor=1e-5)[0] == 3  # losses below floor merge into one level
    assert A.count_basins([np.nan])[0] == 0
    runs = pd.DataFrame(
        {"task": "t", "method": "m", "final_loss": [0.25, 0.24, 1e-4, 2e-4, 0.26, np.nan]}
    )
    b = A.basins(runs).iloc[0]
    assert b["n_basins"] == 2 and b["n_nonfinite"] == 1
    assert b["sizes"] == [2, 3] and b["levels"][1] == pytest.approx(0.25)
    assert b["share_lowest"] == pytest.approx(2 / 6)
    with pytest.raises(ValueError, match="gap"):
        A.count_basins(v, gap=0)


# -- pairwise ---------------------------------------------------------------------------------
def test_mann_whitney_exact_and_normal():
    r = A.mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert r["u"] == 0 and r["method"] == "exact" and r["p_value"] == pytest.approx(0.1)
    assert r["p_x_less"] == 1.0
    # exact null distribution of U for (5, 6): P(U <= 6) = 29 / 462
    r = A.mann_whitney_u([1, 2, 3, 7, 8], [4, 5, 6, 9, 10, 11])
    assert r["u"] == 6 and r["p_value"] == pytest.approx(2 * 29 / 462)
    # normal approximation: mu = 15, var = 30, continuity 0.5
    r = A.mann_whitney_u([1, 2, 3, 7, 8], [4, 5, 6, 9, 10, 11], method="normal")
    z = (15 - 6 - 0.5) / math.sqrt(30)
    assert r["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    # censored costs (+inf) tie with each other; tie correction of the variance
    x = [1.0, 2.0, np.inf, np.inf]
    y = [3.0, np.inf, np.inf, np.inf]
    r = A.mann_whitney_u(x, y)
    assert r["method"] == "normal" and r["u"] == pytest.approx(0 + 0 + 2.5 + 2.5)
    N, tie = 8, 5**3 - 5
    var = 16 / 12 * ((N + 1) - tie / (N * (N - 1)))
    z = (abs(5 - 8) - 0.5) / math.sqrt(var)
    assert r["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert A.mann_whitney_u([np.inf] * 3, [np.inf] * 2)["p_value"] == 1.0
    with pytest.raises(ValueError, match="NaN"):
        A.mann_whitney_u([np.nan], [1.0])
    with pytest.raises(ValueError, match="ties"):
        A.mann_whitney_u([1, 1], [2], method="exact")


def test_ert_ratio_and_compare_methods():
    ca, ra = np.array([10.0, 10, 10, 10]), np.ones(4, bool)  # ERT 10
    cb, rb = np.array([100.0, 100, 100, 100]), np.array([1, 1, 0, 0], bool)  # ERT 200
    r = A.ert_ratio(cb, rb, ca, ra, n_boot=400, seed=0)
    assert r["ratio"] == pytest.approx(20.0) and r["ert_a"] == 200 and r["ert_b"] == 10
    assert r["lo"] <= 20 <= r["hi"]
    assert A.ert_ratio(ca, ra, cb, rb, n_boot=50)["ratio"] == pytest.approx(0.05)
    none = np.zeros(4, bool)
    assert math.isnan(A.ert_ratio(ca, none, cb, none, n_boot=50)["ratio"])  # inf / inf
    assert A.ert_ratio(ca, none, cb, rb, n_boot=50)["ratio"] == math.inf
    df = pd.DataFrame(
        {
            "task": "t",
            "method": ["bptt_adam"] * 4 + ["bptt_sgd"] * 4 + ["cmaes"] * 4,
            "cost": np.r_[ca, ca * 3, cb],
            "reached": np.r_[ra, ra, rb],
        }
    )
    cmp_ = A.compare_methods(df, n_boot=300, seed=0)
    assert set(cmp_["reference"]) == {"bptt_adam"}  # best BPTT variant by ERT
    row = cmp_.set_index("series").loc["cmaes"]
    assert row["ratio"] == pytest.approx(20.0) and row["p_series_faster"] == 0.0
    assert row["p_value"] < 0.05
    cmp2 = A.compare_methods(df, reference="cmaes", n_boot=100)
    assert set(cmp2["series"]) == {"bptt_adam", "bptt_sgd"}
    with pytest.raises(ValueError, match="reference"):
        A.compare_methods(df, reference="ga", n_boot=10)


# -- labels -----------------------------------------------------------------------------------
def test_annotate_labels_what_varies():
    runs = runs_table([(f"r{i}", m, "solved", 1, 1) for i, m in enumerate(["cmaes", "ga"] * 2)])
    runs["method_params"] = [json.dumps({"sigma0": s}) for s in (0.1, 0.5, 0.5, 0.5)]
    runs["task_params"] = [json.dumps({"T": T}) for T in (10, 10, 20, 20)]
    runs["grid.T"] = [10, 10, 20, 20]
    ann = A.annotate(runs)
    assert ann["condition"].tolist() == ["xor (T=10)", "xor (T=10)", "xor (T=20)", "xor (T=20)"]
    assert ann["variant"].tolist() == ["cmaes (sigma0=0.1)", "ga", "cmaes (sigma0=0.5)", "ga"]
    assert A.annotate(runs, exclude=["T"])["condition"].eq("xor").all()
    assert ann["success"].all()
    assert A.param_values(runs, "T").tolist() == [10, 10, 20, 20]
    assert A.param_values(runs, "sigma0").tolist() == [0.1, 0.5, 0.5, 0.5]
    assert A.describe_config(runs).startswith("Elman H=2 tanh/linear, 13 weights")


def test_annotate_labels_grid_settings_once():
    runs = pd.DataFrame(
        {
            "task": ["latch"] * 4,
            "method": ["cmaes"] * 4,
            "task_params": ['{"T": 10}', '{"T": 20}', '{"T": 10}', '{"T": 20}'],
            "method_params": ["{}"] * 4,
            "n_hidden": [2, 2, 2, 2],
            "recurrent": [True, True, False, False],
            "grid.task.params.T": [10, 20, 10, 20],
            "grid.net.recurrent": [True, True, False, False],
            "outcome": ["solved", "budget", "solved", "budget"],
        }
    )
    cond = A.annotate(runs)["condition"].tolist()
    assert cond[0] == "latch (T=10, recurrent=True)"
    assert cond[3] == "latch (T=20, recurrent=False)"


def test_fisher_exact_matches_scipy():
    """The hand-written Fisher test against scipy's (skipped when scipy is not installed)."""
    stats = pytest.importorskip("scipy.stats")
    from toolkit import analysis as A

    for k1, n1, k2, n2 in [(3, 4, 1, 4), (5, 12, 12, 12), (0, 10, 7, 10), (9, 30, 14, 30)]:
        p = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue
        assert A.fisher_exact(k1, n1, k2, n2) == pytest.approx(p, rel=1e-9)
