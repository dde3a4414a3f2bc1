"""Four float64 lanes as one LLVM vector inside numba kernels.

The product tree runs BATCH = 4 atoms at once; each node's work is a few complex
products per lane.  numba compiles with LLVM's SLP vectoriser off (it miscompiled,
numba PR #8852), so lanes written out one by one stay scalar, and a loop over
four lanes is unrolled before the loop vectoriser sees it.  These intrinsics
state the vector explicitly: ``vload``/``vstore`` move four consecutive numbers
of a C-contiguous float64 array (flat index, no bounds or negative-index
checks: the caller's indices are in range), ``vsplat`` broadcasts a scalar, and
``+ - *`` act lane-wise.  Nothing here is reordered: each lane gets the scalar
code's operations, so results equal the scalar code's up to the FMA contraction
that ``fastmath`` allows in both.
"""
from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, models, overload, register_model

__all__ = ["LANES", "f64x4", "vload", "vsplat", "vstore"]

LANES = 4
_VECTOR = ir.VectorType(ir.DoubleType(), LANES)


class F64x4(types.Type):
    """numba type of four float64 lanes (an LLVM <4 x double>)."""

    def __init__(self):
        super().__init__(name="f64x4")


f64x4 = F64x4()


@register_model(F64x4)
class _F64x4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


def _is_c_float64(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.float64 and arr.layout == "C"


def _lane_pointer(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), _VECTOR.as_pointer())


@intrinsic
def vload(typingctx, arr, index):
    """arr.flat[index:index + 4] as one vector."""
    if not (_is_c_float64(arr) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        return builder.load(_lane_pointer(context, builder, sig.args[0], args[0], index), align=8)
    return f64x4(arr, index), codegen


@intrinsic
def vstore(typingctx, arr, index, value):
    """arr.flat[index:index + 4] = value."""
    if not (_is_c_float64(arr) and isinstance(index, types.Integer) and value == f64x4):
        return None

    def codegen(context, builder, sig, args):
        index = context.cast(builder, args[1], sig.args[1], types.intp)
        builder.store(args[2], _lane_pointer(context, builder, sig.args[0], args[0], index), align=8)
        return context.get_dummy_value()
    return types.void(arr, index, value), codegen


@intrinsic
def vsplat(typingctx, x):
    """Four copies of the scalar x."""
    if not isinstance(x, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        scalar = context.cast(builder, args[0], sig.args[0], types.float64)
        vector = ir.Constant(_VECTOR, ir.Undefined)
        for lane in range(LANES):
            vector = builder.insert_element(vector, scalar, ir.Constant(ir.IntType(32), lane))
        return vector
    return f64x4(x), codegen


def _lanewise(instruction):
    @intrinsic
    def op(typingctx, a, b):
        if not (a == f64x4 and b == f64x4):
            return None

        def codegen(context, builder, sig, args):
            return getattr(builder, instruction)(args[0], args[1], flags=("fast",))
        return f64x4(f64x4, f64x4), codegen
    return op


_vadd = _lanewise("fadd")
_vsub = _lanewise("fsub")
_vmul = _lanewise("fmul")


@overload(operator.add)
def _add(a, b):
    if a == f64x4 and b == f64x4:
        return lambda a, b: _vadd(a, b)


@overload(operator.sub)
def _sub(a, b):
    if a == f64x4 and b == f64x4:
        return lambda a, b: _vsub(a, b)


@overload(operator.mul)
def _mul(a, b):
    if a == f64x4 and b == f64x4:
        return lambda a, b: _vmul(a, b)
