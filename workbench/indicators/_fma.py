"""Fused multiply-add for kernels: ``a * b + c`` rounded once (IEEE 754 fusedMultiplyAdd).

TA-Lib's binaries dispatch to builds compiled with FMA, which fuse the multiply-add of
recurrences such as an EMA step. Calling ``fma`` at exactly those places reproduces
TA-Lib's bits and its speed (one rounding and one latency fewer on the loop-carried
chain). Unlike fastmath's "contract" flag this is explicit and portable: the result is
exactly specified, and CPUs without FMA fall back to a correctly rounded library call.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with a single rounding (usable inside njit code only)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fused = builder.module.declare_intrinsic(
            "llvm.fma", [double], ir.FunctionType(double, [double, double, double])
        )
        return builder.call(fused, args)

    return sig, codegen
