"""Bad input at the edges: every case one clear message, exit status 2, nothing written.

Also the install edges: `bptt --version` and the Makefile's Python-version check.
"""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from toolkit import Elman, cli, config, tasks
from toolkit.train import run

ROOT = Path(__file__).resolve().parent.parent

SMALL = """
seed = 1
replicates = 2
[task]
name = "adding"
params = { T = 12 }
[net]
n_hidden = 2
[budget]
evals = 50
[methods.bptt_adam]
[grid]
"net.n_hidden" = [1, 2, 3, 4, 5]
"methods.bptt_adam.lr" = [0.1, 0.01]
"""


def _cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_non_utf8_config_is_a_config_error(tmp_path, capsys):
    f = tmp_path / "latin1.toml"
    f.write_bytes(b'seed = 1\nname = "caf\xe9"\n')
    with pytest.raises(config.ConfigError, match=r"not UTF-8 text: byte 0xe9 on line 2"):
        config.load_config(f)
    code, _, err = _cli(["run", f, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "not UTF-8" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    d = tmp_path / "exps"
    d.mkdir()
    shutil.copy(f, d / "x.toml")
    code, _, err = _cli(["experiments", "--dir", d, "--results", tmp_path / "r"], capsys)
    assert code == 2 and "not UTF-8" in err and not (tmp_path / "r").exists()


def test_run_count_is_checked_before_expanding(tmp_path, capsys, monkeypatch):
    f = tmp_path / "small.toml"
    f.write_text(SMALL)
    assert len(config.load_config(f).runs) == 20
    with pytest.raises(config.ConfigError, match=r"grid: the experiment expands to 20 runs"):
        config.load_config(f, max_runs=19)
    assert len(config.load_config(f, max_runs=None).runs) == 20

    # 16 values in each of 5 keys x 10 replicates: 10,485,760 runs, refused without expanding
    # (expanding a grid of this size took minutes and gigabytes)
    vals = ", ".join(str(v) for v in range(1, 17))
    big = tmp_path / "big.toml"
    big.write_text(
        SMALL.replace("replicates = 2", "replicates = 10").split("[grid]")[0]
        + "[grid]\n"
        + f'"net.n_hidden" = [{vals}]\n"budget.evals" = [{vals}]\n'
        + f'"task.params.T" = [{", ".join(str(v) for v in range(12, 28))}]\n'
        + f'"methods.bptt_adam.lr" = [{", ".join(f"0.{v:02d}" for v in range(1, 17))}]\n'
        + f'"budget.target_loss" = [{", ".join(f"0.{v:02d}" for v in range(1, 17))}]\n'
    )
    calls = []
    monkeypatch.setattr(config, "make_run_id", lambda *a: calls.append(a))
    code, _, err = _cli(["run", big, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "10,485,760 runs" in err and "--force-large" in err
    assert not calls and not (tmp_path / "o").exists()
    monkeypatch.undo()
    # --force-large passes the guard (the dry run then expands the small file)
    code, out, _ = _cli(["run", f, "--out", tmp_path / "o", "--dry-run", "--force-large"], capsys)
    assert code == 0 and "20 runs" in out


def test_net_that_does_not_fit_the_task(tmp_path, capsys):
    f = tmp_path / "fixed.toml"
    f.write_text(
        SMALL.split("[grid]")[0].replace(
            "n_hidden = 2", "n_hidden = 2\nfixed = { W_xh = [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]] }"
        )
    )
    code, _, err = _cli(["run", f, "--out", tmp_path / "o"], capsys)
    assert code == 2 and not (tmp_path / "o").exists()
    assert "net: this net does not fit task 'adding' (inputs 2, outputs 1" in err
    assert "W_xh" in err

    task = tasks.get("adding", T=12)
    data = task.generate(np.random.default_rng(0))
    for net, what in [
        (Elman(3, 4, 1), "n_in is 3, the task needs 2"),
        (Elman(2, 4, 2), "n_out is 2, the task needs 1"),
        (Elman(2, 4, 1, output="sigmoid"), "output is 'sigmoid', the task needs 'linear'"),
    ]:
        with pytest.raises(ValueError, match="does not fit task") as e:
            run("bptt_adam", net, task, data, seed=0, budget={"evals": 5})
        assert what in str(e.value) and "Elman(" in str(e.value) and "adding" in str(e.value)
    with pytest.raises(ValueError, match=r"does not fit the data: n_in is 3, the data's inputs"):
        run("cmaes", Elman(3, 4, 1), None, data, seed=0, budget={"evals": 5})


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    import toolkit

    assert out.startswith(f"bptt-toolkit {toolkit.__version__}")
    assert "numba " in out and "kernels:" in out


def _fake_python(path: Path, version: str, ok: bool) -> Path:
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "Python {version}"; exit 0; fi\n'
        f"exit {0 if ok else 1}\n"
    )
    path.chmod(0o755)
    return path


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_checks_the_python_version(tmp_path):
    """`make` refuses a Python < 3.11 before creating .venv, naming PYTHON=python3.11, and a
    .venv made by an old Python is removed rather than reused."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    old = _fake_python(tmp_path / "python3.10", "3.10.14", ok=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    r = subprocess.run(
        ["make", "venv", f"PYTHON={old}"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert r.returncode != 0
    assert "needs Python >= 3.11" in r.stderr and "Python 3.10.14" in r.stderr
    assert "make venv PYTHON=python3.11" in r.stderr
    assert not (tmp_path / ".venv").exists()

    # a .venv left by an old Python is removed and made anew with PYTHON; here PYTHON is a fake
    # that makes no venv, so the install fails, and a failed install removes .venv again
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    _fake_python(tmp_path / ".venv" / "bin" / "python", "3.10.14", ok=False)
    new = _fake_python(tmp_path / "python3.12", "3.12.1", ok=True)
    r = subprocess.run(
        ["make", "venv", f"PYTHON={new}"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert "removing .venv, made by Python 3.10.14" in r.stderr
    assert r.returncode != 0 and "installing into .venv failed" in r.stderr
    assert not (tmp_path / ".venv").exists()
