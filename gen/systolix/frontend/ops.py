"""The host side of a quantized model in numpy: quantize, dequantize, im2col, pooling, shape
ops and the exact integer reference of a GEMM layer (onnxruntime's float32 requantization).

Every function here reproduces what onnxruntime's CPU kernels compute, bit for bit, on the
integer tensors; ``tests/frontend`` compares them with onnxruntime itself.
"""

from __future__ import annotations

import platform

import numpy as np

from ..model.quant import float32_scale, requantize_float32

__all__ = ["QTYPES", "qrange", "quantize_linear", "dequantize_linear", "output_scale",
           "requantize_f32", "im2col", "conv_output_size", "max_pool", "average_pool",
           "requantize_tensor", "add", "global_average_pool", "QDQ_INT8_AS_UINT8",
           "in_uint8"]

#: The 8-bit tensor types of a quantized model, by numpy dtype name.
QTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


#: onnxruntime on x86 CPUs rewrites a QDQ model's int8 activations as uint8 (its
#: ``QDQS8ToU8Transformer``: every int8 QuantizeLinear / DequantizeLinear pair gets the value
#: and zero point plus 128) before fusing node units into quantized kernels; on Arm it keeps
#: int8. The GEMM kernels and QuantizeLinear add the zero point after rounding, so the shift
#: changes nothing there; QLinearAdd and QLinearAveragePool add it in float32 before rounding,
#: so their results depend on it (:func:`in_uint8`).
QDQ_INT8_AS_UINT8 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def in_uint8(fn, *zero_points):
    """``fn`` (a host kernel on int8 tensors) computed as onnxruntime runs it after rewriting
    int8 as uint8: the returned function shifts the int8 inputs by +128, calls
    ``fn(*inputs, zero_points=shifted, dtype="uint8")`` and shifts the uint8 result back."""
    shifted = [int(z) + 128 for z in zero_points]

    def run(*vs):
        u = [(np.asarray(v, np.int16) + 128).astype(np.uint8) for v in vs]
        return (fn(*u, zero_points=shifted, dtype="uint8").astype(np.int16) - 128).astype(
            np.int8)
    return run


def qrange(dtype):
    """``(min, max)`` of an 8-bit type (numpy dtype or its name)."""
    return QTYPES[np.dtype(dtype).name]


def quantize_linear(x, scale, zero_point, dtype):
    """onnxruntime's QuantizeLinear (per tensor): ``x / scale`` in float32, rounded half to
    even, plus the zero point, saturated."""
    lo, hi = qrange(dtype)
    q = np.rint(np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    return np.clip(q + int(zero_point), lo, hi).astype(dtype)


def dequantize_linear(q, scale, zero_point):
    """onnxruntime's DequantizeLinear (per tensor): ``float32(q - zp) * scale``."""
    return ((np.asarray(q, np.int32) - np.int32(zero_point)).astype(np.float32)
            * np.float32(scale))


def output_scale(x_scale, w_scale, y_scale):
    """The float32 multiplier of a quantized GEMM as onnxruntime's kernels compute it
    (:func:`systolix.model.quant.float32_scale`), per output channel."""
    return float32_scale(x_scale, w_scale, y_scale)


def requantize_f32(acc, bias, scale, zero_point, lo, hi, out_signed):
    """int32 accumulators -> 8-bit values by onnxruntime's rule
    (:func:`systolix.model.quant.requantize_float32`), as int64; ``bias`` and ``scale`` per
    column of ``acc``."""
    return requantize_float32(acc, bias, scale, zero_point, lo, hi, out_signed).astype(np.int64)


def conv_output_size(size, kernel, stride, pad_begin, pad_end, dilation):
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kernel, strides, pads, dilations, pad_value):
    """(N, C, H, W) -> (N * OH * OW, C * KH * KW) rows, K in the order of a weight tensor
    ``W.reshape(M, -1)`` (channel, then kernel row, then kernel column); padding takes
    ``pad_value`` (the input's zero point: a real zero)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    pt, pl, pb, pr = pads
    oh = conv_output_size(h, kh, sh, pt, pb, dh)
    ow = conv_output_size(w, kw, sw, pl, pr, dw)
    xp = np.full((n, c, h + pt + pb, w + pl + pr), pad_value, dtype=np.int64)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    cols = np.empty((n, oh, ow, c, kh, kw), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                       j * dw:j * dw + sw * (ow - 1) + 1:sw]
            cols[:, :, :, :, i, j] = patch.transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kh * kw), (n, oh, ow)


def _pool_windows(x, kernel, strides, pads, fill):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = kernel, strides
    pt, pl, pb, pr = pads
    oh = conv_output_size(h, kh, sh, pt, pb, 1)
    ow = conv_output_size(w, kw, sw, pl, pr, 1)
    xp = np.full((n, c, h + pt + pb, w + pl + pr), fill, dtype=np.float64)
    xp[:, :, pt:pt + h, pl:pl + w] = x
    win = np.empty((kh * kw, n, c, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            win[i * kw + j] = xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return win


def max_pool(x, kernel, strides, pads):
    """MaxPool on an 8-bit tensor (exact: max commutes with a monotone dequantization)."""
    win = _pool_windows(x, kernel, strides, pads, -np.inf)
    return win.max(axis=0).astype(x.dtype)


def global_average_pool(x, x_scale, x_zp, y_scale, y_zp, dtype):
    """onnxruntime's QLinearGlobalAveragePool (its MLAS kernel), which its QLinearAveragePool
    also runs when the window is the whole image and there is no padding: per image and
    channel the integer sum minus ``x_zp * size``, converted to float32, times the float32
    scale ``x_scale / (y_scale * size)``, rounded half to even, plus ``y_zp``, saturated. The
    zero point is added after the rounding, so a tie rounds otherwise than in
    :func:`average_pool`."""
    n, c = x.shape[:2]
    size = int(np.prod(x.shape[2:]))
    scale = np.float32(x_scale) / (np.float32(y_scale) * np.float32(size))
    acc = np.asarray(x, np.int64).reshape(n, c, size).sum(axis=2) - int(x_zp) * size
    y = np.rint(acc.astype(np.float32) * scale).astype(np.float64) + int(y_zp)
    lo, hi = qrange(dtype)
    return np.clip(y, lo, hi).astype(dtype).reshape(n, c, *[1] * (x.ndim - 2))


def average_pool(x, kernel, strides, pads, count_include_pad, x_scale, x_zp, y_scale, y_zp,
                 dtype):
    """onnxruntime's QLinearAveragePool (onnxruntime also fuses a QDQ AveragePool into it):
    each value dequantized to float32 (``x_scale * (x - x_zp)``), the window summed in float32
    in row-major order, divided by the count, then ``nearbyint(y / y_scale + y_zp)``
    saturated. A window that is the whole image, without padding, is
    :func:`global_average_pool`, as in onnxruntime."""
    if tuple(kernel) == tuple(x.shape[2:]) and not any(pads):
        return global_average_pool(x, x_scale, x_zp, y_scale, y_zp, dtype)
    xf = np.float32(x_scale) * (np.asarray(x, np.int32) - np.int32(x_zp)).astype(np.float32)
    n, c, h, w = xf.shape
    (kh, kw), (sh, sw) = kernel, strides
    pt, pl, pb, pr = pads
    oh = conv_output_size(h, kh, sh, pt, pb, 1)
    ow = conv_output_size(w, kw, sw, pl, pr, 1)
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr), np.float32)
    xp[:, :, pt:pt + h, pl:pl + w] = xf
    valid = np.zeros((h + pt + pb, w + pl + pr), np.float32)
    valid[pt:pt + h, pl:pl + w] = 1
    total = np.zeros((n, c, oh, ow), np.float32)
    count = np.zeros((oh, ow), np.float32)
    for i in range(kh):
        for j in range(kw):
            total = total + xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            count = count + valid[i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    if count_include_pad:
        count = np.full_like(count, kh * kw)
    y = np.rint(total / count / np.float32(y_scale) + np.float32(y_zp))
    lo, hi = qrange(dtype)
    return np.clip(y, lo, hi).astype(dtype)


def requantize_tensor(q, scale, zp, y_scale, y_zp, dtype):
    """An 8-bit tensor moved to other quantization parameters: dequantize, then quantize (the
    lookup table onnxruntime builds for such moves)."""
    if float(np.float32(scale)) == float(np.float32(y_scale)) and int(zp) == int(y_zp) \
            and np.dtype(dtype) == q.dtype:
        return q
    return quantize_linear(dequantize_linear(q, scale, zp), y_scale, y_zp, dtype)


def _fma32(x, y, z):
    """float32 ``x * y + z`` rounded once (a fused multiply-add), for ``x`` 8-bit integers and
    float32 ``y``, ``z`` of the sizes requantization meets: the product (at most 32 significant
    bits) and the sum are exact in float64, so one rounding to float32 remains."""
    return (np.asarray(x, np.float64) * np.float64(y) + np.asarray(z, np.float64)).astype(
        np.float32)


def add(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, dtype):
    """QLinearAdd as onnxruntime's AVX2 kernel computes it (a QDQ Add is fused into it): the
    ratios ``ra = a_scale / y_scale``, ``rb = b_scale / y_scale`` and the fixed part
    ``y_zp - fma(ra, a_zp, rb * b_zp)`` in float32, then per element
    ``fma(a, ra, fma(b, rb, fixed))``, rounded half to even, saturated. An input of one
    element is folded into the fixed part first (``fixed + x * r``, two roundings), as the
    kernel does (numpy broadcasting otherwise)."""
    f32 = np.float32
    ra, rb = f32(a_scale) / f32(y_scale), f32(b_scale) / f32(y_scale)
    fixed = f32(y_zp) - _fma32(a_zp, ra, f32(rb * f32(b_zp)))
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 1:
        fixed = f32(fixed + f32(f32(a.reshape(-1)[0]) * ra))
        t = _fma32(b, rb, fixed) + np.zeros(np.broadcast_shapes(a.shape, b.shape), np.float32)
    elif b.size == 1:
        fixed = f32(fixed + f32(f32(b.reshape(-1)[0]) * rb))
        t = _fma32(a, ra, fixed) + np.zeros(np.broadcast_shapes(a.shape, b.shape), np.float32)
    else:
        t = _fma32(a, ra, _fma32(b, rb, fixed))
    lo, hi = qrange(dtype)
    return np.clip(np.rint(t), lo, hi).astype(dtype)

