"""The continuation test of [post.anatomy] (toolkit.suite.continue_runs): re-executing a failed
run's spec with a larger budget continues the very same run (its path up to the old budget is
bit for bit the old run's, for every method of local_optima); a run stopped early on an easy
task solves when continued and is labelled slow; bad continue_factor values are config errors
naming the key; the labelling rules; a rerun reuses the stored continuations."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit import anatomy, config, suite, sweep
from toolkit.train import bptt, es_common
from toolkit.train import trace as trace_mod

ROOT = Path(__file__).resolve().parent.parent


def _follow(monkeypatch):
    """Record every loss evaluation of a run (cost counters, loss, gradient norm, the theta
    handed to the trace) and, for evolution strategies, every generation (thetas, losses)."""
    log: list = []
    record, tell = trace_mod.Trace.record, es_common.Evolution.tell

    def rec(self, loss, theta=None, grad_norm=float("nan"), force=False):
        th = None if theta is None else np.asarray(theta).tobytes()
        log.append((self.evals, self.fwd_steps, self.grad_steps, float(loss), grad_norm, th))
        return record(self, loss, theta, grad_norm, force)

    def gen(self, X, losses, *args, **stats):
        log.append(("generation", np.asarray(X).tobytes(), np.asarray(losses).tobytes()))
        return tell(self, X, losses, *args, **stats)

    monkeypatch.setattr(trace_mod.Trace, "record", rec)
    monkeypatch.setattr(es_common.Evolution, "tell", gen)
    # every evaluation passes through Trace.record in the Python loop only (the compiled
    # chunks record the ones that end a chunk; tests/test_train_chunk.py shows them equal)
    monkeypatch.setattr(bptt, "_CHUNKED", False)
    return log


@pytest.mark.trajectory
def test_a_continued_run_is_the_same_run_up_to_the_old_budget(monkeypatch):
    """For each method of local_optima (BPTT (Adam), CMA-ES), on the recurrent and the
    feed-forward nets of both tasks, several seeds (smoke budgets): the run with 6x the budget
    evaluates exactly the thetas (bitwise) and losses of the original run up to its last
    evaluation, and then goes on; the original's final theta is what the longer run had then."""
    sexp = config.load(ROOT / "experiments" / "local_optima.toml", scale="smoke")
    log = _follow(monkeypatch)
    n = {}
    for part in sexp.parts:
        for spec in part.exp.runs:
            log.clear()
            a = sweep.execute_run(spec)
            first = list(log)
            log.clear()
            b = sweep.execute_run(anatomy.continued_spec(spec, 6.0))
            assert a["row"]["outcome"] != "error" and b["row"]["outcome"] != "error"
            assert log[: len(first)] == first, (part.name, spec["method"], spec["replicate"])
            if a["row"]["outcome"] == "budget":
                assert len(log) > len(first)  # it went on
                assert b["row"]["fwd_equiv"] > a["row"]["fwd_equiv"]
            n[spec["method"]] = n.get(spec["method"], 0) + 1
    assert n["bptt_adam"] >= 8 and n["cmaes"] >= 8  # several seeds of each method


def test_continued_spec_scales_every_budget_limit_and_nothing_else():
    spec = {"run_id": "r", "seed": 5, "budget": {"evals": 7, "fwd_equiv": 1e3}, "x": [1]}
    c = anatomy.continued_spec(spec, 6.0)
    assert c["budget"] == {"evals": 42, "fwd_equiv": 6e3}
    assert {k: v for k, v in c.items() if k != "budget"} == {
        k: v for k, v in spec.items() if k != "budget"
    }
    assert spec["budget"] == {"evals": 7, "fwd_equiv": 1e3}  # not changed in place
    assert anatomy.not_continuable(spec) is None
    assert "wall-clock" in anatomy.not_continuable({"budget": {"wall_s": 1.0}})
    cos = {"budget": {"evals": 9}, "method_params": {"schedule": "cosine", "decay_steps": None}}
    assert "cosine" in anatomy.not_continuable(cos)


@pytest.mark.parametrize(
    "end, solved, later, want",
    [
        ("local minimum", None, None, "local minimum"),  # not continued
        ("local minimum", True, None, "slow"),  # escaped: the budget stopped it
        ("local minimum", False, None, "local minimum"),
        ("slow", True, None, "slow"),
        ("slow", False, "local minimum", "local minimum"),  # descended into a minimum
        ("slow", False, "slow", "unsettled"),  # neither solved nor at rest after 6x budget
        ("slow", False, None, "slow"),
        ("plateau", False, None, "plateau"),
        ("saddle", True, None, "slow"),
    ],
)
def test_the_continuation_decides_where_it_is_decisive(end, solved, later, want):
    assert anatomy.with_continuation(end, solved, later) == want


SLOW = """
name = "slow"
seed = 3
replicates = 6
[task]
name = "echo"
[net]
n_hidden = 2
[budget]
evals = 20
[methods.bptt_adam]
lr = 0.03
[post.anatomy]
continue_factor = 20
[scales.smoke]
[scales.paper]
"""


@pytest.mark.trajectory
def test_a_run_stopped_early_on_an_easy_task_solves_when_continued_and_is_slow(tmp_path):
    """Adam on the echo task stopped after 20 gradient evaluations: every seed fails, its end
    point is still descending, and continued to 20x the budget it solves (about 5-10x in
    measured runs): labelled slow, with the cost at which it solved. A rerun reuses the stored
    continuations and writes the same table."""
    p = tmp_path / "slow.toml"
    p.write_text(SLOW)
    sexp = config.load(p)
    out = tmp_path / "out"
    suite.run(sexp, out=out, progress=False, jobs=1, echo=lambda *a: None)
    a = pd.read_parquet(out / suite.ANATOMY_TABLE)
    assert len(a) == 6 and (a["outcome"] == "budget").all()
    assert (a["continue_factor"] == 20.0).all()
    ok = a["continued_solved"] & (a["class"] == "slow")
    assert ok.sum() >= 5, a[["end_point", "continued_outcome", "class"]]
    assert (a["end_point"] == "slow").sum() >= 5
    x = a.loc[a["continued_solved"], "continued_cost_x"]
    assert ((x > 1.0) & (x <= 20.0 + 1e-9)).all()
    assert (a.loc[a["continued_solved"], "continued_cost"] > a["fwd_equiv"]).all()
    stored = sorted((out / anatomy.CONTINUED_DIR / "runs").glob("*.json"))
    assert len(stored) == 6
    before = (out / suite.ANATOMY_TABLE).read_bytes()
    mtimes = [f.stat().st_mtime_ns for f in stored]
    suite.write_anatomy(sexp, out, sexp.post["anatomy"], opts=sweep.ExecOptions(progress=False))
    assert (out / suite.ANATOMY_TABLE).read_bytes() == before
    assert [f.stat().st_mtime_ns for f in stored] == mtimes  # reused, not run again


def test_no_continuation_at_factor_1(tmp_path):
    p = tmp_path / "slow.toml"
    p.write_text(SLOW.replace("continue_factor = 20", "continue_factor = 1"))
    sexp = config.load(p)
    out = tmp_path / "out"
    suite.run(sexp, out=out, progress=False, jobs=1, echo=lambda *a: None)
    a = pd.read_parquet(out / suite.ANATOMY_TABLE)
    assert (a["continued_outcome"] == "").all() and not a["continued_solved"].any()
    assert (a["class"] == a["end_point"]).all()
    assert not (out / anatomy.CONTINUED_DIR).exists()


def test_continue_max_continues_the_first_failed_runs_by_replicate(tmp_path):
    """continue_max = 2: of the six failed runs only replicates 0 and 1 are continued (chosen
    blind to the outcome); the others keep their end point's label and no stored run."""
    p = tmp_path / "slow.toml"
    p.write_text(SLOW.replace("continue_factor = 20", "continue_factor = 20\ncontinue_max = 2"))
    sexp = config.load(p)
    out = tmp_path / "out"
    suite.run(sexp, out=out, progress=False, jobs=1, echo=lambda *a: None)
    a = pd.read_parquet(out / suite.ANATOMY_TABLE)
    runs = pd.read_parquet(out / "runs.parquet").set_index("run_id")
    done = a["continued_outcome"] != ""
    assert sorted(runs.loc[a.loc[done, "run_id"], "replicate"]) == [0, 1]
    assert (a.loc[~done, "class"] == a.loc[~done, "end_point"]).all()
    assert (a["continue_max"] == 2).all()
    assert len(list((out / anatomy.CONTINUED_DIR / "runs").glob("*.json"))) == 2
    p.write_text(SLOW.replace("continue_factor = 20", "continue_factor = 20\ncontinue_max = -1"))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert "post.anatomy.continue_max" in [k for k, _ in e.value.problems]


@pytest.mark.parametrize(
    "value, words",
    [("0.5", ">= 1"), ("'six'", "number"), ("true", "number"), ("[6]", "number")],
)
def test_a_bad_continue_factor_is_a_config_error_naming_the_key(tmp_path, value, words):
    p = tmp_path / "slow.toml"
    p.write_text(SLOW.replace("continue_factor = 20", f"continue_factor = {value}"))
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert "post.anatomy.continue_factor" in [k for k, _ in e.value.problems]
    assert words in str(e.value)


def test_continue_factor_can_be_set_per_scale(tmp_path):
    p = tmp_path / "slow.toml"
    p.write_text(
        SLOW.replace("[scales.smoke]", "[scales.smoke]\n'post.anatomy.continue_factor' = 2")
    )
    assert config.load(p, scale="smoke").post["anatomy"]["continue_factor"] == 2.0
    assert config.load(p).post["anatomy"]["continue_factor"] == 20.0
    bad = SLOW.replace("[scales.smoke]", "[scales.smoke]\n'post.anatomy.continue_factor' = 0")
    p.write_text(bad)
    with pytest.raises(config.ConfigError) as e:
        config.load(p, scale="smoke")
    assert "continue_factor" in str(e.value)


def test_continuations_of_a_copy_are_independent_of_the_spec_order(tmp_path):
    """Randomness comes only from each spec's seed: continuing two specs in either order
    gives the same records (non-timing columns)."""
    sexp = config.load(ROOT / "experiments" / "local_optima.toml", scale="smoke")
    specs = [copy.deepcopy(r) for r in sexp.parts[0].exp.runs[:2]]
    for s in specs:
        s["budget"] = {"fwd_equiv": 2e3}
    o = sweep.ExecOptions(progress=False, jobs=1, echo=lambda *a: None)
    a = suite.continue_runs(sexp, tmp_path / "a", specs, 3.0, o)
    b = suite.continue_runs(sexp, tmp_path / "b", specs[::-1], 3.0, o)
    for rid in a:
        ra, rb = a[rid]["row"], b[rid]["row"]
        assert ra["best_loss"] == rb["best_loss"] and ra["fwd_equiv"] == rb["fwd_equiv"]
        assert a[rid]["final_theta"] == b[rid]["final_theta"]


def _table(continued: bool) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "task": ["xor"] * 4,
            "method": ["bptt_adam"] * 2 + ["cmaes"] * 2,
            "recurrent": [True] * 4,
            "window": [1] * 4,
            "class": ["local minimum", "slow", "slow", "slow"],
        }
    )
    if continued:
        df["end_point"] = ["local minimum", "slow", "local minimum", "slow"]
        df["continued_outcome"] = ["budget", "solved", "solved", "not exact"]
        df["continued_solved"] = [False, True, True, False]
        df["continued_cost_x"] = [np.nan, 2.5, 1.5, np.nan]
        df["continue_factor"] = 6.0
    return df


def test_the_report_says_how_many_of_each_class_solved_when_continued():
    from toolkit import report as R

    text = "\n".join(R._anatomy_table(_table(True)))
    assert "| failed runs | local minimum | slow | solved when continued (x6 budget) |" in text
    assert "| xor | recurrent | BPTT (Adam) | 2 | 1 (50%) | 1 (50%) | 1/2 (50%) |" in text
    assert "| xor | recurrent | CMA-ES | 2 | – | 2 (100%) | 1/1 (100%) |" in text  # not exact: out
    assert "| BPTT (Adam) | local minimum | 0/1 (0%) | – |" in text
    assert "| CMA-ES | local minimum | 1/1 (100%) | 1.50 |" in text
    assert "Continuation test" in text
    old = "\n".join(R._anatomy_table(_table(False)))  # a table written before: as before
    assert "continued" not in old and "Continuation" not in old


def test_the_figure_draws_with_and_without_the_continuation():
    from toolkit import plots

    for continued in (True, False):
        fig = plots.fig_failure_anatomy(_table(continued), title="t")
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any("solve" in t for t in texts) == continued
