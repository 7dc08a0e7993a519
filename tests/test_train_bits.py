"""Every gradient trainer's Trace is bit-for-bit what it was before issue 18's speed work:
tests/data/train_bits.npz holds, for each case of tests/data/make_train_bits.py (SGD, momentum,
Nesterov, Adam; full batch, minibatch, truncated k; online BPTT shared, sum and copies; BPTT(k1,
k2); clipping, weight decay, schedules, reductions; LSTM and GRU; target and divergence stops)
and several seeds, the trace points (all but wall time), outcome, evaluations, forward-pass
equivalents, last and best loss, final and best theta, made with the code before the change,
one file per kernel target (AVX-512, AVX2)."""

import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(DATA))

import make_train_bits as M  # noqa: E402


@pytest.fixture(scope="module")
def fixture():
    path = M.fixture_path()
    if not path.exists():
        pytest.skip(
            f"no fixture for this kernel target ({path.name}); the AVX2 pass of `make test` "
            "(tests/avx2.py) checks the portable haswell one"
        )
    return np.load(path)


@pytest.mark.trajectory
@pytest.mark.parametrize("name", list(M.CASES))
def test_trace_identical_bit_for_bit(name, fixture):
    for seed in M.SEEDS:
        got = M.one(name, seed)
        for key, value in got.items():
            want = fixture[f"{name}/{seed}/{key}"]
            assert want.dtype == value.dtype, (name, seed, key)
            assert want.shape == value.shape, (name, seed, key)
            if want.dtype == np.float64:  # the bit patterns: NaN where NaN, -0.0 where -0.0
                want, value = want.view(np.uint64), value.view(np.uint64)
            assert np.array_equal(want, value), (name, seed, key)
