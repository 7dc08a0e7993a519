"""Run pytest with the kernels compiled for an AVX2 target (what a CPU without AVX-512 runs).

    python tests/avx2.py [PYTEST ARGS...]     default: -q -m trajectory

`make test` runs the tests marked ``trajectory`` (those that follow an optimizer's path, whose
rounding differs between the AVX2 and AVX-512 kernels) this way after the normal run, so a
developer on an AVX-512 machine sees what a user on AVX2 sees. `make test-slow` runs the whole
suite this way (``-m "not slow"``). Numba compiles for ``haswell`` with AVX2 and FMA features
and keeps this target's compiled code in its own cache directory (.numba-avx2-cache), so the
two targets never load each other's machine code. On a CPU without AVX2 and FMA (or not x86-64)
this prints why and exits 0: there is no AVX2 path to test there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = "+64bit,+avx,+avx2,+fma,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"


def avx2_env() -> dict[str, str] | None:
    """The environment that makes Numba compile for AVX2, or None when this CPU cannot run it."""
    from llvmlite import binding

    host = set(binding.get_host_cpu_features().flatten().split(","))
    if not {"+avx2", "+fma"} <= host:
        return None
    return dict(
        os.environ,
        NUMBA_CPU_NAME="haswell",
        NUMBA_CPU_FEATURES=FEATURES,
        NUMBA_CACHE_DIR=str(ROOT / ".numba-avx2-cache"),
        BPTT_TEST_TARGET="avx2",  # tests/conftest.py checks that the narrow tiles are in use
    )


def main(argv: list[str]) -> int:
    env = avx2_env()
    if env is None:
        print("tests/avx2.py: this CPU has no AVX2+FMA; the AVX2 pass is skipped")
        return 0
    args = argv or ["-q", "-m", "trajectory"]
    print("tests/avx2.py: pytest with the kernels compiled for AVX2 (haswell):", " ".join(args))
    sys.stdout.flush()
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
