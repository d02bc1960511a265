"""A quantized model as a plan: GEMM layers for the engine and host steps in numpy.

:func:`systolix.frontend.lower.lower` builds a :class:`Plan` from an ONNX model;
:func:`execute` runs it with a GEMM back end: :func:`reference_gemm` (the exact integer
arithmetic in numpy, the spec) or the engine RTL (:mod:`systolix.apps.onnx_infer`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import ops

__all__ = ["QParams", "ConvGeometry", "GemmLayer", "HostStep", "Plan", "execute",
           "reference_gemm", "layer_operands"]


@dataclass(frozen=True)
class QParams:
    """Per-tensor quantization of an activation: float32 ``scale``, ``zero_point``, 8-bit
    ``dtype`` (``"int8"`` or ``"uint8"``)."""

    scale: float
    zero_point: int
    dtype: str

    @property
    def range(self):
        return ops.QTYPES[self.dtype]


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple
    strides: tuple
    pads: tuple          # top, left, bottom, right
    dilations: tuple
    group: int


@dataclass(eq=False)
class GemmLayer:
    """One quantized Conv / Gemm / MatMul: per group a GEMM ``(x - x_zp) @ W + bias``,
    requantized with float32 ``scale`` per output channel, ``y`` zero point and clamp.

    ``weights[g]`` is ``(K, N_g)`` int64 holding ``w - w_zp`` (8-bit values), ``bias[g]`` and
    ``scale[g]`` per column. ``clamp`` is the output clamp (a folded Relu raises its low end to
    the zero point).
    """

    node: str
    op: str
    x: str
    y: str
    x_q: QParams
    y_q: QParams
    weights: list
    bias: list
    scale: list
    clamp: tuple
    conv: ConvGeometry | None = None
    relu: bool = False

    @property
    def out_channels(self):
        return sum(w.shape[1] for w in self.weights)

    def gemm_shape(self, x_shape):
        """``(M, K, N)`` of one group's GEMM for an input of ``x_shape``; groups multiply."""
        k, n = self.weights[0].shape
        if self.conv is None:
            return int(np.prod(x_shape[:-1])), k, n
        nb, _, h, w = x_shape
        g = self.conv
        oh = ops.conv_output_size(h, g.kernel[0], g.strides[0], g.pads[0], g.pads[2],
                                  g.dilations[0])
        ow = ops.conv_output_size(w, g.kernel[1], g.strides[1], g.pads[1], g.pads[3],
                                  g.dilations[1])
        return nb * oh * ow, k, n


@dataclass(eq=False)
class HostStep:
    """A numpy step: ``fn(*inputs) -> output``."""

    node: str
    op: str
    inputs: list
    y: str
    fn: object


@dataclass(eq=False)
class Plan:
    """The lowered model: its float input (name, shape with ``None`` for free dimensions,
    dtype), the steps in order and the output names (the first is the one ``systolix infer``
    writes)."""

    input_name: str
    input_shape: tuple
    input_dtype: str
    steps: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    @property
    def layers(self):
        return [s for s in self.steps if isinstance(s, GemmLayer)]

    def check_input(self, x):
        """Raise ValueError unless ``x`` fits the model's input (dtype and shape)."""
        if not isinstance(x, np.ndarray) or x.dtype != np.dtype(self.input_dtype):
            got = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"the input must be {self.input_dtype}, not {got}")
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != s for w, s in zip(want, x.shape)):
            shown = "x".join("N" if w is None else str(w) for w in want)
            raise ValueError(f"the input must have shape {shown}, not "
                             f"{'x'.join(map(str, x.shape))}")
        if x.size == 0:
            raise ValueError("the input is empty")


def layer_operands(layer, x):
    """The GEMM operands of ``layer`` for the 8-bit input tensor ``x``: per group
    ``A`` (M, K) int64 of raw input values (padding = the input's zero point), and the output
    assembler ``assemble(list of (M, N_g)) -> y``."""
    if layer.conv is None:
        lead = x.shape[:-1]
        a = np.asarray(x, np.int64).reshape(-1, x.shape[-1])
        return [a], lambda outs: outs[0].reshape(*lead, outs[0].shape[1])
    g = layer.conv
    cin = x.shape[1] // g.group
    groups = []
    for i in range(g.group):
        a, (n, oh, ow) = ops.im2col(x[:, i * cin:(i + 1) * cin], g.kernel, g.strides, g.pads,
                                    g.dilations, layer.x_q.zero_point)
        groups.append(a)

    def assemble(outs):
        y = np.concatenate(outs, axis=1)
        return y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
    return groups, assemble


def reference_gemm(layer, groups):
    """The spec of a GEMM layer: the exact integer ``(A - x_zp) @ W``, then onnxruntime's
    requantization with the bias (:func:`systolix.model.quant.requantize_float32`)."""
    lo, hi = layer.clamp
    outs = []
    for a, w, b, s in zip(groups, layer.weights, layer.bias, layer.scale):
        acc = (a - layer.x_q.zero_point) @ w
        outs.append(ops.requantize_f32(acc, b, s, layer.y_q.zero_point, lo, hi,
                                       layer.y_q.dtype == "int8"))
    return outs


def execute(plan, x, gemm=reference_gemm, keep=False):
    """Run ``plan`` on the float input ``x``; returns ``(outputs, tensors)``: the model's
    outputs (a list, in order) and, with ``keep``, every tensor by name (else only the
    outputs). ``gemm(layer, groups) -> list of (M, N_g) int arrays`` computes the layers."""
    plan.check_input(x)
    env = {plan.input_name: x}
    for step in plan.steps:
        if isinstance(step, GemmLayer):
            groups, assemble = layer_operands(step, env[step.x])
            outs = gemm(step, groups)
            env[step.y] = assemble(outs).astype(step.y_q.dtype)
        else:
            env[step.y] = step.fn(*(env[i] for i in step.inputs))
    outputs = [env[o] for o in plan.outputs]
    return outputs, (env if keep else {o: env[o] for o in plan.outputs})
