"""Execution: an :class:`toolkit.config.Experiment`'s runs -> joblib (loky | dask) -> store.

The runs (validated and expanded by :mod:`toolkit.config`) are executed with joblib: the
``loky`` backend on one machine, joblib's ``dask`` backend on a ``dask.distributed`` cluster.
Results stream back as they finish and each one is written to the results directory at once
(:mod:`toolkit.store`), so an interrupted sweep resumes where it stopped. How to execute (never
what) is one :class:`ExecOptions`, built by the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit import records, store
from toolkit.config import (
    MAX_RUNS,
    SECONDS_PER_STEP,
    SECONDS_PER_WEIGHT_STEP,
    Experiment,
    SweepError,
    _fmt,
    _jsonable,
    _registry_label,
    canonical,
    load_config,
    resolve_registry,
    run_seed_sequences,
)

__all__ = [
    "SweepError",
    "SweepStopped",
    "SweepResult",
    "ExecOptions",
    "execute_run",
    "run_sweep",
    "estimate_cost",
    "format_run_table",
    "limit_threads",
]

THREAD_VARS = store.THREAD_VARS  # the thread variables set to 1 in every worker


class SweepStopped(SweepError):
    """A sweep started but stopped before its results were complete (a worker died, the disk
    became unwritable, a run file was damaged, ...): what is stored stays, and running the
    same command again resumes. (``bptt run`` exits with 3.)"""


# ------------------------------------------------------------------------------------------
# one run (executed in the workers)
# ------------------------------------------------------------------------------------------
_LIMITED = False


def limit_threads(n: int = 1) -> None:
    """Numba, OpenMP and BLAS use ``n`` threads in this process (set once per process).

    Sets the usual environment variables (effective for libraries not loaded yet) and, when
    threadpoolctl is installed, limits the thread pools already loaded."""
    global _LIMITED
    if _LIMITED:
        return
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except Exception:
        pass
    _LIMITED = True


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _base_row(spec: dict) -> dict:
    """The run's row (toolkit/records.py) before it runs: its spec, defaults elsewhere."""
    net, budget = spec["net"], spec["budget"]
    return records.new_row(
        spec.get("grid", {}),
        experiment=spec["experiment"],
        run_id=spec["run_id"],
        replicate=spec["replicate"],
        seed=spec["seed"],
        task=spec["task"],
        task_params=canonical(spec["task_params"]),
        method=spec["method"],
        method_params=canonical(spec["method_params"]),
        family=spec.get("family"),
        n_hidden=net["n_hidden"],
        hidden=net.get("hidden"),  # None for the gated cells (their activations are fixed)
        recurrent=net.get("recurrent", True),
        window=net.get("window", 1),
        cell=net.get("cell", "elman"),
        output=spec.get("output"),
        target_loss=math.nan if spec.get("target_loss") is None else spec["target_loss"],
        budget_evals=budget.get("evals"),
        budget_fwd_equiv=_f(budget.get("fwd_equiv")),
        budget_wall_s=_f(budget.get("wall_s")),
    )


def execute_run(run_spec: dict, registry=None) -> dict:
    """Run one spec (a dict from :func:`load_config`); never raises.

    Builds the task (``registry.make_task``), the network, the training data from the run's
    data stream, and calls the method (``toolkit.train.run``). Returns a JSON-able record
    ``{"run_id", "row", "trace", "final_theta", "best_theta"}``; any exception gives outcome
    ``error`` with the traceback in ``row["error"]``.
    """
    t0, cpu0 = time.perf_counter(), time.thread_time()
    row = _base_row(run_spec)
    record = {
        "run_id": run_spec["run_id"],
        "index": run_spec.get("index", 0),
        "row": row,
        "trace": None,
        "final_theta": None,
        "best_theta": None,
    }
    try:
        reg = resolve_registry(registry)
        task = reg.make_task(run_spec["task"], dict(run_spec["task_params"]))
        net = reg.make_net(task, run_spec["net"])
        row["n_params"] = int(net.n_params)
        data_seq, train_seq = run_seed_sequences(run_spec["seed"])
        data = task.generate(np.random.default_rng(data_seq))
        trace = reg.train(
            run_spec["method"],
            net,
            task,
            data,
            seed=train_seq,
            budget=dict(run_spec["budget"]),
            target_loss=run_spec["target_loss"],
            hyper=dict(run_spec["method_params"]),
        )
        s = trace.summary()
        row.update(records.from_summary(s))
        outcome = row["outcome"]
        if outcome == "error":
            row["error"] = row["message"] or "the method reported outcome 'error'"
        if outcome in ("solved", "target"):
            row["solved_at_evals"] = float(s["evals"])
            row["solved_at_fwd_equiv"] = float(s["fwd_equiv"])
        record["trace"] = {c: [_jsonable(v) for v in vals] for c, vals in trace.points.items()}
        for k in ("final_theta", "best_theta"):
            th = getattr(trace, k, None)
            record[k] = None if th is None else np.asarray(th, dtype=np.float64).tolist()
    except Exception as e:  # a run never takes the sweep down
        row["outcome"] = "error"
        row["error"] = traceback.format_exc()
        row["message"] = f"{type(e).__name__}: {e}"
        row["wall_s"] = time.perf_counter() - t0
    row["cpu_s"] = time.thread_time() - cpu0  # this thread only: right for dask's threads too
    return record


def _worker_run(run_spec: dict, registry) -> dict:
    """Entry point in loky / dask workers: one thread for Numba/OpenMP/BLAS, then the run."""
    limit_threads(1)
    return execute_run(run_spec, registry)


# ------------------------------------------------------------------------------------------
# the sweep
# ------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    experiment: str
    out_dir: Path
    n_runs: int
    n_stored_before: int
    n_executed: int = 0
    n_failed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False
    elapsed_s: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of the runs executed (sum of their cpu_s)

    @property
    def ok(self) -> bool:
        return self.n_failed == 0


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


#: the calibration of :func:`estimate_cost` (``python benchmarks/calibrate_cost.py`` writes it)
RUN_COST_FILE = Path(__file__).resolve().with_name("run_cost.json")
_RUN_COST: dict | None = None


def load_run_cost(path=None) -> dict:
    """The cost calibration ``toolkit/run_cost.json`` (or ``path``): {"families": {family:
    {cell: {"a", "b"}}}, "methods": {method: {"family", cell: {"a", "b"}}}, "commit", ...};
    {} when the file is missing or unreadable (every estimate then uses the old constants)."""
    global _RUN_COST
    if path is None and _RUN_COST is not None:
        return _RUN_COST
    try:
        data = json.loads(Path(path or RUN_COST_FILE).read_text(encoding="utf-8"))
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    if path is None:
        _RUN_COST = data
    return data


def seconds_per_step(method: str, family: str, cell: str, n_params: int, coeffs: dict):
    """(seconds of training per forward-pass-equivalent sequence-step, source) for a run of
    ``method`` (of ``family``) on a net of ``cell`` with ``n_params`` weights: ``a + b *
    n_params`` from ``coeffs`` (:func:`load_run_cost`), the method's entry first ("method"),
    else its family's ("family"), else the old constants ``SECONDS_PER_STEP +
    SECONDS_PER_WEIGHT_STEP * n_params`` ("fallback")."""
    for source, entry in (
        ("method", (coeffs.get("methods") or {}).get(method)),
        ("family", (coeffs.get("families") or {}).get(family)),
    ):
        c = entry.get(cell) if isinstance(entry, dict) else None
        if isinstance(c, dict) and "a" in c and "b" in c:
            return float(c["a"]) + float(c["b"]) * n_params, source
    return SECONDS_PER_STEP + SECONDS_PER_WEIGHT_STEP * n_params, "fallback"


def estimate_cost(runs: list[dict], jobs: int = 1, coeffs: dict | None = None) -> dict:
    """Upper-bound cost of ``runs`` from their budgets: total forward-pass equivalents and a
    wall time: per run, its ``fwd_equiv`` budget x the seconds per sequence-step calibrated
    for its method (or family) and cell on a net of its size (:func:`seconds_per_step`,
    ``coeffs`` or ``toolkit/run_cost.json``), or its ``wall_s`` budget when that is smaller.
    Every run is assumed to spend its budget (runs that reach their target stop earlier);
    per run the estimate is a typical value, not a bound. ``fallback_runs`` counts the
    runs the calibration has no entry for (estimated with the old constants), ``calibration``
    names the calibration's commit (None without one)."""
    coeffs = load_run_cost() if coeffs is None else coeffs
    total_fe = 0.0
    total_s = 0.0
    n_unknown = 0
    n_fallback = 0
    sizes: dict[str, int] = {}
    for r in runs:
        ck = canonical([r["n_in"], r["n_out"], r["output"], r["net"]])
        if ck not in sizes:  # the net class counts its parameters (window, fixed weights)
            from toolkit.nets import make_net

            sizes[ck] = make_net(r["n_in"], r["n_out"], r["output"], r["net"]).n_params
        n_params = sizes[ck]
        fe = r["budget"].get("fwd_equiv")
        ws = r["budget"].get("wall_s")
        secs = None
        if fe is not None:
            total_fe += fe
            cell = r["net"].get("cell", "elman")
            per_step, source = seconds_per_step(
                r["method"], r.get("family", ""), cell, n_params, coeffs
            )
            n_fallback += source == "fallback"
            secs = fe * per_step
        if ws is not None:
            secs = ws if secs is None else min(secs, ws)
        if secs is None:
            n_unknown += 1
        else:
            total_s += secs
    workers = max(1, min(jobs, len(runs)))
    return {
        "runs": len(runs),
        "fwd_equiv": total_fe,
        "cpu_s": total_s,
        "wall_s": total_s / workers,
        "jobs": workers,
        "unestimated_runs": n_unknown,
        "fallback_runs": n_fallback,
        "calibration": coeffs.get("commit") if coeffs else None,
    }


def _human_s(s: float) -> str:
    if s < 1:
        return "<1 s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _compact(d: dict, limit: int = 48) -> str:
    s = ",".join(f"{k}={_fmt(v) if not isinstance(v, str) else v}" for k, v in d.items())
    return s if len(s) <= limit else s[: limit - 1] + "~"


def format_run_table(runs: list[dict], stored: Iterable[str] = ()) -> str:
    """One line per run: index, id, task, method, network, grid values, replicate, seed."""
    import pandas as pd

    stored = set(stored)
    grid_cols = sorted({k for r in runs for k in r["grid"]})
    rows = []
    for r in runs:
        row = {
            "#": r["index"],
            "run_id": r["run_id"],
            "task": r["task"],
            "task_params": _compact(r["task_params"]),
            "method": r["method"],
            "method_params": _compact(r["method_params"]),
            "n_hidden": r["net"]["n_hidden"],
            "hidden": r["net"].get("hidden", "-"),
        }
        for k in grid_cols:
            v = r["grid"].get(k)
            row[k[5:]] = "-" if v is None else v
        row.update(
            {
                "rep": r["replicate"],
                "seed": r["seed"],
                "status": "stored" if r["run_id"] in stored else "to run",
            }
        )
        rows.append(row)
    with pd.option_context(
        "display.max_rows",
        None,
        "display.max_columns",
        None,
        "display.width",
        250,
        "display.max_colwidth",
        50,
    ):
        return pd.DataFrame(rows).to_string(index=False)


def _connect_dask(scheduler: str | None, jobs: int, timeout: float):
    """(client, cluster-or-None). A scheduler address is reached within ``timeout`` seconds or
    a SweepError says so; without one, a LocalCluster of ``jobs`` single-thread processes on
    the loopback interface is started."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise SweepError(f"--backend dask needs dask[distributed]: {e}") from e
    env = {v: "1" for v in THREAD_VARS}
    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except Exception as e:
            raise SweepError(
                f"cannot reach the dask scheduler at {scheduler} within {timeout:g} s "
                f"({type(e).__name__}: {e}). Is `dask scheduler` running there, and is the "
                "address right (e.g. tcp://host:8786)?"
            ) from None
        cluster = None
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:
            client.close()
            raise SweepError(
                f"the dask scheduler at {scheduler} has no workers (waited {timeout:g} s); "
                f"start some with `dask worker {scheduler} --nworkers N --nthreads 1`"
            ) from None
    else:
        cluster = LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            env=env,
        )
        client = Client(cluster)
    try:
        client.run(limit_threads, 1)
    except Exception:
        pass
    return client, cluster


@dataclass(frozen=True)
class ExecOptions:
    """How to execute (never what): built once by the CLI, passed to the suite and the sweep.

    jobs: parallel runs (None or 0: all cores); backend: loky | dask; scheduler: a dask
    scheduler address; timeout: seconds to wait for it; progress: a progress bar; force:
    discard stored results first; dry_run: print the plan, run nothing; max_runs: refuse larger
    expansions (None: no limit, ``--force-large``); results_root / out: where results go; echo:
    where messages go; skip_tuning: a stored tuning.json to reuse instead of tuning."""

    jobs: int | None = None
    backend: str = "loky"
    scheduler: str | None = None
    timeout: float = 10.0
    progress: bool = True
    force: bool = False
    dry_run: bool = False
    max_runs: int | None = MAX_RUNS
    results_root: Path | str = "results"
    out: Path | str | None = None
    echo: Callable = print
    skip_tuning: Path | str | None = None  # a tuning.json whose choices are reused

    @classmethod
    def of(cls, opts: ExecOptions | None = None, **kw) -> ExecOptions:
        """``opts`` with the keywords replaced (``connect_timeout`` is ``timeout``)."""
        if "connect_timeout" in kw:
            kw["timeout"] = kw.pop("connect_timeout")
        return dataclasses.replace(opts or cls(), **kw)


def run_sweep(
    config,
    opts: ExecOptions | None = None,
    *,
    seeds: int | None = None,
    scale: str = "default",
    registry=None,
    **kw,
) -> SweepResult:
    """Run an experiment (a path to its TOML file, or an :class:`Experiment`).

    ``opts`` (:class:`ExecOptions`, or its fields as keywords): out: the experiment's results
    directory (default ``results_root/<name>``). jobs: parallel runs (None or 0: all cores;
    with dask and a scheduler: ignored, the cluster decides).
    Runs already stored in ``out`` are skipped (runs stored with outcome ``error`` are
    retried); every stored file is checked first (:func:`toolkit.store.check_runs`): a damaged
    one is named, moved to ``runs/damaged/`` and its run executed again. ``force`` discards the
    stored results first. ``dry_run`` prints the run table and the estimated cost and runs
    nothing (and writes nothing). ``max_runs``: see :func:`load_config`. A sweep holds the
    writer's lock of ``out`` (:func:`toolkit.store.acquire_lock`) from before its first write
    until it ends.

    Raises :class:`ConfigError`, :class:`toolkit.store.IncompatibleResults` or
    :class:`SweepError` (also when another process holds the lock) before anything runs;
    :class:`SweepStopped` when the sweep started but its results are not complete (an I/O error,
    a worker died, a run file damaged during the sweep): the message says how many runs are
    stored and that the same command resumes; problems met while writing the tables and
    meta.json after such an error are one warning line each through ``echo`` and never replace
    it. Failed runs do not raise, they are counted in the result (``n_failed``) after every
    other run finished.
    """
    t_start = time.perf_counter()
    o = ExecOptions.of(opts, **kw)
    n_jobs = _check_options(o)
    reg = resolve_registry(registry)
    exp = (
        config
        if isinstance(config, Experiment)
        else load_config(config, scale=scale, seeds=seeds, registry=reg, max_runs=o.max_runs)
    )
    out_dir = Path(o.out) if o.out else Path(o.results_root) / exp.name
    if not o.force:
        store.check_compatible(out_dir, exp.name, exp.fingerprint, exp.resolved)
    if o.dry_run:
        return _dry_run(exp, out_dir, o, n_jobs)
    plan_ids = [r["run_id"] for r in exp.runs]
    client = cluster = None
    if o.backend == "dask":  # before writing anything: an unreachable scheduler
        named = {} if o.force else store.stored_ids(out_dir)  # by name; checked under the lock
        if _pending(exp, named):
            client, cluster = _connect_dask(o.scheduler, n_jobs, o.timeout)
    lock = _lock(out_dir, o.echo, client, cluster)
    result = SweepResult(exp.name, out_dir, len(exp.runs), 0)
    status = "interrupted"
    error: BaseException | None = None
    late: list[str] = []  # problems after the runs, when nothing failed before them
    meta = None
    try:
        # the resume check reads and checks every stored file of the plan; damaged ones are
        # moved to runs/damaged/ and their runs executed again
        stored = {} if o.force else store.check_runs(out_dir, plan_ids, echo=o.echo)
        pending = _pending(exp, stored)
        result.n_stored_before = len(exp.runs) - len(pending)
        store.prepare(out_dir, force=o.force)
        if pending and o.backend == "dask" and client is None:  # damaged files to rerun
            client, cluster = _connect_dask(o.scheduler, n_jobs, o.timeout)
        # a session with nothing to run, after a complete one, changes nothing: meta.json is
        # left as it is (so a rerun of `make experiments` leaves every tracked file unchanged)
        if not pending and _completed_before(out_dir, exp.given):
            o.echo(_headline(exp, result.n_stored_before, 0) + f" in {out_dir}; nothing to do")
            status = "complete"
            return result
        meta = _start_session(exp, pending, reg, out_dir, o, n_jobs, client)
        if pending:
            _execute(exp, pending, reg, out_dir, o, n_jobs, result)
        status = "complete"
    except (KeyboardInterrupt, SweepError) as e:
        error = e
        raise
    except Exception as e:  # a worker died, the cluster went away, the disk is full, ...
        error = e
        raise SweepStopped(
            f"the sweep stopped: {_first_line(e)}. {_stored_count(out_dir, plan_ids)} of "
            f"{len(plan_ids)} runs are stored in {out_dir}; run the same command again to resume"
        ) from e
    finally:
        # nothing here raises: after an earlier error each later failure is one line and the
        # first error stays the one reported; without one, they are raised below
        _close_quietly(client, cluster)
        if meta is not None:
            late = _finish_session(out_dir, plan_ids, meta, status, error, result, t_start, o.echo)
        try:
            lock.release()
        except OSError as e:
            o.echo(f"warning: could not remove the lock {lock.path}: {_first_line(e)}")
        result.elapsed_s = time.perf_counter() - t_start
    if late:
        raise SweepStopped(
            "the sweep ran, but its results could not be completed: "
            + "; ".join(late)
            + f"\n{_stored_count(out_dir, plan_ids)} of {len(plan_ids)} runs are stored in "
            f"{out_dir}; run the same command again to resume"
        )
    _say_done(exp, result, o.echo)
    return result


def _check_options(o: ExecOptions) -> int:
    """The number of jobs, after checking the execution options (SweepError if they are bad)."""
    if o.backend not in ("loky", "dask"):
        raise SweepError(f"backend: expected loky or dask, got {o.backend!r}")
    if o.scheduler and o.backend != "dask":
        raise SweepError("--scheduler needs --backend dask")
    jobs = o.jobs
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 0):
        raise SweepError(f"jobs: expected an integer >= 1 (0 = all cores), got {jobs!r}")
    return default_jobs() if not jobs else int(jobs)


def _pending(exp: Experiment, stored: dict) -> list[dict]:
    """The runs of the plan not stored with status "ok" (errors are retried)."""
    done = {i for i, status in stored.items() if status == "ok"}
    return [r for r in exp.runs if r["run_id"] not in done]


def _headline(exp: Experiment, n_stored: int, n_pending: int) -> str:
    return (
        f"{exp.name}: {len(exp.runs)} runs ({exp.n_configs} configurations x "
        f"{exp.replicates} replicate{'s' if exp.replicates != 1 else ''}, scale "
        f"{exp.scale}); {n_stored} stored, {n_pending} to run"
    )


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def _stored_count(out_dir: Path, plan_ids: list[str]) -> str:
    try:
        return str(len(set(store.stored_ids(out_dir)) & set(plan_ids)))
    except OSError:
        return "an unknown number"


def _dry_run(exp: Experiment, out_dir: Path, o: ExecOptions, n_jobs: int) -> SweepResult:
    """Print the run table and the estimated cost; read only (damaged files are reported, not
    moved)."""
    plan_ids = [r["run_id"] for r in exp.runs]
    stored = {} if o.force else store.check_runs(out_dir, plan_ids, move=False, echo=o.echo)
    pending = _pending(exp, stored)
    n_stored = len(exp.runs) - len(pending)
    est = estimate_cost(pending, n_jobs)
    o.echo(format_run_table(exp.runs, {i for i, s in stored.items() if s == "ok"}))
    o.echo("")
    o.echo(_headline(exp, n_stored, len(pending)) + f"; results in {out_dir}")
    commit = str(est["calibration"])
    commit = commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")
    calibrated = (
        f"calibrated on this machine kind by benchmarks/calibrate_cost.py (commit {commit})"
        if est["calibration"]
        else "no calibration (toolkit/run_cost.json): "
        f"{SECONDS_PER_STEP * 1e9:g} ns + {SECONDS_PER_WEIGHT_STEP * 1e9:g} ns per weight per "
        "sequence-step"
    )
    line = (
        f"estimated cost of the runs to do: {est['fwd_equiv']:.3g} forward-pass "
        f"equivalents; about {_human_s(est['cpu_s'])} of CPU, ~{_human_s(est['wall_s'])}"
        f" on {est['jobs']} job{'s' if est['jobs'] != 1 else ''} "
        f"(if every run spends its budget: runs that reach the target stop earlier; per run a "
        f"typical value, not a bound; {calibrated})"
    )
    if est["calibration"] and est["fallback_runs"]:
        line += (
            f"; {est['fallback_runs']} runs (a method or cell the calibration lacks) use the "
            f"old constants, {SECONDS_PER_STEP * 1e9:g} ns + {SECONDS_PER_WEIGHT_STEP * 1e9:g} "
            "ns per weight per sequence-step"
        )
    if est["unestimated_runs"]:
        line += f"; {est['unestimated_runs']} runs have only an evals budget (not estimated)"
    o.echo(line)
    o.echo("dry run: nothing was run or written")
    return SweepResult(exp.name, out_dir, len(exp.runs), n_stored, dry_run=True)


def _close_quietly(*things) -> None:
    for c in things:
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()


def _lock(out_dir: Path, echo, *clients):
    """The writer's lock of ``out_dir``; when it cannot be had, the dask client and cluster
    are closed and a SweepError says why."""
    try:
        return store.acquire_lock(out_dir, echo=echo)
    except (store.ResultsLocked, OSError) as e:
        _close_quietly(*clients)
        if isinstance(e, store.ResultsLocked):
            raise SweepError(str(e)) from None
        raise SweepError(f"cannot lock {out_dir}: {type(e).__name__}: {e}") from None


def _start_session(exp, pending, reg, out_dir, o: ExecOptions, n_jobs: int, client) -> dict:
    """meta.json of a new session written, the plan announced and the kernels warmed up."""
    meta = store.new_meta(
        exp,
        backend=o.backend,
        jobs=n_jobs,
        scheduler=o.scheduler,
        registry=_registry_label(reg),
        out_dir=out_dir,
    )
    if client is not None:
        meta["threads"]["dask_workers"] = len(client.scheduler_info().get("workers", {}))
    store.write_meta(out_dir, meta)
    n_stored = len(exp.runs) - len(pending)
    where = f" at {o.scheduler}" if o.scheduler else f", {n_jobs} job{'s' if n_jobs != 1 else ''}"
    o.echo(_headline(exp, n_stored, len(pending)) + f" -> {out_dir} ({o.backend}{where})")
    if pending:
        try:
            meta["warmup_s"] = reg.warmup(pending) if hasattr(reg, "warmup") else 0.0
        except Exception as e:  # the runs will report the problem themselves
            o.echo(f"warning: warming up the kernels failed ({type(e).__name__}: {e})")
    return meta


def _finish_session(out_dir, plan_ids, meta, status, error, result, t_start, echo) -> list[str]:
    """The tables rebuilt and meta.json finished; never raises: after ``error`` a failure is
    one warning line, without one the failures are returned (to be raised by the caller)."""
    late = []
    try:
        store.consolidate(out_dir, plan_ids)
    except Exception as e:
        if error is None:
            late.append(str(e) if isinstance(e, store.DamagedResults) else _first_line(e))
        else:
            echo(f"warning: rebuilding the tables failed too: {_first_line(e)}")
    if error is not None:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    elif late:
        status = "failed"
    try:
        store.finish_meta(
            out_dir,
            meta,
            status=status,
            executed=result.n_executed,
            failed=result.n_failed,
            stored_before=result.n_stored_before,
            cpu_s=result.cpu_s,
            wall_s=time.perf_counter() - t_start,
        )
    except Exception as e:
        if error is None:
            late.append(f"writing {store.META_FILE} failed: {_first_line(e)}")
        else:
            echo(f"warning: writing {store.META_FILE} failed too: {_first_line(e)}")
    return late


def _say_done(exp: Experiment, result: SweepResult, echo) -> None:
    if not result.n_failed:
        echo(
            f"{exp.name}: done, {result.n_executed} runs executed, {result.n_stored_before} were "
            f"already stored ({result.elapsed_s:.1f} s)"
        )
        return
    echo(
        f"{exp.name}: {result.n_failed} of {result.n_executed} runs failed "
        f"(outcome 'error'; tracebacks in the 'error' column of "
        f"{result.out_dir / 'runs.parquet'}; they are retried on the next run):"
    )
    for rid, msg in result.failed[:10]:
        echo(f"  {rid}: {msg}")
    if len(result.failed) > 10:
        echo(f"  ... and {len(result.failed) - 10} more")


def _completed_before(out_dir: Path, given: dict) -> bool:
    """True when ``out_dir`` has a meta.json of a session that completed (status complete),
    written from the same file as given (its ``[report]`` text, say, changes no run but is
    kept in meta.json), and every table: a session with nothing to run then adds nothing."""
    try:
        meta = store.load_meta(out_dir)
    except (OSError, ValueError):
        return False
    tables = (store.RUNS_TABLE, store.TRACES_TABLE, store.THETAS_TABLE)
    return (
        bool(meta)
        and meta.get("status") == "complete"
        and meta.get("config_given") == given
        and all((Path(out_dir) / t).is_file() for t in tables)
    )


def _one_thread_here():
    """threadpoolctl's limit of the BLAS/OpenMP pools of this process to one thread (restored
    afterwards) when threadpoolctl is installed, else nothing (the kernels are single-threaded
    Numba; BLAS only serves the evolution strategies' linear algebra)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _execute(exp, pending, reg, out_dir, o: ExecOptions, n_jobs: int, result) -> None:
    """Run ``pending`` through joblib and store each record as it arrives."""
    backend, timeout, progress = o.backend, o.timeout, o.progress
    import joblib
    from tqdm import tqdm

    if backend == "dask":  # the client connected by run_sweep is the default client
        ctx = joblib.parallel_config(backend="dask", wait_for_workers_timeout=timeout)
        n, fn = -1, _worker_run
    else:
        n = max(1, min(n_jobs, len(pending)))
        ctx = joblib.parallel_config(backend="loky", inner_max_num_threads=1)
        fn = execute_run if n == 1 else _worker_run
    bar = tqdm(
        total=len(pending),
        unit="run",
        desc=exp.name,
        disable=not progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    bar.set_postfix(failed=0, refresh=False)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(ctx)
            if fn is execute_run:  # runs in this process: one BLAS thread too, if possible
                stack.enter_context(_one_thread_here())
            parallel = joblib.Parallel(
                n_jobs=n, return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs"
            )
            records = parallel(joblib.delayed(fn)(spec, reg) for spec in pending)
            try:
                for rec in records:
                    store.write_run(out_dir, rec)
                    result.n_executed += 1
                    result.cpu_s += float(rec["row"].get("cpu_s") or 0.0)
                    if rec["row"]["outcome"] == "error":
                        result.n_failed += 1
                        msg = rec["row"]["message"] or rec["row"]["error"].strip().splitlines()[-1]
                        result.failed.append((rec["run_id"], msg))
                    bar.set_postfix(failed=result.n_failed, refresh=False)
                    bar.update(1)
            finally:  # stopped early (e.g. a run could not be stored): cancel the rest quietly,
                # the sweep's own message says what happened and how to resume
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*tasks which were still being")
                    records.close()
    finally:
        bar.close()
