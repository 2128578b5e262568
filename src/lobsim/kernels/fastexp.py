"""exp over an array that LLVM vectorises: range reduction and a polynomial.

numba lowers ``math.exp`` to a libm call per element (no SVML here), which
stops a loop over a chunk of scenarios from vectorising. :func:`exp_into`
computes ``exp`` element by element with plain arithmetic instead:

1. ``x = k ln2 + r`` with ``k`` the nearest integer to ``x / ln2`` (rounded by
   adding and subtracting 1.5 x 2^52, no call) and ``r`` by a Cody-Waite split
   of ln2 (``LN2_HI`` has 21 trailing zero bits, so ``k LN2_HI`` is exact for
   every ``k`` used and ``|r| <= ln2 / 2 + tiny``);
2. ``exp(r) = 1 + p(r)`` with ``p`` the degree-13 Taylor polynomial, evaluated
   as ``r + r^2 q(r)`` by Estrin's scheme (truncation below 5e-18 on the
   reduced range; the 1 is added last, so the polynomial's own rounding counts
   at most a fraction of an ulp);
3. ``2^k`` built from exponent bits (an LLVM bitcast of int64 to float64, the
   integer read from the mantissa of ``k + 1.5 x 2^52``: AVX2 has no vector
   float-to-int64 conversion), as two factors ``2^h 2^(k - h)``, ``h`` about
   ``k / 2``, so that overflow to inf and gradual underflow to subnormals and 0
   come from the multiplication itself.

Accuracy (tests/test_kernel_fastexp.py, against ``math.exp``): at most 2 ulp
(``EXP_ULP``) for finite results, measured at most 1 ulp on every sample of
[-708, 709]; ``exp(0) == 1`` exactly; subnormal results within 2 units of the
smallest subnormal; ``x > 709.79`` gives inf, ``x < -745.2`` gives 0, NaN gives
NaN, +-inf give inf and 0.
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import intrinsic

#: bound on the error of :func:`exp_into` for normal results, in ulp of the result
EXP_ULP = 2

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: k * LN2_HI exact for |k| < 2^21
LN2_LO = 1.90821492927058770002e-10
ROUND = 6755399441055744.0  # 1.5 x 2^52: x + ROUND - ROUND rounds x to an integer
# the arguments are clamped here first, so k stays within [-1082, 1025] and
# every exponent field below is a valid normal one
X_MIN = -750.0
X_MAX = 710.0

# 1 / n! for n = 2..13 (Horner from the highest)
_C2 = 1.0 / 2.0
_C3 = 1.0 / 6.0
_C4 = 1.0 / 24.0
_C5 = 1.0 / 120.0
_C6 = 1.0 / 720.0
_C7 = 1.0 / 5040.0
_C8 = 1.0 / 40320.0
_C9 = 1.0 / 362880.0
_C10 = 1.0 / 3628800.0
_C11 = 1.0 / 39916800.0
_C12 = 1.0 / 479001600.0
_C13 = 1.0 / 6227020800.0


@intrinsic
def _as_float(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits`` (an LLVM bitcast: no
    memory round trip, so a loop calling it still vectorises)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _as_int(typingctx, value):
    """The int64 holding the IEEE bits of the float64 ``value`` (a bitcast)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _power_of_two(shifted):
    """2^m for ``shifted = m + ROUND`` (m an integer, -1022 <= m <= 1023): the
    low mantissa bits of ``shifted`` are m (+ 2^51), read without a float to
    int conversion (AVX2 has none for 64-bit integers)."""
    return _as_float((_as_int(shifted) - _as_int(ROUND) + 1023) << 52)  # type: ignore[call-arg]  # numba intrinsics: the stub counts typingctx


@njit(cache=True, nogil=True, inline="always")
def exp_one(x):
    """exp of one float64 by the method above (inlined into the chunk loops)."""
    xc = min(max(x, X_MIN), X_MAX)
    kf = (xc * LOG2E + ROUND) - ROUND
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    # p = r + r^2 q(r) with q of degree 11 by Estrin's scheme: a dependency
    # chain of 6 operations instead of Horner's 26 (the loop is latency bound)
    r2 = r * r
    r4 = r2 * r2
    q = (((_C2 + _C3 * r) + (_C4 + _C5 * r) * r2) + ((_C6 + _C7 * r) + (_C8 + _C9 * r) * r2) * r4
         + ((_C10 + _C11 * r) + (_C12 + _C13 * r) * r2) * (r4 * r4))
    p = r + r2 * q
    half = kf * 0.5 + ROUND  # k split in two halves, each a valid exponent
    rest = kf - (half - ROUND)
    y = (1.0 + p) * _power_of_two(half) * _power_of_two(rest + ROUND)
    return y if x == x else x  # NaN: the clamp would have made it a number


@njit(cache=True, nogil=True, _nrt=False)  # type: ignore[call-overload]
def exp_into(x, out, n):
    """``out[j] = exp(x[j])`` for ``j < n`` (``out`` may be ``x``)."""
    for j in range(n):
        out[j] = exp_one(x[j])
