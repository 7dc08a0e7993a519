import os
import sys
from pathlib import Path

# tests import the slow reference implementations as plain modules
sys.path.insert(0, str(Path(__file__).parent))


def pytest_sessionstart(session):
    """Under tests/avx2.py the kernels must take the AVX2 (narrow-tile) path, or that pass
    would silently test the AVX-512 code a second time."""
    if os.environ.get("BPTT_TEST_TARGET") == "avx2":
        from toolkit import kernels

        assert not kernels._WIDE, "BPTT_TEST_TARGET=avx2 but the kernels use AVX-512 tiles"
