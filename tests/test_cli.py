"""The `bptt` command / `python -m toolkit`: run (dry run, failures, bad input, resume after a
kill), plot, report, bench."""

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from _fake_registry import REGISTRY

from toolkit import cli, store, sweep

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

CONFIG = """
name = "tiny"
seed = 3
replicates = 3
[task]
name = "sine"
[net]
n_hidden = 2
[budget]
evals = 30
[methods.walk]
log = "LOG"
[methods.boom]
"""


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Runs in-process through the fake registry; cwd is tmp_path."""
    monkeypatch.setenv("BPTT_REGISTRY", "_fake_registry:REGISTRY")
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "log.txt"
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG.replace("LOG", str(log)))
    return cfg, log


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env["BPTT_REGISTRY"] = "_fake_registry:REGISTRY"
    return env


def test_python_m_toolkit_is_bptt():
    r = subprocess.run(
        [sys.executable, "-m", "toolkit", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
    )
    assert r.returncode == 0
    for cmd in ("run", "plot", "report", "bench"):
        assert cmd in r.stdout
    with pytest.raises(SystemExit) as ei:
        cli.main(["run", "--help"])
    assert ei.value.code == 0


def test_dry_run_runs_nothing(fake, capsys):
    cfg, log = fake
    assert cli.main(["run", str(cfg), "--dry-run", "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "6 runs (2 configurations x 3 replicates" in out
    assert "estimated cost" in out and "dry run: nothing was run or written" in out
    assert out.count("to run") >= 6 and "seed" in out
    assert not log.exists()
    assert not (cfg.parent / "results").exists()


def test_run_reports_failures_and_exits_1(fake, capsys):
    cfg, log = fake
    assert cli.main(["run", str(cfg), "--jobs", "1", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "3 of 6 runs failed" in out and "RuntimeError: fake failure" in out
    runs = store.load_runs(cfg.parent / "results" / "tiny")
    assert sorted(runs["outcome"]) == ["budget"] * 3 + ["error"] * 3
    # the dry run now shows what is stored; a rerun retries only the failed runs
    assert cli.main(["run", str(cfg), "--dry-run"]) == 0
    assert "3 stored, 3 to run" in capsys.readouterr().out


def test_bad_input_exits_2(fake, capsys, tmp_path):
    cfg, log = fake
    bad = tmp_path / "bad.toml"
    bad.write_text(
        CONFIG.replace("n_hidden = 2", "n_hidden = 0").replace("[methods.boom]", "[methods.cmaes]")
    )
    assert cli.main(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: net.n_hidden: expected an integer >= 1, got 0" in err
    assert f"{bad}: methods.cmaes: unknown method 'cmaes'" in err
    assert not (tmp_path / "results").exists()
    assert cli.main(["run", str(cfg), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--scheduler needs --backend dask" in capsys.readouterr().err
    assert cli.main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the experiment file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        cli.main(["run", str(cfg), "--jobs", "-3"])
    assert ei.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["run", str(cfg), "--backend", "ray"])


def test_incompatible_results_exit_2(fake, capsys):
    cfg, log = fake
    assert cli.main(["run", str(cfg), "--no-progress", "--seeds", "1"]) == 1
    cfg.write_text(cfg.read_text().replace("evals = 30", "evals = 31"))
    capsys.readouterr()
    assert cli.main(["run", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--force" in err and "budget.evals: 30 -> 31" in err
    assert cli.main(["run", str(cfg), "--no-progress", "--force"]) == 1


def test_resume_after_kill(tmp_path):
    """Kill `python -m toolkit run` mid-way (SIGKILL to its process group), rerun: nothing
    stored is recomputed, nothing is missing."""
    log = tmp_path / "log.txt"
    cfg = tmp_path / "slow.toml"
    cfg.write_text(
        CONFIG.replace("replicates = 3", "replicates = 12")
        .replace("[methods.boom]\n", "")
        .replace("[methods.walk]", "[methods.walk]\nsleep = 0.3")
        .replace("LOG", str(log))
    )
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "toolkit",
            "run",
            str(cfg),
            "--jobs",
            "2",
            "--out",
            str(out),
            "--no-progress",
        ],
        cwd=tmp_path,
        env=_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while len(store.stored_ids(out)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep did not store 3 runs in 60 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its loky workers
        proc.wait()
        proc.stderr.close()
    stored = store.stored_ids(out)
    assert 3 <= len(stored) < 12 and set(stored.values()) == {"ok"}
    before = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    stored_seeds = {str(store.read_run(out, i)["row"]["seed"]) for i in stored}
    n_log = len(log.read_text().split())

    res = sweep.run_sweep(
        cfg, out=out, jobs=2, registry=REGISTRY, progress=False, echo=lambda *a: None
    )
    assert (res.n_runs, res.n_stored_before, res.n_executed) == (12, len(stored), 12 - len(stored))
    rerun_seeds = set(log.read_text().split()[n_log:])
    assert not rerun_seeds & stored_seeds  # nothing stored was recomputed
    for name, content in before.items():
        assert (out / "runs" / name).read_bytes() == content
    runs = store.load_runs(out)
    assert len(runs) == 12 and set(runs["outcome"]) == {"budget"}  # nothing is missing
    assert set(runs["seed"].astype(str)) == stored_seeds | rerun_seeds
    meta = store.load_meta(out)
    assert meta["status"] == "complete"
    assert [h["status"] for h in meta["history"]] == ["complete"]  # the killed one never ended


def test_plot_report_bench(fake, capsys, monkeypatch, tmp_path):
    # not available (yet): a clear message, exit 2
    monkeypatch.setitem(sys.modules, "toolkit.plots", None)
    monkeypatch.setitem(sys.modules, "toolkit.report", None)
    (tmp_path / "results" / "tiny").mkdir(parents=True)
    assert cli.main(["plot", "results/tiny"]) == 2
    assert "plotting is not available" in capsys.readouterr().err
    assert cli.main(["report"]) == 2
    assert "the report is not available" in capsys.readouterr().err
    assert cli.main(["plot", "results/nope"]) == 2
    assert "no such results directory" in capsys.readouterr().err
    # available: called with the paths
    calls = []
    plots = types.ModuleType("toolkit.plots")
    plots.plot_experiment = lambda d: calls.append(("plot", d)) or [d / "fig.png"]
    report = types.ModuleType("toolkit.report")
    report.write_report = lambda root: calls.append(("report", root)) or root / "REPORT.md"
    monkeypatch.setitem(sys.modules, "toolkit.plots", plots)
    monkeypatch.setitem(sys.modules, "toolkit.report", report)
    assert cli.main(["plot", "results/tiny"]) == 0
    assert cli.main(["report", "--results", "results"]) == 0
    assert calls == [("plot", Path("results/tiny")), ("report", Path("results"))]
    # bench: runs benchmarks/run.py with the remaining arguments
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "run.py").write_text(
        "import sys\nprint('bench', sys.argv[1:])\nsys.exit(3 if '--fail' in sys.argv else 0)\n"
    )
    capsys.readouterr()
    assert cli.main(["bench", "--quick"]) == 0
    assert "bench ['--quick']" in capsys.readouterr().out
    assert cli.main(["bench", "--fail"]) == 3
