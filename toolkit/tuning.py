"""The tuning stage: every method tuned alike, on seeds it is not evaluated on.

An experiment with a ``[tuning]`` table (schema: :func:`toolkit.config._parse_tuning`)
declares, per method, a search space; ``configs`` configurations are drawn per method from its
own stream (root seed, "tuning", method), the same draws for every condition. Before the
evaluation runs, :func:`run` executes for every *condition* (task and its settings, net,
budget: a run key without the method) and every method with a non-empty space, each
configuration on ``seeds`` tuning seeds. A tuning run's key carries ``stage = "tuning"``, so
its seed (and with it its training data) comes from another stream than any evaluation run's
(:func:`plan`). The tuning runs are a sweep of their own, stored in ``<out>/tuning/`` like any
runs (resumable, the same store).

The choice (:func:`choose`), per (condition, method): the configuration with the lowest
restart-aware expected cost to solve on its tuning seeds (best-cap ERT,
:func:`toolkit.analysis.best_cap_ert`, in forward-pass equivalents); ties (e.g. no
configuration solved anything) go to the lower median best loss, then to the earlier draw. The
choices are written to ``<out>/tuning.json``; :func:`apply` gives the evaluation experiment
with them (run keys, ids and seeds recomputed). ``--skip-tuning FILE`` reuses a stored choice.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from toolkit import analysis, config, store, sweep
from toolkit.config import Experiment

STAGE = "tuning"
TUNING_DIR = "tuning"  # the tuning runs' sweep, under the experiment's (or part's) directory
CHOICE_FILE = store.TUNING_FILE  # "tuning.json"
CONDITION_KEYS = ("task", "task_params", "net", "budget", "target_loss")


def condition_id(run: dict) -> str:
    """The run's condition (its key without the method): 12 hex digits."""
    return config._sha({k: run[k] for k in CONDITION_KEYS}).hex()[:12]


def _respec(r: dict, hyper: dict, root_seed: int, version: str, stage: str | None) -> dict:
    """Run spec ``r`` with hyperparameters ``hyper``: key, id, config id and seed recomputed;
    ``stage`` "tuning" gives the tuning stream's seed and id."""
    key = {**config.run_key(r), "method_params": hyper}
    skey = {"stage": stage, **key} if stage else key
    rep = r["replicate"]
    return {
        **r,
        "method_params": hyper,
        "run_id": config.make_run_id(skey, rep, root_seed, version),
        "config_id": config._sha(key).hex()[:12],
        "seed": config.derive_seed(root_seed, skey, rep),
    }


def plan(exp: Experiment) -> Experiment:
    """The tuning runs of ``exp``: per condition and tuned method (first appearance order),
    each drawn configuration x ``seeds`` tuning seeds (replicates 0..seeds-1)."""
    t = exp.tuning
    version = config.toolkit_version()
    runs, seen = [], set()
    for r in exp.runs:
        cid, m = condition_id(r), r["method"]
        if (cid, m) in seen or not t.samples.get(m):
            continue
        seen.add((cid, m))
        for j, hyper in enumerate(t.resolved[m]):
            grid = {**r["grid"], "grid.condition": cid, "grid.tuning_config": j}
            for s in range(t.seeds):
                base = {**r, "replicate": s, "grid": grid, "experiment": f"{exp.name}.{STAGE}"}
                runs.append(_respec(base, hyper, exp.root_seed, version, STAGE))
    return config.derived(
        dataclasses.replace(exp, replicates=t.seeds, tuning=None),
        f"{exp.name}.{STAGE}",
        runs,
        {"stage": STAGE},
    )


def choose(runs, exp: Experiment) -> list[dict]:
    """The chosen configuration per (condition, method) from the tuning runs' table ``runs``
    (runs.parquet of :func:`plan`'s sweep), as JSON-able dicts (condition, method, config,
    params, objective = best-cap ERT, its cap, solved / runs, and the tuning cost spent)."""
    t = exp.tuning
    ctt = analysis.cost_to_target(runs)
    out = []
    for (cid, m), g in ctt.groupby(["grid.condition", "method"], sort=False):
        rows = []
        for j, gj in g.groupby("grid.tuning_config"):
            ert, cap = analysis.best_cap_ert(gj["cost"], gj["reached"])
            med = (
                float(np.nanmedian(gj["best_loss"])) if gj["best_loss"].notna().any() else math.inf
            )
            rows.append((ert, med, int(j), cap, int(gj["reached"].sum()), len(gj)))
        ert, med, j, cap, k, n = min(rows)
        first = g.iloc[0]
        out.append(
            {
                "condition": cid,
                "task": first["task"],
                "task_params": json.loads(first["task_params"]),
                "n_hidden": int(first["n_hidden"]),
                "method": m,
                "config": j,
                "params": t.samples[m][j],
                "objective": ert if math.isfinite(ert) else None,  # (JSON has no inf)
                "cap": cap if math.isfinite(cap) else None,
                "median_best_loss": med if math.isfinite(med) else None,
                "solved": k,
                "runs": n,
                "configs": len(rows),
                "tuning_cost": float(g["fwd_equiv"].sum()),
            }
        )
    return out


def apply(exp: Experiment, choices: list[dict]) -> Experiment:
    """The evaluation experiment with each (condition, method)'s chosen knob values; a tuned
    (condition, method) without a choice is an error naming it."""
    chosen = {(c["condition"], c["method"]): c["params"] for c in choices}
    reg = exp.registry or config.resolve_registry(None)
    version = config.toolkit_version()
    runs, missing = [], set()
    for r in exp.runs:
        cid, m = condition_id(r), r["method"]
        if not exp.tuning.samples.get(m):
            runs.append(dict(r))
        elif (cid, m) not in chosen:
            missing.add(f"{m} on {r['task']} {config.canonical(r['task_params'])}")
        else:
            hyper = config._jsonable(
                reg.validate_method(m, {**r["method_params"], **chosen[cid, m]})
            )
            runs.append(_respec(r, hyper, exp.root_seed, version, None))
    if missing:
        raise sweep.SweepError(
            f"{exp.name}: no tuning choice for {len(missing)} condition(s) and method(s), e.g. "
            f"{sorted(missing)[0]}: the choice file is from another experiment or scale"
        )
    return config.derived(exp, exp.name, runs, {"tuned": choices})


def describe(exp: Experiment, texp: Experiment) -> str:
    """The tuning plan in words: spaces, configurations, seeds, runs and cost per method."""
    t = exp.tuning
    n_cond = len({condition_id(r) for r in exp.runs})
    lines = [
        f"{exp.name}: tuning stage, {t.configs} configurations x {t.seeds} tuning "
        f"seed{'s' if t.seeds != 1 else ''} per "
        f"condition and method ({n_cond} condition{'s' if n_cond != 1 else ''}), random search"
    ]
    for m, knobs in t.space.items():
        runs = [r for r in texp.runs if r["method"] == m]
        fe = sum(r["budget"].get("fwd_equiv") or 0.0 for r in runs)
        space = ", ".join(f"{k} {kn.describe()}" for k, kn in knobs.items()) or "not tuned"
        lines.append(f"  {m}: {space}; {len(runs)} runs, at most {fe:.3g} fwd_equiv")
    return "\n".join(lines)


def protocol(exp: Experiment) -> dict:
    """What the report states about the tuning stage of ``exp``: configurations and seeds per
    (condition, method), the search space and the drawn configurations per method, the rule
    of choice and where the tuning seeds come from."""
    return {
        **exp.tuning.describe(),
        "conditions": len({condition_id(r) for r in exp.runs}),
        "search": "random",
        "objective": "best-cap ERT (fwd_equiv) on the tuning seeds; ties: lower median best loss",
        "seed_stream": f"root seed {exp.root_seed}, run key with stage = {STAGE!r}",
    }


def read_choices(path, part: str = "") -> list[dict]:
    """The choices stored in a tuning.json (of the experiment, or of its ``part``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return [c for c in data["choices"] if c.get("part", "") == part]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise sweep.SweepError(f"--skip-tuning {path}: not a tuning choice file ({e})") from None


def run(exp: Experiment, o: sweep.ExecOptions, out_dir: Path, part: str = "", skip=None):
    """Tune ``exp`` (or reuse the choice file ``skip``) and return (the evaluation experiment,
    the tuning sweep's result or None). Dry run: the tuning plan is printed, and ``exp`` is
    returned as given (its hyperparameters before tuning)."""
    out_dir = Path(out_dir)
    if skip is not None:
        choices = read_choices(skip, part)
        res = None
    else:
        texp = plan(exp)
        o.echo(describe(exp, texp))
        res = sweep.run_sweep(texp, o, out=out_dir / TUNING_DIR)
        if o.dry_run:
            o.echo(f"{exp.name}: the evaluation runs below will use the configurations chosen")
            return exp, res
        runs = store.load_runs(out_dir / TUNING_DIR)
        runs = runs[runs["run_id"].isin({r["run_id"] for r in texp.runs})]
        choices = choose(runs, exp)
    if not o.dry_run:
        payload = {
            "experiment": exp.name,
            "source": str(skip or out_dir / TUNING_DIR),
            "protocols": {part: protocol(exp)},
            "choices": [{**c, "part": part} for c in choices],
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        store.write_json_atomic(out_dir / CHOICE_FILE, payload)
    return apply(exp, choices), res
