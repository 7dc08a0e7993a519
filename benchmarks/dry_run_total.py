"""The paper scale's estimated CPU time, summed over experiments/*.toml (tuning and evaluation).

``bptt run FILE --scale paper --dry-run`` prints each file's estimate (``toolkit.sweep
.estimate_cost``, calibrated by ``toolkit/run_cost.json``); this sums them, with the committed
calibration or with others given as files (e.g. one written by ``benchmarks/calibrate_cost.py``
in a checkout of an older commit), and with the old constants (``--constants``)::

    python benchmarks/dry_run_total.py [--scale paper] [--constants] [RUN_COST.json ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from toolkit import cli, sweep  # noqa: E402


def total(coeffs: dict, scale: str, files: list[Path]) -> tuple[dict[str, float], int, int]:
    """(CPU seconds per experiment file, runs, runs on the old constants) with ``coeffs``."""
    per: dict[str, float] = {}
    count = {"runs": 0, "fallback": 0}
    orig = sweep.estimate_cost
    cur = ""

    def counted(runs, jobs=1, *a, **k):
        est = orig(runs, jobs, *a, **k)
        per[cur] = per.get(cur, 0.0) + est["cpu_s"]
        count["runs"] += est["runs"]
        count["fallback"] += est["fallback_runs"]
        return est

    saved = sweep._RUN_COST
    sweep._RUN_COST, sweep.estimate_cost = coeffs, counted
    try:
        with tempfile.TemporaryDirectory() as empty:
            for f in files:
                cur = f.name
                with contextlib.redirect_stdout(io.StringIO()):
                    cli.main(["run", str(f), "--scale", scale, "--dry-run", "--results", empty,
                              "--jobs", "1", "--no-progress"])  # fmt: skip
    finally:
        sweep._RUN_COST, sweep.estimate_cost = saved, orig
    return per, count["runs"], count["fallback"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("calibrations", nargs="*", type=Path, help="run_cost.json files")
    ap.add_argument("--scale", default="paper")
    ap.add_argument("--constants", action="store_true", help="also with the old constants")
    args = ap.parse_args(argv)
    files = sorted((ROOT / "experiments").glob("*.toml"))
    sets = [(f"{sweep.RUN_COST_FILE.relative_to(ROOT)} (committed)", sweep.load_run_cost())]
    sets += [(str(p), json.loads(p.read_text(encoding="utf-8"))) for p in args.calibrations]
    if args.constants:
        sets.append(("old constants (150 ns + 1.5 ns per weight)", {}))
    for name, coeffs in sets:
        per, runs, fb = total(coeffs, args.scale, files)
        commit = str(coeffs.get("commit", "-"))[:12]
        parts = ", ".join(f"{k.removesuffix('.toml')} {v / 3600:.2f}" for k, v in per.items())
        hours = sum(per.values()) / 3600
        print(f"{name} [commit {commit}]: {runs} runs, {hours:.2f} h of CPU at --scale "
              f"{args.scale} ({fb} on the old constants); per file, h: {parts}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
