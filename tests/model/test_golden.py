"""The golden model against a slow, obviously-correct Python-integer model."""

import numpy as np
import pytest

from systolix.model import golden
from helpers import slow_gemm
from systolix.config import Numerics

pytestmark = pytest.mark.model


@pytest.mark.parametrize("n", [
    Numerics(), Numerics(acc_width=16), Numerics(acc_width=16, saturate=True),
    Numerics(signed=False, acc_width=17, saturate=True), Numerics(signed=False, acc_width=17),
    Numerics(in_width=16, acc_width=64), Numerics(in_width=16, acc_width=64, saturate=True),
    Numerics(in_width=16, acc_width=33, saturate=True), Numerics(in_width=2, acc_width=4),
], ids=repr)
@pytest.mark.parametrize("chunk", [1, 4, 7])
def test_matches_python_integers(n, chunk, seed):
    rng = np.random.default_rng(seed)
    for m, k, p in [(3, 50, 4), (1, 1, 1), (2, 7, 1)]:
        a = rng.integers(n.in_min, n.in_max + 1, (m, k))
        b = rng.integers(n.in_min, n.in_max + 1, (k, p))
        got = golden.gemm(a, b, n, chunk)
        assert got.dtype == np.dtype(n.output_dtype)
        assert (got == slow_gemm(a, b, n, chunk)).all(), f"seed {seed}"
    # extremes over a long K, where wrap and saturate really differ
    for va, vb in [(n.in_min, n.in_min), (n.in_max, n.in_min), (n.in_max, n.in_max)]:
        a = np.full((2, 300), va)
        b = np.full((300, 2), vb)
        assert (golden.gemm(a, b, n, chunk) == slow_gemm(a, b, n, chunk)).all()


def test_chunk_matters_only_when_saturating():
    """Products +P, +P, +P, -P, -P, -P (P = 127*127) into a 16-bit accumulator: one at a time
    (chunk 1) or three at a time (chunk 3) the sum clamps at 32767 on the way up and ends at
    32767 - 3P; in pairs (chunk 2) or all at once (chunk 6) nothing overflows and it ends at 0."""
    a = np.full((1, 6), 127)
    b = np.array([[127], [127], [127], [-127], [-127], [-127]])
    sat = Numerics(acc_width=16, saturate=True)
    got = [int(golden.gemm(a, b, sat, chunk)[0, 0]) for chunk in (1, 2, 3, 6)]
    assert got == [32767 - 3 * 127 * 127, 0, 32767 - 3 * 127 * 127, 0]
    wrap = Numerics(acc_width=16)
    assert {int(golden.gemm(a, b, wrap, chunk)[0, 0]) for chunk in (1, 2, 3, 6)} == {0}
    with pytest.raises(ValueError, match="chunk"):
        golden.gemm(a, b, sat, 0)


def test_64_bit_accumulator_edges():
    """Near the int64 limits numpy itself wraps; the saturating path must notice."""
    n = Numerics(in_width=16, acc_width=64, saturate=True)
    acc = np.array([2**63 - 5, -2**63 + 5, 100], dtype=np.int64)
    p = np.array([2**30, -2**30, -2**30], dtype=np.int64)
    got = golden._saturating_add(acc, p, n)
    assert got.tolist() == [2**63 - 1, -2**63, 100 - 2**30]
    assert golden.wrap(np.array([2**63 - 1], dtype=np.int64) + 1, 64)[0] == -2**63


def test_wrap_helper():
    assert golden.wrap(2**31, 32) == -2**31
    assert golden.wrap(-2**31 - 1, 32) == 2**31 - 1
    assert golden.wrap(5, 4) == 5 and golden.wrap(8, 4) == -8
