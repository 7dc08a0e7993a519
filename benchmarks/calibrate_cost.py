"""Calibrate ``--dry-run``'s cost estimate (issue 18): seconds per forward-pass-equivalent
sequence-step of real training runs, per method family and cell, written to
``toolkit/run_cost.json`` (read by ``toolkit.sweep.estimate_cost``).

Every registered method (``toolkit.train.METHODS``), with its default hyperparameters, trains
nets of a small grid of sizes (Elman H = 2, 4, 8, 16, 32; LSTM and GRU H = 2, 4, 8; A1 H = 1,
2, 4 for the methods that can train it) on the temporal XOR (10 streams of T = 30) and the
latch (100 sequences of T = 20), through ``toolkit.train.run`` as in a sweep: a
``fwd_equiv`` budget (sized from a pilot run, which also compiles, to take about
``--seconds``), no target, and the task's ``solved`` wrapped to always answer False (the check
itself runs, and its time is evaluation, kept out of ``wall_s`` as in a sweep), so every run
spends its budget. One thread. A run's cost per step is its ``wall_s / fwd_equiv`` (the
Trace's training seconds per forward-pass-equivalent sequence-step); medians over the repeats,
then over the two tasks, then per (method, cell) the least-squares fit

    seconds per fwd_equiv = a + b * n_params          (a >= 0, b >= 0)

and per (family, cell) the same fit on the medians over the family's methods. A family whose
methods differ by more than 2x (median over the sizes of the slowest method's cost over the
fastest's) gets per-method entries too; ``estimate_cost`` uses a method's entry, else its
family's, else the old constants of ``toolkit.config`` (and the dry run says so).

    python benchmarks/calibrate_cost.py [--quick] [--repeats R] [--seconds S] [--no-write]
    python benchmarks/calibrate_cost.py --check results    # the committed runs against it

``--check DIR``: for every run in ``DIR/*/runs.parquet`` that spent its whole budget (outcome
"budget"), the ratio of its training seconds (``wall_s``; the solved checks' ``eval_s`` are
apart) to the estimate ``estimate_cost`` gives it now, and to the old constants': median and
10 / 90 % quantiles per family and per method. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import toolkit.train as T  # noqa: E402
from toolkit import config, store, sweep, tasks  # noqa: E402
from toolkit.nets import make_net  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
# the task wrapper whose solved() runs the real check and answers False (no clock is active
# here, so it only passes through), and the commit stamp
from bench_train import NeverSolved, git_commit  # noqa: E402

OUT = ROOT / "toolkit" / "run_cost.json"
TASKS = (("temporal_xor", {"mask": "predictable"}), ("latch", {"T": 20}))
SIZES = {"elman": (2, 4, 8, 16, 32), "lstm": (2, 4, 8), "gru": (2, 4, 8), "a1": (1, 2, 4)}
QUICK_SIZES = {"elman": (2, 8, 32), "lstm": (2, 8), "gru": (2, 8), "a1": (1, 4)}
SPREAD_LIMIT = 2.0  # a family whose methods differ more than this gets per-method entries


def old_seconds(n_params: int) -> float:
    return config.SECONDS_PER_STEP + n_params * config.SECONDS_PER_WEIGHT_STEP


def one_run(method: str, cell: str, H: int, task_name: str, params: dict, fe: float, seed: int):
    """(wall_s, fwd_equiv, outcome, n_params) of one run with a ``fwd_equiv`` budget."""
    task = tasks.get(task_name, **params)
    net = make_net(task.n_in, task.n_out, task.output, {"cell": cell, "n_hidden": H})
    data = task.generate(np.random.default_rng(0))
    task.test_set()  # built once, as in a sweep's first solved check
    tr = T.run(method, net, NeverSolved(task), data, seed=seed, budget={"fwd_equiv": fe})
    return tr.wall_s, tr.fwd_equiv, tr.outcome, int(net.n_params)


def supports(method: str, cell: str) -> bool:
    m = T.METHODS[method]
    return not (m.family == "gradient" and cell == "a1")  # A1 has no gradient


def measure(methods, sizes, seconds: float, repeats: int, log=print) -> list[dict]:
    """One row per (method, cell, H, task): the median seconds per fwd_equiv over ``repeats``
    runs of about ``seconds`` each, after a pilot run (compiles, sizes the budget)."""
    rows = []
    for method in methods:
        for cell, hs in sizes.items():
            if not supports(method, cell):
                continue
            for H in hs:
                for task_name, params in TASKS:
                    try:
                        n = one_run(method, cell, H, task_name, params, 1.0, 0)[3]
                        pilot_fe = 0.02 / old_seconds(n)
                        w, f, _, n = one_run(method, cell, H, task_name, params, pilot_fe, 1)
                    except (ValueError, TypeError, NotImplementedError) as e:
                        log(f"# skipped {method} {cell} H={H} {task_name}: {e}".splitlines()[0])
                        break  # the same for the other tasks
                    fe = seconds * f / max(w, 1e-6)
                    per, outcomes = [], []
                    for r in range(repeats):
                        w, f, outcome, n = one_run(method, cell, H, task_name, params, fe, 2 + r)
                        per.append(w / f)
                        outcomes.append(outcome)
                    row = {
                        "method": method,
                        "family": T.METHODS[method].family,
                        "cell": cell,
                        "H": H,
                        "task": task_name,
                        "n_params": n,
                        "fwd_equiv": fe,
                        "s": statistics.median(per),
                        "outcomes": sorted(set(outcomes)),
                    }
                    rows.append(row)
                    log(
                        f"{method:<12} {cell:<5} H={H:<3} n={n:<5} {task_name:<13} "
                        f"{1e9 * row['s']:8.1f} ns/step  (old constants "
                        f"{1e9 * old_seconds(n):6.0f}; {','.join(row['outcomes'])})"
                    )
    return rows


def fit(points: list[tuple[int, float]]) -> dict:
    """Least squares ``s = a + b n`` on (n, s), clipped to a >= 0, b >= 0 (refitted with the
    other coefficient alone when one is clipped)."""
    n = np.array([p[0] for p in points], float)
    s = np.array([p[1] for p in points], float)
    if len(set(n)) >= 2:
        a, b = np.linalg.lstsq(np.column_stack([np.ones_like(n), n]), s, rcond=None)[0]
    else:
        a, b = float(np.mean(s)), 0.0
    if b < 0:
        a, b = float(np.mean(s)), 0.0
    if a < 0:
        a, b = 0.0, float(np.dot(n, s) / np.dot(n, n))
    return {"a": float(a), "b": float(b)}


def _by(rows, *keys):
    out: dict = {}
    for r in rows:
        out.setdefault(tuple(r[k] for k in keys), []).append(r)
    return out


def coefficients(rows: list[dict]) -> dict:
    """The run_cost.json content (without the note/commit/date) from :func:`measure`'s rows."""
    # per (method, cell, n): the median over the tasks
    pts = {
        k: statistics.median(r["s"] for r in rs)
        for k, rs in _by(rows, "family", "method", "cell", "n_params").items()
    }
    families: dict = {}
    methods: dict = {}
    spread: dict = {}
    for fam in sorted({k[0] for k in pts}):
        fam_pts = {k: v for k, v in pts.items() if k[0] == fam}
        families[fam] = {}
        ratios = []
        for cell in sorted({k[2] for k in fam_pts}):
            by_n: dict = {}
            for (_, _, c, n), v in fam_pts.items():
                if c == cell:
                    by_n.setdefault(n, []).append(v)
            families[fam][cell] = fit([(n, statistics.median(v)) for n, v in by_n.items()])
            ratios += [max(v) / min(v) for v in by_n.values() if len(v) > 1]
        spread[fam] = round(statistics.median(ratios), 2) if ratios else 1.0
        if spread[fam] > SPREAD_LIMIT:
            for m in sorted({k[1] for k in fam_pts}):
                methods[m] = {"family": fam}
                for cell in sorted({k[2] for k in fam_pts if k[1] == m}):
                    methods[m][cell] = fit(
                        [(n, v) for (_, mm, c, n), v in fam_pts.items() if mm == m and c == cell]
                    )
    return {
        "families": families,
        "methods": methods,
        "spread": spread,
        "points": [
            {"method": m, "cell": c, "n_params": n, "s": float(f"{v:.4g}")}
            for (_, m, c, n), v in sorted(pts.items())
        ],
    }


def write(coeffs: dict, args, path: Path = OUT) -> dict:
    data = {
        "note": (
            "seconds per forward-pass-equivalent sequence-step of training = a + b * n_params, "
            "per method family and cell (and per method where a family's methods differ "
            f"by more than {SPREAD_LIMIT:g}x), one thread, default hyperparameters, temporal XOR "
            "and latch; written by `python benchmarks/calibrate_cost.py"
            + (" --quick" if args.quick else "")
            + "`; read by toolkit.sweep.estimate_cost (--dry-run)"
        ),
        # the training code's state; the file this script writes does not count
        "commit": git_commit(ignore=("toolkit/run_cost.json",)),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": store.cpu_model(),
        "repeats": args.repeats,
        "seconds_per_run": args.seconds,
        **coeffs,
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def print_coefficients(coeffs: dict) -> None:
    print("# fitted: seconds per fwd_equiv sequence-step = a + b * n_params")
    for fam, cells in coeffs["families"].items():
        print(f"# family {fam} (methods' spread {coeffs['spread'][fam]:g}x):")
        for cell, c in cells.items():
            print(f"#   {cell:<6} a = {1e9 * c['a']:7.1f} ns  b = {1e9 * c['b']:6.3f} ns/weight")
    for m, cells in coeffs["methods"].items():
        txt = "  ".join(
            f"{cell}: {1e9 * c['a']:.1f} + {1e9 * c['b']:.3f} n"
            for cell, c in cells.items()
            if cell != "family"
        )
        print(f"#   method {m:<12} {txt}  (ns)")


# -- the check against stored runs -----------------------------------------------------------
def _quantiles(x) -> str:
    q10, q50, q90 = np.quantile(np.asarray(x, float), [0.1, 0.5, 0.9])
    return f"{q50:6.2f} {q10:6.2f} {q90:6.2f}"


def check(results: Path, coeffs: dict | None = None) -> dict:
    """Per family and method: actual training seconds / estimate (now and with the old
    constants) of the stored runs of ``results/*`` whose outcome is "budget"; printed, and
    returned as {group: (n, median)}."""
    import pandas as pd

    coeffs = sweep.load_run_cost() if coeffs is None else coeffs
    frames = []
    for d in sorted(Path(results).iterdir()):
        res = store.read_results(d) if d.is_dir() else None
        if res is not None and res.runs is not None:
            frames.append(res.runs)
    df = pd.concat(frames, ignore_index=True)
    n_all = len(df)
    df = df[df["outcome"] == "budget"]
    rows = []
    for r in df.itertuples(index=False):
        fe = r.budget_fwd_equiv
        ws = r.budget_wall_s
        fe = None if fe is None or not np.isfinite(fe) else float(fe)
        ws = None if ws is None or not np.isfinite(ws) else float(ws)
        if fe is None and ws is None:
            continue
        cell = r.cell if isinstance(r.cell, str) and r.cell else "elman"
        new, source = sweep.seconds_per_step(r.method, r.family, cell, int(r.n_params), coeffs)
        old = old_seconds(int(r.n_params))
        est_new = fe * new if fe is not None else ws
        est_old = fe * old if fe is not None else ws
        if fe is not None and ws is not None:
            est_new, est_old = min(est_new, ws), min(est_old, ws)
        rows.append(
            {
                "family": r.family,
                "method": r.method,
                "cell": cell,
                "source": source,
                "now": r.wall_s / est_new,
                "old": r.wall_s / est_old,
                "wall_s": r.wall_s,
                "est": est_new,
            }
        )
    t = pd.DataFrame(rows)
    print(
        f"# {results}: {n_all} stored runs, {len(t)} spent their whole budget (outcome "
        '"budget"); ratio = training seconds (wall_s) / estimate; median, 10 % and 90 % quantiles'
    )
    sources = {k: int(v) for k, v in t["source"].value_counts().items()}
    print(f"# estimate from (method / family entry, or the old constants): {sources}")
    print(f"{'group':<26} {'runs':>5}   now: med    q10    q90   old: med    q10    q90   sum")
    groups = [("all", t)]
    groups += [(fam, g) for fam, g in t.groupby("family", sort=True)]
    groups += [(f"{k[0]} {k[1]}", g) for k, g in t.groupby(["family", "cell"], sort=True)]
    groups += [(f"  {k[0]} {k[1]}", g) for k, g in t.groupby(["family", "method"], sort=True)]
    out = {}
    for label, g in groups:
        total = g["wall_s"].sum() / g["est"].sum()
        print(
            f"{label:<26} {len(g):>5}   {_quantiles(g['now'])}   {_quantiles(g['old'])}"
            f"  {total:5.2f}"
        )
        out[label.strip()] = (len(g), float(np.median(g["now"])))
    print("# sum: total training seconds / total estimate (now) of the group")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, shorter runs, 1 repeat")
    ap.add_argument("--repeats", type=int, default=None, help="runs per point (default 3)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per run (default 0.3)")
    ap.add_argument("--only", default=None, help="comma-separated method names")
    ap.add_argument("--no-write", action="store_true", help="print, do not write the json")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default {OUT.relative_to(ROOT)}")
    ap.add_argument("--check", type=Path, default=None, metavar="RESULTS", help="check only")
    args = ap.parse_args(argv)
    if args.check is not None:
        check(args.check)
        return 0
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.seconds = args.seconds or (0.08 if args.quick else 0.3)
    methods = args.only.split(",") if args.only else sorted(T.METHODS)
    sizes = QUICK_SIZES if args.quick else SIZES
    print(
        f"# one thread; {args.repeats} run(s) of ~{args.seconds:g} s per point after a pilot "
        "run; seconds of training (wall_s) per fwd_equiv sequence-step"
    )
    t0 = time.perf_counter()
    rows = measure(methods, sizes, args.seconds, args.repeats)
    coeffs = coefficients(rows)
    print_coefficients(coeffs)
    print(f"# {len(rows)} points measured in {(time.perf_counter() - t0) / 60:.1f} min")
    if not args.no_write and not args.only:
        data = write(coeffs, args, args.out)
        print(f"# written: {args.out} (commit {data['commit']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
