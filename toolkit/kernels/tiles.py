"""The tile/product module: the only place in the kernels that works with 8-lane vectors and
opens raw data pointers.

Everything here is built on the intrinsics of :mod:`toolkit.kernels.simd` (``f64x8``,
``vload``/``vstore``, ``ptr``/``keep``); the cells (:mod:`toolkit.kernels.elman`, and the
gated cells of :mod:`toolkit.kernels.gated`, which are plain ordered loops) import from here,
never from ``simd``. What the cells call (``__all__``):

* :func:`product` (``_tiles``) -- ``OUT[o + b*C + c] = act(base + sum_r V1[v1 + b*s1b +
  r*s1r] * M1[m1 + r*C + c] + sum_r V2[v2 + b*s2b + r*s2r] * M2[m2 + r*C + c])`` for b < B,
  c < C, base = ``bias[bo + c]`` if ``init`` else the stored OUT value, ``act < 0``: none
  (the register tiles below, then the activation 8 lanes at a time);
* :func:`zout` -- the output pre-activation ``W_hy h + b_y`` of one hidden row (8 lanes,
  then a fixed tree sum);
* :func:`loss_nonlinear` (``_loss_nonlinear``) -- the sigmoid and softmax output losses and
  their dz (scalar code, out of line);
* :func:`dmul` -- ``D = GR * act'(h)``, 8 lanes at a time; :func:`dact` -- act'(z) from
  h = act(z), one element;
* ``ptr`` and ``keep``: ``product`` and ``loss_nonlinear`` take data pointers, not arrays,
  because Numba brackets every call that passes an array with two atomic reference-count
  updates per array, which at small H cost more than a tile. A cell obtains a pointer with
  ``ptr(a)`` and only hands it back to these two functions: it never indexes, offsets, stores
  or returns one, and it keeps ``a`` alive by name (``keep(a)``) until the call has returned.
  (An array API, with an inlined wrapper making the pointers here, was measured: the
  wrapper's argument aliases cost reference counting that Numba did not prune, 1.1-1.5x
  slower gradients and population losses at H <= 32.)

Vector code here uses no fast-math at all (exact IEEE operations, one fused multiply-add per
term); the scalar code shares the cells' ``FM`` (reassociation, contraction, no signed
zeros). Invariants (summation order, pointer lifetime, tile contracts, AVX2 and AVX-512):
docs/KERNELS.md.
"""

import math

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
WIDE = _WIDE  # for the cells: whether wgrad8 may be used

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


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def _act(z, act):
    if act == 0:
        return _tanh(z)
    elif act == 1:
        return 0.5 + 0.5 * _tanh(0.5 * z)  # logistic sigmoid
    else:
        return z if z > 0.0 else 0.0


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def dact(h, act):
    """Derivative of the activation, written in terms of its output h."""
    if act == 0:
        return 1.0 - h * h
    elif act == 1:
        return h * (1.0 - h)
    else:
        return 1.0 if h > 0.0 else 0.0


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
          init, ng):  # fmt: skip
    """ng tiles of 4 rows x 8 columns, rows 4g.. of the block for g < ng (one call for a
    column strip: at H = 8 a call per tile cost as much as its arithmetic)."""
    for gi in range(ng):
        v1 = a1 + 4 * gi * s1b
        v2 = a2 + 4 * gi * s2b
        oo = o + 4 * gi * C
        if init:
            x0 = vload(bias, bo)
            x1, x2, x3 = x0, x0, x0
        else:
            x0, x1 = vload(OUT, oo), vload(OUT, oo + C)
            x2, x3 = vload(OUT, oo + 2 * C), vload(OUT, oo + 3 * C)
        for r in range(R1):
            mA = vload(M1, m1 + r * C)
            p = v1 + r * s1r
            x0 = vfma(vsplat(V1[p]), mA, x0)
            x1 = vfma(vsplat(V1[p + s1b]), mA, x1)
            x2 = vfma(vsplat(V1[p + 2 * s1b]), mA, x2)
            x3 = vfma(vsplat(V1[p + 3 * s1b]), mA, x3)
        for r in range(R2):
            mA = vload(M2, m2 + r * C)
            p = v2 + r * s2r
            x0 = vfma(vsplat(V2[p]), mA, x0)
            x1 = vfma(vsplat(V2[p + s2b]), mA, x1)
            x2 = vfma(vsplat(V2[p + 2 * s2b]), mA, x2)
            x3 = vfma(vsplat(V2[p + 3 * s2b]), mA, x3)
        vstore(OUT, oo, x0)
        vstore(OUT, oo + C, x1)
        vstore(OUT, oo + 2 * C, x2)
        vstore(OUT, oo + 3 * C, x3)


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


# The blocks of 4 or 2 columns (H = 4 or 2), two rows at a time: the scalar tail loop's sums,
# term by term (each ``v * a + x`` one fused multiply-add, without reassociation, so that the
# bits are the tail loop's), with the row's columns in independent accumulators. Rows b0
# and b1 (b1 = b0 when b0 is the last row: its sums are then computed twice and stored once).
@njit(cache=True, error_model="numpy", fastmath={"contract", "nsz"}, inline="always")
def _terms4(V, v, sb, sr, M, m, R, b0, b1, x0, x1, x2, x3, y0, y1, y2, y3):
    for r in range(R):
        p = V[v + b0 * sb + r * sr]
        w = V[v + b1 * sb + r * sr]
        q = m + r * 4
        a0, a1, a2, a3 = M[q], M[q + 1], M[q + 2], M[q + 3]
        x0, x1, x2, x3 = p * a0 + x0, p * a1 + x1, p * a2 + x2, p * a3 + x3
        y0, y1, y2, y3 = w * a0 + y0, w * a1 + y1, w * a2 + y2, w * a3 + y3
    return x0, x1, x2, x3, y0, y1, y2, y3


@njit(cache=True, error_model="numpy", fastmath={"contract", "nsz"})
def _rows4(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, bias, bo,
           init):  # fmt: skip
    for b0 in range(0, B, 2):
        b1 = min(b0 + 1, B - 1)
        ob, o1 = o + b0 * 4, o + b1 * 4
        src, s0, s1 = (bias, bo, bo) if init else (OUT, ob, o1)
        x0, x1, x2, x3 = src[s0], src[s0 + 1], src[s0 + 2], src[s0 + 3]
        y0, y1, y2, y3 = src[s1], src[s1 + 1], src[s1 + 2], src[s1 + 3]
        x0, x1, x2, x3, y0, y1, y2, y3 = _terms4(
            V1, v1, s1b, s1r, M1, m1, R1, b0, b1, x0, x1, x2, x3, y0, y1, y2, y3
        )
        x0, x1, x2, x3, y0, y1, y2, y3 = _terms4(
            V2, v2, s2b, s2r, M2, m2, R2, b0, b1, x0, x1, x2, x3, y0, y1, y2, y3
        )
        OUT[o1], OUT[o1 + 1], OUT[o1 + 2], OUT[o1 + 3] = y0, y1, y2, y3
        OUT[ob], OUT[ob + 1], OUT[ob + 2], OUT[ob + 3] = x0, x1, x2, x3


@njit(cache=True, error_model="numpy", fastmath={"contract", "nsz"}, inline="always")
def _terms2(V, v, sb, sr, M, m, R, b0, b1, x0, x1, y0, y1):
    for r in range(R):
        p = V[v + b0 * sb + r * sr]
        w = V[v + b1 * sb + r * sr]
        q = m + r * 2
        a0, a1 = M[q], M[q + 1]
        x0, x1 = p * a0 + x0, p * a1 + x1
        y0, y1 = w * a0 + y0, w * a1 + y1
    return x0, x1, y0, y1


@njit(cache=True, error_model="numpy", fastmath={"contract", "nsz"})
def _rows2(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, bias, bo,
           init):  # fmt: skip
    for b0 in range(0, B, 2):
        b1 = min(b0 + 1, B - 1)
        ob, o1 = o + b0 * 2, o + b1 * 2
        src, s0, s1 = (bias, bo, bo) if init else (OUT, ob, o1)
        x0, x1, y0, y1 = src[s0], src[s0 + 1], src[s1], src[s1 + 1]
        x0, x1, y0, y1 = _terms2(V1, v1, s1b, s1r, M1, m1, R1, b0, b1, x0, x1, y0, y1)
        x0, x1, y0, y1 = _terms2(V2, v2, s2b, s2r, M2, m2, R2, b0, b1, x0, x1, y0, y1)
        OUT[o1], OUT[o1 + 1] = y0, y1
        OUT[ob], OUT[ob + 1] = x0, x1


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
        _t4x8(V1, v1, s1b, s1r, M1, m1 + c0, R1, V2, v2, s2b, s2r, M2, m2 + c0, R2,
              OUT, o + c0, C, bias, bo + c0, init, B4 // 4)  # fmt: skip
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
    if C == 4:
        _rows4(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, bias, bo,
               init)  # fmt: skip
    elif C == 2:
        _rows2(V1, v1, s1b, s1r, M1, m1, R1, V2, v2, s2b, s2r, M2, m2, R2, OUT, o, B, bias, bo,
               init)  # fmt: skip
    else:
        for b in range(B):
            for c in range(C8, C):
                x = bias[bo + c] if init else OUT[o + b * C + c]
                for r in range(R1):
                    x = V1[v1 + b * s1b + r * s1r] * M1[m1 + r * C + c] + x
                for r in range(R2):
                    x = V2[v2 + b * s2b + r * s2r] * M2[m2 + r * C + c] + x
                OUT[o + b * C + c] = x
    if act >= 0 and C8 < C:
        # the tail's activation in a loop of its own, which LLVM vectorises (the scalar _tanh,
        # lane by lane: the same bits as one element at a time; 7x faster at H = 4)
        if C8 == 0:
            for i in range(o, o + B * C):
                OUT[i] = _act(OUT[i], act)
        else:
            for b in range(B):
                for i in range(o + b * C + C8, o + b * C + C):
                    OUT[i] = _act(OUT[i], act)
    if act >= 0:
        for b in range(B):
            ob = o + b * C
            for c in range(0, C8, 8):
                vstore(OUT, ob + c, _vact(vload(OUT, ob + c), act))


#: the most inputs wgrad8 takes (one register each, and one for the bias)
WGRAD8_I = 3


@njit(cache=True, error_model="numpy")
def wgrad8(pD, do, pHS, ho, pX, xo, I, n, pg, go, pGX):
    """The weight gradients of an 8-unit cell from the n delta rows at D[do:], in one pass:
    gW_hh[j, c] += sum_r D[do + 8r + j] HS[ho + 8r + c] into g[go:] (8 x 8), and
    GX[i, c] += sum_r a_r[i] D[do + 8r + c] into GX ((I + 1) x 8), a_r = [X[xo + I r:
    xo + I r + I], 1] (the inputs, I <= WGRAD8_I, then the bias's 1). These are the terms of
    ``product``'s two calls over those rows, each element summed in row order by one fused
    multiply-add per term (the bias's fma(1, d, s) being the sum d + s), hence the same bits;
    but with all accumulators in registers at once (up to twelve independent chains), each
    row's D and HS loaded once, and no [a_t, 1] rows to build. AVX-512 only (twelve 8-lane
    accumulators take 24 of AVX2's 16 registers)."""
    a0, a1, a2, a3 = vload(pg, go), vload(pg, go + 8), vload(pg, go + 16), vload(pg, go + 24)
    a4, a5, a6, a7 = vload(pg, go + 32), vload(pg, go + 40), vload(pg, go + 48), vload(pg, go + 56)
    xb = vload(pGX, 8 * I)
    x0 = vload(pGX, 0)
    x1 = vload(pGX, 8) if I > 1 else xb
    x2 = vload(pGX, 16) if I > 2 else xb
    for r in range(n):
        d = do + 8 * r
        h = vload(pHS, ho + 8 * r)
        a0 = vfma(vsplat(pD[d]), h, a0)
        a1 = vfma(vsplat(pD[d + 1]), h, a1)
        a2 = vfma(vsplat(pD[d + 2]), h, a2)
        a3 = vfma(vsplat(pD[d + 3]), h, a3)
        a4 = vfma(vsplat(pD[d + 4]), h, a4)
        a5 = vfma(vsplat(pD[d + 5]), h, a5)
        a6 = vfma(vsplat(pD[d + 6]), h, a6)
        a7 = vfma(vsplat(pD[d + 7]), h, a7)
        v = vload(pD, d)
        q = xo + I * r
        xb = vadd(v, xb)
        x0 = vfma(vsplat(pX[q]), v, x0)
        if I > 1:
            x1 = vfma(vsplat(pX[q + 1]), v, x1)
        if I > 2:
            x2 = vfma(vsplat(pX[q + 2]), v, x2)
    vstore(pg, go, a0)
    vstore(pg, go + 8, a1)
    vstore(pg, go + 16, a2)
    vstore(pg, go + 24, a3)
    vstore(pg, go + 32, a4)
    vstore(pg, go + 40, a5)
    vstore(pg, go + 48, a6)
    vstore(pg, go + 56, a7)
    vstore(pGX, 0, x0)
    if I > 1:
        vstore(pGX, 8, x1)
    if I > 2:
        vstore(pGX, 16, x2)
    vstore(pGX, 8 * I, xb)


@njit(cache=True, error_model="numpy", fastmath=FM, inline="always")
def zout(theta, wy, by, HS, ho, H, zo):
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
            # softplus(z) - y z, stably; e = exp(-|z|) is exp(-z) for z >= 0 and exp(z)
            # below (the same argument, bit for bit), so the sigmoid reuses it
            e = math.exp(-abs(z))
            sp = max(z, 0.0) + math.log1p(e)
            L += sp - y[yo + o] * z
            if z >= 0.0:
                p = 1.0 / (1.0 + e)
            else:
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


@njit(cache=True, error_model="numpy", fastmath={"contract", "nsz"})
def dmul(GR, HS, ho, D, do, n, act):
    """D[do + i] = GR[i] * act'(h), h = HS[ho + i], i < n."""
    n8 = n - n % 8
    for i in range(0, n8, 8):
        vstore(D, do + i, vmul(vload(GR, i), _vdact(vload(HS, ho + i), act)))
    for i in range(n8, n):
        D[do + i] = GR[i] * dact(HS[ho + i], act)


# -- the product API the cells call ------------------------------------------------------------
# product(pV1, v1, s1b, s1r, pM1, m1, R1, pV2, v2, s2b, s2r, pM2, m2, R2, pOUT, o, B, C, pbias,
#         bo, init, act) and loss_nonlinear(pzo, O, py, yo, m, out, pDZ, dzo) take pointers that
# the cells obtain with ptr(a) and hand on unopened; zout, dmul and dact take arrays.
product = _tiles
loss_nonlinear = _loss_nonlinear
__all__ = [
    "FM",
    "WGRAD8_I",
    "WIDE",
    "dact",
    "dmul",
    "keep",
    "loss_nonlinear",
    "product",
    "ptr",
    "wgrad8",
    "zout",
]
