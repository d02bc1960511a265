"""Load a quantized ONNX model and lower it to a :class:`~systolix.frontend.plan.Plan`.

Both formats of onnxruntime's quantizer are read: QOperator (``QLinearConv``,
``QLinearMatMul``, ``QGemm``, ``QLinearAdd``, ...) and QDQ (``QuantizeLinear`` /
``DequantizeLinear`` around float ``Conv``, ``Gemm``, ``MatMul``, ...). Each problem found is
a :class:`~systolix.errors.SystolixError` in one line naming the node, raised before anything
runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SystolixError
from . import ops
from .plan import ConvGeometry, GemmLayer, HostStep, Plan, QParams

__all__ = ["load_model", "lower", "load_plan", "SUPPORTED_OPS"]

#: Ops the lowering understands (QOperator, QDQ and host ops).
SUPPORTED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm",
    "QLinearAdd", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat",
    "Conv", "Gemm", "MatMul", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Add",
    "Flatten", "Reshape", "Concat", "Transpose", "Constant", "Identity"})

_COMPUTE = {"Conv", "Gemm", "MatMul"}


def load_model(path):
    """Read and check an ONNX file; one-line :class:`SystolixError` if it cannot be used."""
    import onnx
    path = Path(path)
    if not path.is_file():
        raise SystolixError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf's DecodeError, onnx's ValidationError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SystolixError(f"{path}: not a valid ONNX model ({first})") from None
    return model


def load_plan(path):
    """:func:`load_model` then :func:`lower`."""
    return lower(load_model(path), Path(path).name)


class _Lowering:
    def __init__(self, model, label):
        from onnx import numpy_helper
        self.label = label
        g = model.graph
        self.graph = g
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                for a in node.attribute:
                    if a.name == "value":
                        self.consts[node.output[0]] = numpy_helper.to_array(a.t)
        self.consumers = {}
        for node in g.node:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)
        self.outputs = [o.name for o in g.output]
        self.qinfo = {}       # quantized activation -> QParams
        self.alias = {}       # float tensor (DequantizeLinear of an activation) -> quantized
        self.dq_consts = {}   # float constant from DequantizeLinear -> (q, scale, zp, axis)
        self.done = set()     # nodes consumed by a look-ahead (id)
        self.steps = []

    # --- helpers --------------------------------------------------------------------------

    def fail(self, node, msg):
        raise SystolixError(f"{self.label}: node '{node.name or node.output[0]}' "
                            f"({node.op_type}): {msg}")

    def attrs(self, node):
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node, name, what):
        if name not in self.consts:
            self.fail(node, f"{what} '{name}' must be a constant (an initializer)")
        return self.consts[name]

    def scalar_qparams(self, node, scale_name, zp_name, what):
        scale = np.asarray(self.const(node, scale_name, f"{what} scale"), np.float32)
        if scale.size != 1:
            self.fail(node, f"{what} must be quantized per tensor, not per axis")
        if zp_name:
            zp = np.asarray(self.const(node, zp_name, f"{what} zero point"))
            dtype = zp.dtype.name
            zp = int(zp.reshape(-1)[0]) if zp.size == 1 else None
            if zp is None:
                self.fail(node, f"{what} must be quantized per tensor, not per axis")
        else:
            zp, dtype = 0, "uint8"
        if dtype not in ops.QTYPES:
            self.fail(node, f"{what} must be int8 or uint8, not {dtype}")
        if not np.isfinite(scale).all() or float(scale.reshape(-1)[0]) <= 0:
            self.fail(node, f"{what} scale must be positive and finite")
        return QParams(float(scale.reshape(-1)[0]), zp, dtype)

    def activation(self, node, name):
        """The quantized activation behind input ``name`` (QOperator: itself; QDQ: the
        tensor a DequantizeLinear read)."""
        if name in self.qinfo:
            return name
        if name in self.alias:
            return self.alias[name]
        if name in self.consts or name in self.dq_consts:
            self.fail(node, f"input '{name}' is a constant where an activation is expected")
        self.fail(node, f"input '{name}' is a float tensor: the model is not quantized "
                        f"(quantize it with onnxruntime.quantization.quantize_static)")

    def quantized_output(self, node, allow_relu=False):
        """The QuantizeLinear that quantizes a QDQ node's float output (through a Relu if
        ``allow_relu``): ``(q_node, relu)``."""
        out = node.output[0]
        relu = False
        users = self.consumers.get(out, [])
        if allow_relu and len(users) == 1 and users[0].op_type == "Relu" \
                and out not in self.outputs:
            relu = True
            self.done.add(id(users[0]))
            out = users[0].output[0]
            users = self.consumers.get(out, [])
        if out in self.outputs or len(users) != 1 or users[0].op_type != "QuantizeLinear":
            self.fail(node, "its float output must go to exactly one QuantizeLinear (a QDQ "
                            "model as onnxruntime's quantizer writes it)")
        q = users[0]
        self.done.add(id(q))
        return q, relu

    def q_of(self, q_node):
        return self.scalar_qparams(q_node, q_node.input[1],
                                   q_node.input[2] if len(q_node.input) > 2 else "",
                                   "the output")

    def new_q(self, name, qp):
        self.qinfo[name] = qp
        return name

    def host(self, node, op, inputs, y, fn, qp):
        self.steps.append(HostStep(node.name or y, op, inputs, y, fn))
        self.new_q(y, qp)

    # --- weights ----------------------------------------------------------------------------

    def weights(self, node, w, w_scale, w_zp, axis, what="weights"):
        """``w - w_zp`` as int64 and float32 scales per output channel (``axis``)."""
        w = np.asarray(w)
        if w.dtype.name not in ops.QTYPES:
            self.fail(node, f"{what} must be int8 or uint8, not {w.dtype.name}")
        channels = w.shape[axis]
        scale = np.asarray(w_scale, np.float32).reshape(-1)
        zp = np.zeros(1, np.int64) if w_zp is None else np.asarray(w_zp, np.int64).reshape(-1)
        for arr, name in ((scale, "scale"), (zp, "zero point")):
            if arr.size not in (1, channels):
                self.fail(node, f"{what} {name} has {arr.size} values for {channels} channels")
        if not np.isfinite(scale).all() or (scale <= 0).any():
            self.fail(node, f"{what} scales must be positive and finite")
        shape = [1] * w.ndim
        shape[axis] = -1
        centred = w.astype(np.int64) - zp.reshape(shape if zp.size > 1 else [1] * w.ndim)
        if centred.min() < -128 or centred.max() > 127:
            self.fail(node, f"{what} minus their zero point leave the int8 range "
                            f"[{centred.min()}, {centred.max()}]; the engine multiplies int8")
        return centred, np.broadcast_to(scale, (channels,)).astype(np.float32)

    def bias(self, node, b, channels):
        if b is None:
            return np.zeros(channels, np.int64)
        b = np.asarray(b)
        if b.dtype != np.int32:
            self.fail(node, f"the bias must be int32, not {b.dtype}")
        if b.size != channels:
            self.fail(node, f"the bias has {b.size} values for {channels} channels")
        return b.astype(np.int64).reshape(-1)

    def dq_const(self, node, name, what):
        if name in self.dq_consts:
            return self.dq_consts[name]
        if name in self.consts:
            arr = self.consts[name]
            if np.issubdtype(arr.dtype, np.floating):
                self.fail(node, f"{what} '{name}' are float: the model is not quantized "
                                f"(quantize it with onnxruntime.quantization.quantize_static)")
        self.fail(node, f"{what} '{name}' must be a quantized constant (DequantizeLinear of "
                        f"an initializer)")

    def gemm_layer(self, node, op, x, y, x_q, y_q, w_kn, scale_w, bias, relu, conv=None,
                   group=1):
        scale = ops.output_scale(x_q.scale, scale_w, y_q.scale)
        if not np.isfinite(scale).all():
            self.fail(node, "its float32 requantization scale is not finite")
        lo, hi = y_q.range
        if relu:
            lo = max(lo, y_q.zero_point)
        n = w_kn.shape[1] // group
        layer = GemmLayer(node.name or y, op, x, y, x_q, y_q,
                          [w_kn[:, i * n:(i + 1) * n] for i in range(group)],
                          [bias[i * n:(i + 1) * n] for i in range(group)],
                          [scale[i * n:(i + 1) * n] for i in range(group)],
                          (lo, hi), conv, relu)
        self.steps.append(layer)
        self.new_q(y, y_q)

    def conv_geometry(self, node, w_shape):
        a = self.attrs(node)
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            self.fail(node, "auto_pad is not supported; give explicit pads")
        if len(w_shape) != 4:
            self.fail(node, f"only 2-D convolutions are supported, not {len(w_shape) - 2}-D")
        kernel = tuple(a.get("kernel_shape", w_shape[2:]))
        strides = tuple(a.get("strides", (1, 1)))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        pads = (pads[0], pads[1], pads[2], pads[3])
        dilations = tuple(a.get("dilations", (1, 1)))
        group = int(a.get("group", 1))
        if w_shape[0] % group:
            self.fail(node, f"{w_shape[0]} output channels do not split into {group} groups")
        return ConvGeometry(kernel, strides, pads, dilations, group)

    # --- node handlers --------------------------------------------------------------------

    def conv(self, node, x, x_q, w, w_scale, w_zp, b, y, y_q, relu):
        geo = self.conv_geometry(node, w.shape)
        centred, scale_w = self.weights(node, w, w_scale, w_zp, 0)
        cout = w.shape[0]
        w_kn = centred.reshape(cout, -1).T          # K = (cin/group) * kh * kw
        self.gemm_layer(node, node.op_type, x, y, x_q, y_q, w_kn, scale_w,
                        self.bias(node, b, cout), relu, geo, geo.group)

    def matmul(self, node, x, x_q, w, w_scale, w_zp, b, y, y_q, relu, trans_b):
        if w.ndim != 2:
            self.fail(node, f"the weights must be a 2-D matrix, not {w.ndim}-D")
        axis = 0 if trans_b else 1
        centred, scale_w = self.weights(node, w, w_scale, w_zp, axis)
        w_kn = centred.T if trans_b else centred
        self.gemm_layer(node, node.op_type, x, y, x_q, y_q, w_kn, scale_w,
                        self.bias(node, b, w_kn.shape[1]), relu)

    def gemm_attrs(self, node):
        a = self.attrs(node)
        if a.get("transA", 0):
            self.fail(node, "transA=1 is not supported")
        if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0:
            self.fail(node, "alpha and beta must be 1")
        return bool(a.get("transB", 0))

    def node(self, node):
        op = node.op_type
        inp = list(node.input) + [""] * 10
        if op in ("Constant",):
            return
        if op == "QuantizeLinear":
            x = node.input[0]
            qp = self.q_of(node)
            if x in self.alias or x in self.qinfo:
                src = self.activation(node, x)
                sq = self.qinfo[src]
                self.host(node, "Requantize", [src], node.output[0],
                          lambda q, sq=sq, qp=qp: ops.requantize_tensor(
                              q, sq.scale, sq.zero_point, qp.scale, qp.zero_point, qp.dtype),
                          qp)
                return
            if x != self.input_name:
                self.fail(node, f"quantizes '{x}', which is neither the model's input nor a "
                                f"quantized activation")
            self.host(node, "QuantizeLinear", [x], node.output[0],
                      lambda v, qp=qp: ops.quantize_linear(v, qp.scale, qp.zero_point,
                                                           qp.dtype), qp)
            return
        if op == "DequantizeLinear":
            x = node.input[0]
            if x in self.consts:
                a = self.attrs(node)
                self.dq_consts[node.output[0]] = (
                    self.consts[x], self.const(node, node.input[1], "scale"),
                    self.consts.get(inp[2]) if inp[2] else None, a.get("axis", 1))
                return
            src = self.activation(node, x)
            self.alias[node.output[0]] = src
            if node.output[0] in self.outputs:
                sq = self.qinfo[src]
                self.steps.append(HostStep(node.name or node.output[0], "DequantizeLinear",
                                           [src], node.output[0],
                                           lambda q, sq=sq: ops.dequantize_linear(
                                               q, sq.scale, sq.zero_point)))
            return
        if op == "QLinearConv":
            x = self.activation(node, inp[0])
            x_q = self.scalar_qparams(node, inp[1], inp[2], "the input")
            y_q = self.scalar_qparams(node, inp[6], inp[7], "the output")
            w = self.const(node, inp[3], "the weights")
            self.conv(node, x, x_q, w, self.const(node, inp[4], "weight scale"),
                      self.const(node, inp[5], "weight zero point") if inp[5] else None,
                      self.const(node, inp[8], "bias") if inp[8] else None,
                      node.output[0], y_q, False)
            return
        if op in ("QLinearMatMul", "QGemm"):
            x = self.activation(node, inp[0])
            x_q = self.scalar_qparams(node, inp[1], inp[2], "the input")
            if op == "QGemm":
                trans_b = self.gemm_attrs(node)
                if not inp[7]:
                    self.fail(node, "a float output (no y_scale) is not supported")
                y_q = self.scalar_qparams(node, inp[7], inp[8], "the output")
                b = self.const(node, inp[6], "bias") if inp[6] else None
            else:
                trans_b, b = False, None
                y_q = self.scalar_qparams(node, inp[6], inp[7], "the output")
            self.matmul(node, x, x_q, self.const(node, inp[3], "the weights"),
                        self.const(node, inp[4], "weight scale"),
                        self.const(node, inp[5], "weight zero point") if inp[5] else None,
                        b, node.output[0], y_q, False, trans_b)
            return
        if op in _COMPUTE:
            x = self.activation(node, inp[0])
            x_q = self.qinfo[x]
            wq, ws, wz, _ = self.dq_const(node, inp[1], "the weights")
            b = None
            if inp[2]:
                bq, _, bz, _ = self.dq_const(node, inp[2], "the bias")
                if bz is not None and np.any(np.asarray(bz) != 0):
                    self.fail(node, "the bias zero point must be 0")
                b = bq
            q, relu = self.quantized_output(node, allow_relu=True)
            y_q = self.q_of(q)
            if op == "Conv":
                self.conv(node, x, x_q, wq, ws, wz, b, q.output[0], y_q, relu)
            else:
                trans_b = self.gemm_attrs(node) if op == "Gemm" else False
                self.matmul(node, x, x_q, wq, ws, wz, b, q.output[0], y_q, relu, trans_b)
            return
        if op in ("MaxPool", "Flatten", "Reshape", "Transpose", "Identity", "Relu"):
            self.shape_op(node)
            return
        if op in ("Add", "QLinearAdd"):
            self.add(node, inp)
            return
        if op in ("AveragePool", "GlobalAveragePool", "QLinearAveragePool",
                  "QLinearGlobalAveragePool"):
            self.avg_pool(node, inp)
            return
        if op in ("Concat", "QLinearConcat"):
            self.concat(node, inp)
            return
        self.fail(node, "unsupported op")  # SUPPORTED_OPS and the handlers disagree

    def output_params(self, node, in_q):
        """QOperator: the output keeps the input's parameters; QDQ: the following
        QuantizeLinear's. Returns ``(output name, QParams, requantize from in_q?)``."""
        if node.input[0] in self.qinfo:
            return node.output[0], in_q
        q, _ = self.quantized_output(node)
        return q.output[0], self.q_of(q)

    def shape_op(self, node):
        op = node.op_type
        x = self.activation(node, node.input[0])
        xq = self.qinfo[x]
        y, yq = self.output_params(node, xq)
        a = self.attrs(node)
        if op == "MaxPool":
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") \
                    or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1])) \
                    or len(node.output) > 1 and node.output[1]:
                self.fail(node, "only auto_pad=NOTSET, ceil_mode=0, dilation 1 and one output "
                                "are supported")
            k = tuple(a["kernel_shape"])
            if len(k) != 2:
                self.fail(node, "only 2-D pooling is supported")
            s = tuple(a.get("strides", (1, 1)))
            p = tuple(a.get("pads", (0, 0, 0, 0)))
            fn = lambda v, k=k, s=s, p=p: ops.max_pool(v, k, s, p)
        elif op == "Flatten":
            axis = int(a.get("axis", 1))
            fn = lambda v, axis=axis: v.reshape(
                int(np.prod(v.shape[:axis])), -1) if axis else v.reshape(1, -1)
        elif op == "Reshape":
            shape = np.asarray(self.const(node, node.input[1], "the shape"), np.int64)
            if a.get("allowzero", 0):
                self.fail(node, "allowzero=1 is not supported")

            def fn(v, shape=shape):
                target = [v.shape[i] if d == 0 else int(d) for i, d in enumerate(shape)]
                return v.reshape(target)
        elif op == "Transpose":
            perm = a.get("perm")
            fn = lambda v, perm=perm: np.transpose(v, perm)
        elif op == "Relu":
            fn = lambda v, zp=xq.zero_point: np.maximum(v, np.asarray(zp, v.dtype))
        else:
            fn = lambda v: v
        if yq != xq:
            inner = fn
            fn = lambda v, inner=inner, yq=yq: ops.requantize_tensor(
                inner(v), xq.scale, xq.zero_point, yq.scale, yq.zero_point, yq.dtype)
        self.host(node, op, [x], y, fn, yq)

    def add(self, node, inp):
        if node.op_type == "QLinearAdd":
            a, b = (self.activation(node, inp[0]), self.activation(node, inp[3]))
            aq = self.scalar_qparams(node, inp[1], inp[2], "input A")
            bq = self.scalar_qparams(node, inp[4], inp[5], "input B")
            y, yq = node.output[0], self.scalar_qparams(node, inp[6], inp[7], "the output")
        else:
            a, b = self.activation(node, inp[0]), self.activation(node, inp[1])
            aq, bq = self.qinfo[a], self.qinfo[b]
            q, _ = self.quantized_output(node)
            y, yq = q.output[0], self.q_of(q)
        fn = lambda u, v: ops.add(u, aq.scale, aq.zero_point, v, bq.scale, bq.zero_point,
                                  yq.scale, yq.zero_point, yq.dtype)
        if node.op_type == "Add" and self.int8_as_uint8(aq, bq, yq):
            fn = ops.in_uint8(lambda u, v, zero_points, dtype: ops.add(
                u, aq.scale, zero_points[0], v, bq.scale, zero_points[1], yq.scale,
                zero_points[2], dtype), aq.zero_point, bq.zero_point, yq.zero_point)
        self.host(node, "Add", [a, b], y, fn, yq)

    @staticmethod
    def int8_as_uint8(*qparams):
        """Whether onnxruntime computes a fused QDQ node unit with these int8 activations in
        uint8 (:data:`systolix.frontend.ops.QDQ_INT8_AS_UINT8`)."""
        return ops.QDQ_INT8_AS_UINT8 and all(q.dtype == "int8" for q in qparams)

    def avg_pool(self, node, inp):
        a = self.attrs(node)
        op = node.op_type
        x = self.activation(node, inp[0])
        if op.startswith("QLinear"):
            xq = self.scalar_qparams(node, inp[1], inp[2], "the input")
            y, yq = node.output[0], self.scalar_qparams(node, inp[3], inp[4], "the output")
            if a.get("channels_last", 0):
                self.fail(node, "channels_last=1 is not supported")
        else:
            xq = self.qinfo[x]
            q, _ = self.quantized_output(node)
            y, yq = q.output[0], self.q_of(q)
        if "Global" in op:
            def fn(v):
                return ops.global_average_pool(v, xq.scale, xq.zero_point, yq.scale,
                                               yq.zero_point, yq.dtype)
        else:
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("ceil_mode", 0):
                self.fail(node, "only auto_pad=NOTSET and ceil_mode=0 are supported")
            k = tuple(a["kernel_shape"])
            s = tuple(a.get("strides", (1, 1)))
            p = tuple(a.get("pads", (0, 0, 0, 0)))
            cip = bool(a.get("count_include_pad", 0))
            fn = lambda v: ops.average_pool(v, k, s, p, cip, xq.scale, xq.zero_point,
                                            yq.scale, yq.zero_point, yq.dtype)
            if not op.startswith("QLinear") and self.int8_as_uint8(xq, yq):
                fn = ops.in_uint8(lambda v, zero_points, dtype: ops.average_pool(
                    v, k, s, p, cip, xq.scale, zero_points[0], yq.scale, zero_points[1],
                    dtype), xq.zero_point, yq.zero_point)
        self.host(node, "AveragePool", [x], y, fn, yq)

    def concat(self, node, inp):
        axis = int(self.attrs(node)["axis"])
        if node.op_type == "QLinearConcat":
            yq = self.scalar_qparams(node, inp[0], inp[1], "the output")
            names = list(node.input)[2:]
            xs = [(self.activation(node, names[i]),
                   self.scalar_qparams(node, names[i + 1], names[i + 2], "an input"))
                  for i in range(0, len(names), 3)]
            y = node.output[0]
        else:
            xs = [(self.activation(node, n), None) for n in node.input]
            xs = [(n, self.qinfo[n]) for n, _ in xs]
            q, _ = self.quantized_output(node)
            y, yq = q.output[0], self.q_of(q)

        def fn(*vs):
            return np.concatenate([ops.requantize_tensor(v, q.scale, q.zero_point, yq.scale,
                                                         yq.zero_point, yq.dtype)
                                   for v, (_, q) in zip(vs, xs)], axis=axis)
        self.host(node, "Concat", [n for n, _ in xs], y, fn, yq)

    # --- the whole graph --------------------------------------------------------------------

    def run(self):
        g = self.graph
        for node in g.node:
            if node.op_type not in SUPPORTED_OPS or node.domain not in ("", "ai.onnx",
                                                                        "com.microsoft"):
                self.fail(node, "unsupported op")
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise SystolixError(f"{self.label}: the model must have one input, not "
                                f"{len(inputs)}")
        inp = inputs[0]
        from onnx import helper
        tt = inp.type.tensor_type
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
        if dtype != "float32":
            raise SystolixError(f"{self.label}: the model's input must be float32 (a model "
                                f"quantized by onnxruntime's quantize_static), not {dtype}")
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        self.input_name = inp.name
        for node in g.node:
            if id(node) not in self.done:
                self.node(node)
        if not any(isinstance(s, GemmLayer) for s in self.steps):
            raise SystolixError(f"{self.label}: the model has no quantized Conv, Gemm or "
                                f"MatMul: it is not quantized (quantize it with "
                                f"onnxruntime.quantization.quantize_static)")
        produced = {s.y for s in self.steps}
        for o in self.outputs:
            if o not in produced:
                raise SystolixError(f"{self.label}: output '{o}' is not computed by any "
                                    f"supported node")
        return Plan(inp.name, shape, dtype, self.steps, self.outputs)


def lower(model, label="model"):
    """Lower a loaded ONNX model (quantized by onnxruntime) to a
    :class:`~systolix.frontend.plan.Plan`; one-line :class:`SystolixError` on anything not
    supported, naming the node."""
    return _Lowering(model, label).run()
