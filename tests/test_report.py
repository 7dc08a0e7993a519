"""The report (toolkit.report): sections, tables and verdicts generated from synthetic result
directories (runs/traces tables following docs/CONTRACTS.md, plus meta.json); verdicts follow
the numbers; missing and partial experiments are reported, never fatal; same inputs, same
bytes."""

from __future__ import annotations

import json
import math
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit import report as R

GRAD = ("bptt_adam", "bptt_momentum", "bptt_online")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def write_experiment(
    root, name, spec, *, seeds=20, status="complete", planned=None, figures=(), extra_tables=None
):
    """Write ``root/name`` with runs.parquet, traces.parquet and meta.json.

    spec: {(task, method, recurrent): (successes, cost)}: ``successes`` of the ``seeds`` runs
    meet the criterion, each after about ``cost`` forward-pass equivalents (seed i at
    cost * (1 + i / seeds)); the others spend their budget of 3 * cost and plateau at a loss
    of 0.3. Methods named bptt_* are gradient methods.
    """
    d = root / name
    d.mkdir(parents=True)
    recs = {r for (_, _, r) in spec}
    runs, traces = [], []
    for (task, method, rec), (k, cost) in spec.items():
        grad = method.startswith("bptt")
        budget = 3.0 * cost
        for i in range(seeds):
            rid = f"{name}-{task}-{method}-{int(rec)}-{i:03d}"
            ok = i < k
            end = cost * (1 + i / seeds) if ok else budget
            level = 1e-4 * (1 + i) if ok else 0.3 * (1 + 0.01 * i)
            fe = np.unique(np.round(np.geomspace(1.0, end, 60), 6))
            best = level + (1.0 - level) * (1 - fe / fe[-1]) ** 2
            best = np.minimum.accumulate(best)
            row = {
                "experiment": name,
                "run_id": rid,
                "replicate": i,
                "seed": 1000 + i,
                "task": task,
                "task_params": json.dumps({"T": 20, "n_train": 16}),
                "method": method,
                "method_params": json.dumps({"lr": 0.01} if grad else {"sigma": 0.5}),
                "family": "gradient" if grad else "evolution",
                "n_hidden": 2,
                "n_params": 11 if rec else 7,
                "hidden": "tanh",
                "recurrent": bool(rec),
                "window": 1 if rec else 2,
                "output": "sigmoid",
                "outcome": "solved" if ok else "budget",
                # an evolutionary evaluation: the 16 training sequences (16 fwd-equiv)
                "evals": int(fe.size) if grad else max(int(end / 16), 1),
                "fwd_steps": 0 if grad else int(end),
                "grad_steps": int(end / 2) if grad else 0,
                "fwd_equiv": float(end),
                "final_loss": float(best[-1]),
                "best_loss": float(best[-1]),
                "solved_at_evals": float(fe.size) if ok else math.nan,
                "solved_at_fwd_equiv": float(end) if ok else math.nan,
                "wall_s": end * 1e-6,
                "compile_s": 0.0,
                "message": "",
                "error": "",
                "target_loss": math.nan,
                "budget_evals": pd.NA,
                "budget_fwd_equiv": budget,
                "budget_wall_s": math.nan,
            }
            if len(recs) > 1:
                row["grid.net.recurrent"] = bool(rec)
            runs.append(row)
            traces.append(
                pd.DataFrame(
                    {
                        "run_id": rid,
                        "method": method,
                        "task": task,
                        "evals": np.arange(1, fe.size + 1),
                        "fwd_steps": fe,
                        "grad_steps": 0,
                        "fwd_equiv": fe,
                        "wall_s": fe * 1e-6,
                        "loss": best,
                        "best_loss": best,
                        "grad_norm": np.nan,
                    }
                )
            )
    runs = pd.DataFrame(runs)
    runs["budget_evals"] = runs["budget_evals"].astype("Int64")
    runs.to_parquet(d / "runs.parquet", index=False)
    pd.concat(traces, ignore_index=True).to_parquet(d / "traces.parquet", index=False)
    meta = {
        "format": 1,
        "experiment": name,
        "scale": "smoke",
        "root_seed": 7,
        "replicates": seeds,
        "n_runs": planned if planned is not None else len(runs),
        "config_resolved": {"name": name, "description": f"synthetic {name}"},
        "config_given": {"report": report_table(name)},
        "versions": {"python": "3.11.7", "numpy": "2.0.0"},
        "git": {"commit": "0123456789abcdef", "dirty": False},
        "cpu": {"model": "Test CPU", "count": 2, "available": 2},
        "platform": "Linux-test",
        "threads": {"backend": "loky", "jobs": 2, "scheduler": None},
        "toolkit_version": "0.1.0",
        "created": "2026-01-01T00:00:00+00:00",
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-01T00:10:00+00:00",
        "status": status,
        "history": [{"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:10:00+00:00"}],
    }
    (d / "meta.json").write_text(json.dumps(meta))
    if figures:
        (d / "figures").mkdir()
        for stem in figures:
            (d / "figures" / f"{stem}.png").write_bytes(b"\x89PNG fake")
    for tname, df in (extra_tables or {}).items():
        df.to_parquet(d / f"{tname}.parquet", index=False)
    return d


def report_table(name: str) -> dict:
    """The [report] table of experiments/<name>.toml, as a sweep stores it in meta.json."""
    f = EXPERIMENTS / f"{name}.toml"
    return tomllib.loads(f.read_text("utf-8")).get("report", {}) if f.is_file() else {}


def speed_spec(bptt_cost=1e3, evo_cost=1e5, k_b=18, k_e=18):
    return {
        ("xor", "bptt_adam", True): (k_b, bptt_cost),
        ("xor", "cmaes", True): (k_e, evo_cost),
        ("adding", "bptt_adam", True): (k_b, bptt_cost),
        ("adding", "cmaes", True): (k_e, evo_cost),
    }


def optima_spec(k_b=5, k_c=25, k_ff=25, k_ffc=25):
    return {
        ("xor", "bptt_adam", True): (k_b, 1e3),
        ("xor", "cmaes", True): (k_c, 1e4),
        ("xor", "bptt_adam", False): (k_ff, 1e3),
        ("xor", "cmaes", False): (k_ffc, 1e4),
    }


def verdict(text: str, claim: str) -> str:
    """The verdict label of claim 'a' or 'b' from the summary table."""
    row = next(line for line in text.splitlines() if line.startswith(f"| ({claim}) "))
    return row.split(" | ")[1]


# -- the document ----------------------------------------------------------------------------
def test_sections_tables_and_figures(tmp_path):
    write_experiment(tmp_path, "speed", speed_spec(), figures=("ecdf", "convergence_fwd_equiv"))
    write_experiment(tmp_path, "local_optima", optima_spec(), seeds=30)
    out = R.write_report(tmp_path)
    assert out == tmp_path / "REPORT.md"
    text = out.read_text(encoding="utf-8")
    for head in (
        "# BPTT against evolutionary optimization",
        "## Verdicts at a glance",
        "## The question",
        "## Setup",
        "### Cost units: forward-pass equivalents",
        "### Machine, software, commit",
        "### 1. Speed",
        "### 2. Local optima",
        "## Claim (a)",
        "## Claim (b)",
        "## Published numbers beside ours",
        "## How the verdicts are decided",
    ):
        assert head in text, head
    # setup from meta.json and the run tables
    assert "`0123456789abcdef`" in text and "Test CPU" in text and "smoke" in text
    assert "| speed | smoke | 7 | 20 | 20 | complete, 80 of 80 runs stored |" in text
    # figures: relative PNG links, in reading order
    conv = text.index("(speed/figures/convergence_fwd_equiv.png)")
    assert conv < text.index("(speed/figures/ecdf.png)")
    # the results table: success with Wilson CI, ERT with CI, ratio to the best BPTT variant
    assert "| condition | method | solved (rate [CI]) | median final loss [CI] |" in text
    assert "| adding | BPTT (Adam) | 18/20 = 0.90 [0.70, 0.97] |" in text
    assert "1 (reference)" in text
    # claim (b) tables and stuck runs
    assert "(b1) BPTT against CMA-ES" in text and "method x architecture interaction" in text
    # the rules come before any number
    assert text.index("## How the verdicts are decided") < text.index("## Experiments")
    assert "#### Stuck runs" in text and "| basins |" not in text
    assert "| xor | feed-forward, window 2 | BPTT (Adam) | 25/30" in text
    # the other experiments are missing: one line each, not fatal
    for name in ("lag", "random_guessing", "scaling", "truncation", "cliff", "reber"):
        assert f"Not run: no results in `{name}/`" in text
    # statements where there are no published numbers (the experiment files' [report] tables,
    # as stored in meta.json); the published numbers themselves: test_published_numbers_...
    assert "no comparable number" in text
    assert "could not be generated" not in text  # no section failed


def test_claim_a_verdict_follows_the_numbers(tmp_path):
    fast = tmp_path / "fast"
    write_experiment(fast, "speed", speed_spec(bptt_cost=1e3, evo_cost=1e5))
    text = R.render_report(fast)
    assert verdict(text, "a") == "supported"
    assert "BPTT significantly faster in 2 of 2 informative conditions" in text
    assert "BPTT was significantly faster (Holm-adjusted)" in text
    assert "best-cap ERT" in text and "(calibrated)" in text and "break-even ratio" in text

    # make CMA-ES 100x cheaper than BPTT: the verdict flips
    slow = tmp_path / "slow"
    write_experiment(slow, "speed", speed_spec(bptt_cost=1e5, evo_cost=1e3))
    text2 = R.render_report(slow)
    assert verdict(text2, "a") == "not supported"
    assert "the evolutionary method was significantly faster" in text2
    assert "| evolution faster |" in text2

    # equal costs: no significant difference, and the ratio CI is too wide to call them equal
    same = tmp_path / "same"
    write_experiment(same, "speed", speed_spec(bptt_cost=1e4, evo_cost=1e4, k_b=10, k_e=10))
    text3 = R.render_report(same)
    assert verdict(text3, "a") == "inconclusive at this scale"
    assert "| undecided |" in text3

    # one task each way: partly supported
    mixed = tmp_path / "mixed"
    spec = speed_spec()
    spec[("adding", "bptt_adam", True)] = (18, 1e5)
    spec[("adding", "cmaes", True)] = (18, 1e3)
    write_experiment(mixed, "speed", spec)
    assert verdict(R.render_report(mixed), "a") == "partly supported"


def test_claim_b_verdict_follows_the_numbers(tmp_path):
    # recurrence costs BPTT 0.67 of success and CMA-ES nothing: a planted interaction
    a = tmp_path / "stuck"
    write_experiment(a, "local_optima", optima_spec(k_b=5, k_c=25, k_ff=25), seeds=30)
    text = R.render_report(a)
    assert verdict(text, "b") == "supported"
    assert "recurrence lowered BPTT's success significantly more than CMA-ES's" in text
    assert "BPTT succeeded significantly less often than CMA-ES" in text  # b1, reported

    # BPTT less often stuck on the recurrent net and hurt less by it
    b = tmp_path / "free"
    write_experiment(b, "local_optima", optima_spec(k_b=28, k_c=8, k_ff=8), seeds=30)
    text = R.render_report(b)
    assert verdict(text, "b") == "not supported"
    assert "BPTT succeeded significantly more often than CMA-ES" in text

    # the case: BPTT below CMA-ES on the recurrent net (b1), but recurrence hurts
    # CMA-ES as much (main effects only): no interaction, the verdict is not "supported"
    c = tmp_path / "main-effects"
    write_experiment(c, "local_optima", optima_spec(k_b=5, k_c=15, k_ff=15, k_ffc=25), seeds=30)
    text = R.render_report(c)
    assert verdict(text, "b") != "supported"
    assert "BPTT succeeded significantly less often than CMA-ES" in text

    # feed-forward net never solved by anyone: not informative, so the claim is undecided
    d = tmp_path / "ff-unsolvable"
    write_experiment(d, "local_optima", optima_spec(k_b=5, k_c=25, k_ff=0, k_ffc=0), seeds=30)
    text = R.render_report(d)
    assert verdict(text, "b") == "inconclusive at this scale"
    assert "not informative" in text


def test_too_few_seeds_is_inconclusive(tmp_path):
    write_experiment(tmp_path, "speed", speed_spec(k_b=5, k_e=5), seeds=5)
    text = R.render_report(tmp_path)
    assert verdict(text, "a") == "inconclusive at this scale"
    assert "Seeds per condition and method: 5. That is **too few**" in text


def test_missing_partial_and_broken_experiments_are_reported(tmp_path):
    # nothing at all
    empty = tmp_path / "empty"
    text = R.write_report(empty).read_text(encoding="utf-8")
    assert verdict(text, "a") == "not measured" and verdict(text, "b") == "not measured"
    assert "Not run: no results in `speed/`" in text
    # a partial sweep, an unreadable meta.json, a directory with meta.json only
    root = tmp_path / "partial"
    write_experiment(root, "speed", speed_spec(), status="interrupted", planned=200)
    d = write_experiment(root, "reber", {("reber", "bptt_adam", True): (3, 1e3)}, seeds=4)
    (d / "meta.json").write_text("{not json")
    (root / "lag").mkdir()
    (root / "lag" / "meta.json").write_text(json.dumps({"experiment": "lag", "status": "running"}))
    (root / "scaling").mkdir()
    (root / "scaling" / "runs.parquet").write_bytes(b"not parquet")
    text = R.write_report(root).read_text(encoding="utf-8")
    assert "**This experiment is partial**" in text
    assert "interrupted, 80 of 200 runs stored" in text
    assert "`meta.json` could not be read" in text
    assert "`runs.parquet` could not be read" in text
    assert "No run table (`runs.parquet`) is stored for this experiment." in text
    assert "could not be generated" not in text


def test_special_tables_are_summarised(tmp_path):
    fid = pd.DataFrame(
        {
            "theta_index": [0, 0, 1, 1],
            "k": [1, 20, 1, 20],
            "cosine": [0.5, 1.0, 0.7, 1.0],
            "norm_ratio": [0.4, 1.0, 0.6, 1.0],
            "T": 20,
        }
    )
    interp = pd.DataFrame(
        {"pair": "0 → 1", "alpha": np.linspace(-0.25, 1.25, 7), "loss": [2, 1, 5, 9, 4, 1, 2.0]}
    )
    write_experiment(
        tmp_path,
        "truncation",
        {("adding", "bptt_adam", True): (10, 1e3)},
        seeds=10,
        extra_tables={"gradient_fidelity": fid, "interpolation": interp},
    )
    par = tmp_path / "parallel"
    par.mkdir()
    pd.DataFrame({"jobs": [1, 1, 2, 2], "wall_s": [10.0, 10.0, 5.0, 5.0]}).to_parquet(
        par / "parallel.parquet", index=False
    )
    text = R.render_report(tmp_path)
    assert "#### Gradient fidelity of BPTT(k)" in text
    assert "| 20 | 1 | 2 | 0.600 | 0.500 | 0.500 |" in text
    assert "#### Loss on the straight line between two seeds' solutions" in text
    assert "| 0 → 1 | 1.00 | 1.00 | 9.00 | 9.00 |" in text
    assert "| 2 | 2 | 5.00 | 2.00 | 1.00 |" in text  # --jobs 2: speedup 2, efficiency 1


def test_same_inputs_give_the_same_bytes(tmp_path):
    a = tmp_path / "a"
    write_experiment(a, "speed", speed_spec(), figures=("ecdf",))
    write_experiment(a, "local_optima", optima_spec(), seeds=12)
    first = R.write_report(a).read_bytes()
    assert R.write_report(a).read_bytes() == first  # REPORT.md itself is not an input
    b = tmp_path / "elsewhere" / "results"
    shutil.copytree(a, b)
    (b / "REPORT.md").unlink()
    assert R.write_report(b).read_bytes() == first  # no paths, no clocks in the text


def test_cli_report_prints_the_path(tmp_path, capsys):
    from toolkit.cli import main

    write_experiment(tmp_path, "speed", speed_spec(), seeds=10)
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "REPORT.md")


# -- helpers with known answers -------------------------------------------------------------
def test_fmt_num():
    cases = {
        0: "0",
        12.345: "12.3",
        1234.5: "1230",
        12345: "1.23e4",
        0.00123: "0.00123",
        0.000123: "1.23e-4",
        9999.7: "1.00e4",
        math.inf: "∞",
        math.nan: "–",
        None: "–",
    }
    for x, s in cases.items():
        assert R.fmt_num(x) == s, x


def test_report_on_a_real_sweep_directory(tmp_path):
    """The store's own tables (dtypes, grid columns, error runs) go through the report."""
    from _fake_registry import REGISTRY

    from toolkit import sweep

    cfg = tmp_path / "speed.toml"
    cfg.write_text(
        'name = "speed"\nseed = 3\nreplicates = 3\n[task]\nname = "sine"\n'
        "[net]\nn_hidden = 2\n[budget]\nevals = 30\ntarget_loss = 1.0\n"
        "[methods.walk]\n[methods.boom]\n"
        '[grid]\n"task.params.T" = [4, 8]\n'
    )
    sweep.run_sweep(
        cfg,
        results_root=tmp_path / "results",
        jobs=1,
        registry=REGISTRY,
        progress=False,
        echo=lambda *a: None,
    )
    text = R.write_report(tmp_path / "results").read_text(encoding="utf-8")
    assert "complete, 12 of 12 runs stored, 6 ended with an error (left out)" in text
    assert "| sine (T=4) | walk |" in text and "| sine (T=8) | walk |" in text
    assert verdict(text, "a") == "not measured"  # no gradient method in this sweep
    assert "could not be generated" not in text


def test_published_numbers_beside_ours(tmp_path):
    spec = {("latch", "random", True): (10, 1e3), ("latch", "bptt_adam", True): (10, 1e2)}
    write_experiment(tmp_path, "random_guessing", spec, seeds=10)
    text = R.render_report(tmp_path)
    assert "#### Expected number of loss evaluations to solve" in text
    row = next(line for line in text.splitlines() if line.startswith("| latch, variant II"))
    assert "| 22 |" in row and "section 'Latch and 2-sequence problems'" in row
    assert "(random_guessing: latch, H=2, 10/10 solved)" in row
    row1 = next(line for line in text.splitlines() if line.startswith("| latch, variant I:"))
    assert "No like-for-like run" in row1  # our latch is variant II
    assert "2906" in text and "section 'Parity problem'" in text  # with its source


def test_report_says_how_long_its_sweeps_took(tmp_path):
    """Wall and CPU time from meta.json's sessions (parts' sessions in a merged meta) and,
    for the parallel experiment, from its timings; old sessions without cpu_s are named."""
    write_experiment(tmp_path, "speed", speed_spec())
    write_experiment(tmp_path, "local_optima", optima_spec(), seeds=12)
    for name, hist in [
        ("speed", [{"wall_s": 600.0, "cpu_s": 1100.0}, {"wall_s": 60.0, "cpu_s": 100.0}]),
        ("local_optima", [{"wall_s": 120.0, "cpu_s": 200.0, "part": "xor"}]),
    ]:
        f = tmp_path / name / "meta.json"
        meta = json.loads(f.read_text())
        meta["history"] = [{"start": "2026-01-01T00:00:00+00:00", **h} for h in hist]
        f.write_text(json.dumps(meta))
    par = tmp_path / "parallel"
    par.mkdir()
    pd.DataFrame({"jobs": [1, 2], "wall_s": [40.0, 20.0], "cpu_s": [38.0, 39.0]}).to_parquet(
        par / "parallel.parquet", index=False
    )
    (par / "meta.json").write_text(json.dumps({"experiment": "parallel", "history": []}))
    text = R.render_report(tmp_path)
    # 600 + 60 + 120 + 40 + 20 s = 14 min; 1100 + 100 + 200 + 38 + 39 s = 24.6 min
    assert "took 14.0 min of wall time and 24.6 min of CPU time in their runs" in text
    assert "| speed | 2026-01-01T00:10:00+00:00 | 2 | 11.0 min | 20.0 min |" in text
    assert "| parallel | – | 2 | 60 s | 77 s |" in text
    f = tmp_path / "speed" / "meta.json"
    meta = json.loads(f.read_text())
    meta["history"][1].pop("cpu_s")
    f.write_text(json.dumps(meta))
    assert "(CPU time not recorded for speed)" in R.render_report(tmp_path)


def test_report_names_the_commits_that_ran_the_runs(tmp_path):
    """A session with nothing to run (e.g. after the [report] text changed) records the new
    commit in meta.json, but the report names only the commits whose code ran runs."""
    write_experiment(tmp_path, "speed", speed_spec())
    f = tmp_path / "speed" / "meta.json"
    meta = json.loads(f.read_text())
    meta["git"] = {"commit": "c" * 40, "dirty": False}
    meta["history"] = [
        {"executed": 10, "git": {"commit": "a" * 40, "dirty": False}},
        {"executed": 5, "git": {"commit": "b" * 40, "dirty": True}},
        {"executed": 0, "git": {"commit": "c" * 40, "dirty": False}},
    ]
    f.write_text(json.dumps(meta))
    text = R.render_report(tmp_path)
    assert f"| git commit | `{'a' * 40}`, `{'b' * 40}` (uncommitted changes) |" in text
    assert "c" * 40 not in text


def test_sessions_without_a_recorded_commit_are_said_so(tmp_path):
    write_experiment(tmp_path, "speed", speed_spec())
    f = tmp_path / "speed" / "meta.json"
    meta = json.loads(f.read_text())
    meta["history"] = [{"executed": 3}, {"executed": 0, "git": {"commit": "c" * 40}}]
    f.write_text(json.dumps(meta))
    text = R.render_report(tmp_path)
    assert "could not be generated" not in text
    assert "| git commit | not recorded" in text and "c" * 40 not in text


def test_anatomy_table_counts_and_shares_with_the_thresholds():
    """The rendering of toolkit.claims.anatomy_counts (its counts: tests/test_claims.py)."""
    df = pd.DataFrame(
        {
            "task": ["xor"] * 5,
            "method": ["bptt_adam"] * 3 + ["cmaes"] * 2,
            "recurrent": [True] * 5,
            "window": [1] * 5,
            "class": ["local minimum", "local minimum", "slow", "plateau", "saddle"],
            "grad_tol": [2e-4] * 5,
        }
    )
    text = "\n".join(R._anatomy_table(df))
    assert "| failed runs | local minimum | saddle | plateau | slow |" in text
    assert "| xor | recurrent | BPTT (Adam) | 3 | 2 (67%) | – | – | 1 (33%) |" in text
    assert "gradient norm is > 0.0002" in text  # the stored threshold, not the default
    assert R._anatomy_table(pd.DataFrame()) == []


def test_question_c_section_states_answer_rates_and_swaps(tmp_path):
    """With LSTM runs in the lag experiment the report answers question (c) in the summary
    table and in its own section: rates per cell and algorithm, each swap with CI and Holm p."""
    spec = {("elman", "bptt_adam"): 2, ("lstm", "bptt_adam"): 25, ("elman", "cmaes"): 3}
    s = {("delayed_recall", m, c == "elman"): (k, 1e3) for (c, m), k in spec.items()}
    write_experiment(tmp_path, "lag", s, seeds=30)
    f = tmp_path / "lag" / "runs.parquet"
    runs = pd.read_parquet(f)
    runs["cell"] = np.where(runs["recurrent"].astype(bool), "elman", "lstm")
    runs["recurrent"], runs["window"] = True, 1
    runs.to_parquet(f, index=False)
    text = R.render_report(tmp_path)
    assert verdict(text, "c") == "the architecture"
    sec = text[text.index("## Question (c)") :]
    assert "**Answer: the architecture.**" in sec
    assert "| delayed_recall | lstm | BPTT (Adam) | 25/30 = 0.83 |" in sec
    assert (
        "| delayed_recall | cell swap | lstm / bptt_adam (25/30) | elman / bptt_adam (2/30) |"
        in sec
    )
    # without a second cell: not measured, said so
    empty = tmp_path / "e"
    write_experiment(empty, "lag", {("latch", "bptt_adam", True): (3, 1e3)}, seeds=10)
    assert verdict(R.render_report(empty), "c") == "not measured"


def test_question_c_names_the_significant_swaps_the_rule_does_not_weigh(tmp_path):
    """An undecided condition says what it means (no rescue of BPTT on Elman), and every
    significant swap outside the rule (a cell swap under CMA-ES, BPTT beating CMA-ES) is named
    with its difference; the rule's own comparisons are not repeated."""
    spec = {
        ("elman", "bptt_adam"): 24,
        ("lstm", "bptt_adam"): 27,
        ("elman", "cmaes"): 1,
        ("lstm", "cmaes"): 29,
    }
    s = {("delayed_recall", m, c == "elman"): (k, 1e3) for (c, m), k in spec.items()}
    write_experiment(tmp_path, "lag", s, seeds=30)
    f = tmp_path / "lag" / "runs.parquet"
    runs = pd.read_parquet(f)
    runs["cell"] = np.where(runs["recurrent"].astype(bool), "elman", "lstm")
    runs["recurrent"], runs["window"] = True, 1
    runs.to_parquet(f, index=False)
    sec = R.render_report(tmp_path)
    sec = sec[sec.index("## Question (c)") :]
    para = sec.splitlines()[2]
    assert "(undecided) on delayed_recall" in para
    assert "no swap is significant" not in para
    assert "lstm / cmaes − elman / cmaes = +0.93" in para
    assert "elman / cmaes − elman / bptt_adam = -0.77" in para
    assert "lstm / bptt_adam − elman / bptt_adam" not in para  # not significant
    assert "| delayed_recall | undecided |" in sec
