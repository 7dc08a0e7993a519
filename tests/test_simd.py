"""The 8-lane vector tanh and the register-tiled products against NumPy."""

import numpy as np
import pytest
from numba import njit

from toolkit.kernels import tiles
from toolkit.kernels.simd import ptr, vload, vstore


@njit(cache=True)
def _tanh_all(z):
    for i in range(0, z.shape[0], 8):
        vstore(z, i, tiles._vtanh(vload(z, i)))


@njit(cache=True)
def _tiles(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, C, bias,
           bo, init, act):  # fmt: skip
    tiles.product(ptr(V1), v1, s1b, s1r, ptr(M1), m1, R1, ptr(V2), v2, s2b, s2r, ptr(M2), m2,
                  R2, ptr(OUT), o, B, C, ptr(bias), bo, init, act)  # fmt: skip


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
@pytest.mark.parametrize("C", [1, 2, 4, 7, 8, 13, 16, 24, 33, 40])
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


@njit(fastmath={"contract", "nsz"})
def _tail_loop(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, C, bias,
               bo, init, act):  # fmt: skip
    """The tiles' scalar tail loop, one element at a time (each term one fused multiply-add),
    then the scalar activation."""
    for b in range(B):
        for c in range(C):
            x = bias[bo + c] if init else OUT[o + b * C + c]
            for r in range(R1):
                x = V1[v1 + b * s1b + r * s1r] * M1[m1 + r * C + c] + x
            for r in range(R2):
                x = V2[v2 + b * s2b + r * s2r] * M2[m2 + r * C + c] + x
            OUT[o + b * C + c] = tiles._act(x, act) if act >= 0 else x


@pytest.mark.parametrize("C", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("init,act", [(1, 0), (1, 1), (0, -1), (1, 2)])
def test_narrow_blocks_give_the_tail_loops_bits(C, init, act):
    """H < 8: the 4- and 2-column blocks (two rows at a time) and the activation applied in a
    loop of its own (vectorised by LLVM) give the bits of the scalar tail loop that computed
    them before, element by element, on every batch size (odd ones leave a single row)."""
    for B in (1, 2, 3, 10, 25, 100):
        rng = np.random.default_rng(B * 10 + C)
        R1, R2 = int(rng.integers(1, 4)), C
        V1 = rng.normal(size=B * R1) * 2
        M1 = rng.normal(size=R1 * C)
        V2 = rng.normal(size=B * R2) * 2
        M2 = rng.normal(size=R2 * C)
        bias = rng.normal(size=C)
        start = rng.normal(size=B * C)
        got, want = start.copy(), start.copy()
        args = (V1, 0, R1, 1, M1, 0, R1, V2, 0, R2, 1, M2, 0, R2)
        _tiles(*args, got, 0, B, C, bias, 0, init, act)
        _tail_loop(*args, want, 0, B, C, bias, 0, init, act)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


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


@pytest.mark.skipif(not tiles.WIDE, reason="wgrad8 is the AVX-512 path")
@pytest.mark.parametrize("I", [1, 2, 3])
def test_wgrad8_gives_the_two_products_bits(I):
    """H = 8: tiles.wgrad8's one pass gives the bits of the two products it replaces
    (gW_hh += D^T HS and [gW_xh | gb_h] += [a, 1]^T D over the same rows), from inputs
    read as rows of I (no [a, 1] rows built), on any number of rows and offsets."""
    H = 8
    for n in (1, 3, 32, 45, 100):
        rng = np.random.default_rng(n * 10 + I)
        r0 = int(rng.integers(0, 4))  # the first row
        D = rng.normal(size=(r0 + n) * H) * 3
        HS = rng.normal(size=(r0 + n + 1) * H)
        X = rng.normal(size=(r0 + n) * I)
        X1 = np.ones((r0 + n) * (I + 1))
        for r in range(r0 + n):
            X1[r * (I + 1) : r * (I + 1) + I] = X[r * I : (r + 1) * I]
        g0 = rng.normal(size=H * I + H * H + 5)
        GX0 = rng.normal(size=(I + 1) * H)
        g, GX = g0.copy(), GX0.copy()
        _tiles(D, r0 * H, 1, H, HS, r0 * H, n, D, 0, 1, H, HS, 0, 0, g, H * I, H, H,
               HS, 0, 0, -1)  # fmt: skip
        J = I + 1
        _tiles(X1, r0 * J, 1, J, D, r0 * H, n, X1, 0, 1, J, D, 0, 0, GX, 0, J, H,
               D, 0, 0, -1)  # fmt: skip
        g8, GX8 = g0.copy(), GX0.copy()
        tiles.wgrad8(D, r0 * H, HS, r0 * H, X, r0 * I, I, n, g8, H * I, GX8)
        np.testing.assert_array_equal(g8.view(np.int64), g.view(np.int64))
        np.testing.assert_array_equal(GX8.view(np.int64), GX.view(np.int64))


_NARROW_CHECK = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import reference as ref
from toolkit import Elman, kernels as K
assert not K._WIDE, "expected the AVX2 (narrow-tile) path"
rng = np.random.default_rng(0)
for I, H, O, B, T in [(2, 37, 2, 9, 6), (1, 24, 1, 5, 7), (1, 32, 1, 8, 5)]:
    net = Elman(I, H, O)
    theta = net.init(rng, scale=0.8)
    x = rng.normal(size=(B, T, I))
    y = rng.normal(size=(B, T, O))
    h, _ = net.forward(theta, x)
    np.testing.assert_allclose(h, ref.forward(theta, x, (I, H, O))[0], rtol=1e-12, atol=1e-13)
    _, g = net.loss_and_grad(theta, x, y)
    g_r = ref.grad_full(theta, x, y, None, (I, H, O))
    np.testing.assert_allclose(g, g_r, rtol=1e-10, atol=1e-12)
    thetas = rng.normal(scale=0.3, size=(3, net.n_params))
    Ls = net.population_loss(thetas, x, y)
    assert all(Ls[i] == net.loss(thetas[i], x, y) for i in range(3))
print("narrow ok")
"""


def test_narrow_tiles_without_avx512(tmp_path):
    """The 4 x 8 tile path that CPUs without AVX-512 get, compiled here for an AVX2 target
    in a subprocess (own compile cache), against the reference."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from llvmlite import binding

    host = binding.get_host_cpu_features().flatten().split(",")
    if not {"+avx2", "+fma"} <= set(host):
        pytest.skip("needs an x86-64 CPU with AVX2 and FMA")
    feats = "+64bit,+avx,+avx2,+fma,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"
    env = dict(
        os.environ,
        NUMBA_CPU_NAME="haswell",
        NUMBA_CPU_FEATURES=feats,
        NUMBA_CACHE_DIR=str(tmp_path),
    )
    r = subprocess.run(
        [sys.executable, "-c", _NARROW_CHECK, str(Path(__file__).parent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and "narrow ok" in r.stdout, r.stderr[-3000:]
