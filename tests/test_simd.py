"""The 8-lane vector tanh and the register-tiled products against NumPy."""

import numpy as np
import pytest
from numba import njit

from toolkit import kernels as K
from toolkit.simd import ptr, vload, vstore


@njit(cache=True)
def _tanh_all(z):
    for i in range(0, z.shape[0], 8):
        vstore(z, i, K._vtanh(vload(z, i)))


@njit(cache=True)
def _tiles(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, C, bias,
           bo, init, act):  # fmt: skip
    K._tiles(ptr(V1), v1, s1b, s1r, ptr(M1), m1, R1, ptr(V2), v2, s2b, s2r, ptr(M2), m2, R2,
             ptr(OUT), o, B, C, ptr(bias), bo, init, act)  # fmt: skip


def test_vector_tanh_within_3_ulp_of_numpy():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.linspace(-30, 30, 200_001),
            rng.normal(size=100_000) * 0.3,
            np.geomspace(1e-300, 20, 2_000),
            -np.geomspace(1e-300, 20, 2_000),
            [0.0, -0.0, 5e-324, -5e-324, 0.17328679513998632, 18.7, 19.1, 400.0, -1e300],
        ]
    )
    x = np.concatenate([x, np.zeros(-len(x) % 8)])
    z = x.copy()
    _tanh_all(z)
    ref = np.tanh(x)
    ulps = np.abs(z - ref) / np.spacing(np.abs(ref))
    assert ulps.max() <= 3.0
    assert np.array_equal(np.signbit(z), np.signbit(x))  # odd, and tanh(-0.0) == -0.0


def test_vector_tanh_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-310, 24.0, -np.nan])
    z = x.copy()
    _tanh_all(z)
    assert np.isnan(z[0]) and np.isnan(z[7])
    assert z[1] == 1.0 and z[2] == -1.0 and z[6] == 1.0
    assert z[3] == 0.0 and not np.signbit(z[3]) and z[4] == 0.0 and np.signbit(z[4])
    assert z[5] == 1e-310


def _act(z, act):
    return {-1: z, 0: np.tanh(z), 1: 1 / (1 + np.exp(-z)), 2: np.maximum(z, 0)}[act]


@pytest.mark.parametrize("B", [1, 3, 4, 5, 8, 9, 13])
@pytest.mark.parametrize("C", [1, 7, 8, 13, 16, 24, 33, 40])
@pytest.mark.parametrize("init,act", [(1, 0), (1, 1), (1, 2), (0, -1)])
def test_tiles_against_numpy(B, C, init, act):
    """OUT = act(bias or OUT + V1 M1 + V2 M2) for every tile shape and tail, with offsets and
    with V1 read transposed (row stride 1), as the weight gradients read it."""
    rng = np.random.default_rng(B * 100 + C)
    R1, R2 = 5, 11
    V1 = rng.normal(size=3 + R1 * B)  # read as V1[3 + b + r * B]: transposed
    M1 = rng.normal(size=2 + R1 * C)
    V2 = rng.normal(size=1 + B * R2)  # read as V2[1 + b * R2 + r]
    M2 = rng.normal(size=R2 * C + 4)
    bias = rng.normal(size=C + 6)
    OUT = rng.normal(size=7 + B * C + 5)
    OUT0 = OUT.copy()
    _tiles(V1, 3, 1, B, M1, 2, R1, V2, 1, R2, 1, M2, 0, R2, OUT, 7, B, C, bias, 6, init, act)
    v1 = V1[3:].reshape(R1, B).T
    v2 = V2[1:].reshape(B, R2)
    start = np.broadcast_to(bias[6:], (B, C)) if init else OUT0[7 : 7 + B * C].reshape(B, C)
    expect = _act(start + v1 @ M1[2:].reshape(R1, C) + v2 @ M2[: R2 * C].reshape(R2, C), act)
    np.testing.assert_allclose(OUT[7 : 7 + B * C].reshape(B, C), expect, rtol=1e-12, atol=1e-13)
    # nothing outside the block is written
    np.testing.assert_array_equal(OUT[:7], OUT0[:7])
    np.testing.assert_array_equal(OUT[7 + B * C :], OUT0[7 + B * C :])


@pytest.mark.parametrize("C", [8, 21, 48])
def test_tiles_same_bits_whatever_tile_a_row_falls_in(C):
    """A row computed in an 8-row, 4-row or single-row tile gets the same bits, so a
    sequence's result does not depend on the batch it is in (population_loss == loss)."""
    rng = np.random.default_rng(C)
    B, R = 13, 9
    V = rng.normal(size=B * R)
    M = rng.normal(size=R * C)
    bias = rng.normal(size=C)
    whole = np.empty(B * C)
    _tiles(V, 0, R, 1, M, 0, R, V, 0, R, 1, M, 0, 0, whole, 0, B, C, bias, 0, 1, 0)
    for b in range(B):
        row = np.empty(C)
        _tiles(V, b * R, R, 1, M, 0, R, V, 0, R, 1, M, 0, 0, row, 0, 1, C, bias, 0, 1, 0)
        np.testing.assert_array_equal(row, whole[b * C : (b + 1) * C])
