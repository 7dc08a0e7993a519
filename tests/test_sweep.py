"""Sweeps: config validation, grid expansion, seed derivation, parallel execution (loky and
dask), failures. Uses the fake registry of tests/_fake_registry.py, so it does not depend on
the real tasks, networks or trainers."""

import numpy as np
import pandas as pd
import pytest
from _fake_registry import REGISTRY

from toolkit import config, store, sweep

BASE = """
name = "tiny"
seed = 7
replicates = 2
[task]
name = "sine"
params = { T = 4 }
[net]
n_hidden = 2
[budget]
evals = 60
[methods.walk]
step = 0.3
"""


def write(tmp_path, text, name="tiny.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def load(tmp_path, text, **kw):
    return config.load_config(write(tmp_path, text), registry=REGISTRY, **kw)


# -- grid expansion -----------------------------------------------------------------------
def test_grid_expansion(tmp_path):
    text = (
        BASE
        + """
[methods.boom]
[grid]
"net.n_hidden" = [2, 3]
"task.params.T" = [3, 5, 8]
"methods.walk.step" = [0.1, 0.2]
"""
    )
    exp = load(tmp_path, text)
    # 2 hidden x 3 T x (2 walk steps + 1 boom) x 2 replicates
    assert len(exp.runs) == 2 * 3 * 3 * 2
    assert exp.n_configs == 2 * 3 * 3
    assert len({r["run_id"] for r in exp.runs}) == len(exp.runs)
    assert [r["index"] for r in exp.runs] == list(range(len(exp.runs)))
    combos = {
        (r["net"]["n_hidden"], r["task_params"]["T"], r["method"], r["method_params"].get("step"))
        for r in exp.runs
    }
    assert len(combos) == 18
    assert {r["task_params"]["T"] for r in exp.runs} == {3, 5, 8}
    assert all(r["task_params"] == {"T": r["task_params"]["T"], "B": 3} for r in exp.runs)
    # order: grid points (file order) x task x method x method grid x replicate
    first = exp.runs[:6]
    assert [(r["method"], r["method_params"].get("step"), r["replicate"]) for r in first] == [
        ("walk", 0.1, 0),
        ("walk", 0.1, 1),
        ("walk", 0.2, 0),
        ("walk", 0.2, 1),
        ("boom", None, 0),
        ("boom", None, 1),
    ]
    assert all(r["net"]["n_hidden"] == 2 and r["task_params"]["T"] == 3 for r in first)
    # grid columns: a method's own grid key is None for the other methods
    boom = [r for r in exp.runs if r["method"] == "boom"]
    assert all(r["grid"]["grid.methods.walk.step"] is None for r in boom)
    assert {r["grid"]["grid.net.n_hidden"] for r in boom} == {2, 3}
    assert exp.grid_keys == ["net.n_hidden", "task.params.T", "methods.walk.step"]


def test_no_grid_and_several_tasks(tmp_path):
    text = BASE.replace(
        '[task]\nname = "sine"\nparams = { T = 4 }',
        '[[tasks]]\nname = "sine"\nparams = { T = 4 }\n'
        '[[tasks]]\nname = "sine"\nparams = { T = 9, B = 2 }',
    )
    exp = load(tmp_path, text)
    assert len(exp.runs) == 2 * 2
    assert [r["task_params"]["T"] for r in exp.runs] == [4, 4, 9, 9]


def test_scale_and_seeds_overrides(tmp_path):
    text = (
        BASE
        + """
[grid]
"net.n_hidden" = [2, 3, 4]
[scales.smoke]
replicates = 1
"budget.evals" = 10
"grid.net.n_hidden" = [2]
[scales.smoke.methods.walk]
step = 0.9
"""
    )
    assert len(load(tmp_path, text).runs) == 3 * 2
    smoke = load(tmp_path, text, scale="smoke")
    assert len(smoke.runs) == 1
    r = smoke.runs[0]
    assert r["budget"] == {"evals": 10}
    assert r["method_params"]["step"] == 0.9
    assert r["net"]["n_hidden"] == 2
    assert len(load(tmp_path, text, scale="smoke", seeds=5).runs) == 5
    assert len(load(tmp_path, text, seeds=3).runs) == 9


def test_resolved_defaults_give_the_same_runs(tmp_path):
    a = load(tmp_path, BASE)
    b = load(
        tmp_path,
        BASE.replace("params = { T = 4 }", "params = { T = 4, B = 3 }").replace(
            "step = 0.3", "step = 0.3\nsleep = 0.0"
        ),
    )
    assert [r["run_id"] for r in a.runs] == [r["run_id"] for r in b.runs]
    assert a.fingerprint == b.fingerprint


# -- seeds ----------------------------------------------------------------------------------
def test_seed_derivation_independent_of_order(tmp_path):
    a = load(
        tmp_path,
        BASE
        + """
[methods.boom]
[grid]
"net.n_hidden" = [2, 3]
"task.params.T" = [3, 5]
""",
    )
    b = load(
        tmp_path,
        BASE.replace("[methods.walk]\nstep = 0.3", "[methods.boom]")
        + """
[methods.walk]
step = 0.3
[grid]
"task.params.T" = [5, 3]
"net.n_hidden" = [3, 2]
""",
    )
    seeds_a = {r["run_id"]: r["seed"] for r in a.runs}
    seeds_b = {r["run_id"]: r["seed"] for r in b.runs}
    assert seeds_a == seeds_b
    assert [r["run_id"] for r in a.runs] != [r["run_id"] for r in b.runs]  # other order
    assert a.fingerprint == b.fingerprint
    assert len(set(seeds_a.values())) == len(seeds_a)  # all distinct
    for r in a.runs:  # the seed is a function of (root seed, resolved run config, replicate)
        key = {
            "task": r["task"],
            "task_params": r["task_params"],
            "net": r["net"],
            "method": r["method"],
            "method_params": r["method_params"],
            "budget": r["budget"],
            "target_loss": r["target_loss"],
        }
        assert config.derive_seed(7, key, r["replicate"]) == r["seed"]
        assert 0 <= r["seed"] < 2**63
    c = load(tmp_path, BASE.replace("seed = 7", "seed = 8"))
    assert not set(seeds_a.values()) & {r["seed"] for r in c.runs}


def test_run_seed_sequences_are_independent_streams():
    d, t = config.run_seed_sequences(123)
    x = np.random.default_rng(d).random(4)
    y = np.random.default_rng(t).random(4)
    assert not np.allclose(x, y)
    d2, _ = config.run_seed_sequences(123)
    assert np.array_equal(np.random.default_rng(d2).random(4), x)


# -- execution ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_scheduler():
    from dask.distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


PAR = (
    BASE.replace("replicates = 2", "replicates = 3").replace(
        "evals = 60", "evals = 100\ntarget_loss = 0.5"
    )
    + """
[methods.boom]
[grid]
"net.n_hidden" = [2, 3]
"methods.walk.step" = [0.1, 0.4]
"""
)


def _frames(out):
    runs = store.non_timing(store.load_runs(out))
    traces = store.non_timing(store.load_traces(out))
    return runs, traces, store.load_thetas(out)


def test_identical_results_jobs1_jobs2_dask(tmp_path, dask_scheduler):
    cfg = write(tmp_path, PAR)
    kw = dict(registry=REGISTRY, progress=False, echo=lambda *a: None)
    r1 = sweep.run_sweep(cfg, out=tmp_path / "j1", jobs=1, **kw)
    r2 = sweep.run_sweep(cfg, out=tmp_path / "j2", jobs=2, **kw)
    rd = sweep.run_sweep(cfg, out=tmp_path / "dask", backend="dask", scheduler=dask_scheduler, **kw)
    for r in (r1, r2, rd):
        assert (r.n_runs, r.n_executed, r.n_failed) == (18, 18, 6)
    a, b, c = (_frames(tmp_path / d) for d in ("j1", "j2", "dask"))
    assert len(a[0]) == 18 and set(a[0]["outcome"]) == {"target", "budget", "error"}
    assert len(a[1]) > 18
    for other in (b, c):
        pd.testing.assert_frame_equal(a[0], other[0])
        pd.testing.assert_frame_equal(a[1], other[1])
        pd.testing.assert_frame_equal(a[2], other[2])
    meta = store.load_meta(tmp_path / "dask")
    assert meta["threads"]["backend"] == "dask" and meta["threads"]["dask_workers"] == 2


def test_workers_use_one_thread(tmp_path, dask_scheduler):
    text = BASE.replace("step = 0.3", "threads = true")
    kw = dict(registry=REGISTRY, progress=False, echo=lambda *a: None)
    for name, extra in (
        ("loky", dict(jobs=2)),
        ("dask", dict(backend="dask", scheduler=dask_scheduler)),
    ):
        sweep.run_sweep(write(tmp_path, text), out=tmp_path / name, **kw, **extra)
        msgs = set(store.load_runs(tmp_path / name)["message"])
        assert msgs == {
            "OMP_NUM_THREADS=1,OPENBLAS_NUM_THREADS=1,MKL_NUM_THREADS=1,NUMBA_NUM_THREADS=1"
        }, (name, msgs)


def test_failing_run_does_not_stop_the_others(tmp_path):
    text = (
        BASE.replace("replicates = 2", "replicates = 4")
        + """
[methods.boom]
[grid]
"methods.walk.fail" = [false, true]
"""
    )
    out = tmp_path / "out"
    lines = []
    res = sweep.run_sweep(
        write(tmp_path, text), out=out, jobs=2, registry=REGISTRY, progress=False, echo=lines.append
    )
    assert (res.n_runs, res.n_executed, res.n_failed) == (12, 12, 8)
    assert not res.ok
    runs = store.load_runs(out)
    assert len(runs) == 12
    ok = runs[runs.outcome != "error"]
    assert len(ok) == 4 and (ok["evals"] == 60).all() and (ok["error"] == "").all()
    bad = runs[runs.outcome == "error"]
    assert bad["error"].str.contains("RuntimeError: fake failure").all()
    assert bad["error"].str.contains("Traceback").all()
    assert any("8 of 12 runs failed" in line for line in lines)


def test_execute_run_never_raises():
    exp_run = {
        "experiment": "x",
        "run_id": "r",
        "replicate": 0,
        "seed": 1,
        "task": "nope",
        "task_params": {},
        "method": "walk",
        "method_params": {},
        "family": None,
        "net": {"n_hidden": 2, "hidden": "tanh"},
        "output": "linear",
        "budget": {"evals": 5},
        "target_loss": None,
        "grid": {},
    }
    rec = sweep.execute_run(exp_run, REGISTRY)
    assert rec["row"]["outcome"] == "error"
    assert "unknown task" in rec["row"]["error"]


def test_progress_bar_also_with_one_job(tmp_path, capsys):
    sweep.run_sweep(
        write(tmp_path, BASE + "[methods.boom]\n"), out=tmp_path / "o", jobs=1, registry=REGISTRY
    )
    err = capsys.readouterr().err
    assert "4/4" in err and "failed=2" in err


def test_unreachable_scheduler_fails_fast(tmp_path):
    import socket

    with socket.socket() as s:  # a free port on loopback, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(sweep.SweepError, match="cannot reach the dask scheduler"):
        sweep.run_sweep(
            write(tmp_path, BASE),
            out=tmp_path / "o",
            backend="dask",
            scheduler=f"tcp://127.0.0.1:{port}",
            connect_timeout=2,
            registry=REGISTRY,
            progress=False,
            echo=lambda *a: None,
        )
    assert not (tmp_path / "o").exists()  # nothing written


def test_bad_arguments(tmp_path):
    cfg = write(tmp_path, BASE)
    with pytest.raises(sweep.SweepError, match="--scheduler needs --backend dask"):
        sweep.run_sweep(cfg, scheduler="tcp://127.0.0.1:1", registry=REGISTRY)
    with pytest.raises(sweep.SweepError, match="backend"):
        sweep.run_sweep(cfg, backend="ray", registry=REGISTRY)
    with pytest.raises(sweep.SweepError, match="jobs"):
        sweep.run_sweep(cfg, jobs=-1, registry=REGISTRY)


# -- validation -----------------------------------------------------------------------------
def _sub(old, new, text=BASE):
    assert old in text
    return text.replace(old, new)


CASES = [
    # unknown keys (typos)
    (
        _sub("replicates = 2", "replicate = 2"),
        "replicate",
        "unknown key (did you mean 'replicates'?)",
    ),
    (_sub("n_hidden = 2", "n_hidden = 2\nn_hiden = 3"), "net.n_hiden", "unknown key"),
    (
        _sub("evals = 60", "evals = 60\nfwd_equivalents = 5"),
        "budget.fwd_equivalents",
        "allowed: evals, fwd_equiv, wall_s, target_loss",
    ),
    (_sub("params = { T = 4 }", "params = { T = 4 }\nparam = 1"), "task.param", "unknown key"),
    # unknown names
    (_sub('name = "sine"', 'name = "sinus"'), "task.name", "unknown task 'sinus'"),
    (
        _sub("[methods.walk]", "[methods.wlak]"),
        "methods.wlak",
        "unknown method 'wlak' (did you mean 'walk'?); known: boom, walk",
    ),
    # wrong types
    (_sub("seed = 7", 'seed = "seven"'), "seed", "expected an integer >= 0, got 'seven' (str)"),
    (
        _sub("n_hidden = 2", "n_hidden = 2\nhidden = 3"),
        "net.hidden",
        "expected one of tanh, sigmoid, relu",
    ),
    (_sub("n_hidden = 2", "n_hidden = 2.5"), "net.n_hidden", "expected an integer >= 1"),
    (_sub("evals = 60", "evals = true"), "budget.evals", "expected an integer >= 1"),
    (_sub("params = { T = 4 }", 'params = "T=4"'), "task.params", "expected a table"),
    (BASE + '[grid]\n"net.n_hidden" = 4\n', "grid.net.n_hidden", "expected a list of values"),
    # out of range
    (_sub("replicates = 2", "replicates = 0"), "replicates", "expected an integer >= 1, got 0"),
    (_sub("n_hidden = 2", "n_hidden = 0"), "net.n_hidden", "expected an integer >= 1, got 0"),
    (_sub("evals = 60", "fwd_equiv = -1e5"), "budget.fwd_equiv", "expected a finite number > 0"),
    (
        _sub("evals = 60", "evals = 60\ntarget_loss = -1"),
        "budget.target_loss",
        "expected a finite number >= 0",
    ),
    (_sub("step = 0.3", "step = -1"), "methods.walk.step", "expected a positive number"),
    (
        _sub("params = { T = 4 }", "params = { T = 0 }"),
        "task.params.T",
        "expected an integer >= 1, got 0",
    ),
    (
        BASE + '[grid]\n"net.n_hidden" = [2, 0]\n',
        "grid.net.n_hidden",
        "expected an integer >= 1, got 0",
    ),
    (BASE + '[grid]\n"task.params.T" = [3, 0]\n', "task.params.T", "(grid point: T=0)"),
    (
        BASE + '[grid]\n"methods.walk.step" = [0.1, 0]\n',
        "methods.walk.step",
        "(grid point: step=0)",
    ),
    # unknown parameters of tasks and methods (checked by the registry)
    (_sub("step = 0.3", "stp = 0.3"), "methods.walk.stp", "unknown hyperparameter"),
    (_sub("params = { T = 4 }", "params = { X = 4 }"), "task.params.X", "unknown parameter"),
    # grid problems
    (BASE + '[grid]\n"net.n_hidden" = []\n', "grid.net.n_hidden", "empty list"),
    (BASE + '[grid]\n"net.size" = [1, 2]\n', "grid.net.size", "unknown grid key"),
    (
        BASE + '[grid]\n"methods.cmaes.sigma" = [1]\n',
        "grid.methods.cmaes.sigma",
        "method 'cmaes' is not in [methods]",
    ),
    (BASE + '[grid]\n"net.n_hidden" = [2, 2]\n', "grid.net.n_hidden", "duplicate value 2"),
    (BASE + '[grid]\n"net.hidden" = ["tanh", 1]\n', "grid.net.hidden", "one kind"),
    # missing or contradictory parts
    (_sub("seed = 7\n", ""), "seed", "missing"),
    (_sub("[methods.walk]\nstep = 0.3\n", ""), "methods", "missing"),
    (
        _sub("[budget]\nevals = 60", "[budget]\ntarget_loss = 0.1"),
        "budget",
        "set at least one limit",
    ),
    (_sub("n_hidden = 2", 'hidden = "tanh"'), "net.n_hidden", "missing"),
    (BASE + '[[tasks]]\nname = "sine"\n', "tasks", "not both"),
    (_sub('name = "tiny"', 'name = "a b"'), "name", "expected a name"),
]


@pytest.mark.parametrize("text,key,expected", CASES)
def test_validation_messages(tmp_path, text, key, expected):
    with pytest.raises(config.ConfigError) as ei:
        load(tmp_path, text)
    msg = str(ei.value)
    path = tmp_path / "tiny.toml"
    assert f"{path}: {key}: " in msg, msg
    line = next(line for line in msg.splitlines() if f"{path}: {key}: " in line)
    assert expected in line, msg


def test_all_problems_reported_at_once(tmp_path):
    text = (
        BASE.replace("replicates = 2", "replicats = 2")
        .replace("n_hidden = 2", "n_hidden = -1")
        .replace("step = 0.3", "step = -1")
        + "[methods.cmaes]\n"
    )
    with pytest.raises(config.ConfigError) as ei:
        load(tmp_path, text)
    keys = [k for k, _ in ei.value.problems]
    assert keys == ["replicats", "net.n_hidden", "methods.cmaes", "methods.walk.step"], keys
    assert str(ei.value).startswith(f"{tmp_path / 'tiny.toml'}: 4 problems")


def test_scale_problems(tmp_path):
    text = BASE + '[scales.smoke]\n"budget.evals" = 0\n'
    with pytest.raises(
        config.ConfigError,
        match=r"scales\.smoke\.budget\.evals: expected an integer >= 1, got 0",
    ):
        load(tmp_path, text, scale="smoke")
    with pytest.raises(
        config.ConfigError, match="scales: no scale 'paper' in this file; defined: default, smoke"
    ):
        load(tmp_path, text, scale="paper")
    with pytest.raises(config.ConfigError, match=r"replicates: .* \(set by --seeds\)"):
        load(tmp_path, BASE, seeds=0)


def test_unreadable_and_invalid_toml(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read the experiment file"):
        config.load_config(tmp_path / "missing.toml", registry=REGISTRY)
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        load(tmp_path, "seed = = 1\n")


def test_broken_registry_is_a_config_problem(tmp_path):
    class Broken:
        def task_names(self):
            raise ImportError("no module named toolkit.tasks")

        def method_names(self):
            raise ImportError("no module named toolkit.train")

    with pytest.raises(config.ConfigError) as ei:
        config.load_config(write(tmp_path, BASE), registry=Broken())
    msg = str(ei.value)
    assert "task.name: cannot check task names" in msg and "no module named toolkit.tasks" in msg
    assert "methods: cannot check method names" in msg


# -- the real toolkit registry (tasks, Elman, trainers) ---------------------------------------
REAL = """
name = "real"
seed = 5
replicates = 1
[task]
name = "temporal_xor"
[net]
n_hidden = 2
[budget]
fwd_equiv = 5e3
[methods.bptt_adam]
lr = 0.05
[methods.cmaes]
sigma = 0.5
"""


def test_real_toolkit_registry(tmp_path):
    pytest.importorskip("toolkit.train")
    pytest.importorskip("toolkit.tasks")
    cfg = write(tmp_path, REAL, "real.toml")
    exp = config.load_config(cfg, registry=config.TOOLKIT)
    assert [r["family"] for r in exp.runs] == ["gradient", "evolution"]
    assert exp.runs[0]["method_params"]["lr"] == 0.05 and "beta1" in exp.runs[0]["method_params"]
    res = sweep.run_sweep(
        exp,
        out=tmp_path / "o",
        jobs=1,
        registry=config.TOOLKIT,
        progress=False,
        echo=lambda *a: None,
    )
    runs = store.load_runs(tmp_path / "o")
    assert res.n_failed == 0, runs["error"].tolist()
    assert set(runs["outcome"]) <= {"solved", "target", "budget", "diverged"}
    assert (runs["fwd_equiv"] >= 5e3).all() | (runs["outcome"] != "budget").all()
    assert len(store.load_traces(tmp_path / "o")) > 2
    with pytest.raises(config.ConfigError) as ei:
        config.load_config(
            write(
                tmp_path,
                REAL.replace("sigma = 0.5", "sigma = -1").replace(
                    '"temporal_xor"', '"temporal_xr"'
                ),
                "bad.toml",
            ),
            registry=config.TOOLKIT,
        )
    msg = str(ei.value)
    assert "task.name: unknown task 'temporal_xr' (did you mean 'temporal_xor'?)" in msg
    assert "methods.cmaes" in msg and "sigma" in msg
