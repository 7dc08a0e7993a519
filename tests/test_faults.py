"""A results directory that cannot lose runs silently: checked run files (damaged ones are
named, moved aside and rerun), consolidation and part merging that never drop runs, the
writer's lock, and one clean message when the output becomes unwritable mid-run. Uses the fake
registry of tests/_fake_registry.py."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _fake_registry import REGISTRY

from toolkit import cli, config, store, suite, sweep

TESTS = Path(__file__).resolve().parent

CONFIG = """
name = "tiny"
seed = 5
replicates = 3
[task]
name = "sine"
params = { T = 4 }
[net]
n_hidden = 2
[budget]
evals = 30
[methods.walk]
step = 0.3
log = "LOG"
[grid]
"net.n_hidden" = [2, 3]
"""

PARTS = """
[post.parts.a]
"budget.evals" = 20
[post.parts.b]
replicates = 2
"""


@pytest.fixture
def cfg(tmp_path):
    log = tmp_path / "log.txt"
    p = tmp_path / "tiny.toml"
    p.write_text(CONFIG.replace("LOG", str(log)))
    return p, log


def run(path, out, lines=None, **kw):
    kw.setdefault("jobs", 1)
    echo = (lambda *a: None) if lines is None else (lambda *a: lines.append(" ".join(map(str, a))))
    return sweep.run_sweep(path, out=out, registry=REGISTRY, progress=False, echo=echo, **kw)


def executed(log):
    return log.read_text().split() if log.exists() else []


def run_files(out):
    return sorted((out / "runs").glob("*.json"))


# -- checked run files ------------------------------------------------------------------------
def test_run_files_carry_a_checksum(cfg, tmp_path):
    path, _ = cfg
    out = tmp_path / "res"
    run(path, out)
    for f in run_files(out):
        rec = json.loads(f.read_text())
        assert rec["format"] == store.RUN_FORMAT
        assert rec["checksum"] == "sha256:" + store.file_checksum(f.read_bytes())
        assert store.load_run_file(f)["run_id"] == f.stem
    assert not (out / store.LOCK_FILE).exists()  # released at the end


@pytest.mark.parametrize("damage", ["truncate", "tamper"])
def test_damaged_run_file_is_named_moved_aside_and_rerun(cfg, tmp_path, damage):
    path, log = cfg
    out = tmp_path / "res"
    run(path, out)
    victim = run_files(out)[2]
    if damage == "truncate":
        victim.write_bytes(victim.read_bytes()[:200])
        why = "not valid JSON"
    else:  # valid JSON, one value changed, the old checksum kept
        rec = json.loads(victim.read_text())
        rec["row"]["best_loss"] = 1e-9
        victim.write_text(json.dumps(rec, indent=1))
        why = "checksum mismatch"
    damaged_bytes = victim.read_bytes()
    with pytest.raises(store.DamagedResults, match=why) as ei:  # never dropped silently
        store.consolidate(out, [f.stem for f in run_files(out)])
    assert str(victim) in str(ei.value) and ei.value.paths == [victim]
    lines = []
    res = run(path, out, lines)
    assert (res.n_stored_before, res.n_executed) == (5, 1)
    assert len(executed(log)) == 7
    warning = [ln for ln in lines if "damaged run file" in ln]
    assert len(warning) == 1 and str(victim) in warning[0] and why in warning[0]
    aside = list((out / "runs" / store.DAMAGED_DIR).iterdir())
    assert len(aside) == 1 and aside[0].name.startswith(victim.name + ".")
    assert aside[0].read_bytes() == damaged_bytes  # kept, never deleted
    assert str(aside[0]) in warning[0]
    runs = store.load_runs(out)
    assert len(runs) == 6 and victim.stem in set(runs["run_id"])
    assert store.load_meta(out)["status"] == "complete"


def test_dry_run_reports_damage_and_moves_nothing(cfg, tmp_path):
    path, _ = cfg
    out = tmp_path / "res"
    run(path, out)
    victim = run_files(out)[0]
    victim.write_text("{")
    lines = []
    res = run(path, out, lines, dry_run=True)
    assert res.n_stored_before == 5
    assert any(str(victim) in ln and "would be moved aside" in ln for ln in lines)
    assert victim.exists() and not (out / "runs" / store.DAMAGED_DIR).exists()


def _rewrite(f, change):
    rec = json.loads(f.read_text())
    change(rec)
    f.write_text(json.dumps(rec, indent=1))


def test_old_format_files_without_checksum_are_accepted(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    run(path, out)

    def old_format(rec):
        rec["format"] = 1
        del rec["checksum"]

    for f in run_files(out):
        _rewrite(f, old_format)
    res = run(path, out)
    assert (res.n_stored_before, res.n_executed) == (6, 0)
    assert len(store.load_runs(out)) == 6


def _as_old(rec):
    """format 1: no checksum, so only the schema check can catch a problem"""
    rec["format"] = 1
    rec.pop("checksum")


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda r: _as_old(r) or r.update(run_id="other"), "does not match the file name"),
        (lambda r: _as_old(r) or r["row"].pop("outcome"), "row: missing key outcome"),
        (lambda r: _as_old(r) or r["row"].update(outcome="meh"), "'meh' is not one of"),
        (lambda r: _as_old(r) or r.pop("trace"), "missing key trace"),
        (lambda r: _as_old(r) or r.update(row=[]), "row is not a JSON object"),
        (lambda r: r.pop("checksum"), "no checksum"),
        (lambda r: r.update(format=7), "unknown format"),
    ],
)
def test_schema_problems_make_a_file_damaged(cfg, tmp_path, change, why):
    path, _ = cfg
    out = tmp_path / "res"
    run(path, out)
    f = run_files(out)[0]
    _rewrite(f, change)
    with pytest.raises(store.DamagedRunFile, match=why):
        store.load_run_file(f)
    assert store.check_runs(out, [f.stem], move=False) == {}


# -- merging parts ------------------------------------------------------------------------------
@pytest.fixture
def parts(tmp_path, monkeypatch):
    monkeypatch.setenv("BPTT_REGISTRY", "_fake_registry:REGISTRY")
    log = tmp_path / "log.txt"
    p = tmp_path / "tp.toml"
    p.write_text(CONFIG.replace("LOG", str(log)).replace("[grid]", PARTS + "[grid]"))
    sexp = config.load(p, registry=REGISTRY)
    out = tmp_path / "res"
    suite.run(sexp, out=out, jobs=1, progress=False, echo=lambda *a: None)
    return sexp, out, log


def test_merge_rebuilds_stale_or_missing_part_tables(parts):
    sexp, out, _ = parts
    n = sexp.n_runs
    assert n == 6 + 4 and len(store.load_runs(out)) == n
    a, b = out / "parts" / "a", out / "parts" / "b"
    for t in (store.RUNS_TABLE, store.TRACES_TABLE, store.THETAS_TABLE):
        (a / t).unlink()  # part a's tables gone
    stale = store.load_runs(b).iloc[:1]  # part b's runs.parquet stale: one row of four
    stale.to_parquet(b / store.RUNS_TABLE)
    (out / store.RUNS_TABLE).unlink()
    suite.merge_parts(sexp, out, echo=lambda *a: None)
    merged = store.load_runs(out)
    assert len(merged) == n and merged["run_id"].is_unique
    assert len(store.load_thetas(out)) == n
    assert set(store.load_traces(out)["run_id"]) == set(merged["run_id"])
    assert store.load_meta(out)["status"] == "complete"
    assert len(store.load_runs(b)) == 4  # the part's own table rebuilt too


def test_merge_with_a_missing_run_is_never_silent(parts):
    sexp, out, _ = parts
    before = store.load_runs(out)
    victim = run_files(out / "parts" / "b")[0]
    victim.unlink()
    with pytest.raises(store.DamagedResults) as ei:
        suite.merge_parts(sexp, out, echo=lambda *a: None)
    msg = str(ei.value)
    assert "part 'b': 1 of 4 planned runs missing" in msg and victim.stem in msg
    pd.testing.assert_frame_equal(store.load_runs(out), before)  # nothing was merged
    lines = []
    suite.merge_parts(sexp, out, allow_incomplete=True, echo=lines.append)
    assert len(lines) == 1 and "part 'b': 1 of 4" in lines[0]
    assert len(store.load_runs(out)) == len(before) - 1
    meta = store.load_meta(out)
    assert meta["status"] == "incomplete" and meta["missing"] == {"b": 1}


def test_merge_with_a_damaged_run_file_names_it(parts):
    sexp, out, _ = parts
    victim = run_files(out / "parts" / "a")[1]
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.raises(store.DamagedResults, match="damaged run file") as ei:
        suite.merge_parts(sexp, out, echo=lambda *a: None)
    assert str(victim) in str(ei.value)


def test_suite_rerun_moves_damage_aside_and_merges_everything(parts):
    sexp, out, log = parts
    n_log = len(executed(log))
    victim = run_files(out / "parts" / "a")[0]
    victim.write_text("")
    lines = []
    res = suite.run(sexp, out=out, jobs=1, progress=False, echo=lines.append)
    assert res.n_executed == 1 and len(executed(log)) == n_log + 1
    assert any(str(victim) in ln for ln in lines)
    assert len(store.load_runs(out)) == sexp.n_runs
    assert not list(out.rglob(store.LOCK_FILE))


# -- the writer's lock ----------------------------------------------------------------------------
def _lock(out, pid, host=None, command=("bptt", "run", "other.toml")):
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": pid,
        "host": host or platform.node(),
        "since": "2024-01-01T00:00:00+00:00",
        "since_epoch": 0.0,
        "command": list(command),
        "token": "feed",
    }
    (out / store.LOCK_FILE).write_text(json.dumps(info))
    return info


@pytest.fixture
def sleeper():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid
    p.kill()
    p.wait()


def test_second_writer_is_refused(cfg, tmp_path, sleeper, monkeypatch):
    path, log = cfg
    out = tmp_path / "res"
    # the sleeper started after since_epoch 0 would look like a reused pid: give it a real time
    info = _lock(out, sleeper)
    info["since_epoch"] = store._process_start(sleeper) or 0.0
    (out / store.LOCK_FILE).write_text(json.dumps(info))
    with pytest.raises(sweep.SweepError) as ei:
        run(path, out)
    msg = str(ei.value)
    assert f"pid {sleeper} on host {platform.node()}" in msg and "other.toml" in msg
    assert "since 2024-01-01" in msg and "Wait for it to finish" in msg
    assert not executed(log) and not (out / "runs").exists()  # nothing written
    assert json.loads((out / store.LOCK_FILE).read_text())["token"] == "feed"  # left alone
    # the command line: exit 2, one message, no traceback
    monkeypatch.setenv("BPTT_REGISTRY", "_fake_registry:REGISTRY")
    err = subprocess.run(
        [sys.executable, "-m", "toolkit", "run", str(path), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])},
        timeout=120,
    )
    assert err.returncode == 2 and "Traceback" not in err.stderr
    assert f"pid {sleeper}" in err.stderr


def test_lock_from_another_host_is_refused(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    _lock(out, 1, host="elsewhere.example")
    with pytest.raises(sweep.SweepError) as ei:
        run(path, out)
    msg = str(ei.value)
    assert "host elsewhere.example" in msg and f"remove {out / store.LOCK_FILE}" in msg
    assert not executed(log)


def test_stale_lock_is_taken_over(cfg, tmp_path):
    path, log = cfg
    out = tmp_path / "res"
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # a pid that no longer runs
    _lock(out, p.pid)
    lines = []
    res = run(path, out, lines)
    assert res.n_executed == 6
    notes = [ln for ln in lines if ln.startswith("note: taking over the lock")]
    assert len(notes) == 1 and f"pid {p.pid}" in notes[0]
    assert not (out / store.LOCK_FILE).exists()


def test_lock_is_reentrant_and_released_only_by_its_holder(tmp_path):
    with store.acquire_lock(tmp_path) as outer:
        with store.acquire_lock(tmp_path):
            pass
        assert outer.path.exists()  # the inner release keeps the outer hold
    assert not outer.path.exists()
    lock = store.acquire_lock(tmp_path)
    _lock(tmp_path, os.getpid() + 1)  # someone replaced it meanwhile
    lock.release()
    assert (tmp_path / store.LOCK_FILE).exists()


# -- unwritable output mid-run ---------------------------------------------------------------------
def test_unwritable_output_mid_run_one_message_and_resume(tmp_path, monkeypatch, capsys):
    log = tmp_path / "log.txt"
    path = tmp_path / "tiny.toml"
    path.write_text(CONFIG.replace("LOG", str(log)))
    out = tmp_path / "res"
    real_write_run = store.write_run
    calls = []

    def failing_write_run(out_dir, record):
        calls.append(record["run_id"])
        if len(calls) > 4:
            raise OSError(28, "No space left on device")
        return real_write_run(out_dir, record)

    def unwritable(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setenv("BPTT_REGISTRY", "_fake_registry:REGISTRY")
    monkeypatch.setattr(store, "write_run", failing_write_run)
    monkeypatch.setattr(store, "_write_parquet_atomic", unwritable)
    real_write_meta = store.write_meta

    def write_meta(out_dir, meta):  # the first write works, the one in `finally` fails
        if meta["status"] != "running":
            unwritable()
        real_write_meta(out_dir, meta)

    monkeypatch.setattr(store, "write_meta", write_meta)
    rc = cli.main(["run", str(path), "--out", str(out), "--jobs", "1", "--no-progress"])
    cap = capsys.readouterr()
    assert rc == 3
    assert "Traceback" not in cap.err and "Traceback" not in cap.out
    err = [ln for ln in cap.err.splitlines() if ln]
    assert len(err) == 1, cap.err
    assert "No space left on device" in err[0]
    assert f"4 of 6 runs are stored in {out}; run the same command again to resume" in err[0]
    warnings = [ln for ln in cap.out.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 2  # tables, meta.json: one line each
    assert "rebuilding the tables failed too" in warnings[0] and "meta.json" in warnings[1]
    assert not (out / store.LOCK_FILE).exists()
    monkeypatch.undo()

    n = len(executed(log))
    res = run(path, out)
    assert (res.n_stored_before, res.n_executed) == (4, 2)  # only the missing runs
    assert len(executed(log)) == n + 2
    assert len(store.load_runs(out)) == 6 and store.load_meta(out)["status"] == "complete"


def test_damage_found_at_the_end_is_an_error_naming_the_file(cfg, tmp_path, monkeypatch):
    """A run file damaged during the sweep: the final consolidation names it, status failed,
    SweepStopped (exit 3); the next run moves it aside and reruns it."""
    path, log = cfg
    out = tmp_path / "res"
    real_write_run = store.write_run
    hit = []

    def write_then_damage(out_dir, record):
        p = real_write_run(out_dir, record)
        if not hit:
            hit.append(p)
            p.write_bytes(p.read_bytes()[:50])
        return p

    monkeypatch.setattr(store, "write_run", write_then_damage)
    with pytest.raises(sweep.SweepStopped) as ei:
        run(path, out)
    monkeypatch.undo()
    msg = str(ei.value)
    assert str(hit[0]) in msg and "run the same command again to resume" in msg
    assert store.load_meta(out)["status"] == "failed"
    res = run(path, out)
    assert (res.n_stored_before, res.n_executed) == (5, 1)
    assert len(store.load_runs(out)) == 6
