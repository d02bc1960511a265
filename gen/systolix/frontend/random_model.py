"""Random quantized models with fresh weights: other shapes, strides, paddings, per-channel
or per-tensor weights, int8 or uint8 activations, both of onnxruntime's formats.

Used by the tests to show that models the project has never seen give onnxruntime's exact
output too.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["RandomModelSpec", "random_spec", "float_model", "quantized_model",
           "calibration_input", "grouped_conv_model", "shape_ops_model", "relu_model"]


@dataclass(frozen=True)
class RandomModelSpec:
    seed: int
    channels: int
    size: int
    convs: tuple          # (out_channels, kernel, stride, pad, relu) per conv
    pool: str             # "max", "avg" or "none"
    residual: bool        # an Add of the last conv's output with a second conv of it
    dense: int            # outputs of the final Gemm / MatMul
    matmul: bool          # MatMul instead of Gemm
    fmt: str              # "qop" or "qdq"
    per_channel: bool
    activations: str      # "int8" or "uint8"

    @property
    def onnxruntime_float32(self):
        """The nodes onnxruntime leaves in float32 (QDQ node units it does not fuse into
        quantized kernels): with int8 activations in QDQ, the node units around a tensor that
        two nodes consume, i.e. the residual block's last convolution, its second convolution
        and the Add. Empty for every other spec: onnxruntime runs the model fully quantized."""
        if self.fmt == "qdq" and self.activations == "int8" and self.residual:
            return {f"conv{len(self.convs) - 1}", "conv_res", "add"}
        return set()


def random_spec(seed, fmt=None, activations=None, per_channel=None, residual=None,
                fully_quantized=False):
    """A random spec from ``seed``; ``fmt``, ``activations``, ``per_channel`` and ``residual``
    fix those choices. ``fully_quantized``: no residual block where onnxruntime would leave
    node units in float32 (:attr:`RandomModelSpec.onnxruntime_float32`), so its output is the
    quantized arithmetic."""
    rng = np.random.default_rng(seed)
    convs = []
    size = int(rng.integers(6, 11))
    s = size
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.choice([1, 2, 3, 5]))
        stride = int(rng.choice([1, 1, 2]))
        pad = int(rng.integers(0, k // 2 + 2))
        if (s + 2 * pad - k) // stride + 1 < 2:
            k, stride, pad = 1, 1, 0
        convs.append((int(rng.integers(2, 13)), k, stride, pad, bool(rng.integers(0, 2))))
        s = (s + 2 * pad - k) // stride + 1
    pool = str(rng.choice(["max", "avg", "none"])) if s >= 2 else "none"
    channels, drawn_residual = int(rng.integers(1, 4)), bool(rng.integers(0, 2))
    spec = RandomModelSpec(
        seed, channels, size, tuple(convs), pool,
        drawn_residual if residual is None else residual,
        int(rng.integers(2, 20)), bool(rng.integers(0, 2)),
        fmt or str(rng.choice(["qop", "qdq"])),
        bool(rng.integers(0, 2)) if per_channel is None else per_channel,
        activations or str(rng.choice(["int8", "uint8"])))
    if fully_quantized and spec.onnxruntime_float32:
        spec = dataclasses.replace(spec, residual=False)
    return spec


def float_model(spec):
    """The float32 ONNX model of ``spec`` (random weights from its seed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(spec.seed + 1)
    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    x, c, s = "input", spec.channels, spec.size
    for i, (oc, k, stride, pad, relu) in enumerate(spec.convs):
        w = init(f"w{i}", rng.normal(0, 1 / np.sqrt(c * k * k), (oc, c, k, k)))
        b = init(f"b{i}", rng.normal(0, 0.1, oc))
        nodes.append(helper.make_node("Conv", [x, w, b], [f"c{i}"], name=f"conv{i}",
                                      kernel_shape=[k, k], strides=[stride, stride],
                                      pads=[pad] * 4))
        x, c, s = f"c{i}", oc, (s + 2 * pad - k) // stride + 1
        if relu:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"], name=f"relu{i}"))
            x = f"r{i}"
    if spec.residual:
        w = init("wres", rng.normal(0, 1 / np.sqrt(c * 9), (c, c, 3, 3)))
        nodes.append(helper.make_node("Conv", [x, w], ["res"], name="conv_res",
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Add", [x, "res"], ["sum"], name="add"))
        x = "sum"
    if spec.pool != "none":
        op = "MaxPool" if spec.pool == "max" else "AveragePool"
        nodes.append(helper.make_node(op, [x], ["pool"], name="pool", kernel_shape=[2, 2],
                                      strides=[2, 2]))
        x, s = "pool", s // 2
    nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    features = c * s * s
    if spec.matmul:
        w = init("wd", rng.normal(0, 1 / np.sqrt(features), (features, spec.dense)))
        nodes.append(helper.make_node("MatMul", ["flat", w], ["out"], name="dense"))
    else:
        w = init("wd", rng.normal(0, 1 / np.sqrt(features), (spec.dense, features)))
        b = init("bd", rng.normal(0, 0.1, spec.dense))
        nodes.append(helper.make_node("Gemm", ["flat", w, b], ["out"], name="dense", transB=1))
    graph = helper.make_graph(
        nodes, "random",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                       ["N", spec.channels, spec.size, spec.size])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", spec.dense])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def calibration_input(spec, count=32, seed=None):
    rng = np.random.default_rng(spec.seed + 2 if seed is None else seed)
    return rng.normal(0, 1, (count, spec.channels, spec.size, spec.size)).astype(np.float32)


def quantized_model(spec, out_path):
    """Quantize ``float_model(spec)`` with onnxruntime's ``quantize_static``
    (``reduce_range=True``) into ``out_path``; returns the path."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    logging.getLogger().setLevel(logging.ERROR)
    data = calibration_input(spec)

    class Reader:
        def __init__(self):
            self.it = iter([{"input": data[i:i + 8]} for i in range(0, len(data), 8)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        onnx.save(float_model(spec), fp)
        act = QuantType.QInt8 if spec.activations == "int8" else QuantType.QUInt8
        quantize_static(str(fp), str(out_path), Reader(),
                        quant_format=QuantFormat.QOperator if spec.fmt == "qop"
                        else QuantFormat.QDQ,
                        per_channel=spec.per_channel, reduce_range=True,
                        activation_type=act, weight_type=QuantType.QInt8)
    return Path(out_path)


def grouped_conv_model(seed, fmt, out_path):
    """One grouped (2 groups), dilated (1, 2), strided (2, 1) convolution with asymmetric
    padding (1, 0, 2, 1), input (N, 4, 9, 9), quantized per channel with int8 activations in
    ``fmt``; returns ``(path, input of 3 images)``."""
    import logging

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    logging.getLogger().setLevel(logging.ERROR)
    rng = np.random.default_rng(seed)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["c"], name="gconv", group=2,
                            kernel_shape=[3, 3], strides=[2, 1], dilations=[1, 2],
                            pads=[1, 0, 2, 1])
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (6, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b")]
    graph = helper.make_graph(
        [conv], "grouped", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                          ["N", 4, 9, 9])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = rng.normal(0, 1, (16, 4, 9, 9)).astype(np.float32)

    class Reader:
        def __init__(self):
            self.it = iter([{"x": data[i:i + 4]} for i in range(0, 16, 4)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        onnx.save(model, fp)
        quantize_static(str(fp), str(out_path), Reader(),
                        quant_format=QuantFormat.QOperator if fmt == "qop" else QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
    return Path(out_path), data[:3]


def shape_ops_model(seed, fmt, activations, out_path):
    """Two MatMuls of one input, ``Concat`` -> ``Reshape`` -> ``Transpose`` -> ``Flatten`` ->
    ``Add`` of a third MatMul's output -> ``MatMul``: the host ops between GEMM layers,
    quantized in ``fmt`` with ``activations``; returns ``(path, input of 4 rows)``."""
    import logging

    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    logging.getLogger().setLevel(logging.ERROR)
    rng = np.random.default_rng(seed)

    def w(name, *shape):
        return numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)
    inits = [w("wa", 5, 6), w("wb", 5, 6), w("wc", 5, 12), w("wd", 12, 3),
             numpy_helper.from_array(np.array([0, 2, 6], np.int64), "shape")]
    nodes = [helper.make_node("MatMul", ["x", "wa"], ["a"], name="mm_a"),
             helper.make_node("MatMul", ["x", "wb"], ["b"], name="mm_b"),
             helper.make_node("MatMul", ["x", "wc"], ["c"], name="mm_c"),
             helper.make_node("Concat", ["a", "b"], ["ab"], name="concat", axis=1),
             helper.make_node("Reshape", ["ab", "shape"], ["r"], name="reshape"),
             helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
             helper.make_node("Flatten", ["t"], ["f"], name="flatten", axis=1),
             helper.make_node("Add", ["f", "c"], ["s"], name="add"),
             helper.make_node("MatMul", ["s", "wd"], ["y"], name="mm_d")]
    graph = helper.make_graph(
        nodes, "shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    data = rng.normal(0, 1, (32, 5)).astype(np.float32)

    class Reader:
        def __init__(self):
            self.it = iter([{"x": data[i:i + 8]} for i in range(0, 32, 8)])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        onnx.save(model, fp)
        quantize_static(str(fp), str(out_path), Reader(),
                        quant_format=QuantFormat.QOperator if fmt == "qop" else QuantFormat.QDQ,
                        per_channel=False, reduce_range=True,
                        activation_type=QuantType.QInt8 if activations == "int8"
                        else QuantType.QUInt8, weight_type=QuantType.QInt8)
    return Path(out_path), data[:4]


def relu_model(seed, activations, placement, out_path, channels=3):
    """A QDQ convolution followed by a Relu that is not redundant: the Relu's output is
    quantized with a zero point above the type's minimum, so quantizing alone does not clamp
    at zero. Written by hand (onnxruntime's quantizer calibrates a Relu's output to start at
    zero, making it redundant), with random 7-bit weights, per-channel scales and an int32
    bias.

    ``placement``: ``"requantized"``: Conv -> QuantizeLinear -> DequantizeLinear -> Relu ->
    QuantizeLinear with other parameters (a host Relu between two quantizations; what
    ``quantize_static`` writes with symmetric activations); ``"fused"``: Conv -> Relu ->
    QuantizeLinear (the Relu folded into the layer's clamp). Returns ``(path, input of 6
    images (N, channels, 7, 7))``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    if placement not in ("requantized", "fused"):
        raise ValueError(f"placement must be 'requantized' or 'fused', not {placement!r}")
    if activations not in ("int8", "uint8"):
        raise ValueError(f"activations must be 'int8' or 'uint8', not {activations!r}")
    rng = np.random.default_rng(seed)
    dtype = np.int8 if activations == "int8" else np.uint8
    qmin = int(np.iinfo(dtype).min)
    out_channels, size = 5, 7
    inits = []

    def init(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def zero_point(offset):
        return np.array(qmin + offset, dtype)

    x_scale = np.float32(rng.uniform(0.01, 0.03))
    w_scale = rng.uniform(0.002, 0.01, out_channels).astype(np.float32)
    init("x_scale", x_scale)
    init("x_zp", zero_point(int(rng.integers(100, 156))))
    init("w", rng.integers(-63, 64, (out_channels, channels, 3, 3)).astype(np.int8))
    init("w_scale", w_scale)
    init("w_zp", np.zeros(out_channels, np.int8))
    init("b", rng.integers(-2000, 2000, out_channels).astype(np.int32))
    init("b_scale", (x_scale * w_scale).astype(np.float32))
    init("b_zp", np.zeros(out_channels, np.int32))
    # the Relu's output: zero point well above the minimum, so negative values are clamped
    # by the Relu, not by the quantization
    init("y_scale", np.float32(rng.uniform(0.03, 0.06)))
    init("y_zp", zero_point(int(rng.integers(40, 90))))
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xd"], name="dqx"),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zp"], ["wd"], name="dqw",
                              axis=0),
             helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zp"], ["bd"], name="dqb",
                              axis=0),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["conv"], name="conv",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    relu_in = "conv"
    if placement == "requantized":
        init("c_scale", np.float32(rng.uniform(0.02, 0.04)))
        init("c_zp", zero_point(int(rng.integers(110, 146))))
        nodes += [helper.make_node("QuantizeLinear", ["conv", "c_scale", "c_zp"], ["cq"],
                                   name="qc"),
                  helper.make_node("DequantizeLinear", ["cq", "c_scale", "c_zp"], ["cd"],
                                   name="dqc")]
        relu_in = "cd"
    nodes += [helper.make_node("Relu", [relu_in], ["relu"], name="relu"),
              helper.make_node("QuantizeLinear", ["relu", "y_scale", "y_zp"], ["yq"], name="qy"),
              helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zp"], ["y"], name="dqy")]
    graph = helper.make_graph(
        nodes, "relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      ["N", channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       ["N", out_channels, size, size])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))
    return Path(out_path), rng.normal(0, 1.5, (6, channels, size, size)).astype(np.float32)
