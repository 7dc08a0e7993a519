"""The experiment suite: every experiments/*.toml validates at every scale; `bptt experiments
--scale smoke` runs end to end (every experiment, every figure, the report); a second run
reproduces the tables and the deterministic figures byte for byte; bad SCALE / BACKEND give a
one-line error; [post] is validated strictly."""

import importlib.util
import json
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from toolkit import cli, config, report, store, suite, sweep

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
FILES = sorted(EXPERIMENTS.glob("*.toml"))
NAMES = [f.stem for f in FILES]
SUITE = report.ORDER  # the suite's experiments, in the report's order
#: figures that depend on wall-clock time (not compared between two runs)
TIMING_FIGURES = ("convergence_wall_s", "parallel_scaling")
#: figures each experiment must have at the smoke scale (besides final_loss)
EXPECTED_FIGURES = {
    "lag": ["success_vs_T"],
    "local_optima": ["loss_slices", "grad_norm_slice", "failure_anatomy"],
    "scaling": ["scaling"],
    "truncation": ["truncation"],
    "cliff": ["cliff", "bifurcation", "loss_slices", "grad_norm_slice"],
    "parallel": ["parallel_scaling"],
}


def test_the_suite_has_every_experiment_of_the_issue():
    assert sorted(NAMES) == sorted(SUITE)


@pytest.mark.parametrize("scale", ["smoke", "default", "paper"])
@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_every_experiment_validates_at_every_scale(path, scale):
    given = tomllib.loads(path.read_text())
    assert {"smoke", "paper"} <= set(given.get("scales", {})), (
        "needs [scales.smoke], [scales.paper]"
    )
    sexp = config.load(path, scale=scale)
    assert sexp.name == path.stem
    assert sexp.parts and all(len(p.exp.runs) > 0 for p in sexp.parts)
    if scale == "paper":  # >= 30 seeds per condition
        assert min(p.exp.replicates for p in sexp.parts) >= 30
    if scale == "default" and sexp.name == "local_optima":
        assert min(p.exp.replicates for p in sexp.parts) >= 50


def test_local_optima_has_feedforward_twins():
    sexp = config.load(EXPERIMENTS / "local_optima.toml")
    nets = {p.name: p.exp.resolved["net"] for p in sexp.parts}
    assert any(n["recurrent"] for n in nets.values())
    assert any(not n["recurrent"] and n["window"] > 1 for n in nets.values())
    methods = {m for p in sexp.parts for m in p.exp.resolved["methods"]}
    assert {"bptt_adam", "cmaes"} <= methods


def test_random_guessing_uses_the_papers_range():
    sexp = config.load(EXPERIMENTS / "random_guessing.toml")
    parts = {p.name: p.exp.resolved for p in sexp.parts}
    for r in parts.values():
        if "random" in r["methods"]:
            assert r["methods"]["random"]["r"] == 100.0
    for name in ("latch_I", "latch_II"):
        assert {"bptt_adam", "cmaes", "random"} <= set(parts[name]["methods"])
    # the published A1 number sits beside guesses of A1 only; parity for the gradient and
    # evolutionary methods is the lag experiment's length sweep, not a part here
    assert set(parts["parity_A1"]["methods"]) == {"random"}
    assert parts["parity_A1"]["net"]["cell"] == "a1"
    assert "parity_elman" not in parts


# -- [post] validation ---------------------------------------------------------------------
BASE = """
seed = 1
[task]
name = "echo"
[net]
n_hidden = 2
[budget]
evals = 5
[methods.bptt_adam]
lr = 0.1
"""


def _problems(tmp_path, text, scale="default"):
    p = tmp_path / "x.toml"
    p.write_text(text)
    with pytest.raises(config.ConfigError) as e:
        config.load(p, scale=scale)
    return e.value.problems, str(e.value)


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ("[post.slicez]\nmethod = 'bptt_adam'\n", "post.slicez", "unknown key"),
        ("[post.slices]\n", "post.slices.method", "missing"),
        ("[post.slices]\nmethod = 'cmaes'\n", "post.slices.method", "not a method"),
        ("[post.slices]\nmethod = 'bptt_adam'\nn_1d = 1\n", "post.slices.n_1d", ">= 3"),
        ("[post.slices]\nmethod = 'bptt_adam'\nspeed = 1\n", "post.slices.speed", "unknown"),
        ("[post.slices]\nmethod = 'bptt_adam'\nparts = ['a']\n", "post.slices.parts", "no [post"),
        ("[post.fidelity]\nks = []\n", "post.fidelity.ks", "at least 1"),
        ("[post.fidelity]\nks = [0, 2]\n", "post.fidelity.ks", ">= 1"),
        ("[post.cliff]\nstart = [1.0]\n", "post.cliff.start", "[w, b]"),
        ("[post.anatomy]\noutcomes = ['error']\n", "post.anatomy.outcomes", "budget"),
        ("[post.anatomy]\ngrad_tol = 0\n", "post.anatomy.grad_tol", "> 0"),
        ("[post.parallel]\njobs = [1, 1]\n", "post.parallel.jobs", "distinct"),
        ("[post.parts.a]\n'net.n_hiden' = 3\n", "post.parts.a.net.n_hiden", "unknown"),
        ("[post.parts.a]\n'budget.evals' = 0\n", "post.parts.a.budget.evals", ">= 1"),
        ("[post.parts.a]\n[post.parallel]\n", "post.parallel", "cannot be combined"),
        ("[post.parts.a]\n[scales.smoke]\n'post.parts.b.replicates' = 2\n", None, "unknown part"),
    ],
)
def test_post_is_validated_strictly(tmp_path, extra, key, words):
    problems, text = _problems(
        tmp_path, BASE + extra, scale="smoke" if "smoke" in extra else "default"
    )
    if key is not None:
        assert key in [k for k, _ in problems], text
    assert words in text


def test_parts_precedence(tmp_path):
    """file < [post.parts.p] < the scale's general overrides < the scale's overrides of p"""
    text = (
        "replicates = 1\n"
        + BASE
        + """[post.parts.a]
replicates = 4
"net.n_hidden" = 3
[post.parts.b]
"budget.evals" = 9
[scales.s]
replicates = 2
"post.parts.a.replicates" = 3
"post.parts.b.net.n_hidden" = 5
"""
    )
    p = tmp_path / "x.toml"
    p.write_text(text)
    parts = {q.name: q.exp for q in config.load(p).parts}
    assert parts["a"].replicates == 4 and parts["a"].resolved["net"]["n_hidden"] == 3
    assert parts["b"].replicates == 1 and parts["b"].resolved["budget"] == {"evals": 9}
    parts = {q.name: q.exp for q in config.load(p, scale="s").parts}
    assert parts["a"].replicates == 3 and parts["b"].replicates == 2
    assert parts["b"].resolved["net"]["n_hidden"] == 5
    assert parts["a"].name == "x.a" and parts["a"].path == p and parts["a"].scale == "s"


def test_parts_keep_any_text_and_report_is_free_text(tmp_path):
    """Parts are overlays of plain dicts (no TOML text written and re-read): any character
    survives; [report] is accepted, kept in ``given`` and changes no run id."""
    text = BASE + '[post.parts.a]\ndescription = "\U0001f600 q\\"uote"\n'
    p = tmp_path / "x.toml"
    p.write_text(text, encoding="utf-8")
    plain = config.load(p)
    assert plain.parts[0].exp.description == '\U0001f600 q"uote'
    report = '[report]\ntitle = "T"\ncaptions = { fig = "c" }\npublished = [1, 2.5, true]\n'
    p.write_text(text + report, encoding="utf-8")
    with_report = config.load(p)
    ids = [r["run_id"] for r in with_report.parts[0].exp.runs]
    assert ids == [r["run_id"] for r in plain.parts[0].exp.runs]
    assert with_report.parts[0].exp.fingerprint == plain.parts[0].exp.fingerprint
    assert with_report.given["report"]["captions"] == {"fig": "c"}
    # the text belongs to the experiment (merged meta.json), not to each part's sweep
    assert "report" not in with_report.parts[0].exp.given


@pytest.mark.parametrize(
    "args, word",
    [(["--scale", "huge"], "smoke, default, paper"), (["--backend", "mpi"], "loky, dask")],
)
def test_bad_scale_or_backend_is_one_line(capsys, tmp_path, args, word):
    assert cli.main(["experiments", *args, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and word in err
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    "var, word", [("SCALE=huge", "smoke default paper"), ("BACKEND=mpi", "loky dask")]
)
def test_make_rejects_bad_scale_or_backend_in_one_line(var, word):
    r = subprocess.run(
        ["make", "-n", "experiments", var], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and word in r.stderr and var.split("=")[1] in r.stderr


def test_missing_experiment_dir_is_named(capsys, tmp_path):
    assert cli.main(["experiments", "--dir", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


# -- [post.anatomy] -------------------------------------------------------------------------
def test_anatomy_classifies_every_failed_run_on_its_own_training_set(tmp_path):
    """local_optima at the smoke scale: one anatomy row per failed (budget) run, its loss
    recomputed on the run's own training set equals the run's final loss (same data stream),
    every class is one of the stated ones, and a rerun writes the same bytes."""
    sexp = config.load(EXPERIMENTS / "local_optima.toml", scale="smoke")
    assert sexp.post["anatomy"]["max_params"] <= 40
    out = tmp_path / "lo"
    suite.run(sexp, out=out, progress=False, echo=lambda *a: None)
    runs = store.load_runs(out)
    a = pd.read_parquet(out / "anatomy.parquet")
    failed = runs[runs["outcome"].isin(["budget", "diverged"])]
    assert len(failed) and list(a["run_id"]) == list(failed["run_id"])
    assert set(a["class"]) <= set(suite.ANATOMY_CLASSES)
    r = runs.set_index("run_id").loc[a["run_id"]]
    ok = a["class"] != "no end point"
    assert ok.any()
    # a run's final_loss is the loss at its final theta when it saw the whole training set
    # per step (evolution, full-batch BPTT); minibatch BPTT records a running epoch mean
    bs = r["method_params"].map(lambda p: json.loads(p).get("batch_size") or 0)
    n = r["task_params"].map(lambda p: json.loads(p)["n_train"])
    whole = ok.to_numpy() & ((bs == 0) | (bs >= n)).to_numpy()
    assert whole.any()
    assert a.loc[whole, "final_loss"].to_numpy() == pytest.approx(
        r.loc[whole, "final_loss"].to_numpy(), rel=1e-9, abs=1e-12
    )
    assert ((a["saturated"] >= 0) & (a["saturated"] <= 1))[ok].all()
    assert (a.loc[ok, "eig_min"] <= a.loc[ok, "eig_max"]).all()
    before = (out / "anatomy.parquet").read_bytes()
    suite.write_anatomy(sexp, out, sexp.post["anatomy"])
    assert (out / "anatomy.parquet").read_bytes() == before


# -- the smoke scale, end to end --------------------------------------------------------------
def _run_smoke(results: Path) -> float:
    t0 = time.perf_counter()
    rc = cli.main(
        [
            "experiments",
            "--scale",
            "smoke",
            "--dir",
            str(EXPERIMENTS),
            "--results",
            str(results),
            "--no-progress",
        ]
    )
    assert rc == 0
    return time.perf_counter() - t0


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("smoke") / "results"
    return results, _run_smoke(results)


def test_smoke_suite_end_to_end(smoke):
    results, _ = smoke
    for name in SUITE:
        d = results / name
        runs = store.load_runs(d)
        assert len(runs) and (runs["outcome"] != "error").all(), name
        figs = {p.stem for p in (d / "figures").glob("*.png")}
        assert {"final_loss", "convergence_fwd_equiv", "ecdf"} <= figs, (name, figs)
        assert set(EXPECTED_FIGURES.get(name, [])) <= figs, (name, figs)
        assert (d / "meta.json").is_file()
    par = pd.read_parquet(results / "parallel" / "parallel.parquet")
    assert {"jobs", "wall_s"} <= set(par.columns) and len(par) >= 2
    assert par["identical"].all()  # --jobs does not change any result
    lo = store.load_runs(results / "local_optima")  # parts told apart by their own columns
    assert suite.SETUP_COLUMN not in lo
    assert set(zip(lo["task"], lo["recurrent"], lo["window"], strict=True)) == {
        ("temporal_xor", True, 1),
        ("temporal_xor", False, 2),
        ("parity", True, 1),
        ("parity", False, 3),
    }
    # random_guessing's parts are told apart by their own columns: the latch variant is a task
    # parameter; parity is guessed on architecture A1 only
    rg = store.load_runs(results / "random_guessing")
    assert suite.SETUP_COLUMN not in rg
    variants = {json.loads(j).get("variant") for j in rg.loc[rg["task"] == "latch", "task_params"]}
    assert variants == {"I", "II"}
    par = rg[rg["task"] == "parity"]
    assert set(zip(par["method"], par["n_params"], strict=True)) == {("random", 8)}  # A1
    if importlib.util.find_spec("toolkit.report") is not None:
        report = (results / "REPORT.md").read_text()
        for name in SUITE:
            assert name in report, name


def test_rerun_resumes(smoke):
    """A second `bptt experiments` on the same results runs nothing again."""
    results, _ = smoke
    before = {n: store.load_runs(results / n) for n in ("speed", "parallel")}
    sexp = config.load(EXPERIMENTS / "speed.toml", scale="smoke")
    res = suite.run(sexp, results_root=results, progress=False, echo=lambda *a: None)
    assert res.n_executed == 0
    pd.testing.assert_frame_equal(store.load_runs(results / "speed"), before["speed"])


def test_rerun_of_the_suite_changes_no_tracked_file(smoke):
    """`make experiments` again on complete results runs nothing and rewrites the report, the
    figures, the tables and meta.json with the same bytes: a clone stays clean (all of them are
    git-tracked; run files, parts and thetas are not)."""
    results, _ = smoke
    tracked = (".md", ".png", ".json", ".parquet")  # what .gitignore lets git track
    files = [p for p in results.rglob("*") if p.is_file() and p.suffix in tracked]
    parts = ("runs", "parts")
    files = [p for p in files if not set(parts) & set(p.relative_to(results).parts)]
    files = [p for p in files if p.name != "thetas.parquet"]
    before = {p: p.read_bytes() for p in files}
    assert any(p.name == "REPORT.md" for p in before) and any(p.suffix == ".png" for p in before)
    _run_smoke(results)
    changed = [str(p.relative_to(results)) for p, b in before.items() if p.read_bytes() != b]
    assert not changed


def test_smoke_suite_is_reproducible(smoke, tmp_path):
    """Twice the same command: identical non-timing columns of every runs.parquet, identical
    landscape tables and identical bytes of every figure that does not show wall time."""
    first, _ = smoke
    second = tmp_path / "results"
    _run_smoke(second)
    for name in SUITE:
        a, b = first / name, second / name
        pd.testing.assert_frame_equal(
            store.non_timing(store.load_runs(a)), store.non_timing(store.load_runs(b))
        )
        for t in a.glob("*.parquet"):
            if t.name in (store.RUNS_TABLE, store.TRACES_TABLE, suite.PARALLEL_TABLE):
                continue
            x, y = pd.read_parquet(t), pd.read_parquet(b / t.name)
            if t.name == "tuning.parquet":  # the tuning runs' table: a runs table
                x, y = store.non_timing(x), store.non_timing(y)
            pd.testing.assert_frame_equal(x, y)
        pngs = sorted((a / "figures").glob("*.png"))
        assert pngs
        for png in pngs:
            if png.stem in TIMING_FIGURES:
                continue
            assert png.read_bytes() == (b / "figures" / png.name).read_bytes(), (name, png.name)


# -- [post.parallel] on each backend ------------------------------------------------------------
PARALLEL = """
name = "par"
seed = 3
replicates = 2
[task]
name = "temporal_xor"
[net]
n_hidden = 2
[budget]
evals = 200
[methods.cmaes]
sigma = 0.3
[post.parallel]
jobs = [1, 2]
repeats = 1
"""


def test_parallel_honours_the_backend(tmp_path):
    """loky and dask without a scheduler: one timing per jobs value (dask: a local cluster of
    that many processes); dask with a scheduler: one timing per repeat on that cluster, its
    worker count as jobs. Every timing gives the same runs; the backend is recorded."""
    from dask.distributed import LocalCluster

    path = tmp_path / "par.toml"
    path.write_text(PARALLEL)
    sexp = config.load(path)
    lines: list[str] = []
    kw = dict(results_root=tmp_path / "r", progress=False, echo=lines.append)
    suite.run(sexp, out=tmp_path / "loky", **kw)
    suite.run(sexp, out=tmp_path / "dask", backend="dask", **kw)
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        addr = cluster.scheduler_address
        suite.run(sexp, out=tmp_path / "cluster", backend="dask", scheduler=addr, **kw)
        n = len(lines)
        again = suite.run(sexp, out=tmp_path / "cluster", backend="dask", scheduler=addr, **kw)
        assert again.n_executed == 0  # measured already on this cluster: skipped
    par = {d: pd.read_parquet(tmp_path / d / suite.PARALLEL_TABLE) for d in ("loky", "dask")}
    par["cluster"] = pd.read_parquet(tmp_path / "cluster" / suite.PARALLEL_TABLE)
    for d, backend, jobs in (("loky", "loky", [1, 2]), ("dask", "dask", [1, 2])):
        assert list(par[d]["jobs"]) == jobs and set(par[d]["backend"]) == {backend}, d
        assert set(par[d]["scheduler"]) == {""}
        assert store.load_meta(tmp_path / d)["threads"]["backend"] == backend
    assert list(par["cluster"]["jobs"]) == [2] and set(par["cluster"]["backend"]) == {"dask"}
    assert set(par["cluster"]["scheduler"]) == {addr}
    assert any("once per repeat" in line and addr in line for line in lines[:n])
    for d in par:
        assert par[d]["identical"].all() and (par[d]["failed"] == 0).all(), d
    runs = [store.non_timing(store.load_runs(tmp_path / d)) for d in par]
    pd.testing.assert_frame_equal(runs[0], runs[1])
    pd.testing.assert_frame_equal(runs[0], runs[2])


def test_report_table_is_text_only(tmp_path):
    """An experiment file's [report] table reaches meta.json's config_given and changes no
    run key, seed or fingerprint."""
    text = (EXPERIMENTS / "random_guessing.toml").read_text("utf-8")
    bare = tmp_path / "random_guessing.toml"
    bare.write_text(text[: text.index("\n[report]")], "utf-8")
    with_report = config.load(EXPERIMENTS / "random_guessing.toml", scale="smoke")
    without = config.load(bare, scale="smoke")
    assert with_report.given["report"]["title"] and "report" not in without.given
    for a, b in zip(with_report.parts, without.parts, strict=True):
        assert a.exp.fingerprint == b.exp.fingerprint
        assert [(r["run_id"], r["seed"]) for r in a.exp.runs] == [
            (r["run_id"], r["seed"]) for r in b.exp.runs
        ]


@pytest.mark.parametrize(
    "edit, key",
    [
        (("n_hidden = 2", "n_hidden = 2\nhiden = 'tanh'"), "net.hiden"),
        (('name = "echo"', 'name = "echo"\nparams = { T = -1 }'), "task.params.T"),
        (("lr = 0.1", "lr = -1"), "methods.bptt_adam.lr"),
        (("evals = 5", "evals = 0"), "budget.evals"),
        ((None, '[grid]\n"net.n_hidden" = [0]\n'), "grid.net.n_hidden"),
        (
            (None, '[scales.smoke]\n"methods.bptt_adam.lr" = -1\n'),
            "scales.smoke.methods.bptt_adam.lr",
        ),
        (
            (None, '[post.parts.a]\n"methods.bptt_adam.lr" = -1\n'),
            "post.parts.a.methods.bptt_adam.lr",
        ),
        ((None, "[post.cliff]\nn_w = 1\n"), "post.cliff.n_w"),
        ((None, "[report]\ntitle = 2020-01-01\n"), "report.title"),
    ],
)
def test_one_error_with_its_full_key_path(tmp_path, edit, key):
    """A bad key in any section is one problem, under the key path where it was written."""
    old, new = edit
    text = BASE.replace(old, new) if old else BASE + new
    problems, msg = _problems(tmp_path, text, scale="smoke" if "smoke" in text else "default")
    assert [k for k, _ in problems] == [key], msg


def test_net_cell_default_keeps_run_keys_and_cost_counts_the_net(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text(BASE.replace("n_hidden = 2", "n_hidden = 2\nwindow = 3"))
    plain = config.load(p).parts[0].exp
    p.write_text(BASE.replace("n_hidden = 2", "n_hidden = 2\nwindow = 3\ncell = 'elman'"))
    same = config.load(p).parts[0].exp
    assert [r["run_id"] for r in same.runs] == [r["run_id"] for r in plain.runs]
    from toolkit.nets import Elman

    r = plain.runs[0]
    n = Elman(r["n_in"], 2, r["n_out"], output=r["output"], window=3).n_params
    fe = r["budget"].get("fwd_equiv") or 0.0
    est = sweep.estimate_cost([{**r, "budget": {"fwd_equiv": 1.0}}])
    coeffs = sweep.load_run_cost()  # toolkit/run_cost.json: seconds per step by method and size
    per_step, _ = sweep.seconds_per_step(r["method"], r["family"], "elman", n, coeffs)
    assert est["cpu_s"] == per_step, fe
    p.write_text(BASE.replace("n_hidden = 2", "n_hidden = 2\ncell = 'lstm'"))
    lstm = config.load(p).parts[0].exp  # a registered cell: its own run keys
    assert {r["run_id"] for r in lstm.runs}.isdisjoint(r["run_id"] for r in plain.runs)
    p.write_text(BASE.replace("n_hidden = 2", "n_hidden = 2\ncell = 'lstn'"))
    problems, msg = _problems(tmp_path, p.read_text())
    assert [k for k, _ in problems] == ["net"] and "unknown network cell" in msg
