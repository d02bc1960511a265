"""Quantized ONNX models: loading, lowering to engine GEMMs and host steps, numpy reference
and comparison with onnxruntime."""
