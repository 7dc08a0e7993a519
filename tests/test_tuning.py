"""The tuning stage (toolkit/tuning.py, [tuning] in toolkit/config.py): its own seeds, the
same budget for every method, deterministic choices, config errors naming the key."""

import json

import numpy as np
import pandas as pd
import pytest

from toolkit import config, store, suite, sweep, tuning

BASE = """
name = "tune"
seed = {seed}
replicates = {reps}
[task]
name = "temporal_xor"
params = {{ mask = "predictable" }}
[net]
n_hidden = 2
[budget]
fwd_equiv = 2e4
[methods.bptt_adam]
lr = 0.03
[methods.cmaes]
sigma = 0.3
[grid]
"net.n_hidden" = {hidden}
[tuning]
configs = {configs}
seeds = {seeds}
[tuning.space.bptt_adam]
lr = {{ log = [1e-3, 0.3] }}
batch_size = [2, 5, 10]
[tuning.space.cmaes]
sigma = {{ log = [0.1, 3.0] }}
"""


def _file(tmp_path, seed=3, reps=3, hidden="[2, 3]", configs=3, seeds=2, extra=""):
    p = tmp_path / "tune.toml"
    text = BASE.format(seed=seed, reps=reps, hidden=hidden, configs=configs, seeds=seeds)
    p.write_text(text + extra)
    return p


@pytest.mark.parametrize("seed, reps, configs, seeds", [(0, 1, 1, 1), (3, 3, 3, 2), (99, 5, 4, 4)])
def test_tuning_seeds_and_data_never_equal_evaluation_ones(tmp_path, seed, reps, configs, seeds):
    """Property over configs: no tuning run shares a seed (hence training data) or a run id
    with an evaluation run, before or after the choice is applied; the plan has the same
    number of configurations and seeds for every method and condition."""
    exp = config.load(_file(tmp_path, seed, reps, "[2, 3, 4]", configs, seeds)).parts[0].exp
    texp = tuning.plan(exp)
    choices = [
        {"condition": tuning.condition_id(r), "method": r["method"], "params": {}} for r in exp.runs
    ]
    tuned = tuning.apply(exp, choices)
    for ev in (exp, tuned):
        assert not {r["seed"] for r in texp.runs} & {r["seed"] for r in ev.runs}
        assert not {r["run_id"] for r in texp.runs} & {r["run_id"] for r in ev.runs}
    counts = pd.DataFrame(
        [(tuning.condition_id(r), r["method"], r["grid"]["grid.tuning_config"]) for r in texp.runs],
        columns=["c", "m", "j"],
    )
    per = counts.groupby(["c", "m"]).agg(n=("j", "size"), k=("j", "nunique"))
    assert (per["n"] == configs * seeds).all() and (per["k"] == configs).all()
    assert len(per) == 3 * 2  # every condition x every method
    assert len({r["seed"] for r in texp.runs}) == len(texp.runs)


def test_configurations_are_the_same_draws_for_every_condition_and_scale(tmp_path):
    a = config.load(_file(tmp_path, hidden="[2]")).parts[0].exp.tuning
    b = config.load(_file(tmp_path, hidden="[2, 3, 4]", reps=7)).parts[0].exp.tuning
    assert a.samples == b.samples and len(a.samples["bptt_adam"]) == 3
    for c in a.samples["bptt_adam"]:
        assert 1e-3 <= c["lr"] <= 0.3 and c["batch_size"] in (2, 5, 10)
    other = config.load(_file(tmp_path, seed=4)).parts[0].exp.tuning
    assert other.samples != a.samples  # drawn from the root seed's tuning stream


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("batch_size = [2, 5, 10]", "batch = [2, 5]", "tuning.space.bptt_adam.batch"),
        (
            "lr = { log = [1e-3, 0.3] }",
            "lr = { log = [0.3, 0.3] }",
            "tuning.space.bptt_adam.lr.log",
        ),
        ("lr = { log = [1e-3, 0.3] }", "lr = { log = [0, 0.3] }", "tuning.space.bptt_adam.lr.log"),
        ("lr = { log = [1e-3, 0.3] }", "lr = { cubic = [1, 2] }", "tuning.space.bptt_adam.lr"),
        ("lr = { log = [1e-3, 0.3] }", "lr = []", "tuning.space.bptt_adam.lr"),
        ("lr = { log = [1e-3, 0.3] }", "lr = [-1.0, 0.1]", "tuning.space.bptt_adam.lr"),
        ("sigma = { log = [0.1, 3.0] }", "sigma = [0.1, 1.0]", "tuning.space.cmaes"),
        ("[tuning.space.cmaes]\nsigma = { log = [0.1, 3.0] }\n", "", "tuning.space.cmaes"),
        ("configs = 3", "configs = 0", "tuning.configs"),
        ("seeds = 2", "seeds = 2\nrepeats = 1", "tuning.repeats"),
        ("[tuning.space.cmaes]", "[tuning.space.ga]\n[tuning.space.cmaes]", "tuning.space.ga"),
    ],
)
def test_a_bad_tuning_key_is_one_error_naming_it(tmp_path, old, new, key):
    p = _file(tmp_path)
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert [k for k, _ in e.value.problems] == [key], str(e.value)


def test_a_knob_that_is_also_a_grid_key_is_refused(tmp_path):
    p = _file(tmp_path, extra="")
    p.write_text(p.read_text().replace('"net.n_hidden" = [2, 3]', '"methods.cmaes.sigma" = [1.0]'))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert [k for k, _ in e.value.problems] == ["tuning.space.cmaes.sigma"]


def _runs(rows):
    base = {"task": "t", "task_params": "{}", "n_hidden": 2, "outcome": "budget"}
    df = pd.DataFrame([{**base, **r, "run_id": f"r{i}"} for i, r in enumerate(rows)])
    df["solved_at_fwd_equiv"] = np.where(df["outcome"] == "solved", df["fwd_equiv"], np.nan)
    return df


def test_choice_is_the_lowest_restart_aware_cost_then_loss_then_draw():
    class T:  # the spec's samples: what apply() and the report show as params
        samples = {"a": [{"lr": 1}, {"lr": 2}, {"lr": 3}], "b": [{"s": 1}, {"s": 2}]}

    exp = type("E", (), {"tuning": T})()
    rows = []
    # method a: config 1 solves both seeds at 10 and 30 (ERT 20); config 2 solves one at 5 and
    # fails at 100 (best cap ERT 5/... = (5+5)/1 = 10 with cap 5): config 2 wins
    for j, costs, solved in [(0, [100, 100], [0, 0]), (1, [10, 30], [1, 1]), (2, [5, 100], [1, 0])]:
        for c, s in zip(costs, solved, strict=True):
            rows.append(
                {
                    "grid.condition": "c1",
                    "method": "a",
                    "grid.tuning_config": j,
                    "fwd_equiv": float(c),
                    "outcome": "solved" if s else "budget",
                    "best_loss": 0.0 if s else 1.0,
                }
            )
    # method b: nothing solves; the lower median best loss wins
    for j, loss in [(0, 2.0), (1, 1.5)]:
        for _ in range(2):
            rows.append(
                {
                    "grid.condition": "c1",
                    "method": "b",
                    "grid.tuning_config": j,
                    "fwd_equiv": 100.0,
                    "outcome": "budget",
                    "best_loss": loss,
                }
            )
    got = {c["method"]: c for c in tuning.choose(_runs(rows), exp)}
    assert got["a"]["config"] == 2 and got["a"]["params"] == {"lr": 3}
    assert got["a"]["objective"] == pytest.approx(10.0) and got["a"]["solved"] == 1
    assert got["b"]["config"] == 1 and got["b"]["objective"] is None
    assert got["a"]["tuning_cost"] == pytest.approx(345.0) and got["b"]["configs"] == 2


def _tuned(tmp_path, out, **kw):
    sexp = config.load(_file(tmp_path, reps=1, hidden="[2]", configs=2, seeds=2))
    suite.run(sexp, out=tmp_path / out, progress=False, echo=lambda *a: None, **kw)
    return json.loads((tmp_path / out / tuning.CHOICE_FILE).read_text())["choices"]


def test_choice_and_evaluation_runs_do_not_depend_on_jobs_and_skip_tuning_reuses_them(tmp_path):
    one = _tuned(tmp_path, "one", jobs=1)
    two = _tuned(tmp_path, "two", jobs=2)
    assert one == two and len(one) == 2
    a = store.load_runs(tmp_path / "one")
    b = store.load_runs(tmp_path / "two")
    assert sorted(a["run_id"]) == sorted(b["run_id"])
    assert (tmp_path / "one" / "tuning.parquet").is_file()
    # the evaluation runs use the chosen values
    for c in one:
        mp = a.loc[a["method"] == c["method"], "method_params"].map(json.loads)
        assert all(all(p[k] == v for k, v in c["params"].items()) for p in mp)
    # --skip-tuning: no tuning run, the same evaluation runs
    skip = _tuned(tmp_path, "skip", jobs=1, skip_tuning=tmp_path / "one" / tuning.CHOICE_FILE)
    assert [{k: v for k, v in c.items()} for c in skip] == one
    assert not (tmp_path / "skip" / tuning.TUNING_DIR).exists()
    assert sorted(store.load_runs(tmp_path / "skip")["run_id"]) == sorted(a["run_id"])


def test_dry_run_prints_the_tuning_plan_and_writes_nothing(tmp_path):
    lines = []
    sexp = config.load(_file(tmp_path, reps=1, hidden="[2]", configs=2, seeds=2))
    suite.run(sexp, out=tmp_path / "dry", dry_run=True, echo=lines.append)
    text = "\n".join(map(str, lines))
    assert "tuning stage, 2 configurations x 2 tuning seeds" in text
    assert "bptt_adam: lr {'log': [0.001, 0.3]}, batch_size [2, 5, 10]; 4 runs" in text
    assert "tune.tuning: 8 runs" in text and not (tmp_path / "dry").exists()


def test_a_choice_file_of_another_experiment_is_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"choices": [{"condition": "x", "method": "cmaes", "params": {}}]}))
    sexp = config.load(_file(tmp_path, reps=1, hidden="[2]", configs=2, seeds=1))
    with pytest.raises(sweep.SweepError, match="no tuning choice for 2 condition"):
        suite.run(sexp, out=tmp_path / "o", skip_tuning=bad, progress=False, echo=lambda *a: 0)


def test_the_report_states_the_protocol_cost_and_choices_from_the_results(tmp_path):
    """tuning.json keeps the protocol; claims.tuning_protocol reads it with the tuning and
    evaluation costs per method, and the report's Tuning section states space, seeds, cost
    and every choice."""
    from toolkit import claims, report

    _tuned(tmp_path, "tune", jobs=1)
    data = json.loads((tmp_path / "tune" / tuning.CHOICE_FILE).read_text())
    pr = data["protocols"][""]
    assert (pr["configs"], pr["seeds"], pr["conditions"]) == (2, 2, 1)
    assert pr["space"]["bptt_adam"]["lr"] == {"log": [0.001, 0.3]}
    assert len(pr["samples"]["cmaes"]) == 2
    res = store.read_results(tmp_path / "tune")
    tp = claims.tuning_protocol(res)
    cost = tp["cost"].set_index("method")
    truns = store.load_runs(tmp_path / "tune" / tuning.TUNING_DIR)
    evals = store.load_runs(tmp_path / "tune")
    for m in ("bptt_adam", "cmaes"):
        t = truns[truns["method"] == m]
        assert cost.at[m, "tuning_runs"] == len(t) == 2 * 2
        assert cost.at[m, "tuning_fwd"] == pytest.approx(t["fwd_equiv"].sum())
        assert cost.at[m, "eval_fwd"] == pytest.approx(
            evals.loc[evals["method"] == m, "fwd_equiv"].sum()
        )
    text = "\n".join(report._tuning_section(res))
    assert "2 configurations, each run on 2 tuning seeds" in text
    assert (
        "| BPTT (Adam) | all | lr log-uniform on [0.00100, 0.300]; batch_size ∈ {2, 5, 10} |"
        in text
    )
    for c in data["choices"]:
        chosen = ", ".join(f"{k} {report._cell(v)}" for k, v in c["params"].items())
        assert chosen in text and f"{c['solved']}/{c['runs']}" in text
    assert report._tuning_section(store.read_results(tmp_path / "nothing")) == []
