"""The dry run's cost estimate (toolkit.sweep.estimate_cost): the calibrated seconds per
sequence-step by method, family and cell (toolkit/run_cost.json, written by
benchmarks/calibrate_cost.py), the fallback to the old constants, and the file's schema. No
wall-clock measurement."""

import math

import pytest
from _fake_registry import REGISTRY

import toolkit.train as T
from toolkit import config, sweep
from toolkit.nets import make_net

COEFFS = {
    "commit": "0123456789abcdef",
    "families": {
        "gradient": {"elman": {"a": 1e-7, "b": 1e-9}, "lstm": {"a": 5e-7, "b": 2e-9}},
        "evolution": {"elman": {"a": 2e-7, "b": 3e-9}},
    },
    "methods": {"cmaes": {"family": "evolution", "elman": {"a": 4e-7, "b": 5e-9}}},
}


def run(method, family, cell=None, H=4, fe=1e6, wall=None):
    net = {"n_hidden": H, **({"cell": cell} if cell else {})}
    budget = {"fwd_equiv": fe, **({"wall_s": wall} if wall is not None else {})}
    return dict(n_in=1, n_out=1, output="linear", net=net, method=method, family=family,
                budget=budget)  # fmt: skip


def n_params(r):
    return make_net(r["n_in"], r["n_out"], r["output"], r["net"]).n_params


def old(n):
    return config.SECONDS_PER_STEP + n * config.SECONDS_PER_WEIGHT_STEP


def test_the_family_and_cell_coefficients():
    for r, (a, b) in [
        (run("bptt_adam", "gradient"), (1e-7, 1e-9)),
        (run("bptt_online", "gradient", cell="lstm"), (5e-7, 2e-9)),
        (run("es_comma", "evolution", H=8), (2e-7, 3e-9)),
    ]:
        est = sweep.estimate_cost([r], coeffs=COEFFS)
        assert est["cpu_s"] == pytest.approx(1e6 * (a + b * n_params(r)), rel=1e-12)
        assert est["fallback_runs"] == 0 and est["calibration"] == COEFFS["commit"]
        assert est["fwd_equiv"] == 1e6 and est["runs"] == 1


def test_a_method_entry_comes_before_its_family():
    r = run("cmaes", "evolution")
    per, source = sweep.seconds_per_step("cmaes", "evolution", "elman", n_params(r), COEFFS)
    assert source == "method" and per == pytest.approx(4e-7 + 5e-9 * n_params(r))
    assert sweep.estimate_cost([r], coeffs=COEFFS)["cpu_s"] == pytest.approx(1e6 * per)
    # a cell the method's entry lacks: the family's
    assert sweep.seconds_per_step("cmaes", "evolution", "elman", 10, COEFFS)[1] == "method"
    coeffs = {**COEFFS, "families": {"evolution": {"lstm": {"a": 1e-7, "b": 0.0}}}}
    assert sweep.seconds_per_step("cmaes", "evolution", "lstm", 10, coeffs) == (1e-7, "family")


def test_sums_jobs_and_the_wall_budget_cap():
    runs = [run("bptt_adam", "gradient"), run("es_comma", "evolution", wall=0.01)]
    est = sweep.estimate_cost(runs, jobs=4, coeffs=COEFFS)
    first = 1e6 * (1e-7 + 1e-9 * n_params(runs[0]))
    assert est["cpu_s"] == pytest.approx(first + 0.01)  # the wall budget is the smaller
    assert est["jobs"] == 2 and est["wall_s"] == pytest.approx(est["cpu_s"] / 2)
    only_evals = {**runs[0], "budget": {"evals": 10}}
    est = sweep.estimate_cost([only_evals], coeffs=COEFFS)
    assert est["unestimated_runs"] == 1 and est["cpu_s"] == 0.0


def test_fallback_to_the_old_constants():
    r = run("bptt_adam", "gradient", cell="gru")  # the gradient family has no gru entry
    n = n_params(r)
    est = sweep.estimate_cost([r], coeffs=COEFFS)
    assert est["cpu_s"] == pytest.approx(1e6 * old(n)) and est["fallback_runs"] == 1
    mine = run("my_method", "")  # a method (and family) the file does not know
    assert sweep.seconds_per_step("my_method", "", "elman", n, COEFFS) == (old(n), "fallback")
    est = sweep.estimate_cost([r, mine], coeffs={})  # no calibration at all
    assert est["fallback_runs"] == 2 and est["calibration"] is None
    assert est["cpu_s"] == pytest.approx(1e6 * (old(n) + old(n_params(mine))))


def test_a_missing_or_broken_file_is_no_calibration(tmp_path):
    assert sweep.load_run_cost(tmp_path / "none.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert sweep.load_run_cost(tmp_path / "bad.json") == {}


def test_the_dry_run_names_its_calibration_and_the_fallback(tmp_path, monkeypatch):
    text = """
name = "tiny"
seed = 7
replicates = 2
[task]
name = "sine"
[net]
n_hidden = 2
[budget]
fwd_equiv = 1e6
[methods.walk]
"""
    (tmp_path / "tiny.toml").write_text(text)

    def dry_run(coeffs):
        monkeypatch.setattr(sweep, "_RUN_COST", coeffs)
        lines = []
        sweep.run_sweep(
            tmp_path / "tiny.toml", registry=REGISTRY, out=tmp_path / "r", dry_run=True,
            echo=lines.append,
        )  # fmt: skip
        return "\n".join(str(x) for x in lines)

    out = dry_run(COEFFS)  # the fake method "walk" is of the evolution family
    calibrated = "calibrated on this machine kind by benchmarks/calibrate_cost.py (commit "
    assert calibrated + "0123456789ab)" in out
    assert "if every run spends its budget: runs that reach the target stop earlier" in out
    assert "old constants" not in out
    out = dry_run({**COEFFS, "families": {"gradient": COEFFS["families"]["gradient"]}})
    assert calibrated in out
    assert "2 runs (a method or cell the calibration lacks) use the old constants" in out
    out = dry_run({})
    assert "no calibration (toolkit/run_cost.json): 150 ns + 1.5 ns per weight" in out
    assert not (tmp_path / "r").exists()


# -- the committed calibration ----------------------------------------------------------------
def test_run_cost_json_schema():
    data = sweep.load_run_cost(sweep.RUN_COST_FILE)
    assert "benchmarks/calibrate_cost.py" in data["note"]
    assert isinstance(data["commit"], str) and data["commit"]
    assert isinstance(data["written"], str) and data["written"]

    def coefficient_pair(c):
        return (
            set(c) == {"a", "b"}
            and all(isinstance(c[k], float) and math.isfinite(c[k]) and c[k] >= 0 for k in c)
            and c["a"] + c["b"] > 0
        )

    families = {m.family for m in T.METHODS.values()}
    assert families <= set(data["families"]), "every family of the registry has an entry"
    for fam, cells in data["families"].items():
        assert fam in families and "elman" in cells, fam
        assert all(coefficient_pair(c) for c in cells.values()), fam
    for m, entry in data["methods"].items():
        assert T.METHODS[m].family == entry["family"], m
        cells = {k: v for k, v in entry.items() if k != "family"}
        assert cells and all(coefficient_pair(c) for c in cells.values()), m
    for m in T.METHODS:  # every registered method is estimated from the calibration
        source = sweep.seconds_per_step(m, T.METHODS[m].family, "elman", 29, data)[1]
        assert source in ("method", "family"), m


def test_dry_run_total_sums_the_estimates_of_every_file(tmp_path):
    """benchmarks/dry_run_total.py: the per-file sums of the dry run's estimates, here at the
    smoke scale for one file: doubling every coefficient doubles the total, and an empty
    calibration puts every run on the old constants."""
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "benchmarks"))
    import dry_run_total

    files = [root / "experiments" / "truncation.toml"]
    coeffs = sweep.load_run_cost()
    per, runs, fb = dry_run_total.total(coeffs, "smoke", files)
    assert runs > 0 and fb == 0 and per["truncation.toml"] > 0
    double = {
        **coeffs,
        "methods": {
            m: {k: ({"a": 2 * v["a"], "b": 2 * v["b"]} if isinstance(v, dict) else v)
                for k, v in e.items()}
            for m, e in coeffs["methods"].items()
        },
    }  # fmt: skip
    per2, _, _ = dry_run_total.total(double, "smoke", files)
    assert math.isclose(per2["truncation.toml"], 2 * per["truncation.toml"], rel_tol=1e-9)
    _, runs0, fb0 = dry_run_total.total({}, "smoke", files)
    assert fb0 == runs0 == runs
    assert sweep._RUN_COST is coeffs  # the module's calibration is put back
