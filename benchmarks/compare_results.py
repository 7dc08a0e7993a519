"""Are two results roots the same, run for run, in every non-timing column?

    python benchmarks/compare_results.py /tmp/es_base /tmp/es_after [--methods cmaes,ga,...]

Written for refactors that must not change any result (issue 16: the DEAP methods moved onto
the ask/tell loop): run ``bptt experiments --scale smoke --results A`` before the change and
``... --results B`` after it, then compare. Every directory under A holding a runs table
(experiments and their parts) is compared with its twin under B: runs, traces and thetas
(``store.non_timing``: all columns but the wall-clock ones), and a tuning table if present.
Prints one line per directory and the number of runs compared per method; exits 1 on any
difference or missing directory.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from toolkit import store


def _tables(d: Path) -> list[str]:
    return sorted(p.name for p in d.glob("*.parquet"))


def compare(a: Path, b: Path, methods: set[str] | None = None) -> tuple[Counter, list[str]]:
    """(runs compared per method, problems) for the results roots ``a`` and ``b``."""
    counts: Counter = Counter()
    problems: list[str] = []
    for runs_a in sorted(a.rglob(store.RUNS_TABLE)):
        da = runs_a.parent
        db = b / da.relative_to(a)
        rel = str(da.relative_to(a))
        if not (db / store.RUNS_TABLE).exists():
            problems.append(f"{rel}: missing under {b}")
            continue
        for name in (store.RUNS_TABLE, store.TRACES_TABLE, store.THETAS_TABLE, "tuning.parquet"):
            if not (da / name).exists():
                continue
            x, y = pd.read_parquet(da / name), pd.read_parquet(db / name)
            if name != store.THETAS_TABLE:
                x, y = store.non_timing(x), store.non_timing(y)
            try:
                pd.testing.assert_frame_equal(x, y, check_exact=True)
            except AssertionError as e:
                problems.append(f"{rel}/{name}: {str(e).splitlines()[0]}")
        runs = store.load_runs(da)
        for m, k in runs["method"].value_counts().items():
            if methods is None or m in methods:
                counts[m] += int(k)
    return counts, problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--methods", default=None, help="count only these methods (comma list)")
    args = ap.parse_args(argv)
    methods = set(args.methods.split(",")) if args.methods else None
    counts, problems = compare(args.a, args.b, methods)
    for p in problems:
        print("DIFFERENT", p)
    total = sum(counts.values())
    print(
        f"{total} runs compared ({', '.join(f'{m} {k}' for m, k in sorted(counts.items()))}): "
        + ("identical in every non-timing column" if not problems else f"{len(problems)} differ")
    )
    return 1 if problems or not total else 0


if __name__ == "__main__":
    sys.exit(main())
