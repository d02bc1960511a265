"""Slow, obviously-correct Python-integer models of the requantization spec (systolix.model.quant).

Two families: a literal transcription of gemmlowp's C++ definitions in
``fixedpoint/fixedpoint.h`` (SaturatingRoundingDoublingHighMul, RoundingDivideByPOT: ``*_c``),
and an independent one from the rounding rule each function is documented to implement
(``*_math``: SRDHM rounds half towards +infinity, RoundingDivideByPOT half away from zero). Used
by ``test_quant.py`` and ``test_mlp.py``; the RTL tests can use them too.
"""

import numpy as np

from systolix.model.quant import INT32_MAX, INT32_MIN, RequantParams


def c_trunc_div(a, b):
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def srdhm_c(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    p = a * b
    nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
    return c_trunc_div(p + nudge, 1 << 31)


def rdbpot_c(x, n):
    mask = (1 << n) - 1
    rem = x & mask  # Python ints are infinite two's complement: same as C on an int32
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> n) + (1 if rem > threshold else 0)


def srdhm_math(a, b):
    """round(a*b / 2**31), ties towards +infinity (floor(v + 1/2)), saturated."""
    return min((2 * a * b + (1 << 31)) // (1 << 32), INT32_MAX)


def rdbpot_math(x, n):
    """round(x / 2**n), ties away from zero."""
    mag = (2 * abs(x) + (1 << n)) // (1 << (n + 1))
    return mag if x >= 0 else -mag


def requantize_one(acc, bias, multiplier, shift, zero_point, clamp_min, clamp_max,
                   srd=srdhm_c, rdb=rdbpot_c):
    """One value through the spec. Any int32 multiplier is allowed (the hardware also handles
    ones RequantParams refuses, e.g. INT32_MIN, SRDHM's saturating case)."""
    x = min(max(acc + bias, INT32_MIN), INT32_MAX)
    return min(max(rdb(srd(x, multiplier), shift) + zero_point, clamp_min), clamp_max)


def requantize_slow(acc, p: RequantParams, srd=srdhm_c, rdb=rdbpot_c):
    out = np.zeros(acc.shape, dtype=np.int64)
    for m in range(acc.shape[0]):
        for n in range(acc.shape[1]):
            out[m, n] = requantize_one(int(acc[m, n]), p.bias[n], p.multiplier[n], p.shift[n],
                                       p.zero_point, p.clamp_min, p.clamp_max, srd, rdb)
    return out
