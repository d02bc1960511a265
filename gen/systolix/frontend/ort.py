"""onnxruntime as the oracle: its CPU session's outputs, also of intermediate tensors."""

from __future__ import annotations

__all__ = ["run_onnxruntime"]


def run_onnxruntime(model_or_path, x, extra_outputs=()):
    """Run onnxruntime's CPU session (default optimizations, one thread); returns a dict of the
    model's outputs and of ``extra_outputs`` (names of intermediate tensors, added as graph
    outputs) by name."""
    import onnx
    import onnxruntime as ort
    model = onnx.load(str(model_or_path)) if not isinstance(model_or_path, onnx.ModelProto) \
        else model_or_path
    if extra_outputs:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        have = {o.name for o in model.graph.output}
        for name in extra_outputs:
            if name not in have:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))
