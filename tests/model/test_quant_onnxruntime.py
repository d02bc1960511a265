"""The float32 requantization rule (systolix.model.quant.requantize_float32) against
onnxruntime's own CPU kernels: QGemm, QLinearMatMul and QLinearConv models built with
onnx.helper, every output compared with "exact integer GEMM + the rule".

Weights are 7-bit (|w| <= 63, what ``reduce_range=True`` gives): onnxruntime's x86 u8s8 kernels
sum pairs of products in int16 and saturate otherwise, which is onnxruntime's arithmetic, not
the rule's. Each model's biases and scales put outputs on every corner: exact .5 ties, sums
above 2**24 whose float32 conversion rounds, the bias add wrapping around int32, saturation at
both ends, per-channel scales, int8 and uint8 outputs; the tests check that the corners are
really reached without clamping where it matters.
"""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.model import quant

pytestmark = pytest.mark.model

I32 = (1 << 31)


def _session(nodes, inputs, outputs, inits, opset=(("", 21), ("com.microsoft", 1))):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opset])
    model.ir_version = 10
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _tensor_type(dtype):
    return {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}[
        np.dtype(dtype)]


def _init(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def _scales(rng, n, signed):
    """(x_scale, per-channel w_scale, y_scale) whose float32 scales hit the corners: channel 0
    exactly 0.5 (every odd sum is a tie), channel 1 an exact 2**-3, channel 2 a scale above 1
    (saturation), the rest random over six octaves."""
    x_scale = np.float32(2.0 ** -int(rng.integers(5, 8)))  # a power of two: 0.5 is exact
    y_scale = np.float32(rng.uniform(0.05, 0.2))
    w = (np.float32(2.0) ** rng.uniform(-14, -8, n)).astype(np.float32)
    for c, target in ((0, 0.5), (1, 0.125)):
        w[c] = np.float32(target) * y_scale / x_scale
        assert quant.float32_scale(x_scale, w[c], y_scale)[0] == target
    w[2] = np.float32(3.0) * y_scale / x_scale
    return x_scale, w, y_scale


def _biases(rng, n):
    """Per-channel int32 biases: 0 for the tie channels, around +-2**26..2**29 (float32
    conversion rounds) scaled so the outputs stay in range, and INT32_MAX - 2**10 on the last channel
    (the add wraps for positive sums)."""
    b = np.zeros(n, dtype=np.int64)
    for c in range(3, n):
        mag = int(2.0 ** rng.uniform(25, 29.5))
        b[c] = mag if c % 2 else -mag
    b[n - 1] = I32 - 1 - (1 << 10)
    return b


def _corners(acc, bias, scale, zp, cmin, cmax):
    """Counts of the corners the reference reached: (unclamped ties, unclamped sums whose float32
    conversion rounds, outputs at clamp_min, at clamp_max, wrapped bias adds)."""
    x = quant.wrap32(acc + bias)
    f = x.astype(np.int32).astype(np.float32)
    p = (f * scale).astype(np.float64)
    inside = (np.rint(p) + zp >= cmin) & (np.rint(p) + zp <= cmax)
    out = np.clip(np.rint(p) + zp, cmin, cmax)
    return dict(ties=int((inside & (p - np.floor(p) == 0.5)).sum()),
                rounded_conversion=int((inside & (f.astype(np.int64) != x)).sum()),
                low=int((out == cmin).sum()), high=int((out == cmax).sum()),
                wrapped=int((x != acc + bias).sum()))


@pytest.mark.parametrize("act", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qgemm_equals_the_float32_rule(act, seed):
    """com.microsoft QGemm with int32 bias C, per-column scales, alpha = 1."""
    rng = np.random.default_rng(seed)
    signed = act is np.int8
    lo, hi = quant.output_range(signed)
    m, k, n = 96, 24, 10
    a = rng.integers(lo, hi + 1, (m, k)).astype(act)
    w = rng.integers(-63, 64, (k, n)).astype(np.int8)
    w[:, :2] = 0  # the tie channels: small sums, so that the ties show
    w[:2, :2] = rng.integers(1, 3, (2, 2)) * rng.choice([-1, 1], (2, 2))
    w[0, 0] = rng.choice([-1, 1])  # odd: about half the 0.5 channel's sums are ties
    w[:, 2] = 0
    w[:2, 2] = (63, -63)  # the saturating channel: sums of both signs
    a_zp = act(rng.integers(lo // 2, hi // 2 + 1))
    # the last channel's sums are mostly positive, so that its bias add wraps
    w[:, n - 1] = 63 if (a.astype(np.int64) - int(a_zp)).sum() >= 0 else -63
    y_zp = act(rng.integers(lo + 40, hi - 40))
    x_scale, w_scale, y_scale = _scales(rng, n, signed)
    bias = _biases(rng, n)
    # channels 3.. take w_scale so that the scale brings their big bias back near zero
    for c in range(3, n):
        target = np.float32(100.0 / abs(int(bias[c]))) if c < n - 1 else np.float32(2.0 ** -20)
        w_scale[c] = target * y_scale / x_scale
    scale = quant.float32_scale(x_scale, w_scale, y_scale)
    node = helper.make_node("QGemm", ["A", "a_s", "a_zp", "B", "b_s", "b_zp", "C", "y_s", "y_zp"],
                            ["Y"], domain="com.microsoft", alpha=1.0)
    t = _tensor_type(act)
    sess = _session([node], [helper.make_tensor_value_info("A", t, [m, k])],
                    [helper.make_tensor_value_info("Y", t, [m, n])],
                    [_init("a_s", x_scale), _init("a_zp", a_zp), _init("B", w),
                     _init("b_s", w_scale), _init("b_zp", np.zeros(n, np.int8)),
                     _init("C", bias.astype(np.int32)), _init("y_s", y_scale),
                     _init("y_zp", y_zp)])
    got = sess.run(None, {"A": a})[0]
    acc = (a.astype(np.int64) - int(a_zp)) @ w.astype(np.int64)
    want = quant.requantize_float32(acc, bias, scale, int(y_zp), out_signed=signed)
    assert got.dtype == want.dtype
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"seed {seed}: {len(bad)} outputs differ, first at {bad[0]}: "
                           f"onnxruntime {got[tuple(bad[0])]}, rule {want[tuple(bad[0])]}")
    seen = _corners(acc, bias, scale, int(y_zp), lo, hi)
    assert all(v > 0 for v in seen.values()), f"seed {seed}: corners not reached: {seen}"


@pytest.mark.parametrize("act", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qlinearconv_equals_the_float32_rule(act, seed):
    """QLinearConv 3x3, stride 1, padding 1, int32 bias, per-output-channel scales."""
    rng = np.random.default_rng(seed)
    signed = act is np.int8
    lo, hi = quant.output_range(signed)
    c_in, c_out, hw = 3, 8, 10
    x = rng.integers(lo, hi + 1, (1, c_in, hw, hw)).astype(act)
    w = rng.integers(-63, 64, (c_out, c_in, 3, 3)).astype(np.int8)
    w[:2] = 0  # the tie channels: small sums, so that the ties show
    w[:2, 0, 1, 1] = rng.integers(1, 3, 2) * rng.choice([-1, 1], 2)
    w[0, 0, 1, 1] = rng.choice([-1, 1])  # odd: about half the 0.5 channel's sums are ties
    w[2] = 0
    w[2, :2, 1, 1] = (63, -63)  # the saturating channel: sums of both signs
    x_zp = act(rng.integers(lo // 2, hi // 2 + 1))
    w[c_out - 1] = 63 if (x.astype(np.int64) - int(x_zp)).sum() >= 0 else -63
    y_zp = act(rng.integers(lo + 40, hi - 40))
    x_scale, w_scale, y_scale = _scales(rng, c_out, signed)
    bias = _biases(rng, c_out)
    for c in range(3, c_out):
        target = np.float32(100.0 / abs(int(bias[c]))) if c < c_out - 1 else \
            np.float32(2.0 ** -20)
        w_scale[c] = target * y_scale / x_scale
    scale = quant.float32_scale(x_scale, w_scale, y_scale)
    node = helper.make_node("QLinearConv", ["X", "x_s", "x_zp", "W", "w_s", "w_zp", "y_s",
                                            "y_zp", "B"], ["Y"], pads=[1, 1, 1, 1],
                            kernel_shape=[3, 3])
    t = _tensor_type(act)
    sess = _session([node], [helper.make_tensor_value_info("X", t, list(x.shape))],
                    [helper.make_tensor_value_info("Y", t, None)],
                    [_init("x_s", x_scale), _init("x_zp", x_zp), _init("W", w),
                     _init("w_s", w_scale), _init("w_zp", np.zeros(c_out, np.int8)),
                     _init("y_s", y_scale), _init("y_zp", y_zp),
                     _init("B", bias.astype(np.int32))])
    got = sess.run(None, {"X": x})[0]
    # exact integer convolution as a GEMM of the padded input's patches
    xp = np.pad(x[0].astype(np.int64) - int(x_zp), ((0, 0), (1, 1), (1, 1)))
    patches = np.stack([xp[:, i:i + hw, j:j + hw] for i in range(3) for j in range(3)], 1)
    cols = patches.reshape(c_in * 9, hw * hw)  # (c, kh, kw) order, like W's
    acc = (w.reshape(c_out, -1).astype(np.int64) @ cols).T        # (pixels, channels)
    want = quant.requantize_float32(acc, bias, scale, int(y_zp), out_signed=signed)
    want = want.T.reshape(1, c_out, hw, hw)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"seed {seed}: {len(bad)} outputs differ, first at {bad[0]}: "
                           f"onnxruntime {got[tuple(bad[0])]}, rule {want[tuple(bad[0])]}")
    seen = _corners(acc, bias, scale, int(y_zp), lo, hi)
    assert all(v > 0 for v in seen.values()), f"seed {seed}: corners not reached: {seen}"


@pytest.mark.parametrize("act", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qlinearmatmul_equals_the_float32_rule(act, seed):
    """QLinearMatMul (no bias): a long K so that sums pass 2**24, per-column scales, ties."""
    rng = np.random.default_rng(seed)
    signed = act is np.int8
    lo, hi = quant.output_range(signed)
    m, k, n = 32, 3000, 6
    a = np.where(rng.random((m, k)) < 0.7, hi, rng.integers(lo, hi + 1, (m, k))).astype(act)
    w = rng.integers(-63, 64, (k, n)).astype(np.int8)
    w[:, 3:] = np.where(rng.random((k, n - 3)) < 0.8, 63, w[:, 3:])  # large positive sums
    w[:, 3] = -w[:, 3]                                                # and large negative
    a[:, :2] = rng.integers(lo, hi + 1, (m, 2))
    w[:, :3] = 0  # the tie channels: small sums, so that the ties show
    w[:2, :2] = rng.integers(1, 3, (2, 2)) * rng.choice([-1, 1], (2, 2))
    w[0, 0] = rng.choice([-1, 1])  # odd: about half the 0.5 channel's sums are ties
    w[:2, 2] = (63, -63)  # the saturating channel: sums of both signs
    a_zp = act(lo)
    y_zp = act(rng.integers(lo + 40, hi - 40))
    x_scale, w_scale, y_scale = _scales(rng, n, signed)
    for c in range(3, n):  # sums of about 2**25: scales near 100 / 2**25
        w_scale[c] = np.float32(100.0 / 2 ** 25 * rng.uniform(0.5, 1.5)) * y_scale / x_scale
    scale = quant.float32_scale(x_scale, w_scale, y_scale)
    node = helper.make_node("QLinearMatMul", ["A", "a_s", "a_zp", "B", "b_s", "b_zp", "y_s",
                                              "y_zp"], ["Y"])
    t = _tensor_type(act)
    sess = _session([node], [helper.make_tensor_value_info("A", t, [m, k])],
                    [helper.make_tensor_value_info("Y", t, [m, n])],
                    [_init("a_s", x_scale), _init("a_zp", a_zp), _init("B", w),
                     _init("b_s", w_scale), _init("b_zp", np.zeros(n, np.int8)),
                     _init("y_s", y_scale), _init("y_zp", y_zp)])
    got = sess.run(None, {"A": a})[0]
    acc = (a.astype(np.int64) - int(a_zp)) @ w.astype(np.int64)
    assert np.abs(acc).max() < I32 and (np.abs(acc) > 1 << 24).any()
    want = quant.requantize_float32(acc, 0, scale, int(y_zp), out_signed=signed)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"seed {seed}: {len(bad)} outputs differ, first at {bad[0]}: "
                           f"onnxruntime {got[tuple(bad[0])]}, rule {want[tuple(bad[0])]}")
    seen = _corners(acc, 0, scale, int(y_zp), lo, hi)
    seen.pop("wrapped")
    assert all(v > 0 for v in seen.values()), f"seed {seed}: corners not reached: {seen}"
