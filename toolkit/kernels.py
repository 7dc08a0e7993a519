"""Numba kernels for Elman networks: forward, loss, BPTT gradients, population loss.

Pure functions over contiguous float64 arrays and ints; no Python objects, no printing, no
random numbers. ``toolkit.nets`` validates, converts and allocates; these trust their inputs.

Network (Elman 1990), for one sequence a_0..a_{T-1}:

    h_t    = act(W_xh a_t + W_hh h_{t-1} + b_h),     h_{-1} = h0 (zero by default)
    yhat_t = out(W_hy h_t + b_y)
    L      = sum_t mask_t * l(yhat_t, y_t)

with (act, out, l) codes: act 0 tanh, 1 sigmoid, 2 relu; out 0 linear (l = 0.5||yhat - y||^2),
1 sigmoid (binary cross-entropy), 2 softmax (categorical cross-entropy). For each of these
canonical pairs dl/dz_out = yhat - y (softmax: yhat * sum(y) - y), z_out the output pre-activation.

theta layout (C order): W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,).

Gradients: ``k <= 0`` is full BPTT (Rumelhart et al. 1986; Werbos 1990) in O(T H^2) per
sequence. ``k >= 1`` is Williams & Peng's (1990) BPTT(h) with unfold depth k: the error at step
s reaches the parameter uses at steps s-k+1..s, and h_{s-k} is held constant; O(T k H^2).
Both store the per-step deltas D_t (rows t*B + b) and form the weight gradients as matrix
products over blocks of 32 rows (dW_hh += D^T h_{t-1}, [dW_xh | db_h] += D^T [a_t, 1],
dW_hy += dz^T h_t); full BPTT does each block as soon as it is complete, while it is in cache.

Products: every matrix product (a batch step, W_hh^T delta, the weight gradients) is one
``_tiles`` call: register-blocked tiles of 8 or 4 rows x 16 columns over the 8-lane float64
vectors of ``toolkit.simd`` (exact IEEE operations, one fused multiply-add per term, each
element summed in the same order whatever tile it falls in), then the activation 8 lanes at
a time. The tiles take data pointers, not arrays, because Numba brackets every call that
passes an array with atomic reference-count updates; an array whose pointer is in use is
kept alive by name (``simd.keep``).

Floating point: scalar code uses ``fastmath`` limited to reassociation and FMA contraction;
vector code uses no fast-math at all. There are no finite-math assumptions, so overflow still
yields inf/nan for divergence checks. Results are identical run to run on the same machine.

Invariants a contributor must keep (summation order, pointer lifetime, tile contracts, the
AVX2 and AVX-512 paths): docs/KERNELS.md.
"""

import math

import numpy as np
from numba import njit

from .simd import (
    keep,
    ptr,
    target_has_avx512,
    vabs,
    vadd,
    vcopysign,
    vdiv,
    vexp2neg_shifted,
    vfma,
    vfnma,
    vhsum,
    vload,
    vmul,
    vsel_lt,
    vsplat,
    vstore,
    vsub,
)

FM = {"reassoc", "contract", "nsz"}
# 8- and 4-row x 16-column tiles hold 16 or 8 vectors of accumulators: right for AVX-512's 32
# registers; with AVX2's 16 they spill (measured: H=128 gradient 2.3x slower), so 4 x 8.
# Read when the kernels are compiled; Numba's cache keeps code per CPU name and features.
_WIDE = target_has_avx512()
ACT = {"tanh": 0, "sigmoid": 1, "relu": 2}
OUT = {"linear": 0, "sigmoid": 1, "softmax": 2}


# exp(-2^i) for the binary decomposition of e^-m in _tanh
_E1, _E2, _E4 = math.exp(-1.0), math.exp(-2.0), math.exp(-4.0)
_E8, _E16, _E32 = math.exp(-8.0), math.exp(-16.0), math.exp(-32.0)
# 1/n! for the Taylor series of expm1 on |s| <= 1/2 (degree 14: truncation error < 5e-17 |s|)
_C = tuple(1.0 / math.factorial(n) for n in range(1, 15))


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _tanh(x):
    """tanh in float64 with only arithmetic and selects, so loops over it vectorise (libm's
    tanh is a scalar call; without SVML it dominated the run time at H <= 128).

    With u = 2|x| = m + r, m integer, |r| <= 1/2: e^-u = (1 + expm1(-r)) e^-m, e^-m built from
    exact bits of m; tanh|x| = (1 - e^-u)/(1 + e^-u), or -em/(2 + em), em = expm1(-u), when
    m = 0 (no cancellation near 0). Agrees with libm to a few ulp; NaN propagates.
    """
    u = min(2.0 * abs(x), 48.0)  # tanh(24) == 1 in float64
    m = math.floor(u + 0.5)
    s = m - u
    p = _C[13]
    p = p * s + _C[12]
    p = p * s + _C[11]
    p = p * s + _C[10]
    p = p * s + _C[9]
    p = p * s + _C[8]
    p = p * s + _C[7]
    p = p * s + _C[6]
    p = p * s + _C[5]
    p = p * s + _C[4]
    p = p * s + _C[3]
    p = p * s + _C[2]
    p = p * s + _C[1]
    p = p * s + _C[0]
    em = p * s  # expm1(-r)
    E = 1.0
    f = m >= 32.0
    E = E * _E32 if f else E
    m2 = m - 32.0 if f else m
    f = m2 >= 16.0
    E = E * _E16 if f else E
    m2 = m2 - 16.0 if f else m2
    f = m2 >= 8.0
    E = E * _E8 if f else E
    m2 = m2 - 8.0 if f else m2
    f = m2 >= 4.0
    E = E * _E4 if f else E
    m2 = m2 - 4.0 if f else m2
    f = m2 >= 2.0
    E = E * _E2 if f else E
    m2 = m2 - 2.0 if f else m2
    E = E * _E1 if m2 >= 1.0 else E
    e = (1.0 + em) * E
    small = m == 0.0
    t = (-em if small else 1.0 - e) / (2.0 + em if small else 1.0 + e)  # one division
    t = t if x >= 0.0 else -t
    return t if x == x else x


# u = n ln2 + r (Cody & Waite): ln2 split so that n * _LN2HI is exact for |n| < 2^20
_LN2HI = 0.6931471803691238
_LN2LO = 1.9082149292705877e-10
_LOG2E = 1.4426950408889634
_SHIFT = 1.5 * 2.0**52  # adding it rounds to an integer, left in the low mantissa bits


@njit(cache=True, error_model="numpy", inline="always")
def _vtanh(x):
    """tanh of 8 lanes with exact vector operations (no fast-math), within 3 ulp of libm.

    With w = -2|x| (clamped at -48: tanh(24) == 1) = -(n ln2 + r), n integer, |r| <= ln2/2
    (Cody & Waite), e^w = (1 + em) q with em = expm1(-r) by its Taylor series of degree 13
    (truncation < 2e-17 relative) and q = 2^-n from exponent bits. Then
    tanh|x| = (1 - e^w)/(1 + e^w) = ((1 - q) - em q) / ((1 + q) + em q): 1 - q is exact and
    each of numerator and denominator is rounded once, so there is no cancellation near 0.
    """
    w = vmul(vabs(x), vsplat(-2.0))
    w = vsel_lt(w, vsplat(-48.0), vsplat(-48.0), w)  # NaN stays NaN and flows through
    t = vfma(w, vsplat(-_LOG2E), vsplat(_SHIFT))  # n = round(-w / ln2) in the low bits
    n = vsub(t, vsplat(_SHIFT))
    s = vfma(n, vsplat(_LN2HI), w)
    s = vfma(n, vsplat(_LN2LO), s)  # s = -r
    p = vsplat(_C[12])
    p = vfma(p, s, vsplat(_C[11]))
    p = vfma(p, s, vsplat(_C[10]))
    p = vfma(p, s, vsplat(_C[9]))
    p = vfma(p, s, vsplat(_C[8]))
    p = vfma(p, s, vsplat(_C[7]))
    p = vfma(p, s, vsplat(_C[6]))
    p = vfma(p, s, vsplat(_C[5]))
    p = vfma(p, s, vsplat(_C[4]))
    p = vfma(p, s, vsplat(_C[3]))
    p = vfma(p, s, vsplat(_C[2]))
    p = vfma(p, s, vsplat(_C[1]))
    p = vfma(p, s, vsplat(_C[0]))
    em = vmul(p, s)
    q = vexp2neg_shifted(t)
    one = vsplat(1.0)
    num = vfnma(em, q, vsub(one, q))
    den = vfma(em, q, vadd(one, q))
    return vcopysign(vdiv(num, den), x)  # a NaN x has made the quotient NaN


@njit(cache=True, error_model="numpy", inline="always")
def _vact(z, act):
    if act == 0:
        return _vtanh(z)
    elif act == 1:
        half = vsplat(0.5)
        return vfma(half, _vtanh(vmul(half, z)), half)
    elif act == 2:
        zero = vsplat(0.0)
        return vsel_lt(z, zero, zero, z)  # NaN stays NaN
    return z


# -- register-blocked tiles ------------------------------------------------------------------
# The tiles take data pointers (simd.ptr) and element offsets, not arrays: Numba brackets
# every call that passes an array with two atomic reference-count updates per array, and at
# small H those dominated the time of a step. A tile computes rows b0.. and columns c0.. of
#     OUT[o + b*C + c] = act(S + sum_r V1[a1 + b*s1b + r*s1r] * M1[m1 + r*C + c]
#                              + sum_r V2[a2 + b*s2b + r*s2r] * M2[m2 + r*C + c])
# with S = bias[bo + c] (init) or OUT[o + b*C + c]; act (-1: none) is applied by _tiles.
# The offsets passed to a tile already point at its row b0 and column c0. Its accumulators
# stay in registers, and every element is summed in the same order (r = 0, 1, ... of term 1,
# then of term 2, one fused multiply-add each), whatever tile or tail loop it falls in.


@njit(cache=True, error_model="numpy")
def _t8x16(V1, a1, s1b, s1r, M1, m1, R1, V2, a2, s2b, s2r, M2, m2, R2, OUT, o, C, bias, bo,
           init):  # fmt: skip
    if init:
        x00, x01 = vload(bias, bo), vload(bias, bo + 8)
        x10, x11, x20, x21, x30, x31, x40, x41, x50, x51, x60, x61, x70, x71 = (
            x00,
            x01,
            x00,
            x01,
            x00,
            x01,
            x00,
            x01,
            x00,
            x01,
            x00,
            x01,
            x00,
            x01,
        )
    else:
        x00, x01 = vload(OUT, o + 0 * C), vload(OUT, o + 0 * C + 8)
        x10, x11 = vload(OUT, o + 1 * C), vload(OUT, o + 1 * C + 8)
        x20, x21 = vload(OUT, o + 2 * C), vload(OUT, o + 2 * C + 8)
        x30, x31 = vload(OUT, o + 3 * C), vload(OUT, o + 3 * C + 8)
        x40, x41 = vload(OUT, o + 4 * C), vload(OUT, o + 4 * C + 8)
        x50, x51 = vload(OUT, o + 5 * C), vload(OUT, o + 5 * C + 8)
        x60, x61 = vload(OUT, o + 6 * C), vload(OUT, o + 6 * C + 8)
        x70, x71 = vload(OUT, o + 7 * C), vload(OUT, o + 7 * C + 8)
    for r in range(R1):
        q = m1 + r * C
        mA, mB = vload(M1, q), vload(M1, q + 8)
        p = a1 + r * s1r
        v = vsplat(V1[p + 0 * s1b])
        x00, x01 = vfma(v, mA, x00), vfma(v, mB, x01)
        v = vsplat(V1[p + 1 * s1b])
        x10, x11 = vfma(v, mA, x10), vfma(v, mB, x11)
        v = vsplat(V1[p + 2 * s1b])
        x20, x21 = vfma(v, mA, x20), vfma(v, mB, x21)
        v = vsplat(V1[p + 3 * s1b])
        x30, x31 = vfma(v, mA, x30), vfma(v, mB, x31)
        v = vsplat(V1[p + 4 * s1b])
        x40, x41 = vfma(v, mA, x40), vfma(v, mB, x41)
        v = vsplat(V1[p + 5 * s1b])
        x50, x51 = vfma(v, mA, x50), vfma(v, mB, x51)
        v = vsplat(V1[p + 6 * s1b])
        x60, x61 = vfma(v, mA, x60), vfma(v, mB, x61)
        v = vsplat(V1[p + 7 * s1b])
        x70, x71 = vfma(v, mA, x70), vfma(v, mB, x71)
    for r in range(R2):
        q = m2 + r * C
        mA, mB = vload(M2, q), vload(M2, q + 8)
        p = a2 + r * s2r
        v = vsplat(V2[p + 0 * s2b])
        x00, x01 = vfma(v, mA, x00), vfma(v, mB, x01)
        v = vsplat(V2[p + 1 * s2b])
        x10, x11 = vfma(v, mA, x10), vfma(v, mB, x11)
        v = vsplat(V2[p + 2 * s2b])
        x20, x21 = vfma(v, mA, x20), vfma(v, mB, x21)
        v = vsplat(V2[p + 3 * s2b])
        x30, x31 = vfma(v, mA, x30), vfma(v, mB, x31)
        v = vsplat(V2[p + 4 * s2b])
        x40, x41 = vfma(v, mA, x40), vfma(v, mB, x41)
        v = vsplat(V2[p + 5 * s2b])
        x50, x51 = vfma(v, mA, x50), vfma(v, mB, x51)
        v = vsplat(V2[p + 6 * s2b])
        x60, x61 = vfma(v, mA, x60), vfma(v, mB, x61)
        v = vsplat(V2[p + 7 * s2b])
        x70, x71 = vfma(v, mA, x70), vfma(v, mB, x71)
    vstore(OUT, o + 0 * C, x00)
    vstore(OUT, o + 0 * C + 8, x01)
    vstore(OUT, o + 1 * C, x10)
    vstore(OUT, o + 1 * C + 8, x11)
    vstore(OUT, o + 2 * C, x20)
    vstore(OUT, o + 2 * C + 8, x21)
    vstore(OUT, o + 3 * C, x30)
    vstore(OUT, o + 3 * C + 8, x31)
    vstore(OUT, o + 4 * C, x40)
    vstore(OUT, o + 4 * C + 8, x41)
    vstore(OUT, o + 5 * C, x50)
    vstore(OUT, o + 5 * C + 8, x51)
    vstore(OUT, o + 6 * C, x60)
    vstore(OUT, o + 6 * C + 8, x61)
    vstore(OUT, o + 7 * C, x70)
    vstore(OUT, o + 7 * C + 8, x71)


@njit(cache=True, error_model="numpy")
def _t4x16(V1, a1, s1b, s1r, M1, m1, R1, V2, a2, s2b, s2r, M2, m2, R2, OUT, o, C, bias, bo,
           init):  # fmt: skip
    if init:
        x00, x01 = vload(bias, bo), vload(bias, bo + 8)
        x10, x11, x20, x21, x30, x31 = x00, x01, x00, x01, x00, x01
    else:
        x00, x01 = vload(OUT, o), vload(OUT, o + 8)
        x10, x11 = vload(OUT, o + C), vload(OUT, o + C + 8)
        x20, x21 = vload(OUT, o + 2 * C), vload(OUT, o + 2 * C + 8)
        x30, x31 = vload(OUT, o + 3 * C), vload(OUT, o + 3 * C + 8)
    for r in range(R1):
        q = m1 + r * C
        mA, mB = vload(M1, q), vload(M1, q + 8)
        p = a1 + r * s1r
        v = vsplat(V1[p])
        x00, x01 = vfma(v, mA, x00), vfma(v, mB, x01)
        v = vsplat(V1[p + s1b])
        x10, x11 = vfma(v, mA, x10), vfma(v, mB, x11)
        v = vsplat(V1[p + 2 * s1b])
        x20, x21 = vfma(v, mA, x20), vfma(v, mB, x21)
        v = vsplat(V1[p + 3 * s1b])
        x30, x31 = vfma(v, mA, x30), vfma(v, mB, x31)
    for r in range(R2):
        q = m2 + r * C
        mA, mB = vload(M2, q), vload(M2, q + 8)
        p = a2 + r * s2r
        v = vsplat(V2[p])
        x00, x01 = vfma(v, mA, x00), vfma(v, mB, x01)
        v = vsplat(V2[p + s2b])
        x10, x11 = vfma(v, mA, x10), vfma(v, mB, x11)
        v = vsplat(V2[p + 2 * s2b])
        x20, x21 = vfma(v, mA, x20), vfma(v, mB, x21)
        v = vsplat(V2[p + 3 * s2b])
        x30, x31 = vfma(v, mA, x30), vfma(v, mB, x31)
    vstore(OUT, o, x00)
    vstore(OUT, o + 8, x01)
    vstore(OUT, o + C, x10)
    vstore(OUT, o + C + 8, x11)
    vstore(OUT, o + 2 * C, x20)
    vstore(OUT, o + 2 * C + 8, x21)
    vstore(OUT, o + 3 * C, x30)
    vstore(OUT, o + 3 * C + 8, x31)


@njit(cache=True, error_model="numpy")
def _t4x8(V1, a1, s1b, s1r, M1, m1, R1, V2, a2, s2b, s2r, M2, m2, R2, OUT, o, C, bias, bo,
          init):  # fmt: skip
    if init:
        x0 = vload(bias, bo)
        x1, x2, x3 = x0, x0, x0
    else:
        x0, x1 = vload(OUT, o), vload(OUT, o + C)
        x2, x3 = vload(OUT, o + 2 * C), vload(OUT, o + 3 * C)
    for r in range(R1):
        mA = vload(M1, m1 + r * C)
        p = a1 + r * s1r
        x0 = vfma(vsplat(V1[p]), mA, x0)
        x1 = vfma(vsplat(V1[p + s1b]), mA, x1)
        x2 = vfma(vsplat(V1[p + 2 * s1b]), mA, x2)
        x3 = vfma(vsplat(V1[p + 3 * s1b]), mA, x3)
    for r in range(R2):
        mA = vload(M2, m2 + r * C)
        p = a2 + r * s2r
        x0 = vfma(vsplat(V2[p]), mA, x0)
        x1 = vfma(vsplat(V2[p + s2b]), mA, x1)
        x2 = vfma(vsplat(V2[p + 2 * s2b]), mA, x2)
        x3 = vfma(vsplat(V2[p + 3 * s2b]), mA, x3)
    vstore(OUT, o, x0)
    vstore(OUT, o + C, x1)
    vstore(OUT, o + 2 * C, x2)
    vstore(OUT, o + 3 * C, x3)


@njit(cache=True, error_model="numpy")
def _t1x32(V1, a1, s1r, M1, m1, R1, V2, a2, s2r, M2, m2, R2, OUT, o, C, bias, bo, init):
    src, so = (bias, bo) if init else (OUT, o)
    x0, x1 = vload(src, so), vload(src, so + 8)
    x2, x3 = vload(src, so + 16), vload(src, so + 24)
    for r in range(R1):
        q = m1 + r * C
        v = vsplat(V1[a1 + r * s1r])
        x0, x1 = vfma(v, vload(M1, q), x0), vfma(v, vload(M1, q + 8), x1)
        x2, x3 = vfma(v, vload(M1, q + 16), x2), vfma(v, vload(M1, q + 24), x3)
    for r in range(R2):
        q = m2 + r * C
        v = vsplat(V2[a2 + r * s2r])
        x0, x1 = vfma(v, vload(M2, q), x0), vfma(v, vload(M2, q + 8), x1)
        x2, x3 = vfma(v, vload(M2, q + 16), x2), vfma(v, vload(M2, q + 24), x3)
    vstore(OUT, o, x0)
    vstore(OUT, o + 8, x1)
    vstore(OUT, o + 16, x2)
    vstore(OUT, o + 24, x3)


@njit(cache=True, error_model="numpy")
def _t1x16(V1, a1, s1r, M1, m1, R1, V2, a2, s2r, M2, m2, R2, OUT, o, C, bias, bo, init):
    src, so = (bias, bo) if init else (OUT, o)
    x0, x1 = vload(src, so), vload(src, so + 8)
    for r in range(R1):
        q = m1 + r * C
        v = vsplat(V1[a1 + r * s1r])
        x0, x1 = vfma(v, vload(M1, q), x0), vfma(v, vload(M1, q + 8), x1)
    for r in range(R2):
        q = m2 + r * C
        v = vsplat(V2[a2 + r * s2r])
        x0, x1 = vfma(v, vload(M2, q), x0), vfma(v, vload(M2, q + 8), x1)
    vstore(OUT, o, x0)
    vstore(OUT, o + 8, x1)


@njit(cache=True, error_model="numpy")
def _t1x8(V1, a1, s1r, M1, m1, R1, V2, a2, s2r, M2, m2, R2, OUT, o, C, bias, bo, init):
    x = vload(bias, bo) if init else vload(OUT, o)
    for r in range(R1):
        x = vfma(vsplat(V1[a1 + r * s1r]), vload(M1, m1 + r * C), x)
    for r in range(R2):
        x = vfma(vsplat(V2[a2 + r * s2r]), vload(M2, m2 + r * C), x)
    vstore(OUT, o, x)


@njit(cache=True, error_model="numpy", fastmath=FM)
def _tiles(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, C, bias, bo,
           init, act):  # fmt: skip
    """The B x C block at OUT[o:] by register tiles: 8 or 4 rows x 16 columns, then 4 x 8
    (4 x 8 only without AVX-512), leftover rows by 1 x 32/16/8, columns past the last
    multiple of 8 by a scalar loop; then the activation, 8 lanes at a time, while the block
    is in cache (one copy of the vector tanh in the code rather than one per tile register:
    that kept compile times down)."""
    C32 = C - C % 32
    C16 = C - C % 16
    C8 = C - C % 8
    B8 = B - B % 8
    B4 = B - B % 4
    CW = C16 if _WIDE else 0  # without AVX-512: 4 x 8 tiles only (16 vector registers)
    for c0 in range(0, CW, 16):
        for b0 in range(0, B8, 8):
            _t8x16(V1, v1 + b0 * s1b, s1b, s1r, M1, m1 + c0, R1,
                   V2, v2 + b0 * s2b, s2b, s2r, M2, m2 + c0, R2,
                   OUT, o + b0 * C + c0, C, bias, bo + c0, init)  # fmt: skip
        for b0 in range(B8, B4, 4):
            _t4x16(V1, v1 + b0 * s1b, s1b, s1r, M1, m1 + c0, R1,
                   V2, v2 + b0 * s2b, s2b, s2r, M2, m2 + c0, R2,
                   OUT, o + b0 * C + c0, C, bias, bo + c0, init)  # fmt: skip
    for c0 in range(CW, C8, 8):
        for b0 in range(0, B4, 4):
            _t4x8(V1, v1 + b0 * s1b, s1b, s1r, M1, m1 + c0, R1,
                  V2, v2 + b0 * s2b, s2b, s2r, M2, m2 + c0, R2,
                  OUT, o + b0 * C + c0, C, bias, bo + c0, init)  # fmt: skip
    for b in range(B4, B):
        a1 = v1 + b * s1b
        a2 = v2 + b * s2b
        ob = o + b * C
        for c0 in range(0, C32, 32):
            _t1x32(V1, a1, s1r, M1, m1 + c0, R1, V2, a2, s2r, M2, m2 + c0, R2,
                   OUT, ob + c0, C, bias, bo + c0, init)  # fmt: skip
        if C16 > C32:
            _t1x16(V1, a1, s1r, M1, m1 + C32, R1, V2, a2, s2r, M2, m2 + C32, R2,
                   OUT, ob + C32, C, bias, bo + C32, init)  # fmt: skip
        if C8 > C16:
            _t1x8(V1, a1, s1r, M1, m1 + C16, R1, V2, a2, s2r, M2, m2 + C16, R2,
                  OUT, ob + C16, C, bias, bo + C16, init)  # fmt: skip
    for b in range(B):
        for c in range(C8, C):
            x = bias[bo + c] if init else OUT[o + b * C + c]
            for r in range(R1):
                x = V1[v1 + b * s1b + r * s1r] * M1[m1 + r * C + c] + x
            for r in range(R2):
                x = V2[v2 + b * s2b + r * s2r] * M2[m2 + r * C + c] + x
            OUT[o + b * C + c] = _act(x, act) if act >= 0 else x
    if act >= 0:
        for b in range(B):
            ob = o + b * C
            for c in range(0, C8, 8):
                vstore(OUT, ob + c, _vact(vload(OUT, ob + c), act))


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _act(z, act):
    if act == 0:
        return _tanh(z)
    elif act == 1:
        return 0.5 + 0.5 * _tanh(0.5 * z)  # logistic sigmoid
    else:
        return z if z > 0.0 else 0.0


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _dact(h, act):
    """Derivative of the activation, written in terms of its output h."""
    if act == 0:
        return 1.0 - h * h
    elif act == 1:
        return h * (1.0 - h)
    else:
        return 1.0 if h > 0.0 else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _offsets(I, H, O):
    """Offsets in theta of W_xh (H,I), W_hh (H,H), b_h (H,), W_hy (O,H), b_y (O,)."""
    return 0, H * I, H * I + H * H, H * I + H * H + H, H * I + H * H + H + O * H


@njit(cache=True, error_model="numpy", fastmath=FM)
def _prepare(theta, x, I, H, O):
    """Flat W_xh^T (I,H), W_hh^T (H,H) and x as (T,B,I), for lock-step products."""
    B, T = x.shape[0], x.shape[1]
    W_xhT = np.empty(I * H)
    W_hhT = np.empty(H * H)
    for j in range(H):
        for i in range(I):
            W_xhT[i * H + j] = theta[j * I + i]
        for r in range(H):
            W_hhT[r * H + j] = theta[H * I + j * H + r]
    XT = np.empty(T * B * I)
    for t in range(T):
        for b in range(B):
            for i in range(I):
                XT[(t * B + b) * I + i] = x[b, t, i]
    return W_xhT, W_hhT, XT


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _step(theta, W_xhT, W_hhT, XT, xo, HP, po, HO, oo, B, I, H, act):
    """HO[oo:] = act(b_h + A W_xh^T + HP[po:] W_hh^T) for the batch, A = XT[xo:] (B,I)."""
    _tiles(ptr(XT), xo, I, 1, ptr(W_xhT), 0, I, ptr(HP), po, H, 1, ptr(W_hhT), 0, H,
           ptr(HO), oo, B, H, ptr(theta), H * I + H * H, 1, act)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _zout(theta, wy, by, HS, ho, H, zo):
    """Output pre-activation W_hy h + b_y of h = HS[ho:ho+H] into zo (8 lanes, then a fixed
    tree sum, then the columns past the last multiple of 8)."""
    H8 = H - H % 8
    for o in range(zo.shape[0]):
        w = wy + o * H
        s = theta[by + o]
        if H8 > 0:
            acc = vmul(vload(theta, w), vload(HS, ho))
            for j in range(8, H8, 8):
                acc = vfma(vload(theta, w + j), vload(HS, ho + j), acc)
            s += vhsum(acc)
        for j in range(H8, H):
            s += theta[w + j] * HS[ho + j]
        zo[o] = s


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_nonlinear(zo, O, y, yo, m, out, DZ, dzo):
    """m * l(yhat, y) and m * dl/dz for the sigmoid (binary cross-entropy, out 1) and softmax
    (categorical cross-entropy, out 2) outputs; y and DZ are pointers. Kept out of line so
    the time loops stay small."""
    L = 0.0
    if out == 1:
        for o in range(O):
            z = zo[o]
            # softplus(z) - y z, stably
            sp = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
            L += sp - y[yo + o] * z
            if z >= 0.0:
                p = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                p = e / (1.0 + e)
            DZ[dzo + o] = m * (p - y[yo + o])
    else:
        zmax = zo[0]
        for o in range(1, O):
            zmax = max(zmax, zo[o])
        s = 0.0
        for o in range(O):
            s += math.exp(zo[o] - zmax)
        lse = zmax + math.log(s)
        ysum = 0.0
        for o in range(O):
            ysum += y[yo + o]
            L += y[yo + o] * (lse - zo[o])
        for o in range(O):
            DZ[dzo + o] = m * (math.exp(zo[o] - lse) * ysum - y[yo + o])
    return m * L


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _out_loss(theta, wy, by, HS, ho, H, y, yo, m, out, zo, DZ, dzo):
    """Output pre-activation of h = HS[ho:ho+H] into zo; returns m * l(yhat, y) for the
    target y[yo:yo+O] and writes m * dl/dz into DZ[dzo:dzo+O]."""
    _zout(theta, wy, by, HS, ho, H, zo)
    if out != 0:
        return _loss_nonlinear(ptr(zo), zo.shape[0], ptr(y), yo, m, out, ptr(DZ), dzo)
    L = 0.0
    for o in range(zo.shape[0]):
        d = zo[o] - y[yo + o]
        L += 0.5 * d * d
        DZ[dzo + o] = m * d
    return m * L


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _yhat(zo, out, yh, yo):
    O = zo.shape[0]
    if out == 0:
        for o in range(O):
            yh[yo + o] = zo[o]
    elif out == 1:
        for o in range(O):
            z = zo[o]
            if z >= 0.0:
                yh[yo + o] = 1.0 / (1.0 + math.exp(-z))
            else:
                e = math.exp(z)
                yh[yo + o] = e / (1.0 + e)
    else:
        zmax = zo[0]
        for o in range(1, O):
            zmax = max(zmax, zo[o])
        s = 0.0
        for o in range(O):
            e = math.exp(zo[o] - zmax)
            yh[yo + o] = e
            s += e
        for o in range(O):
            yh[yo + o] /= s


@njit(cache=True, error_model="numpy", fastmath=FM)
def forward(theta, x, h0, I, H, O, act, out):
    """x (B,T,I), h0 (B,H) -> h (B,T,H), yhat (B,T,O)."""
    B, T = x.shape[0], x.shape[1]
    _, _, _, wy, by = _offsets(I, H, O)
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    HS = np.empty((T + 1) * B * H)
    HS[: B * H] = h0.reshape(B * H)
    yhat = np.empty(B * T * O)
    zo = np.empty(O)
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HS, t * B * H, HS, (t + 1) * B * H, B, I, H, act)
        for b in range(B):
            _zout(theta, wy, by, HS, ((t + 1) * B + b) * H, H, zo)
            _yhat(zo, out, yhat, (b * T + t) * O)
    h = np.empty((B, T, H))
    for t in range(T):
        for b in range(B):
            for j in range(H):
                h[b, t, j] = HS[((t + 1) * B + b) * H + j]
    return h, yhat.reshape((B, T, O))


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_one(theta, XT, y, mask, h0, B, T, I, H, O, act, out, W_xhT, W_hhT, HA, HB, zo, dz):
    """Loss of one parameter vector over the batch (lock-step; two flat (B*H) state buffers).
    y is flat (B*T*O)."""
    _, _, _, wy, by = _offsets(I, H, O)
    HA[:] = h0
    L = 0.0
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HA, 0, HB, 0, B, I, H, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(theta, wy, by, HB, b * H, H, y, (b * T + t) * O, m, out, zo, dz, 0)
        HA, HB = HB, HA
    return L


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss(theta, x, y, mask, h0, I, H, O, act, out):
    """Scalar loss: sum over b, t of mask[b,t] * l(yhat[b,t], y[b,t])."""
    B, T = x.shape[0], x.shape[1]
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    return _loss_one(
        theta,
        XT,
        np.ascontiguousarray(y).reshape(B * T * O),
        mask,
        np.ascontiguousarray(h0).reshape(B * H),
        B,
        T,
        I,
        H,
        O,
        act,
        out,
        W_xhT,
        W_hhT,
        np.empty(B * H),
        np.empty(B * H),
        np.empty(O),
        np.empty(O),
    )


@njit(cache=True, error_model="numpy", fastmath=FM)
def _loss_two(th0, th1, XT, y, mask, h0, B, T, I, H, O, act, out, Wx0, Wh0, Wx1, Wh1, zo, dz):
    """_loss_one for two parameter vectors advanced together, so that the work of one fills
    the time the other waits on its dependency chains. Each loss gets the same operations in
    the same order as _loss_one, hence the same bits."""
    _, _, _, wy, by = _offsets(I, H, O)
    HA0 = h0.copy()
    HA1 = h0.copy()
    HB0 = np.empty(B * H)
    HB1 = np.empty(B * H)
    L0 = 0.0
    L1 = 0.0
    for t in range(T):
        _step(th0, Wx0, Wh0, XT, t * B * I, HA0, 0, HB0, 0, B, I, H, act)
        _step(th1, Wx1, Wh1, XT, t * B * I, HA1, 0, HB1, 0, B, I, H, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                yo = (b * T + t) * O
                L0 += _out_loss(th0, wy, by, HB0, b * H, H, y, yo, m, out, zo, dz, 0)
                L1 += _out_loss(th1, wy, by, HB1, b * H, H, y, yo, m, out, zo, dz, 0)
        HA0, HB0 = HB0, HA0
        HA1, HB1 = HB1, HA1
    return L0, L1


@njit(cache=True, error_model="numpy", fastmath=FM)
def population_loss(thetas, x, y, mask, h0, I, H, O, act, out):
    """thetas (P, n_params) -> losses (P,): P networks x B sequences in one call, two
    networks at a time. Each loss has the same bits as loss() of that network."""
    P, B, T = thetas.shape[0], x.shape[0], x.shape[1]
    Ls = np.empty(P)
    zo = np.empty(O)
    dz = np.empty(O)
    yf = np.ascontiguousarray(y).reshape(B * T * O)
    h0f = np.ascontiguousarray(h0).reshape(B * H)
    for p in range(0, P - 1, 2):
        Wx0, Wh0, XT = _prepare(thetas[p], x, I, H, O)
        Wx1, Wh1, _ = _prepare(thetas[p + 1], x[:, :0], I, H, O)
        Ls[p], Ls[p + 1] = _loss_two(
            thetas[p], thetas[p + 1], XT, yf, mask, h0f, B, T, I, H, O, act, out,
            Wx0, Wh0, Wx1, Wh1, zo, dz,
        )  # fmt: skip
    if P % 2:
        theta = thetas[P - 1]
        W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
        Ls[P - 1] = _loss_one(
            theta, XT, yf, mask, h0f, B, T, I, H, O, act, out, W_xhT, W_hhT,
            np.empty(B * H), np.empty(B * H), zo, dz,
        )  # fmt: skip
    return Ls


@njit(cache=True, error_model="numpy", inline="always")
def _vdact(h, act):
    """act'(z) from h = act(z), 8 lanes."""
    one = vsplat(1.0)
    if act == 0:
        return vfma(vsub(vsplat(0.0), h), h, one)
    elif act == 1:
        return vmul(h, vsub(one, h))
    zero = vsplat(0.0)
    return vsel_lt(zero, h, one, zero)


@njit(cache=True, error_model="numpy", fastmath=FM)
def _dmul(GR, HS, ho, D, do, n, act):
    """D[do + i] = GR[i] * act'(h), h = HS[ho + i], i < n."""
    n8 = n - n % 8
    for i in range(0, n8, 8):
        vstore(D, do + i, vmul(vload(GR, i), _vdact(vload(HS, ho + i), act)))
    for i in range(n8, n):
        D[do + i] = GR[i] * _dact(HS[ho + i], act)


@njit(cache=True, error_model="numpy", fastmath=FM)
def _wgrad(D, HS, X1, r0, r1, g, GX, I, H):
    """Weight gradients from the delta rows r0..r1 of D (row t*B + b, flat), in blocks of 32
    rows, each while it is in cache: gW_hh += D^T h_{t-1} into g, and
    [W_xh | b_h]^T gradient += [a_t, 1]^T D into GX (I+1, H), X1 = [a_t, 1] rows (T*B, I+1)."""
    pD, pHS, pX, pg, pGX = ptr(D), ptr(HS), ptr(X1), ptr(g), ptr(GX)
    J = I + 1
    for c0 in range(r0, r1, 32):
        n = min(c0 + 32, r1) - c0
        # gW_hh[j, c] += sum_r D[c0 + r, j] HS[c0 + r, c]  (V = the block of D, transposed)
        _tiles(pD, c0 * H, 1, H, pHS, c0 * H, n, pD, 0, 1, H, pHS, 0, 0, pg, H * I, H, H,
               pHS, 0, 0, -1)  # fmt: skip
        # GX[i, j] += sum_r X1[c0 + r, i] D[c0 + r, j]
        _tiles(pX, c0 * J, 1, J, pD, c0 * H, n, pX, 0, 1, J, pD, 0, 0, pGX, 0, J, H,
               pD, 0, 0, -1)  # fmt: skip


def grad_work_size(T, B, H):
    """Length of the scratch array loss_and_grad needs."""
    return (2 * T + 1) * B * H


@njit(cache=True, error_model="numpy", fastmath=FM)
def loss_and_grad(theta, x, y, mask, h0, I, H, O, act, out, k, work):
    """Loss and its gradient w.r.t. theta by BPTT. k <= 0: full; k >= 1: BPTT(h=k).

    x (B,T,I), y (B,T,O), mask (B,T), h0 (B,H) held constant. Returns (L, g), g like theta.
    work: scratch, a float64 array of at least (2T + 1) B H elements (see grad_work_size),
    reused by the caller: fresh multi-megabyte arrays cost a page fault per 4 KiB per call.
    The batch advances in lock-step, forward and backward. The output errors dz are kept from
    the forward pass; the deltas are stored as D (T*B, H), row t*B + b, and the weight
    gradients formed from blocks of 32 rows (in full BPTT as soon as a block is complete,
    while it is still in cache).
    """
    B, T = x.shape[0], x.shape[1]
    _, whh, bh, wy, by = _offsets(I, H, O)
    W_xhT, W_hhT, XT = _prepare(theta, x, I, H, O)
    yf = np.ascontiguousarray(y).reshape(B * T * O)
    g = np.zeros_like(theta)
    HS = work[: (T + 1) * B * H]  # HS[(t + 1) B H + b H + j] = h_t[b, j], h_{-1} = h0
    D = work[(T + 1) * B * H : (2 * T + 1) * B * H]  # deltas, row t*B + b
    HS[: B * H] = np.ascontiguousarray(h0).reshape(B * H)
    DZ = np.zeros(T * B * O)  # mask * dl/dz_out, row t*B + b
    zo = np.empty(O)
    L = 0.0  # summed in the same order as loss(), so both give the same bits
    hi = -1  # the steps that carry an error; deltas vanish outside [lo, hi]
    first = T
    for t in range(T):
        _step(theta, W_xhT, W_hhT, XT, t * B * I, HS, t * B * H, HS, (t + 1) * B * H, B, I, H, act)
        for b in range(B):
            m = mask[b, t]
            if m != 0.0:
                L += _out_loss(
                    theta, wy, by, HS, ((t + 1) * B + b) * H, H, yf, (b * T + t) * O, m, out,
                    zo, DZ, (t * B + b) * O,
                )  # fmt: skip
                hi = t
                first = min(first, t)
    if hi < 0:
        return L, g
    pth, pHS, pDZ = ptr(theta), ptr(HS), ptr(DZ)
    # output layer: gW_hy[o, j] += sum_(t,b) dz[o] h_t[j], gb_y += sum dz
    r0, r1 = first * B, (hi + 1) * B
    _tiles(pDZ, r0 * O, 1, O, pHS, (r0 + B) * H, r1 - r0, pDZ, 0, 1, O, pHS, 0, 0, ptr(g), wy,
           O, H, pHS, 0, 0, -1)  # fmt: skip
    for i in range(r0 * O, r1 * O):
        g[by + i % O] += DZ[i]
    X1 = np.ones(T * B * (I + 1))  # rows [a_t, 1], for the gradients of W_xh and b_h
    for i in range(T * B):
        for ii in range(I):
            X1[i * (I + 1) + ii] = XT[i * I + ii]
    GX = np.zeros((I + 1) * H)
    if k <= 0 or k >= T:
        # delta_t = (W_hy^T dz_t + W_hh^T delta_{t+1}) * act'(h_t), for the whole batch at once
        GR = np.empty(B * H)
        pD, pGR = ptr(D), ptr(GR)
        done = (hi + 1) * B  # rows done..(hi+1)*B of D are waiting for _wgrad
        for t in range(hi, -1, -1):
            # GR = delta_{t+1} W_hh + dz_t W_hy
            GR[:] = 0.0
            _tiles(pD, (t + 1) * B * H, H, 1, pth, whh, H if t < hi else 0,
                   pDZ, t * B * O, O, 1, pth, wy, O, pGR, 0, B, H, pGR, 0, 0, -1)  # fmt: skip
            _dmul(GR, HS, (t + 1) * B * H, D, t * B * H, B * H, act)
            if done - t * B >= 32 or t == 0:
                _wgrad(D, HS, X1, t * B, done, g, GX, I, H)
                done = t * B
    else:
        lo = max(0, first - k + 1)
        D[:] = 0.0
        gr = np.empty(H)
        dl = np.empty(H)
        for b in range(B):
            for s in range(first, hi + 1):
                if mask[b, s] == 0.0:
                    continue
                gr[:] = 0.0
                for o in range(O):
                    d = DZ[(s * B + b) * O + o]
                    for j in range(H):
                        gr[j] += d * theta[wy + o * H + j]
                ho = ((s + 1) * B + b) * H
                for j in range(H):
                    dl[j] = gr[j] * _dact(HS[ho + j], act)
                r_lo = max(0, s - k + 1)
                for r in range(s, r_lo - 1, -1):
                    ro = (r * B + b) * H
                    for j in range(H):
                        D[ro + j] += dl[j]
                    if r > r_lo:  # dl = (dl W_hh) * act'(h_{r-1})
                        gr[:] = 0.0
                        _tiles(ptr(dl), 0, H, 1, pth, whh, H, ptr(dl), 0, H, 1, pth, whh, 0,
                               ptr(gr), 0, 1, H, pth, 0, 0, -1)  # fmt: skip
                        for j in range(H):  # HS row r holds h_{r-1}
                            dl[j] = gr[j] * _dact(HS[ro + j], act)
        _wgrad(D, HS, X1, lo * B, (hi + 1) * B, g, GX, I, H)
    for j in range(H):
        for ii in range(I):
            g[j * I + ii] += GX[ii * H + j]
        g[bh + j] += GX[I * H + j]
    keep(DZ)  # pointers to DZ, GR and D were in use up to here (see simd.ptr)
    keep(GR)
    keep(D)
    return L, g
