"""The experiment suite: what ``bptt experiments`` does beyond running plain sweeps.

Every file in ``experiments/`` is a sweep (:mod:`toolkit.sweep`, schema in
:mod:`toolkit.config`). An optional ``[post]`` table says what else to do with it; its
contents are validated with the rest of the file (:func:`toolkit.config.load`), strictly and
before anything runs:

``[post.parts.<part>]``
    Overrides of the file (dotted paths or nested tables, as in ``[scales.<name>]``; a
    setting comes from, in rising precedence: the file, the part, the scale, the scale's
    ``"post.parts.<part>.<key>"``): the experiment runs as one sweep per part into
    ``results/<exp>/parts/<part>/`` (named ``<exp>.<part>``, resumable like any sweep), and
    their tables are merged into ``results/<exp>/{runs,traces,thetas}.parquet`` (in part
    order) with a combined ``meta.json``. When two parts' runs cannot be told apart by the
    table's own columns (same task, task parameters, n_hidden, hidden, recurrent, window: nets
    that differ only in fixed weights, say), every row gets ``grid.setup`` = part name, so
    that figures and the report split by it. Parts are for designs one grid cannot express:
    different networks per task (a recurrent net beside a feed-forward one with an input
    window, ``fixed`` weights), a lag parameter with a different name per task, per-task
    budgets or methods.
``[post.slices]``
    Error-surface slices of the trained Elman nets from the stored ``thetas.parquet``
    (:func:`toolkit.landscape.net_tables`): 1-D / 2-D filter-normalised slices and the
    gradient-norm slice around one solution, and straight lines from it to other seeds'
    solutions (solved and stuck ones), for each listed part. Keys: ``method`` (required),
    ``parts`` (default: all), ``task``, ``pairs`` (lines per part, 2), ``n_directions`` (3),
    ``n_1d`` (41), ``n_2d`` (21), ``n_interp`` (61), ``seed`` (0). Losses are on the task's
    held-out test set, the one data set all seeds share (their training sets differ).
``[post.fidelity]``
    Cosine between BPTT(k) and full-BPTT gradients (:func:`toolkit.landscape.gradient_fidelity`)
    per task, at ``n_init`` random initial thetas and the best thetas of ``n_trained`` stored
    runs of ``method`` with full BPTT (k unset or k >= T). Keys: ``ks`` (required), ``n_init`` (4),
    ``n_trained`` (4), ``method``, ``tasks``, ``seed`` (0).
``[post.cliff]``
    Pascanu et al.'s single-unit cliff with optimizer paths and Doya's bifurcation diagram
    (:func:`toolkit.landscape.cliff_tables`). Keys: ``n_w``, ``n_b`` (201), ``start``
    ([5.0, -2.8]), ``lr`` (0.5), ``steps`` (80), ``clip`` (1.0), ``sigma0`` (0.5),
    ``generations`` (40), ``seed`` (0).
``[post.anatomy]``
    What the end point of every failed run is (:mod:`toolkit.anatomy`): for each run whose
    outcome is in ``outcomes`` (["budget", "diverged"]; never ``error``) and whose net has at
    most ``max_params`` (40) weights, the task, the run's own training set (its data stream,
    :func:`toolkit.config.run_seed_sequences`) and the net are rebuilt from the run's spec, and
    its stored ``final_theta`` is classified (:func:`toolkit.anatomy.classify_end_point`: loss
    against the optimum 0, gradient norm, finite-difference Hessian spectrum, saturated
    fraction) into ``anatomy.parquet``. Each run that failed on its budget is then continued
    to ``continue_factor`` (6) x its budget, in parallel and resumable
    (:func:`continue_runs`, a sweep of its own under ``continued/``): whether it solves
    and at what cost, and the final label that uses it. Keys: ``outcomes``, ``max_params``,
    ``continue_factor`` (1: no continuation), and the thresholds ``loss_tol``, ``grad_tol``,
    ``flat_tol``, ``neg_tol``, ``sat_frac`` (defaults: the module's constants).
``[post.parallel]``
    The same sweep timed at each ``jobs`` (0 = all cores; forced rerun) on the requested
    backend into ``parallel.parquet`` (jobs, wall_s, repeat, n_runs, identical = the non-timing
    columns of runs.parquet equal those of the first timing, backend, scheduler); the results
    of the last timing stay as the experiment's tables. ``--backend dask`` without a scheduler
    times a local cluster of ``jobs`` worker processes per value; with ``--scheduler`` the sweep
    is timed once per repeat on that cluster and ``jobs`` is its worker count. Skipped on a
    rerun when parallel.parquet of the same configuration and backend exists. Keys: ``jobs``
    ([1, 0]), ``repeats`` (1).

The post steps read only stored tables, write ``<name>.parquet`` next to them (the names
:mod:`toolkit.plots` looks for, :data:`toolkit.landscape.TABLES`, ``parallel.parquet``) and are
deterministic (seeded), except the wall times of ``parallel``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit import anatomy, config, store, sweep, tuning
from toolkit.config import Part, SuiteExperiment

__all__ = [
    "SuiteResult",
    "run",
    "merge_parts",
    "write_slices",
    "write_fidelity",
    "write_cliff",
    "write_anatomy",
]

SETUP_COLUMN = "grid.setup"
PARALLEL_TABLE = "parallel.parquet"


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------
@dataclass
class SuiteResult:
    experiment: str
    out_dir: Path
    n_runs: int = 0
    n_executed: int = 0
    n_failed: int = 0
    elapsed_s: float = 0.0
    written: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.n_failed == 0


def run(sexp: SuiteExperiment, opts: sweep.ExecOptions | None = None, **kw) -> SuiteResult:
    """Run every sweep of ``sexp`` (resuming), merge parts, then the [post] steps. ``opts``: a
    :class:`toolkit.sweep.ExecOptions` (or its fields as keywords)."""
    t0 = time.perf_counter()
    o = sweep.ExecOptions.of(opts, **kw)
    echo = o.echo
    out_dir = Path(o.out) if o.out else Path(o.results_root) / sexp.name
    res = SuiteResult(sexp.name, out_dir, n_runs=sexp.n_runs)

    def part_dir(part: Part) -> Path:
        return out_dir / "parts" / part.name if part.name else out_dir

    if o.dry_run:  # (the tuning plan, then the evaluation runs as given)
        for part in sexp.parts:
            exp = _tuned(part, o, part_dir(part), res) if part.exp.tuning else part.exp
            sweep.run_sweep(exp, o, out=part_dir(part))
        return res
    # the experiment's directory is locked for the whole of it (the sweeps in it re-enter the
    # lock; each part's sweep also locks its own directory)
    try:
        lock = store.acquire_lock(out_dir, echo=echo)
    except store.ResultsLocked as e:
        raise sweep.SweepError(str(e)) from None
    except OSError as e:
        raise sweep.SweepError(f"cannot lock {out_dir}: {type(e).__name__}: {e}") from None
    try:
        if "parallel" in sexp.post:
            _run_parallel(sexp, out_dir, sexp.post["parallel"], o, res)
        else:
            for part in sexp.parts:
                if part.exp.tuning is not None:  # the evaluation runs use the choice
                    part.exp = _tuned(part, o, part_dir(part), res)
                r = sweep.run_sweep(part.exp, o, out=part_dir(part))
                res.n_executed += r.n_executed
                res.n_failed += r.n_failed
            if any(p.exp.tuning is not None for p in sexp.parts):
                res.written += _merge_tuning(sexp, out_dir)
        if sexp.has_parts:
            merge_parts(sexp, out_dir, echo=echo)
        if "slices" in sexp.post:
            res.written += write_slices(sexp, out_dir, sexp.post["slices"], echo=echo)
        if "fidelity" in sexp.post:
            res.written += write_fidelity(sexp, out_dir, sexp.post["fidelity"])
        if "cliff" in sexp.post:
            res.written += write_cliff(out_dir, sexp.post["cliff"])
        if "anatomy" in sexp.post:
            res.written += write_anatomy(sexp, out_dir, sexp.post["anatomy"], echo=echo, opts=o)
    finally:
        try:
            lock.release()
        except OSError as e:
            echo(f"warning: could not remove the lock {lock.path}: {e}")
    res.elapsed_s = time.perf_counter() - t0
    return res


def _tuned(part: Part, o: sweep.ExecOptions, d: Path, res: SuiteResult):
    """The part's evaluation experiment after its tuning stage (:func:`toolkit.tuning.run`)."""
    exp, r = tuning.run(part.exp, o, d, part.name, o.skip_tuning)
    if r is not None:
        res.n_executed += r.n_executed
        res.n_failed += r.n_failed
    return exp


def _merge_tuning(sexp: SuiteExperiment, out_dir: Path) -> list[Path]:
    """Every part's tuning runs into ``tuning.parquet`` (``grid.setup`` = part) and, for an
    experiment with parts, every part's choices into its ``tuning.json``."""
    import pandas as pd

    tables, choices, protocols = [], [], {}
    for part in sexp.parts:
        d = out_dir / "parts" / part.name if part.name else out_dir
        if part.exp.tuning is None or not (d / tuning.TUNING_DIR / store.RUNS_TABLE).is_file():
            continue
        df = store.load_runs(d / tuning.TUNING_DIR)
        if part.name:
            df[SETUP_COLUMN] = part.name
        tables.append(df)
        if (d / tuning.CHOICE_FILE).is_file():
            data = json.loads((d / tuning.CHOICE_FILE).read_text(encoding="utf-8"))
            choices += data["choices"]
            protocols.update(data.get("protocols") or {})
    written = []
    if tables:
        written.append(
            _write_table(pd.concat(tables, ignore_index=True), out_dir / "tuning.parquet")
        )
    if sexp.has_parts and choices:
        payload = {"experiment": sexp.name, "source": "parts", "protocols": protocols}
        payload["choices"] = choices
        store.write_json_atomic(out_dir / tuning.CHOICE_FILE, payload)
        written.append(out_dir / tuning.CHOICE_FILE)
    return written


def _write_table(df, path: Path) -> Path:
    store._write_parquet_atomic(df.reset_index(drop=True), path)
    return path


def _run_parallel(sexp, out_dir: Path, spec: dict, o: sweep.ExecOptions, res: SuiteResult) -> None:
    """Time the sweep (forced rerun) on the requested backend; skip when already measured.

    loky, or dask without a scheduler: once per ``jobs`` value and repeat (dask: run_sweep starts
    a local cluster of that many single-thread worker processes, whose start is timed, as the
    loky pool's start is). dask with a scheduler: the cluster decides the parallelism, so the
    sweep is timed once per repeat on it and its worker count is recorded as ``jobs``.
    """
    import pandas as pd

    exp = sexp.parts[0].exp
    table = out_dir / PARALLEL_TABLE
    backend, scheduler = o.backend, o.scheduler
    on_cluster = backend == "dask" and bool(scheduler)
    want = [sweep.default_jobs() if j == 0 else j for j in spec["jobs"]]
    if on_cluster:
        o.echo(
            f"{sexp.name}: timing the sweep on the dask cluster at {scheduler} once per repeat "
            f"({spec['repeats']}x); the cluster's worker count is recorded as jobs, "
            f"post.parallel.jobs = {spec['jobs']} is not used"
        )
    done = False
    if table.is_file() and not o.force:
        try:
            old = pd.read_parquet(table)
            old_backend = set(old["backend"]) if "backend" in old else {"loky"}
            old_scheduler = set(old["scheduler"]) if "scheduler" in old else {""}
            done = (
                set(old["fingerprint"]) == {exp.fingerprint}
                and old_backend == {backend}
                and old_scheduler == {scheduler or ""}
                and (on_cluster or sorted(set(old["jobs"])) == sorted(set(want)))
                and int(old["repeat"].max()) + 1 >= spec["repeats"]
            )
        except Exception:
            done = False
    if done:  # measured before: only resume the results (normally nothing to do)
        r = sweep.run_sweep(exp, o, out=out_dir)
        res.n_executed += r.n_executed
        res.n_failed += r.n_failed
        return
    rows, first = [], None
    for rep in range(spec["repeats"]):
        for j in [None] if on_cluster else want:
            r = sweep.run_sweep(exp, o, out=out_dir, jobs=j, force=True)
            res.n_executed += r.n_executed
            res.n_failed += r.n_failed
            runs = store.non_timing(store.load_runs(out_dir))
            if first is None:
                first = runs
            if on_cluster:
                meta = store.load_meta(out_dir) or {}
                j = int(meta.get("threads", {}).get("dask_workers", 0))
            rows.append(
                {
                    "jobs": j,
                    "wall_s": r.elapsed_s,
                    "cpu_s": r.cpu_s,
                    "repeat": rep,
                    "n_runs": r.n_runs,
                    "failed": r.n_failed,
                    "identical": bool(runs.equals(first)),
                    "cpu_count": sweep.default_jobs(),
                    "backend": backend,
                    "scheduler": scheduler or "",
                    "fingerprint": exp.fingerprint,
                }
            )
    res.written.append(_write_table(pd.DataFrame(rows), table))


# ------------------------------------------------------------------------------------------
# merging parts
# ------------------------------------------------------------------------------------------
def _union(values):
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _needs_setup_column(sexp: SuiteExperiment) -> bool:
    """True when two parts have runs that the run table's own columns cannot tell apart (same
    task, task parameters and network columns, e.g. nets that differ only in fixed weights):
    then the merged table gets ``grid.setup`` = part name. Otherwise the parts differ in
    columns the analysis already splits by (task, n_hidden, recurrent, window, ...)."""
    seen: dict = {}
    for part in sexp.parts:
        for r in part.exp.runs:
            net = r["net"]
            key = config.canonical(
                [
                    r["task"],
                    r["task_params"],
                    [net.get(k) for k in ("n_hidden", "hidden", "recurrent", "window")],
                ]
            )
            if seen.setdefault(key, part.name) != part.name:
                return True
    return False


def merge_parts(
    sexp: SuiteExperiment, out_dir: Path, *, allow_incomplete: bool = False, echo=print
) -> None:
    """runs/traces/thetas of every part, in part order, into ``out_dir`` (+ meta.json).

    Each part's tables are first rebuilt from its run files (:func:`toolkit.store.consolidate`
    over the part's planned runs, under the part's lock), never taken from a possibly stale
    Parquet file; a damaged run file raises :class:`toolkit.store.DamagedResults` naming it.
    Every planned run of every part must be stored (outcome ``error`` counts as stored): if
    some are missing, raises :class:`toolkit.store.DamagedResults` naming each part and its
    count, and nothing is written; with ``allow_incomplete`` the runs that exist are merged,
    a warning with the counts goes through ``echo``, and meta.json gets status "incomplete"
    and ``missing`` = {part: count}.
    """
    import pandas as pd

    tables, metas, missing = _read_parts(sexp, out_dir, echo)
    if missing:
        planned = {p.name: len(p.exp.runs) for p in sexp.parts}
        counts = "; ".join(
            f"part '{p}': {len(ids)} of {planned[p]} planned runs missing "
            f"(no run file in {out_dir / 'parts' / p / store.RUNS_DIR}, e.g. {ids[0]})"
            for p, ids in missing.items()
        )
        if not allow_incomplete:
            raise store.DamagedResults(
                f"cannot merge the parts of {sexp.name}: {counts}. Nothing was merged; run the "
                "same command again to run the missing runs",
                [out_dir / "parts" / p for p in missing],
            )
        echo(f"warning: merging an incomplete {sexp.name}: {counts}; meta.json says incomplete")
    if not metas:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, dfs in zip(
        (store.RUNS_TABLE, store.TRACES_TABLE, store.THETAS_TABLE), tables, strict=True
    ):
        _write_table(pd.concat(dfs, ignore_index=True), out_dir / name)
    n_runs = int(sum(len(r) for r in tables[0]))
    store.write_meta(out_dir, _merged_meta(sexp, metas, missing, n_runs))


def _read_parts(sexp: SuiteExperiment, out_dir: Path, echo):
    """([runs], [traces], [thetas]) of the parts that have runs, their meta.json by part, and
    the planned run ids missing by part."""
    tables: tuple[list, list, list] = ([], [], [])
    metas: dict[str, dict] = {}
    missing: dict[str, list[str]] = {}
    labelled = _needs_setup_column(sexp)
    for part in sexp.parts:
        d = out_dir / "parts" / part.name
        plan_ids = [r["run_id"] for r in part.exp.runs]
        if not (d / store.RUNS_DIR).is_dir():
            missing[part.name] = plan_ids
            continue
        with store.acquire_lock(d, echo=echo):
            r, tr = store.consolidate(d, plan_ids)
            th = store.load_thetas(d)
        have = set(r["run_id"])
        if len(have) < len(plan_ids):
            missing[part.name] = [i for i in plan_ids if i not in have]
        if not len(r):
            continue
        r["experiment"] = sexp.name
        if labelled:
            r[SETUP_COLUMN] = part.name
        for dfs, df in zip(tables, (r, tr, th), strict=True):
            dfs.append(df)
        metas[part.name] = store.load_meta(d) or {}
    return tables, metas, missing


def _merged_meta(sexp: SuiteExperiment, metas: dict, missing: dict, n_runs: int) -> dict:
    """meta.json of the merged experiment: the first part's, with the resolved config, the
    status and the sessions of every part."""
    first = next(iter(metas.values()))
    res = {p: m.get("config_resolved", {}) for p, m in metas.items()}

    def same_or_by_part(key):
        vals = [r.get(key) for r in res.values()]
        return (
            vals[0] if all(v == vals[0] for v in vals) else {p: r.get(key) for p, r in res.items()}
        )

    methods: dict = {}
    for r in res.values():
        for m, h in (r.get("methods") or {}).items():
            methods.setdefault(m, h)
    resolved = {
        "name": sexp.name,
        "description": sexp.description,
        "seed": same_or_by_part("seed"),
        "replicates": same_or_by_part("replicates"),
        "scale": sexp.scale,
        "tasks": _union(t for r in res.values() for t in r.get("tasks", [])),
        "net": same_or_by_part("net"),
        "budget": same_or_by_part("budget"),
        "target_loss": same_or_by_part("target_loss"),
        "methods": methods,
        "grid": {p: r.get("grid", {}) for p, r in res.items()},
        "parts": res,
        "toolkit_version": first.get("toolkit_version"),
    }
    part_keys = ("experiment", "fingerprint", "n_runs", "status", "start", "end")
    complete = all(m.get("status") == "complete" for m in metas.values())
    meta = {
        **first,
        "experiment": sexp.name,
        "fingerprint": config._sha({p: m.get("fingerprint") for p, m in metas.items()}).hex()[:16],
        "config_file": str(sexp.path),
        "scale": sexp.scale,
        "replicates": resolved["replicates"],
        "n_runs": n_runs,
        "n_planned": sexp.n_runs,
        "config_given": config._jsonable(sexp.given),
        "config_resolved": resolved,
        "parts": {
            p: {"dir": f"parts/{p}", **{k: m.get(k) for k in part_keys}} for p, m in metas.items()
        },
        "start": min((m.get("start") or "") for m in metas.values()) or None,
        "end": max((m.get("end") or "") for m in metas.values()) or None,
        "status": "complete"
        if complete and len(metas) == len(sexp.parts) and not missing
        else "incomplete",
        # every part's sessions, so that the report can add up the sweeps' time
        "history": [
            {**h, "part": p}
            for p, m in metas.items()
            for h in (m.get("history") if isinstance(m.get("history"), list) else [])
        ],
    }
    if missing:
        meta["missing"] = {p: len(ids) for p, ids in missing.items()}
    meta.pop("counts", None)
    return meta


# ------------------------------------------------------------------------------------------
# post steps
# ------------------------------------------------------------------------------------------
def _specs(sexp: SuiteExperiment) -> dict[str, tuple[Part, dict]]:
    return {r["run_id"]: (p, r) for p in sexp.parts for r in p.exp.runs}


def _task_and_net(part: Part, spec: dict):
    reg = part.exp.registry or config.resolve_registry(None)
    task = reg.make_task(spec["task"], dict(spec["task_params"]))
    return task, reg.make_net(task, spec["net"])


def _load_tables(out_dir: Path):
    """(runs, thetas indexed by run_id) of a merged experiment, through the results reader."""
    res = store.read_results(out_dir)
    if res.runs is None or res.thetas is None:
        raise store.IncompatibleResults(f"{out_dir}: no readable run tables ({res.problems})")
    return res.runs, res.thetas.set_index("run_id")


def _theta(thetas, run_id) -> np.ndarray | None:
    if run_id not in thetas.index:
        return None
    th = thetas.at[run_id, "best_theta"]
    if th is None:
        return None
    th = np.asarray(th, dtype=np.float64)
    return th if th.size and np.isfinite(th).all() else None


def write_slices(sexp: SuiteExperiment, out_dir: Path, spec: dict, echo=print) -> list[Path]:
    """Loss slices of stored solutions (module docstring, ``[post.slices]``)."""
    import pandas as pd

    from toolkit import landscape
    from toolkit.analysis import SUCCESS_OUTCOMES

    runs, thetas = _load_tables(out_dir)
    specs = _specs(sexp)
    out: dict[str, pd.DataFrame] = {}
    interp = []
    for pname in spec["parts"]:
        sel = runs[runs["method"] == spec["method"]]
        ids = [rid for rid, (p, _) in specs.items() if p.name == pname]
        sel = sel[sel["run_id"].isin(ids)]
        if spec["task"]:
            sel = sel[sel["task"] == spec["task"]]
        cands = []  # (run row, theta)
        for _, row in sel.iterrows():
            th = _theta(thetas, row["run_id"])
            if th is not None and np.isfinite(row["best_loss"]):
                cands.append((row, th))
        if not cands:
            echo(f"{sexp.name}: no stored solutions of {spec['method']} for slices ({pname})")
            continue
        ok = [c for c in cands if c[0]["outcome"] in SUCCESS_OUTCOMES]
        bad = [c for c in cands if c[0]["outcome"] not in SUCCESS_OUTCOMES]
        anchor = ok[0] if ok else min(cands, key=lambda c: c[0]["best_loss"])
        rest_ok = [c for c in ok if c[0]["run_id"] != anchor[0]["run_id"]]
        rest_bad = [c for c in bad if c[0]["run_id"] != anchor[0]["run_id"]]
        others = []
        while len(others) < spec["pairs"] and (rest_ok or rest_bad):  # solved, stuck, ...
            for pool in (rest_ok, rest_bad):
                if pool and len(others) < spec["pairs"]:
                    others.append(pool.pop(0))
        part, rspec = specs[anchor[0]["run_id"]]
        task, net = _task_and_net(part, rspec)
        data = task.test_set()

        def label(c):
            row = c[0]
            what = "solved" if row["outcome"] in SUCCESS_OUTCOMES else "stuck"
            return f"s{int(row['replicate'])} {what}"

        where = f"{task.name}, {pname}" if pname else task.name
        if not out:
            tabs = landscape.net_tables(
                net,
                [anchor[1], *[c[1] for c in others]],
                data.x,
                data.y,
                data.mask,
                labels=[label(anchor), *[label(c) for c in others]],
                rng=spec["seed"],
                n_directions=spec["n_directions"],
                n_1d=spec["n_1d"],
                n_2d=spec["n_2d"],
                n_interp=spec["n_interp"],
                task=where,
            )
            for k in ("slice_1d", "slice_2d", "grad_norm_slice"):
                out[k] = tabs[k]
            f = tabs["interpolation"]
            if pname and len(f):
                f["pair"] = f"{pname}: " + f["pair"].astype(str)
            interp.append(f)
        else:
            for c in others:
                f = landscape.loss_interpolation(
                    net,
                    anchor[1],
                    c[1],
                    data.x,
                    data.y,
                    data.mask,
                    alphas=np.linspace(-0.25, 1.25, spec["n_interp"]),
                    pair=f"{pname}: {label(anchor)} → {label(c)}",
                )
                f["task"] = where
                interp.append(f)
    if interp:
        out["interpolation"] = pd.concat(interp, ignore_index=True)
    return [_write_table(df, out_dir / f"{k}.parquet") for k, df in out.items()]


def write_fidelity(sexp: SuiteExperiment, out_dir: Path, spec: dict) -> list[Path]:
    """gradient_fidelity.parquet (module docstring, ``[post.fidelity]``)."""
    import pandas as pd

    from toolkit import landscape

    runs, thetas = _load_tables(out_dir)
    specs = _specs(sexp)
    runs = runs[runs["run_id"].isin(list(specs))]
    frames = []
    for ti, tname in enumerate(spec["tasks"] or list(dict.fromkeys(runs["task"]))):
        sel = runs[runs["task"] == tname]
        if sel.empty:
            continue
        part, rspec = specs[sel["run_id"].iloc[0]]
        task, net = _task_and_net(part, rspec)
        data = task.test_set()
        T = data.x.shape[1]
        ks = [k for k in spec["ks"] if k < T]
        rng = np.random.default_rng([spec["seed"], ti])
        ths = [net.init(rng) for _ in range(spec["n_init"])]
        kinds = ["init"] * len(ths)
        if spec["n_trained"]:
            cand = sel if spec["method"] is None else sel[sel["method"] == spec["method"]]

            ks_run = cand["method_params"].map(lambda text: json.loads(text).get("k"))
            full = ks_run.map(lambda k, T=T: k is None or k >= T)  # k >= T is full BPTT
            for rid in cand.loc[full, "run_id"]:
                th = _theta(thetas, rid)
                if th is not None and specs[rid][1]["net"] == rspec["net"]:
                    ths.append(th)
                    kinds.append("trained")
                if kinds.count("trained") >= spec["n_trained"]:
                    break
        if not ths or not ks:
            continue
        df = landscape.gradient_fidelity(net, np.stack(ths), data.x, data.y, data.mask, ks=ks)
        df["theta_kind"] = [kinds[i] for i in df["theta_index"]]
        df["task"] = tname
        frames.append(df)
    if not frames:
        return []
    return [
        _write_table(pd.concat(frames, ignore_index=True), out_dir / "gradient_fidelity.parquet")
    ]


def write_cliff(out_dir: Path, spec: dict) -> list[Path]:
    """cliff_surface, cliff_trajectories, bifurcation (module docstring, ``[post.cliff]``)."""
    from toolkit import landscape

    tabs = landscape.cliff_tables(
        n_w=spec["n_w"],
        n_b=spec["n_b"],
        start=tuple(spec["start"]),
        seed=spec["seed"],
        lr=spec["lr"],
        steps=spec["steps"],
        clip=spec["clip"],
        sigma0=spec["sigma0"],
        generations=spec["generations"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_write_table(df, out_dir / f"{k}.parquet") for k, df in tabs.items()]


ANATOMY_TABLE = "anatomy.parquet"
#: the classes of :func:`toolkit.anatomy.classify_end_point` for a failed run, in display order
ANATOMY_CLASSES = (
    *("local minimum", "saddle", "plateau", "unsettled", "slow", "solved", "no end point"),
)


def write_anatomy(
    sexp: SuiteExperiment, out_dir: Path, spec: dict, echo=print, opts=None
) -> list[Path]:
    """anatomy.parquet (module docstring, ``[post.anatomy]``): one row per failed run, in the
    order of runs.parquet; deterministic (no randomness but the runs' own seeds,
    single-threaded kernels). ``opts`` (:class:`toolkit.sweep.ExecOptions`): jobs, progress
    bar and force of the continuations."""
    import pandas as pd

    o = sweep.ExecOptions.of(opts)
    runs, thetas = _load_tables(out_dir)
    specs = _specs(sexp)
    fail = runs[runs["outcome"].isin(spec["outcomes"]) & runs["run_id"].isin(list(specs))]
    thr = {k: spec[k] for k in ("loss_tol", "grad_tol", "flat_tol", "neg_tol", "sat_frac")}
    nets: dict[str, tuple] = {}
    rows, n_big, todo, where = [], 0, {}, {}
    chosen = None  # continue_max: the first failed runs by replicate, per part and method
    if spec.get("continue_max"):
        b = fail[fail["outcome"] == "budget"]
        b = b.assign(_part=[specs[r][0].name for r in b["run_id"]])
        b = b.sort_values("replicate", kind="stable")
        first = b.groupby(["_part", "method"], sort=False).head(spec["continue_max"])
        chosen = set(first["run_id"])
    for _, row in fail.iterrows():
        part, rspec = specs[row["run_id"]]
        ck = config.canonical([part.name, rspec["task"], rspec["task_params"], rspec["net"]])
        if ck not in nets:
            nets[ck] = _task_and_net(part, rspec)
        task, net = nets[ck]
        if net.n_params > spec["max_params"]:
            n_big += 1
            continue
        base = {
            "run_id": row["run_id"],
            "part": part.name,
            "task": row["task"],
            "method": row["method"],
            "recurrent": bool(row["recurrent"]),
            "window": int(row["window"]),
            "n_hidden": int(row["n_hidden"]),
            "n_params": int(net.n_params),
            "outcome": row["outcome"],
            "optimum": 0.0,
            "fwd_equiv": float(row["fwd_equiv"]),
        }
        where[row["run_id"]] = (task, net, rspec)
        if row["outcome"] == "budget" and spec["continue_factor"] > 1:
            if chosen is None or row["run_id"] in chosen:
                todo[row["run_id"]] = rspec
        th = None
        if row["run_id"] in thetas.index and thetas.at[row["run_id"], "final_theta"] is not None:
            th = np.asarray(thetas.at[row["run_id"], "final_theta"], dtype=np.float64)
        rows.append({**base, **_end_point(task, net, rspec, th, thr)})
    if n_big:
        big = spec["max_params"]
        echo(f"{sexp.name}: anatomy skipped {n_big} failed run(s) with > {big} weights")
    cont = {}
    if todo:
        cont = continue_runs(sexp, out_dir, list(todo.values()), spec["continue_factor"], o)
    for r in rows:
        rec = cont.get(r["run_id"])
        r.update(anatomy.continuation_columns(rec, r["fwd_equiv"]))
        solved = r["continued_solved"] if rec is not None and "row" in rec else None
        later = ""
        if solved is False and r["label"] == "slow" and rec.get("final_theta") is not None:
            task, net, rspec = where[r["run_id"]]
            th = np.asarray(rec["final_theta"], dtype=np.float64)
            later = _end_point(task, net, rspec, th, thr)["label"]
        r["continued_end_point"] = later
        r["end_point"] = r["label"]
        r["label"] = anatomy.with_continuation(r["label"], solved, later or None)
    cols = [
        *("run_id", "part", "task", "method", "recurrent", "window", "n_hidden", "n_params"),
        *("outcome", "optimum", "loss", "grad_norm", "decrement", "eig_min", "eig_max"),
        *("n_negative",),
        *("saturated", "label", "end_point", "fwd_equiv"),
        *("continued_outcome", "continued_solved", "continued_cost", "continued_cost_x"),
        *("continued_best_loss", "continued_end_point"),
    ]
    df = pd.DataFrame(rows, columns=cols).rename(columns={"loss": "final_loss", "label": "class"})
    for k, v in thr.items():  # the thresholds used, for the report's statement of them
        df[k] = float(v)
    df["continue_factor"] = float(spec["continue_factor"])
    df["continue_max"] = int(spec.get("continue_max") or 0)
    return [_write_table(df, out_dir / ANATOMY_TABLE)]


def continue_runs(sexp, out_dir: Path, specs: list[dict], factor: float, o) -> dict[str, dict]:
    """Continue failed runs: each spec executed again with ``factor`` x its budget
    (:func:`toolkit.anatomy.continued_spec`: the same seeds, so the same run up to the old
    budget) as one sweep of its own into ``out_dir/continued`` (resumable, checked, loky or
    dask, as any sweep). Returns {run_id: stored record}; a spec that
    :func:`toolkit.anatomy.not_continuable` rejects: ``{"not_exact": reason}``."""
    out, runs = {}, []
    for s in specs:
        why = anatomy.not_continuable(s)
        if why is not None:
            out[s["run_id"]] = {"not_exact": why}
        else:
            runs.append(anatomy.continued_spec(s, factor))
    if runs:
        d = out_dir / anatomy.CONTINUED_DIR
        extra = {"stage": "continued", "continue_factor": float(factor)}
        cexp = config.derived(sexp.parts[0].exp, f"{sexp.name}.continued", runs, extra)
        sweep.run_sweep(cexp, o, out=d)
        out.update({r["run_id"]: store.read_run(d, r["run_id"]) for r in runs})
    return out


def _end_point(task, net, rspec: dict, th, thr: dict) -> dict:
    """:func:`toolkit.anatomy.classify_end_point` of theta ``th`` on the run's own training
    set (its data stream, :func:`toolkit.config.run_seed_sequences`); "no end point" when
    ``th`` is missing, of the wrong size or not finite."""
    if th is None or th.size != net.n_params or not np.isfinite(th).all():
        nan = float("nan")
        return {
            **dict(loss=nan, grad_norm=nan, decrement=nan, eig_min=nan, eig_max=nan),
            **dict(n_negative=-1, saturated=nan, label="no end point"),
        }
    data_seq, _ = config.run_seed_sequences(rspec["seed"])  # the run's own training set
    data = task.generate(np.random.default_rng(data_seq))
    h, _ = net.forward(th, data.x)
    sat = anatomy.saturated_fraction(h)

    def lg(t, net=net, data=data):
        return net.loss_and_grad(t, data.x, data.y, data.mask)

    return anatomy.classify_end_point(lg, th, saturated=sat, **thr)
