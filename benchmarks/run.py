"""`make bench`: every speed benchmark of the toolkit, in one run, with ratios.

    python benchmarks/run.py [--quick] [--calibrate]

1. bench_core.py   -- the Numba BPTT core beside the NumPy reference, PyTorch and JAX
                      (`pip install -e .[bench]` for the last two), compile times cold/warm;
                      --calibrate rewrites toolkit/grad_cost.json (forward-pass equivalents).
1b. bench_gated.py -- LSTM and GRU beside torch eager and JAX (issue 17's ratios).
2. bench_evolve.py -- CMA-ES generations per second and the DEAP/Python overhead share.
3. bench_train.py  -- training runs of the experiments' typical configurations (BPTT-Adam
                      full batch and minibatch, online BPTT, CMA-ES, (mu, lambda)-ES):
                      updates/s and the share of wall time inside the compiled kernels, against
                      issue 18's targets and the stored baseline (bench_train_baseline.json);
                      without --quick also the rates side by side with that baseline's commit
                      (bench_train.py --against, worker processes on its files).
4. bench_suite.py  -- the experiment suite at the smoke scale, wall and CPU time (skipped with
                      --quick).

Benchmarks are never part of `make test`: they time, tests check.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes, shorter timings")
    ap.add_argument("--calibrate", action="store_true", help="rewrite toolkit/grad_cost.json")
    args = ap.parse_args(argv)
    import bench_core

    core_args = (["--quick"] if args.quick else []) + (["--calibrate"] if args.calibrate else [])
    bench_core.main(core_args)
    print()
    import bench_gated

    bench_gated.main(["--quick"] if args.quick else [])
    print()
    import bench_evolve

    bench_evolve.main(["--quick"] if args.quick else [])
    print()
    import bench_train

    bench_train.main(["--quick"] if args.quick else [])
    if not args.quick:
        # the rates side by side with the code before issue 18 (the baseline file's commit)
        base = (bench_train.read_baseline() or {}).get("commit")
        print()
        if not base:
            print("# bench_train --against: skipped (no baseline file, so no commit to compare)")
        else:
            try:
                bench_train.main(["--against", base])
            except (SystemExit, subprocess.CalledProcessError, RuntimeError) as exc:
                print(f"# bench_train --against {base}: skipped ({type(exc).__name__}: {exc})")
    if not args.quick:
        print()
        import bench_suite

        bench_suite.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())
