"""How long the experiment suite takes: `make experiments` at the smoke scale, timed.

    python benchmarks/bench_suite.py [--scale smoke|default] [--jobs N] [--repeats R]

Runs `bptt experiments --scale S` into a temporary results directory R times (a fresh directory
each time, so nothing resumes) and prints the median wall time and the CPU time (this process
and its worker processes). The test suite runs the smoke scale end to end too, but only checks
it; the time is measured here, where a slow or busy machine cannot fail anything.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="smoke", choices=("smoke", "default"))
    ap.add_argument("--jobs", type=int, default=0, help="0 = all cores (default)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args(argv)
    from toolkit import cli

    walls, cpus = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            c0, t0 = _cpu_s(), time.perf_counter()
            argv_ = ["experiments", "--scale", args.scale, "--jobs", str(args.jobs)]
            argv_ += ["--dir", str(ROOT / "experiments"), "--results", str(Path(tmp) / "r")]
            code = cli.main([*argv_, "--no-progress"])
            walls.append(time.perf_counter() - t0)
            cpus.append(_cpu_s() - c0)
            if code != 0:
                print(f"bptt experiments exited {code}", file=sys.stderr)
                return code
    print(
        f"\nexperiment suite, scale {args.scale}, --jobs {args.jobs or os.cpu_count()}: "
        f"median wall {statistics.median(walls):.1f} s, CPU {statistics.median(cpus):.1f} s "
        f"over {args.repeats} run{'s' if args.repeats != 1 else ''} (CPU counts finished "
        "worker processes only)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
