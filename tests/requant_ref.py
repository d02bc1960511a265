"""An independent, slow, obviously-correct model of the requantizer in Python integers,
written straight from REFERENCE.md's gemmlowp definitions (the bias add saturates to int32)."""

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1


def srdhm(a, b):
    if a == b == INT32_MIN:
        return INT32_MAX
    p = a * b
    q = p + (2**30 if p >= 0 else 1 - 2**30)
    return q // 2**31 if q >= 0 else -((-q) // 2**31)   # C's truncating division


def rdbpot(x, n):
    mask = (1 << n) - 1
    return (x >> n) + (1 if (x & mask) > (mask >> 1) + (1 if x < 0 else 0) else 0)


def requant(acc, bias, mult, shift, zp, lo, hi):
    x = min(max(acc + bias, INT32_MIN), INT32_MAX)
    return min(max(rdbpot(srdhm(x, mult), shift) + zp, lo), hi)
