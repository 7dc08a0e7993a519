"""A real dask cluster reproduces loky bit for bit, for every method of the real registry.

Issue "Any machine, any fault", part 2: dask workers with several threads run several runs in
one process at once; a method that used process-global random state (Python's ``random``, the
legacy ``numpy.random``) gave results that depended on its neighbours (es_comma and ga differed
from loky in 28 of 100 runs). tests/test_sweep.py uses the fake registry and single-thread
workers, so it cannot see that; this test uses the real toolkit registry and 2 threads per
worker.
"""

from __future__ import annotations

import pandas as pd
import pytest

from toolkit import config, store, sweep

pytest.importorskip("dask.distributed")

# small populations and batches so that a tiny budget still runs many generations; a method
# not listed here runs with its defaults (so a newly registered method is covered as well)
SMALL = {
    "cmaes": "sigma = 0.5",
    "es_comma": "mu = 5\nlambda_ = 20\nsigma = 0.3\ncxpb = 0.3\nmutpb = 0.6",
    "es_plus": "mu = 5\nlambda_ = 20\nsigma = 0.3\ncxpb = 0.3\nmutpb = 0.6",
    "ga": "pop_size = 20\nmut_sigma = 0.3",
    "random": "r = 2.0\nbatch = 16",
    "bptt_adam": "lr = 0.05",
}
REPLICATES = 4


def config_text(methods) -> str:
    text = f"""
name = "dask_repro"
seed = 11
replicates = {REPLICATES}
[task]
name = "temporal_xor"
[net]
n_hidden = 2
[budget]
fwd_equiv = 1.5e5
"""
    for m in methods:
        text += f"\n[methods.{m}]\n{SMALL.get(m, '')}\n"
    return text


@pytest.fixture(scope="module")
def two_thread_cluster():
    from dask.distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=2,  # what makes runs share a process's global random state
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def test_dask_two_threads_per_worker_equals_loky_for_every_method(tmp_path, two_thread_cluster):
    from toolkit.train import METHODS

    methods = sorted(METHODS)  # the real registry: every method, gradient and evolutionary
    cfg = tmp_path / "dask_repro.toml"
    cfg.write_text(config_text(methods))
    kw = dict(registry=config.TOOLKIT, progress=False, echo=lambda *a: None)
    loky = sweep.run_sweep(cfg, out=tmp_path / "loky", jobs=2, **kw)
    dask = sweep.run_sweep(
        cfg, out=tmp_path / "dask", backend="dask", scheduler=two_thread_cluster, **kw
    )
    n = len(methods) * REPLICATES
    for r in (loky, dask):
        assert (r.n_runs, r.n_executed, r.n_failed) == (n, n, 0)
    runs = {d: store.non_timing(store.load_runs(tmp_path / d)) for d in ("loky", "dask")}
    traces = {d: store.non_timing(store.load_traces(tmp_path / d)) for d in ("loky", "dask")}
    assert sorted(set(runs["loky"]["method"])) == methods
    assert len(traces["loky"]) > n
    # per method first, for a readable failure
    for m in methods:
        a = runs["loky"][runs["loky"]["method"] == m].reset_index(drop=True)
        b = runs["dask"][runs["dask"]["method"] == m].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, obj=f"runs of {m}")
    pd.testing.assert_frame_equal(runs["loky"], runs["dask"])
    pd.testing.assert_frame_equal(traces["loky"], traces["dask"])
    meta = store.load_meta(tmp_path / "dask")
    assert meta["threads"]["backend"] == "dask" and meta["threads"]["dask_workers"] == 2


def test_tuning_choice_on_dask_equals_loky(tmp_path, two_thread_cluster):
    """The tuning stage's choice and the evaluation runs it gives are the same on dask."""
    import json

    from test_tuning import _file

    from toolkit import suite, tuning

    sexp = config.load(_file(tmp_path, reps=1, hidden="[2]", configs=2, seeds=2))
    kw = dict(progress=False, echo=lambda *a: None)
    suite.run(sexp, out=tmp_path / "loky", jobs=2, **kw)
    sexp = config.load(_file(tmp_path, reps=1, hidden="[2]", configs=2, seeds=2))
    suite.run(sexp, out=tmp_path / "dask", backend="dask", scheduler=two_thread_cluster, **kw)
    choices = [
        json.loads((tmp_path / d / tuning.CHOICE_FILE).read_text())["choices"]
        for d in ("loky", "dask")
    ]
    assert choices[0] == choices[1] and len(choices[0]) == 2
    a, b = (store.non_timing(store.load_runs(tmp_path / d)) for d in ("loky", "dask"))
    pd.testing.assert_frame_equal(a, b)
