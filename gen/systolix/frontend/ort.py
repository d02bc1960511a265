"""onnxruntime as the oracle: its CPU session's outputs, also of intermediate tensors, and
which of a model's nodes it leaves in float32 (not fused into a quantized kernel)."""

from __future__ import annotations

import os
import tempfile

__all__ = ["run_onnxruntime", "optimized_nodes", "float_nodes", "FLOAT_COMPUTE_OPS"]

#: The float ops of a QDQ node unit whose float32 result can differ from the quantized
#: kernel's (QLinearConv, QGemm, QLinearMatMul, QLinearAdd, QLinearAveragePool, ...) that
#: onnxruntime fuses the unit into. Data movement (MaxPool, Flatten, Reshape, Transpose,
#: Concat with requantization, Relu) gives the same values in float32 or not.
FLOAT_COMPUTE_OPS = frozenset({"Conv", "Gemm", "MatMul", "FusedConv", "FusedGemm",
                               "FusedMatMul", "Add", "Sum", "AveragePool",
                               "GlobalAveragePool"})


def _load(model_or_path):
    import onnx
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    return onnx.load(str(model_or_path))


def _options():
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def run_onnxruntime(model_or_path, x, extra_outputs=()):
    """Run onnxruntime's CPU session (default optimizations, one thread); returns a dict of the
    model's outputs and of ``extra_outputs`` (names of intermediate tensors, added as graph
    outputs) by name.

    Exposing an intermediate tensor of a QDQ model stops onnxruntime fusing the node units
    around it into quantized kernels: such a session computes them in float32."""
    import onnx
    import onnxruntime as ort
    model = _load(model_or_path)
    if extra_outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        have = {o.name for o in model.graph.output}
        for name in extra_outputs:
            if name not in have:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
    sess = ort.InferenceSession(model.SerializeToString(), _options(),
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))


def optimized_nodes(model_or_path):
    """The nodes of the graph onnxruntime's CPU session runs for the model as it is: a list of
    ``(name, op_type)``. Graph optimizations at the extended level: the QDQ fusions and the
    other hardware-independent rewrites (the ``all`` level adds only layout changes, NCHWc,
    which rename the nodes but take no fusion decision)."""
    import onnx
    import onnxruntime as ort
    model = _load(model_or_path)
    opts = _options()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    fd, tmp = tempfile.mkstemp(suffix=".onnx", prefix="systolix-ort-")
    os.close(fd)
    try:
        opts.optimized_model_filepath = tmp
        ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
        optimized = onnx.load(tmp)
    finally:
        os.unlink(tmp)
    return [(n.name, n.op_type) for n in optimized.graph.node]


def float_nodes(model_or_path):
    """The nodes onnxruntime computes in float32 although a quantized kernel exists for them
    (a QDQ node unit it did not fuse): ``{name: op_type}`` of the optimized graph's nodes in
    :data:`FLOAT_COMPUTE_OPS`. Empty for a model that onnxruntime runs fully quantized."""
    return {name: op for name, op in optimized_nodes(model_or_path)
            if op in FLOAT_COMPUTE_OPS}
