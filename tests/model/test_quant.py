"""The requantization reference (systolix.model.quant) against the slow models of slow_quant.py."""

import json

import numpy as np
import pytest

from slow_quant import (rdbpot_c, rdbpot_math, requantize_one, requantize_slow, srdhm_c,
                        srdhm_math)
from systolix.model import quant
from systolix.model.quant import (INT32_MAX, INT32_MIN, M0_MAX, M0_MIN, RequantParams,
                                  quantize_multiplier, rdbpot, relu6_clamp, relu_clamp, requantize,
                                  srdhm)

pytestmark = pytest.mark.model


random_int32 = quant.random_accumulators
random_params = quant.random_params


# ---------------------------------------------------------------------------- SRDHM

def test_srdhm_matches_slow_models(seed):
    rng = np.random.default_rng(seed)
    a = random_int32(rng, 20000)
    b = np.concatenate([random_int32(rng, 10000), rng.integers(M0_MIN, M0_MAX + 1, 10000)])
    got = srdhm(a, b)
    assert got.dtype == np.int64
    for x, y, g in zip(a.tolist(), b.tolist(), got.tolist()):
        assert g == srdhm_c(x, y) == srdhm_math(x, y), f"srdhm({x}, {y}), seed {seed}"


def test_srdhm_extremes():
    ext = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, M0_MAX]
    a, b = np.meshgrid(ext, ext)
    got = srdhm(a, b)
    for x, y, g in zip(a.ravel().tolist(), b.ravel().tolist(), got.ravel().tolist()):
        assert g == srdhm_c(x, y) == srdhm_math(x, y), f"srdhm({x}, {y})"
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX  # the one saturating case
    assert srdhm(INT32_MIN, INT32_MIN + 1) == M0_MAX  # (2**62 - 2**31) / 2**31 exactly
    assert srdhm(INT32_MAX, INT32_MAX) == INT32_MAX - 1
    assert srdhm(INT32_MIN, M0_MAX) == INT32_MIN + 1


def test_srdhm_negative_ties_round_towards_plus_infinity():
    """What gemmlowp's asymmetric nudge does to exact ties of negative products.

    With b = 2**30, a * b / 2**31 = a / 2, a tie for every odd a: positive ties round up (away
    from zero), negative ties ALSO round up (towards zero), so SRDHM is round-half-up, not
    round-half-away-from-zero. Non-tie negative values round to nearest as expected.
    """
    assert srdhm(1, 1 << 30) == 1 and srdhm(3, 1 << 30) == 2  # +0.5 -> 1, +1.5 -> 2
    assert srdhm(-1, 1 << 30) == 0 and srdhm(-3, 1 << 30) == -1  # -0.5 -> 0, -1.5 -> -1
    a = np.arange(-2001, 2002, 2, dtype=np.int64)  # odd: all ties
    assert (srdhm(a, 1 << 30) == (a + 1) // 2).all()  # floor(a/2 + 1/2)
    assert (srdhm(-a, 1 << 30) == -srdhm(a, 1 << 30) + 1).all()  # hence not symmetric
    # just off a tie, negative values round to nearest; b = 2**10 makes a * b / 2**31 = a / 2**21
    tie = -11 * (1 << 20)  # -5.5
    b = 1 << 10
    assert srdhm(tie, b) == -5  # exact tie -5.5 -> -5
    assert srdhm(tie - 1, b) == -6  # -5.5 - 2**-21 -> -6
    assert srdhm(tie + 1, b) == -5  # -5.5 + 2**-21 -> -5
    assert srdhm(-tie, b) == 6  # +5.5 -> 6


def test_srdhm_rejects():
    with pytest.raises(ValueError, match="int32"):
        srdhm(INT32_MAX + 1, 1)
    with pytest.raises(ValueError, match="int32"):
        srdhm(1, INT32_MIN - 1)
    with pytest.raises(TypeError, match="integers"):
        srdhm(1.5, 1)


# ---------------------------------------------------------------------------- RoundingDivideByPOT

def test_rdbpot_matches_slow_models(seed):
    rng = np.random.default_rng(seed)
    x = random_int32(rng, 20000)
    n = rng.integers(0, 32, 20000)
    got = rdbpot(x, n)
    for v, s, g in zip(x.tolist(), n.tolist(), got.tolist()):
        assert g == rdbpot_c(v, s) == rdbpot_math(v, s), f"rdbpot({v}, {s}), seed {seed}"


@pytest.mark.parametrize("n", range(1, 32))
def test_rdbpot_ties_and_neighbours(n):
    """rem == threshold and threshold + 1 on both signs: ties go away from zero."""
    half = 1 << (n - 1)
    for k in (0, 1, 5):
        base = k * (1 << n)
        if base + half + 1 > INT32_MAX:
            continue
        assert rdbpot(base + half - 1, n) == k  # below the tie
        assert rdbpot(base + half, n) == k + 1  # positive tie: up
        assert rdbpot(base + half + 1, n) == k + 1
        assert rdbpot(-(base + half - 1), n) == -k
        assert rdbpot(-(base + half), n) == -(k + 1)  # negative tie: down, away from zero
        assert rdbpot(-(base + half + 1), n) == -(k + 1)
        for x in (base + half - 1, base + half, base + half + 1):
            for v in (x, -x):
                assert rdbpot(v, n) == rdbpot_c(v, n) == rdbpot_math(v, n)


def test_rdbpot_extremes():
    assert (rdbpot([INT32_MIN, INT32_MAX, -1, 1], 0) == [INT32_MIN, INT32_MAX, -1, 1]).all()
    assert rdbpot(INT32_MIN, 31) == -1 and rdbpot(INT32_MAX, 31) == 1
    assert rdbpot(-(1 << 30), 31) == -1 and rdbpot((1 << 30), 31) == 1  # +-0.5: away from zero
    assert rdbpot(-(1 << 30) + 1, 31) == 0 and rdbpot((1 << 30) - 1, 31) == 0
    with pytest.raises(ValueError, match="0..31"):
        rdbpot(1, 32)
    with pytest.raises(ValueError, match="0..31"):
        rdbpot(1, -1)
    with pytest.raises(ValueError, match="int32"):
        rdbpot(INT32_MAX + 1, 1)
    with pytest.raises(TypeError, match="integers"):
        rdbpot(1, 1.0)


# ---------------------------------------------------------------------------- quantize_multiplier

def test_quantize_multiplier_properties(seed):
    rng = np.random.default_rng(seed)
    reals = np.concatenate([2.0 ** rng.uniform(-32, 0, 5000), rng.uniform(0, 1, 1000)])
    for real in reals.tolist():
        if not 0 < real < 1:
            continue
        m0, shift = quantize_multiplier(real)
        assert isinstance(m0, int) and isinstance(shift, int)
        if m0 == 0:
            assert (m0, shift) == (0, 0) and real < 2.0**-32, f"{real!r}, seed {seed}"
            continue
        assert M0_MIN <= m0 <= M0_MAX and 0 <= shift <= 31, f"{real!r}, seed {seed}"
        approx = m0 * 2.0 ** -(31 + shift)  # exact in double
        assert abs(real - approx) <= 2.0**-31 * real, f"{real!r} -> {m0}, {shift}, seed {seed}"


def test_quantize_multiplier_exact_and_carry_cases():
    assert quantize_multiplier(0.5) == (M0_MIN, 0)
    assert quantize_multiplier(0.25) == (M0_MIN, 1)
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(2.0**-32) == (M0_MIN, 31)
    # ties round up like std::round (Python's round() would give the even 2**30)
    assert quantize_multiplier(0.5 + 2.0**-32) == (M0_MIN + 1, 0)
    assert quantize_multiplier(0.5 + 3 * 2.0**-32) == (M0_MIN + 2, 0)
    # q rounds to 2**31: carry into the shift, exact
    assert quantize_multiplier((1 - 2.0**-33) / 32) == (M0_MIN, 4)
    assert quantize_multiplier((1 - 2.0**-33) * 2.0**-31) == (M0_MIN, 30)
    # ... and just below 2**-32 the carry keeps it representable
    assert quantize_multiplier((1 - 2.0**-33) * 2.0**-32) == (M0_MIN, 31)
    # the nearest value is 1.0 (needs a left shift): clamp to the largest right-shift value
    assert quantize_multiplier(1 - 2.0**-33) == (M0_MAX, 0)
    assert quantize_multiplier(1 - 2.0**-31) == (M0_MAX, 0)  # exact
    assert quantize_multiplier(np.float32(0.5)) == (M0_MIN, 0)
    # below 2**-32 (after rounding) every int32 times it rounds to 0: (0, 0), as TFLite
    assert quantize_multiplier(2.0**-33) == (0, 0)
    assert quantize_multiplier(5e-324) == (0, 0)


@pytest.mark.parametrize("bad", [0, 0.0, 1, 1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_quantize_multiplier_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        quantize_multiplier(bad)


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5], 0.5j])
def test_quantize_multiplier_rejects_non_reals(bad):
    with pytest.raises(TypeError, match="real number"):
        quantize_multiplier(bad)


# ---------------------------------------------------------------------------- requantize

def test_requantize_matches_slow_model(seed):
    rng = np.random.default_rng(seed)
    for _ in range(20):
        n = int(rng.integers(1, 12))
        p = random_params(rng, n)
        acc = random_int32(rng, (int(rng.integers(1, 40)), n))
        got = requantize(acc, p)
        assert got.dtype == p.out_dtype
        want = requantize_slow(acc, p)
        assert (got.astype(np.int64) == want).all(), f"seed {seed}, {p}"
        assert (want == requantize_slow(acc, p, srdhm_math, rdbpot_math)).all()


def test_requantize_edge_cases_match_slow_model():
    jobs = quant.edge_cases(channels=8, max_rows=256)
    for acc, p in jobs:
        assert acc.shape[0] <= 256 and acc.shape[1] == 8
        got = requantize(acc, p)
        assert got.dtype == p.out_dtype
        assert (got.astype(np.int64) == requantize_slow(acc, p)).all(), f"{p}"


def test_edge_cases_cover_what_they_claim():
    """The shared edge cases really reach each corner (else the RTL tests would miss it)."""
    values = quant.edge_case_accumulators()
    assert values.dtype == np.int64 and (np.diff(values) > 0).all()
    assert values.min() == INT32_MIN and values.max() == INT32_MAX
    params = quant.edge_case_params(8)
    seen = set()
    for p in params:
        assert p.channels == 8
        seen.add(("signed", p.out_signed))
        seen.add(("zp", p.zero_point))
        for c in range(p.channels):
            m0, s, b = p.multiplier[c], p.shift[c], p.bias[c]
            seen.update({("m0", m0), ("shift", s)})
            x = np.clip(values + b, INT32_MIN, INT32_MAX)
            if ((values + b) != x).any():
                seen.add(("bias saturates", b > 0))
            h = srdhm(x, m0)
            exact2 = 2 * x * m0  # 2p; a tie when 2p = (2j+1) * 2**31
            if (((exact2 % (1 << 32)) == (1 << 31)) & (x < 0)).any():
                seen.add(("srdhm negative tie", True))
            if s > 0:
                rem = h & ((1 << s) - 1)
                for neg in (False, True):
                    sel = (h < 0) if neg else (h > 0)
                    thr = (1 << (s - 1)) - 1 + int(neg)
                    for d in (0, 1):
                        if (sel & (rem == thr + d)).any():
                            seen.add(("rdbpot", s, neg, d))
            y = rdbpot(h, s) + p.zero_point
            if (y < p.clamp_min).any():
                seen.add(("clamp", "min"))
            if (y > p.clamp_max).any():
                seen.add(("clamp", "max"))
    missing = []
    for key in [("signed", True), ("signed", False), ("m0", 0), ("m0", M0_MIN), ("m0", M0_MAX),
                ("shift", 0), ("shift", 31), ("bias saturates", True), ("bias saturates", False),
                ("srdhm negative tie", True), ("clamp", "min"), ("clamp", "max"),
                ("zp", -128), ("zp", 127), ("zp", 255)]:
        if key not in seen:
            missing.append(key)
    for s in range(1, 32):
        for neg in (False, True):
            for d in (0, 1):
                if s == 1 and neg and d == 1:
                    continue  # rem <= 1 == threshold: cannot exceed it
                if ("rdbpot", s, neg, d) not in seen:
                    missing.append(("rdbpot", s, neg, d))
    assert not missing, f"edge cases never reach {missing}"


def test_bias_add_saturates_instead_of_wrapping():
    # INT32_MAX + 1 would wrap to INT32_MIN in two's complement: -128 instead of 127
    p = RequantParams(bias=[1, -1], multiplier=[M0_MAX, M0_MAX], shift=[24, 24])
    got = requantize([[INT32_MAX, INT32_MIN]], p)
    assert got.tolist() == [[127, -128]]  # sat32 -> 2**31-ish / 2**24 = 128 -> clamp 127
    p = RequantParams(bias=[INT32_MAX, INT32_MIN], multiplier=[M0_MIN, M0_MIN], shift=[31, 31])
    # x saturates to INT32_MAX / INT32_MIN; srdhm halves them to +-2**30 (a tie rounded up),
    # then / 2**31 is +-0.5, away from zero: 1, -1 (wrapping would give -2 and 0: 0, 0)
    assert requantize([[INT32_MAX, INT32_MIN]], p).tolist() == [[1, -1]]
    p = RequantParams(bias=[INT32_MAX], multiplier=[M0_MIN], shift=[29])
    # wrap would give INT32_MIN + 99 -> -2 ; saturation gives INT32_MAX -> round(2**31 / 2**30) = 2
    assert requantize([[100]], p).tolist() == [[2]]


def test_zero_point_add_is_exact_before_clamp():
    # y = 200, zero point -100: exact 100 (clamping y to int8 first would give 27)
    p = RequantParams(bias=[0], multiplier=[M0_MIN], shift=[0], zero_point=-100)
    assert requantize([[400]], p).tolist() == [[100]]
    # uint8, zero point 200: y = -150 -> 50, y = -250 -> -50 -> 0, y = 100 -> 300 -> 255
    p = RequantParams(bias=[0] * 3, multiplier=[M0_MIN] * 3, shift=[0] * 3, zero_point=200,
                      out_signed=False)
    got = requantize([[-300, -500, 200]], p)
    assert got.dtype == np.uint8 and got.tolist() == [[50, 0, 255]]


def test_multiplier_zero_gives_clamped_zero_point():
    p = RequantParams(bias=[INT32_MAX, 0], multiplier=[0, 0], shift=[0, 31], zero_point=-7,
                      clamp_min=-5)
    acc = np.array([[INT32_MIN, INT32_MAX], [0, 12345]])
    assert (requantize(acc, p) == -5).all()


def test_relu_and_relu6():
    assert relu_clamp(-3) == (-3, 127)
    assert relu_clamp(10, out_signed=False) == (10, 255)
    assert relu6_clamp(-128, 6 / 255) == (-128, 127)  # 6 / scale = 255: exactly the range
    assert relu6_clamp(-128, 0.05) == (-128, -8)  # 6 / 0.05 = 120
    assert relu6_clamp(0, 0.01, out_signed=False) == (0, 255)  # 600 capped
    assert relu6_clamp(0, 6 / 2.5) == (0, 3)  # 2.5 rounds half away from zero
    lo, hi = relu6_clamp(5, 0.1)
    p = RequantParams(bias=[0], multiplier=[M0_MIN], shift=[0], zero_point=5, clamp_min=lo,
                      clamp_max=hi)
    assert requantize([[-50], [10], [200]], p).ravel().tolist() == [5, 10, 65]
    with pytest.raises(ValueError, match="scale_out"):
        relu6_clamp(0, 0.0)
    with pytest.raises(TypeError, match="scale_out"):
        relu6_clamp(0, "1")
    with pytest.raises(ValueError, match="zero_point"):
        relu_clamp(200)


def test_requantize_rejects():
    p = RequantParams(bias=[0, 0], multiplier=[M0_MIN, M0_MIN], shift=[0, 0])
    with pytest.raises(ValueError, match="2 channels"):
        requantize(np.zeros((2, 3), dtype=np.int64), p)
    with pytest.raises(ValueError, match="2-D"):
        requantize(np.zeros(2, dtype=np.int64), p)
    with pytest.raises(ValueError, match="int32"):
        requantize([[INT32_MAX + 1, 0]], p)
    with pytest.raises(ValueError, match="beyond int64"):
        requantize([[2**64, 0]], p)
    with pytest.raises(TypeError, match="integers"):
        requantize(np.zeros((1, 2)), p)
    with pytest.raises(TypeError, match="integers"):
        requantize([[True, False]], p)
    with pytest.raises(TypeError, match="integers"):
        requantize(np.array([[1, "a"]], dtype=object), p)
    with pytest.raises(TypeError, match="RequantParams"):
        requantize(np.zeros((1, 2), dtype=np.int64), {"bias": [0, 0]})


# ---------------------------------------------------------------------------- RequantParams

GOOD = dict(bias=[0], multiplier=[M0_MIN], shift=[0])


@pytest.mark.parametrize("change, error, match", [
    (dict(bias=[0.5]), TypeError, r"bias\[0\] must be an integer"),
    (dict(bias=[True]), TypeError, r"bias\[0\] must be an integer"),
    (dict(bias=5), TypeError, "bias must be a 1-D sequence"),
    (dict(bias="1"), TypeError, "bias must be a 1-D sequence"),
    (dict(bias=[[1]]), TypeError, "bias must be a 1-D sequence"),
    (dict(bias=[INT32_MAX + 1]), ValueError, r"bias\[0\] must be in range"),
    (dict(bias=[INT32_MIN - 1]), ValueError, r"bias\[0\] must be in range"),
    (dict(multiplier=[M0_MIN - 1]), ValueError, r"multiplier\[0\] must be 0 or in range"),
    (dict(multiplier=[1]), ValueError, r"multiplier\[0\] must be 0 or in range"),
    (dict(multiplier=[-1]), ValueError, r"multiplier\[0\] must be in range"),
    (dict(multiplier=[M0_MAX + 1]), ValueError, r"multiplier\[0\] must be in range"),
    (dict(shift=[32]), ValueError, r"shift\[0\] must be in range 0..31"),
    (dict(shift=[-1]), ValueError, r"shift\[0\] must be in range 0..31"),
    (dict(bias=[], multiplier=[], shift=[]), ValueError, "at least one channel"),
    (dict(bias=[0, 0]), ValueError, "same length"),
    (dict(zero_point=128), ValueError, r"zero_point \(int8\) must be in range -128..127"),
    (dict(zero_point=-1, out_signed=False), ValueError,
     r"zero_point \(uint8\) must be in range 0..255"),
    (dict(zero_point=1.0), TypeError, "zero_point .* must be an integer"),
    (dict(clamp_min=-129), ValueError, "clamp_min"),
    (dict(clamp_max=256, out_signed=False), ValueError, "clamp_max"),
    (dict(clamp_min=5, clamp_max=4), ValueError,
     r"clamp_min \(5\) must not exceed clamp_max \(4\)"),
    (dict(out_signed=1), TypeError, "out_signed must be a bool"),
])
def test_params_validation(change, error, match):
    with pytest.raises(error, match=match):
        RequantParams(**{**GOOD, **change})


def test_params_dict_round_trip(seed):
    rng = np.random.default_rng(seed)
    for p in quant.edge_case_params(3)[:5] + [random_params(rng, 4)]:
        d = p.to_dict()
        assert RequantParams.from_dict(json.loads(json.dumps(d))) == p
    with pytest.raises(ValueError, match=r"missing \['shift'\], unknown \['shifts'\]"):
        RequantParams.from_dict({**{k: v for k, v in d.items() if k != "shift"}, "shifts": [0]})
    with pytest.raises(TypeError, match="dict"):
        RequantParams.from_dict([1])


def test_random_stimulus_spans_magnitudes(seed):
    rng = np.random.default_rng(seed)
    v = quant.random_accumulators(rng, 5000)
    assert v.dtype == np.int64 and v.min() == INT32_MIN and v.max() == INT32_MAX
    bits = np.floor(np.log2(np.abs(v[v != 0]).astype(float))).astype(int)
    assert set(range(0, 31)) <= set(bits.tolist())  # every magnitude
    assert (v < 0).mean() == pytest.approx(0.5, abs=0.05)


def test_params_normalised():
    p = RequantParams(bias=np.array([1, -2], dtype=np.int32), multiplier=np.array([0, M0_MAX]),
                      shift=(np.int64(3), 31), out_signed=False)
    assert p.bias == (1, -2) and p.multiplier == (0, M0_MAX) and p.shift == (3, 31)
    assert all(type(v) is int for v in p.bias + p.multiplier + p.shift)
    assert (p.clamp_min, p.clamp_max, p.zero_point) == (0, 255, 0)
    assert p.channels == 2 and p.out_dtype == np.uint8 and (p.out_min, p.out_max) == (0, 255)
    assert p == RequantParams(bias=[1, -2], multiplier=[0, M0_MAX], shift=[3, 31], out_signed=False)
    assert hash(p) == hash(RequantParams(bias=[1, -2], multiplier=[0, M0_MAX], shift=[3, 31],
                                         out_signed=False))
    with pytest.raises(AttributeError):
        p.zero_point = 1


def test_spanning_params_fit_the_accumulators(seed):
    """On GEMM accumulators of every spread, the fitted parameters are valid, leave most
    outputs unclamped and spread them over the clamp interval; unclamped_fraction counts the
    outputs that the slow model's clamp leaves alone."""
    rng = np.random.default_rng(seed)
    fractions, spans = [], []
    for i in range(200):
        m, k, n = (int(v) for v in rng.integers(1, 12, 3))
        mag = int(rng.choice([1, 3, 20, 128]))
        a = rng.integers(-mag, mag, (m, k))
        b = rng.integers(-mag, mag, (k, n))
        acc = a @ b
        p = quant.spanning_params(rng, acc, out_signed=bool(i % 2) if i % 3 else None)
        if i % 3:
            assert p.out_signed == bool(i % 2)
        out = requantize_slow(acc, p)
        unclamped = [p.clamp_min <= requantize_one(int(acc[r, c]), p.bias[c], p.multiplier[c],
                                                   p.shift[c], p.zero_point, -2**40, 2**40)
                     <= p.clamp_max for r in range(m) for c in range(n)]
        fraction = quant.unclamped_fraction(acc, p)
        assert fraction == np.mean(unclamped)
        fractions.append(fraction)
        if acc.max() - acc.min() >= 16:
            spans.append((out.max() - out.min()) / (p.clamp_max - p.clamp_min))
    # a rare column (a few values, one far out) clamps most of its outputs: allow a few
    assert np.mean(fractions) >= 0.9 and np.mean(np.less(fractions, 0.5)) <= 0.03, f"seed {seed}"
    assert np.mean(spans) >= 0.4, f"seed {seed}"
    assert quant.unclamped_fraction(np.array([[0, 10**6, -10**6]]),
                                    RequantParams([0] * 3, [M0_MAX] * 3, [0] * 3)) == 1 / 3
    with pytest.raises(ValueError, match="2-D"):
        quant.spanning_params(rng, np.zeros(3, np.int64))



# -- the float32 rule (onnxruntime's) ------------------------------------------------------------

def _f32_grid(rng, n_random):
    acc = np.concatenate([quant.float32_edge_accumulators(),
                          rng.integers(quant.INT32_MIN, quant.INT32_MAX + 1, n_random)])
    scales = np.concatenate([quant.float32_edge_scales(),
                             (2.0 ** rng.uniform(-36, 2, 24)).astype(np.float32)])
    return np.repeat(acc[:, None], len(scales), axis=1), scales


@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_float32_integer_model_equals_the_float_rule(out_signed, seed):
    """The hardware's integer decomposition equals numpy's float32 arithmetic on every edge
    accumulator x edge scale and on random values, with biases that wrap."""
    rng = np.random.default_rng(seed)
    acc, scales = _f32_grid(rng, 3000)
    lo, hi = quant.output_range(out_signed)
    bits = scales.view(np.uint32).astype(np.int64)
    for zp, bias in ((0, 0), (lo, 1), (hi, -7), ((lo + hi) // 2, quant.INT32_MAX)):
        want = quant.requantize_float32(acc, bias, scales, zp, out_signed=out_signed)
        got = quant.requantize_float32_int(acc, bias, bits, zp, out_signed=out_signed)
        assert np.array_equal(want, got), f"seed {seed}: zp {zp} bias {bias}"
    # the grid reaches the corners: ties (scale 0.5, odd sums) and rounded conversions
    half = quant.requantize_float32(np.array([[1, 3, -1, -3, 5]]), 0, np.float32(0.5),
                                    out_signed=True)
    assert half.tolist() == [[0, 2, 0, -2, 2]]
    big = np.int64((1 << 25) + 3)          # float32: 2**25 + 4 (ties to even: 2**25 + 4)
    assert quant.requantize_float32([[big]], 0, np.float32(2.0 ** -19)).tolist() == [[64]]


def test_float32_rule_corners():
    r = quant.requantize_float32
    # int -> float32 rounds above 2**24, ties to even: 2**24 + 1 -> 2**24, 2**24 + 3 -> 2**24 + 4
    assert r([[(1 << 24) + 1]], 0, np.float32(2.0 ** -24) * 3).tolist() == [[3]]
    assert r([[(1 << 24) + 3]], 0, np.float32(2.0 ** -2)).tolist() == [[127]]
    assert r([[(1 << 24) + 3]], 0, np.float32(2.0 ** -18), out_signed=False).tolist() == [[64]]
    # the bias add wraps
    assert r([[1]], quant.INT32_MAX, np.float32(2.0 ** -31)).tolist() == [[-1]]
    # the product is rounded to float32 before the integer rounding: 2.5 - 2**-23 (not
    # representable next to 2.5 at that scale) becomes 2.5, then 2
    s = np.float32(0.5) * np.float32(1 - 2.0 ** -24)  # 0.49999997
    assert r([[5]], 0, s).tolist() == [[2]]
    # saturation at both ends, overflow to infinity, scale 0
    assert r([[quant.INT32_MAX, quant.INT32_MIN]], 0, np.float32(3e38)).tolist() == [[127, -128]]
    assert r([[12345]], 0, np.float32(0), zero_point=9).tolist() == [[9]]
    # ReLU folds in as clamp_min = zero point
    assert r([[-400, 400]], 0, np.float32(0.25), 10, *quant.relu_clamp(10)).tolist() == \
        [[10, 110]]


def test_float32_scale_order():
    """(x * w) / y with two float32 roundings, in that order (onnxruntime's)."""
    rng = np.random.default_rng(7)
    x, y = np.float32(0.0123), np.float32(0.0456)
    w = rng.uniform(1e-4, 1e-2, 2000).astype(np.float32)
    got = quant.float32_scale(x, w, y)
    assert got.dtype == np.float32
    assert np.array_equal(got, (x * w) / y)
    other = x * (w / y)
    assert (got != other).any()        # the order shows in the last bit
    assert np.array_equal(quant.float32_scale(x, w, y, alpha=1.0), got)
    assert np.array_equal(quant.float32_scale(x, w, y, alpha=2.0),
                          ((np.float32(2.0) * x) * w) / y)


def test_float32_params_and_dispatch():
    p = quant.Float32RequantParams(bias=[1, -2], scale=np.float32([0.5, 2.0 ** -20]),
                                   zero_point=3, out_signed=False)
    assert p.scale_bits == (0x3F000000, 0x35800000)
    assert quant.params_from_dict(p.to_dict()) == p
    assert quant.params_from_dict(quant.RequantParams([0], [1 << 30], [0]).to_dict()).mode == \
        "gemmlowp"
    acc = np.array([[5, 1 << 22]])
    assert np.array_equal(quant.requantize(acc, p),
                          quant.requantize_float32(acc, p.bias, p.scale, 3, out_signed=False))
    for bad in ([0.1], [-1.0], [float("inf")], [1e-40]):
        with pytest.raises(ValueError, match="scale"):
            quant.Float32RequantParams(bias=[0], scale=bad)
    with pytest.raises(ValueError, match="same length"):
        quant.Float32RequantParams(bias=[0, 1], scale=[0.5])
    with pytest.raises(ValueError, match="output range"):
        quant.requantize_float32([[1]], 0, np.float32(1), zero_point=200)
