"""The results store: atomic per-run files, consolidated tables, meta.json, resume, --force,
refusing an incompatible results directory."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from _fake_registry import REGISTRY

from toolkit import store, sweep

CONFIG = """
name = "tiny"
seed = 11
replicates = 3
[task]
name = "sine"
params = { T = 4 }
[net]
n_hidden = 2
[budget]
evals = 40
[methods.walk]
step = 0.3
log = "LOG"
[grid]
"net.n_hidden" = [2, 3]
"""


@pytest.fixture
def cfg(tmp_path):
    log = tmp_path / "log.txt"
    p = tmp_path / "tiny.toml"
    p.write_text(CONFIG.replace("LOG", str(log)))
    return p, log


def run(cfg_path, out, **kw):
    kw.setdefault("jobs", 1)
    return sweep.run_sweep(
        cfg_path, out=out, registry=REGISTRY, progress=False, echo=lambda *a: None, **kw
    )


def executed(log):
    return log.read_text().split() if log.exists() else []


def record(run_id, outcome="budget", index=0):
    row = {
        "experiment": "x",
        "run_id": run_id,
        "replicate": 0,
        "seed": 5,
        "task": "t",
        "task_params": "{}",
        "method": "m",
        "method_params": "{}",
        "family": None,
        "n_hidden": 2,
        "n_params": 11,
        "hidden": "tanh",
        "output": "linear",
        "outcome": outcome,
        "evals": 3,
        "fwd_steps": 6,
        "grad_steps": 0,
        "fwd_equiv": 6.0,
        "final_loss": 0.5,
        "best_loss": 0.25,
        "solved_at_evals": float("nan"),
        "solved_at_fwd_equiv": float("nan"),
        "wall_s": 0.1,
        "compile_s": 0.0,
        "message": "",
        "error": "boom" if outcome == "error" else "",
        "target_loss": None,
        "budget_evals": 3,
        "budget_fwd_equiv": None,
        "budget_wall_s": None,
        "grid.a": 1,
    }
    trace = {c: [1, 2, 3] for c in store.TRACE_COLUMNS}
    trace["loss"] = [1.0, float("nan"), float("inf")]
    return {
        "run_id": run_id,
        "index": index,
        "row": row,
        "trace": trace,
        "final_theta": [0.1, 0.2],
        "best_theta": [0.3, 0.4],
    }


# -- files ----------------------------------------------------------------------------------
def test_write_run_is_atomic_and_keyed_by_run_id(tmp_path):
    store.write_run(tmp_path, record("aaa"))
    store.write_run(tmp_path, record("bbb", "error"))
    assert store.stored_ids(tmp_path) == {"aaa": "ok", "bbb": "error"}
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["aaa.json", "bbb.error.json"]
    back = store.read_run(tmp_path, "aaa")
    assert back["row"]["best_loss"] == 0.25 and back["trace"]["loss"][2] == float("inf")
    store.write_run(tmp_path, record("bbb"))  # a retried error run that now succeeded
    assert store.stored_ids(tmp_path) == {"aaa": "ok", "bbb": "ok"}
    assert not (tmp_path / "runs" / "bbb.error.json").exists()


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    store.write_run(tmp_path, record("aaa"))
    before = (tmp_path / "runs" / "aaa.json").read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    bad = record("aaa")
    bad["row"]["best_loss"] = 99.0
    with pytest.raises(OSError, match="disk full"):
        store.write_run(tmp_path, bad)
    monkeypatch.undo()
    assert (tmp_path / "runs" / "aaa.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["aaa.json"]  # no temporary left


def test_prepare_removes_stale_temporaries(tmp_path):
    (tmp_path / "runs").mkdir()
    stale = tmp_path / "runs" / ".aaa.json.999999999.tmp"  # a writer that no longer exists
    live = tmp_path / "runs" / f".bbb.json.{os.getpid()}.tmp"
    stale.write_text("{")
    live.write_text("{")
    store.prepare(tmp_path)
    assert not stale.exists() and live.exists()
    assert store.stored_ids(tmp_path) == {}


def test_consolidate_tables(tmp_path):
    for i, rid in enumerate(["ccc", "aaa", "bbb"]):
        store.write_run(tmp_path, record(rid, "error" if rid == "bbb" else "budget", index=i))
    runs, traces = store.consolidate(tmp_path, ["bbb", "missing", "aaa"])
    assert list(runs["run_id"]) == ["bbb", "aaa"]  # plan order, stored runs only
    assert list(runs.columns) == [*store.RUN_COLUMNS, "grid.a"]
    assert str(runs["evals"].dtype) == "Int64" and runs["fwd_equiv"].dtype == "float64"
    assert list(traces.columns) == ["run_id", "method", "task", *store.TRACE_COLUMNS]
    assert len(traces) == 6 and traces["evals"].dtype == "int64"
    on_disk = store.load_runs(tmp_path)
    pd.testing.assert_frame_equal(on_disk, runs, check_dtype=False)
    assert list(store.load_thetas(tmp_path)["best_theta"].iloc[0]) == [0.3, 0.4]
    runs_all, _ = store.consolidate(tmp_path)  # every stored run, in plan-index order
    assert list(runs_all["run_id"]) == ["ccc", "aaa", "bbb"]


# -- sweeps and the store -------------------------------------------------------------------
def test_tables_and_meta_after_a_sweep(cfg, tmp_path):
    path, _ = cfg
    out = tmp_path / "res"
    res = run(path, out)
    assert (res.n_runs, res.n_executed, res.n_failed) == (6, 6, 0)
    runs = store.load_runs(out)
    assert len(runs) == 6 and set(runs["outcome"]) == {"budget"}
    assert list(runs["n_hidden"]) == [2, 2, 2, 3, 3, 3]
    assert list(runs["replicate"]) == [0, 1, 2, 0, 1, 2]
    assert runs["n_params"].tolist() == [11, 11, 11, 19, 19, 19]
    assert json.loads(runs["task_params"].iloc[0]) == {"T": 4, "B": 3}
    assert json.loads(runs["method_params"].iloc[0])["step"] == 0.3
    assert (runs["evals"] == 40).all() and (runs["fwd_equiv"] == 40 * 12).all()
    assert runs["grid.net.n_hidden"].tolist() == [2, 2, 2, 3, 3, 3]
    traces = store.load_traces(out)
    assert set(traces["run_id"]) == set(runs["run_id"])
    assert (traces.groupby("run_id")["evals"].max() == 40).all()
    meta = store.load_meta(out)
    for key in (
        "config_given",
        "config_resolved",
        "root_seed",
        "versions",
        "git",
        "cpu",
        "threads",
        "start",
        "end",
        "fingerprint",
        "history",
    ):
        assert key in meta, key
    assert meta["root_seed"] == 11 and meta["status"] == "complete"
    assert meta["config_given"]["grid"] == {"net.n_hidden": [2, 3]}
    assert meta["config_resolved"]["net"] == {
        "hidden": "tanh",
        "n_hidden": 2,
        "recurrent": True,
        "window": 1,
    }
    assert len(meta["config_resolved"]["run_configs"]) == 2
    assert meta["versions"]["numpy"] and meta["versions"]["python"]
    assert meta["threads"]["inner_max_num_threads"] == 1
    assert meta["threads"]["worker_env"]["NUMBA_NUM_THREADS"] == "1"
    assert meta["cpu"]["count"] >= 1 and meta["cpu"]["model"]
    counts = meta["counts"]
    assert {k: counts[k] for k in ("runs", "stored_before", "executed", "failed")} == {
        "runs": 6,
        "stored_before": 0,
        "executed": 6,
        "failed": 0,
    }
    # the session's CPU time is the sum of its runs' (rounded), its wall time covers them
    assert counts["cpu_s"] == pytest.approx(runs["cpu_s"].sum(), abs=1e-3)
    assert counts["wall_s"] >= 0 and meta["history"][-1]["cpu_s"] == counts["cpu_s"]


def test_rerun_skips_stored_runs_and_force_reruns_all(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    run(path, out)
    assert len(executed(log)) == 6
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    res = run(path, out, jobs=2)
    assert (res.n_stored_before, res.n_executed) == (6, 0)
    assert len(executed(log)) == 6  # nothing recomputed
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == mtimes
    assert len(store.load_runs(out)) == 6
    # nothing to do after a complete session: meta.json keeps its bytes (no new session), so
    # a rerun of `make experiments` leaves the report and every tracked file as they were
    meta_bytes = (out / "meta.json").read_bytes()
    res = run(path, out)
    assert res.n_executed == 0 and (out / "meta.json").read_bytes() == meta_bytes
    # ... but after an interrupted one, a session is recorded (and completes the status)
    meta = json.loads(meta_bytes)
    meta["status"] = "interrupted"
    (out / "meta.json").write_text(json.dumps(meta))
    res = run(path, out)
    meta = store.load_meta(out)
    assert res.n_executed == 0 and meta["status"] == "complete" and len(meta["history"]) == 2
    # the file's [report] text changes no run, but meta.json must keep the file as given
    path.write_text(path.read_text() + '\n[report]\ntitle = "Tiny"\n')
    res = run(path, out)
    meta = store.load_meta(out)
    assert res.n_executed == 0 and len(meta["history"]) == 3
    assert meta["config_given"]["report"] == {"title": "Tiny"}
    res = run(path, out, force=True)
    assert (res.n_stored_before, res.n_executed) == (0, 6)
    assert len(executed(log)) == 12
    assert len(store.load_meta(out)["history"]) == 1  # --force starts a new history


def test_more_seeds_extend_a_sweep(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    run(path, out, seeds=2)
    first = set(store.load_runs(out)["run_id"])
    res = run(path, out, seeds=4)
    assert (res.n_stored_before, res.n_executed) == (4, 4)
    assert first < set(store.load_runs(out)["run_id"])
    assert len(executed(log)) == 8
    assert len(store.load_meta(out)["history"]) == 2


def test_error_runs_are_retried(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    res = run(path, out)
    victim = store.load_runs(out)["run_id"].iloc[1]
    rec = store.read_run(out, victim)
    rec["row"]["outcome"] = "error"
    (out / "runs" / f"{victim}.json").unlink()
    store.write_run(out, rec)
    res = run(path, out)
    assert (res.n_stored_before, res.n_executed) == (5, 1)
    assert store.stored_ids(out)[victim] == "ok"


def test_incompatible_results_dir_is_refused(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    run(path, out)
    path.write_text(path.read_text().replace("evals = 40", "evals = 50"))
    with pytest.raises(store.IncompatibleResults) as ei:
        run(path, out)
    msg = str(ei.value)
    assert "different configuration" in msg and "budget.evals: 40 -> 50" in msg
    assert "--out" in msg and "--force" in msg
    with pytest.raises(store.IncompatibleResults):  # a dry run says so too
        run(path, out, dry_run=True)
    assert len(executed(log)) == 6
    res = run(path, tmp_path / "elsewhere")
    assert res.n_executed == 6
    res = run(path, out, force=True)
    assert res.n_executed == 6
    assert set(store.load_runs(out)["run_id"]) == set(store.stored_ids(out))


def test_other_experiment_in_the_dir_is_refused(cfg, tmp_path):
    path, _ = cfg
    out = tmp_path / "res"
    run(path, out)
    other = tmp_path / "other.toml"
    other.write_text(path.read_text().replace('name = "tiny"', 'name = "other"'))
    with pytest.raises(store.IncompatibleResults, match="holds results of experiment 'tiny'"):
        run(other, out)


def test_contracts_run_record_matches_records():
    """docs/CONTRACTS.md's run-record table is the one generated from toolkit/records.py."""
    from toolkit import records

    doc = (Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md").read_text("utf-8")
    begin, end = "<!-- run-record:begin -->\n", "<!-- run-record:end -->"
    table = doc[doc.index(begin) + len(begin) : doc.index(end)].rstrip("\n")
    assert table == records.markdown(), "regenerate it with records.markdown()"
    assert store.RUN_COLUMNS == tuple(c.name for c in records.RUN_RECORD)
    assert set(store.TIMING_COLUMNS) == {"wall_s", "eval_s", "compile_s", "cpu_s"}


def test_new_row_declared_columns_only():
    from toolkit import records

    with pytest.raises(KeyError, match="nope"):
        records.new_row(nope=1)
    with pytest.raises(ValueError, match="experiment"):
        records.new_row()
