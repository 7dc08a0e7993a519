"""Explicit 8-wide float64 vectors for the Numba kernels.

LLVM's loop vectoriser gave the kernels axpy-shaped products (one load and one store of the
output per few multiply-adds) and, on CPUs it tunes for 256-bit vectors, half the width the
hardware has. This module gives the kernels a value type ``f64x8`` (LLVM ``<8 x double>``)
and a handful of element-wise operations as Numba intrinsics, so a kernel can keep a tile of
a matrix product in registers (a register-blocked micro-kernel, as in BLAS). LLVM maps the
type to one AVX-512 register, two AVX registers or four SSE registers, whatever the machine
has; the results are the same on each, element by element.

Every operation is an exact IEEE operation with no fast-math flags: ``vfma`` is a fused
multiply-add (one rounding), nothing is reassociated, so a kernel written with these gives the
same bits on every call.

``vload``/``vstore`` take an array (or a pointer from ``ptr``) and a flat element offset from
its data pointer; the caller guarantees that the eight elements from there are contiguous and
in bounds.

Only :mod:`toolkit.kernels.tiles` imports this module (the tests of the vector code aside):
the cells are written on the tiles' product API and never see a vector or a pointer.

Debug mode: with ``BPTT_KERNEL_CHECKS=1`` in the environment (read once, when this module is
imported), ``ptr(a)`` hands back the data pointer together with the array's length (indexed
``p[i]`` exactly as a pointer is, without the wrap-around of negative indices that array
indexing adds), and ``vload``/``vstore`` check their offset, raising ``IndexError`` (naming
the offset and the array's length) when ``i < 0`` or ``i + 8 > a.size``. Scalar code is
compiled as in normal mode (its ``fastmath`` reassociation must meet the same code, or the
bits could differ), so the results are the same bits, only slower.
Numba's on-disk cache keys a function by its signature, and a public kernel's signature
(arrays and ints) is the same in both modes, so each mode needs its own cache: in debug mode
this module sets ``NUMBA_CACHE_DIR`` (the environment variable and Numba's config, before any
kernel is decorated) to ``$NUMBA_CACHE_DIR/bptt-kernel-checks``, or, when that variable is
unset, to ``toolkit/kernels/__pycache__/bptt-kernel-checks``; a normal-mode process that
inherits such a directory goes back to its parent (or to Numba's default).
"""

import os

from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic, models, register_model

W = 8  # lanes

CHECKS = os.environ.get("BPTT_KERNEL_CHECKS", "").strip() not in ("", "0")
_CHECKS_DIR = "bptt-kernel-checks"
_DEFAULT_BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")


def _set_cache_dir():
    """Numba's cache directory for this mode (see the module docstring)."""
    cur = os.environ.get("NUMBA_CACHE_DIR", "").rstrip("/\\")
    inherited = os.path.basename(cur) == _CHECKS_DIR
    base = os.path.dirname(cur) if inherited else cur
    if base == _DEFAULT_BASE:
        base = ""
    if CHECKS:
        new = os.path.join(base or _DEFAULT_BASE, _CHECKS_DIR)
    elif inherited:
        new = base
    else:
        return
    if new:
        os.environ["NUMBA_CACHE_DIR"] = new
    else:
        os.environ.pop("NUMBA_CACHE_DIR", None)
    config.CACHE_DIR = new


_set_cache_dir()


def target_has_avx512() -> bool:
    """Whether Numba compiles for a CPU with AVX-512 (32 vector registers of 8 doubles), by
    the same rule Numba uses: NUMBA_CPU_FEATURES if set, else the host's features. Without
    it an 8-lane vector takes two AVX registers of the 16 (or four NEON ones), and kernels
    must use smaller register tiles."""
    from numba.core import config

    feats = config.CPU_FEATURES
    if feats is None:
        from llvmlite import binding

        feats = binding.get_host_cpu_features().flatten()
    return "+avx512f" in feats.split(",")


class F64x8(types.Type):
    def __init__(self):
        super().__init__(name="f64x8")


f64x8 = F64x8()
_VEC = ir.VectorType(ir.DoubleType(), W)


@register_model(F64x8)
class _F64x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _call(builder, name, args):
    """Call the LLVM intrinsic ``name`` (overloaded on <8 x double>) on vector args."""
    fnty = ir.FunctionType(_VEC, [_VEC] * len(args))
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"{name}.v{W}f64")
    return builder.call(fn, list(args))


F64P = types.CPointer(types.float64)


def _vec_ptr(context, builder, aryty, ary, idx):
    if isinstance(aryty, types.CPointer):
        data = ary
    else:
        data = context.make_array(aryty)(context, builder, ary).data
    p = builder.gep(data, [idx])
    return builder.bitcast(p, _VEC.as_pointer())


def _is_f64_array(a):
    return (isinstance(a, types.Array) and a.dtype == types.float64) or a == F64P


@intrinsic
def _ptr(typingctx, a):
    """The data pointer of a float64 array, as float64* (indexable: p[i], p[i] = v).

    Functions that take pointers instead of arrays are called without the two atomic
    reference-count updates per array argument that Numba emits for arrays. The pointer does
    not keep the array alive: Numba frees an array after the last use of its *name*, so the
    caller must use the array by name (or ``keep(a)``) after the last use of the pointer.
    """
    if not (isinstance(a, types.Array) and a.dtype == types.float64):
        return None

    def codegen(context, builder, sig, args):
        return context.make_array(sig.args[0])(context, builder, args[0]).data

    return F64P(a), codegen


@intrinsic
def keep(typingctx, a):
    """A no-op use of a: Numba keeps a alive up to here (see ptr)."""
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, sig, args):
        return context.get_dummy_value()

    return types.none(a), codegen


@intrinsic
def _vload(typingctx, a, i):
    """a.flat-from-data[i : i + 8] as a vector."""
    if not (_is_f64_array(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        return builder.load(_vec_ptr(context, builder, sig.args[0], args[0], idx), align=8)

    return f64x8(a, i), codegen


@intrinsic
def _vstore(typingctx, a, i, v):
    """a.flat-from-data[i : i + 8] = v."""
    if not (_is_f64_array(a) and isinstance(i, types.Integer) and v == f64x8):
        return None

    def codegen(context, builder, sig, args):
        idx = context.cast(builder, args[1], sig.args[1], types.intp)
        builder.store(args[2], _vec_ptr(context, builder, sig.args[0], args[0], idx), align=8)
        return context.get_dummy_value()

    return types.none(a, i, v), codegen


if CHECKS:
    import operator

    from numba import njit
    from numba.core.imputils import lower_builtin
    from numba.core.typing.templates import AbstractTemplate, infer_global, signature

    class CheckedF64P(types.Type):
        """Debug mode's pointer: the data pointer and the array's length (elements)."""

        def __init__(self):
            super().__init__(name="checked_f64p")

    checked_f64p = CheckedF64P()

    @register_model(CheckedF64P)
    class _CheckedModel(models.StructModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, [("data", F64P), ("size", types.intp)])

    @intrinsic
    def ptr(typingctx, a):
        """Debug mode: the data pointer with the array's length, so that vload and vstore
        can check their offsets; indexed as p[i] exactly like the pointer of normal mode."""
        if not (isinstance(a, types.Array) and a.dtype == types.float64):
            return None

        def codegen(context, builder, sig, args):
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            p = cgutils.create_struct_proxy(checked_f64p)(context, builder)
            p.data = ary.data
            p.size = ary.nitems
            return p._getvalue()

        return checked_f64p(a), codegen

    @intrinsic
    def _data(typingctx, a):
        """The float64* of an array or a checked pointer."""
        if isinstance(a, types.Array) and a.dtype == types.float64:

            def codegen(context, builder, sig, args):
                return context.make_array(sig.args[0])(context, builder, args[0]).data

        elif a == checked_f64p:

            def codegen(context, builder, sig, args):
                p = cgutils.create_struct_proxy(checked_f64p)(context, builder, value=args[0])
                return p.data

        else:
            return None
        return F64P(a), codegen

    @intrinsic
    def _size(typingctx, a):
        """The number of elements of an array or behind a checked pointer."""
        if isinstance(a, types.Array) and a.dtype == types.float64:

            def codegen(context, builder, sig, args):
                return context.make_array(sig.args[0])(context, builder, args[0]).nitems

        elif a == checked_f64p:

            def codegen(context, builder, sig, args):
                p = cgutils.create_struct_proxy(checked_f64p)(context, builder, value=args[0])
                return p.size

        else:
            return None
        return types.intp(a), codegen

    @infer_global(operator.getitem)
    class _CheckedGetitem(AbstractTemplate):
        def generic(self, args, kws):
            if len(args) == 2 and args[0] == checked_f64p and isinstance(args[1], types.Integer):
                return signature(types.float64, *args)

    @infer_global(operator.setitem)
    class _CheckedSetitem(AbstractTemplate):
        def generic(self, args, kws):
            if len(args) == 3 and args[0] == checked_f64p and isinstance(args[1], types.Integer):
                return signature(types.none, args[0], args[1], types.float64)

    # p[i] and p[i] = v as Numba lowers them for a float64* (no wrap-around, no check)
    @lower_builtin(operator.getitem, CheckedF64P, types.Integer)
    def _checked_getitem(context, builder, sig, args):
        p = cgutils.create_struct_proxy(checked_f64p)(context, builder, value=args[0])
        return builder.load(builder.gep(p.data, [args[1]]))

    @lower_builtin(operator.setitem, CheckedF64P, types.Integer, types.Any)
    def _checked_setitem(context, builder, sig, args):
        p = cgutils.create_struct_proxy(checked_f64p)(context, builder, value=args[0])
        builder.store(args[2], builder.gep(p.data, [args[1]]))
        return context.get_dummy_value()

    @njit
    def _out_of_bounds(what, i, n):
        raise IndexError(
            ("vload" if what == 0 else "vstore") + ": elements " + str(i) + ".." + str(i + W - 1)
            + " of an array of length " + str(n)
        )  # fmt: skip

    @njit(inline="always")
    def vload(a, i):
        """Debug mode: _vload after checking that the 8 elements from i are in bounds."""
        n = _size(a)
        if i < 0 or i + W > n:
            _out_of_bounds(0, i, n)
        return _vload(_data(a), i)

    @njit(inline="always")
    def vstore(a, i, v):
        """Debug mode: _vstore after checking that the 8 elements from i are in bounds."""
        n = _size(a)
        if i < 0 or i + W > n:
            _out_of_bounds(1, i, n)
        _vstore(_data(a), i, v)

else:
    ptr, vload, vstore = _ptr, _vload, _vstore


@intrinsic
def vsplat(typingctx, x):
    """(x, x, ..., x)."""
    if not isinstance(x, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        s = context.cast(builder, args[0], sig.args[0], types.float64)
        v = ir.Constant(_VEC, ir.Undefined)
        v = builder.insert_element(v, s, ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), W), [0] * W))

    return f64x8(x), codegen


def _binary(op):
    @intrinsic
    def f(typingctx, a, b):
        if not (a == f64x8 and b == f64x8):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, op)(args[0], args[1])

        return f64x8(a, b), codegen

    return f


vadd = _binary("fadd")
vsub = _binary("fsub")
vmul = _binary("fmul")
vdiv = _binary("fdiv")


@intrinsic
def vfnma(typingctx, a, b, c):
    """c - a * b with one rounding."""
    if not (a == f64x8 and b == f64x8 and c == f64x8):
        return None

    def codegen(context, builder, sig, args):
        return _call(builder, "llvm.fma", [builder.fneg(args[0]), args[1], args[2]])

    return f64x8(a, b, c), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c with one rounding."""
    if not (a == f64x8 and b == f64x8 and c == f64x8):
        return None

    def codegen(context, builder, sig, args):
        return _call(builder, "llvm.fma", args)

    return f64x8(a, b, c), codegen


def _unary_intrinsic(name):
    @intrinsic
    def f(typingctx, a):
        if a != f64x8:
            return None

        def codegen(context, builder, sig, args):
            return _call(builder, name, args)

        return f64x8(a), codegen

    return f


vabs = _unary_intrinsic("llvm.fabs")


@intrinsic
def vcopysign(typingctx, mag, sgn):
    """|mag| with the sign bit of sgn, lane by lane."""
    if not (mag == f64x8 and sgn == f64x8):
        return None

    def codegen(context, builder, sig, args):
        return _call(builder, "llvm.copysign", args)

    return f64x8(mag, sgn), codegen


def _select(pred):
    @intrinsic
    def f(typingctx, a, b, x, y):
        if not all(t == f64x8 for t in (a, b, x, y)):
            return None

        def codegen(context, builder, sig, args):
            c = builder.fcmp_ordered(pred, args[0], args[1])
            return builder.select(c, args[2], args[3])

        return f64x8(a, b, x, y), codegen

    return f


vsel_lt = _select("<")  # a < b ? x : y


@intrinsic
def vhsum(typingctx, v):
    """Sum of the lanes, always as ((v0+v1)+(v2+v3)) + ((v4+v5)+(v6+v7))."""
    if v != f64x8:
        return None

    def codegen(context, builder, sig, args):
        e = [builder.extract_element(args[0], ir.Constant(ir.IntType(32), k)) for k in range(W)]
        while len(e) > 1:
            e = [builder.fadd(e[k], e[k + 1]) for k in range(0, len(e), 2)]
        return e[0]

    return types.float64(v), codegen


@intrinsic
def vexp2neg_shifted(typingctx, t):
    """2**-n where t = n + 1.5 * 2**52 (n an integer in [-1022, 1022] held in the low mantissa
    bits, as left by adding that constant): (1023 - n) << 52, as float64 bits."""
    if t != f64x8:
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.VectorType(ir.IntType(64), W)
        k = builder.shl(builder.bitcast(args[0], i64), ir.Constant(i64, [52] * W))
        k = builder.sub(ir.Constant(i64, [1023 << 52] * W), k)
        return builder.bitcast(k, _VEC)

    return f64x8(t), codegen
