"""A small CNN for scikit-learn's digits: trained in numpy, written as ONNX, quantized by
onnxruntime.

``python -m systolix.apps.cnn`` (``make models``) trains it on the same split as the MLP
(:func:`systolix.apps.mlp.load_digits_split`), writes the float model and onnxruntime's
``quantize_static`` (``reduce_range=True``) of it in both formats into
``gen/systolix/apps/models/``: ``digits_cnn_qop.onnx`` (QOperator, per-tensor weights) and
``digits_cnn_qdq.onnx`` (QDQ, per-channel weights). The network::

    input (N, 1, 8, 8) float32, pixel / 16
    Conv 3x3, 8 channels, pad 1 -> Relu -> MaxPool 2x2      (N, 8, 4, 4)
    Conv 3x3, 16 channels, pad 1 -> Relu -> MaxPool 2x2     (N, 16, 2, 2)
    Flatten -> Gemm 64 x 10                                 (N, 10) logits
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .mlp import DEFAULT_SEED, load_digits_split

__all__ = ["MODELS_DIR", "MODEL_FILES", "model_path", "digits_images", "train_cnn",
           "cnn_onnx", "quantize_cnn", "write_models", "write_test_input"]

#: Where the shipped models live (package data).
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The shipped models by name.
MODEL_FILES = {"float": "digits_cnn_float.onnx", "qop": "digits_cnn_qop.onnx",
               "qdq": "digits_cnn_qdq.onnx"}


def model_path(name):
    """Path of a shipped model: ``"float"``, ``"qop"`` or ``"qdq"``."""
    return MODELS_DIR / MODEL_FILES[name]


def digits_images(x):
    """(n, 64) pixels in [0, 1] as the CNN's float32 (n, 1, 8, 8) input."""
    return np.asarray(x, dtype=np.float32).reshape(-1, 1, 8, 8)


def _im2col(x, kh, kw, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i:i + oh, j:j + ow]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw), (n, oh, ow)


def _col2im(cols, shape, kh, kw, pad):
    n, c, h, w = shape
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    cols = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + oh, j:j + ow] += cols[:, :, i, j]
    return xp[:, :, pad:pad + h, pad:pad + w]


class _Net:
    """The float network and its gradients (float64)."""

    def __init__(self, rng):
        def he(*shape):
            fan_in = int(np.prod(shape[1:]))
            return rng.normal(0, np.sqrt(2 / fan_in), shape)
        self.p = {"w1": he(8, 1, 3, 3), "b1": np.zeros(8), "w2": he(16, 8, 3, 3),
                  "b2": np.zeros(16), "w3": he(10, 64) * 0.5, "b3": np.zeros(10)}

    @staticmethod
    def _conv(x, w, b):
        cols, (n, oh, ow) = _im2col(x, 3, 3, 1)
        y = cols @ w.reshape(w.shape[0], -1).T + b
        return y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2), cols

    @staticmethod
    def _pool(x):
        n, c, h, w = x.shape
        r = x.reshape(n, c, h // 2, 2, w // 2, 2)
        y = r.max(axis=(3, 5))
        mask = r == y[:, :, :, None, :, None]
        return y, mask

    def forward(self, x):
        p, cache = self.p, {}
        z1, cache["c1"] = self._conv(x, p["w1"], p["b1"])
        a1 = np.maximum(z1, 0)
        h1, cache["m1"] = self._pool(a1)
        z2, cache["c2"] = self._conv(h1, p["w2"], p["b2"])
        a2 = np.maximum(z2, 0)
        h2, cache["m2"] = self._pool(a2)
        f = h2.reshape(len(x), -1)
        cache.update(x=x, z1=z1, h1=h1, z2=z2, f=f)
        return f @ p["w3"].T + p["b3"], cache

    def gradients(self, x, y):
        p = self.p
        logits, c = self.forward(x)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        prob = e / e.sum(axis=1, keepdims=True)
        d = prob
        d[np.arange(len(y)), y] -= 1
        d /= len(y)
        g = {"w3": d.T @ c["f"], "b3": d.sum(0)}
        dh2 = (d @ p["w3"]).reshape(c["z2"].shape[0], 16, 2, 2)
        dz2 = self._unpool(dh2, c["m2"]) * (c["z2"] > 0)
        dz2f = dz2.transpose(0, 2, 3, 1).reshape(-1, 16)
        g["w2"] = (dz2f.T @ c["c2"]).reshape(p["w2"].shape)
        g["b2"] = dz2f.sum(0)
        dh1 = _col2im(dz2f @ p["w2"].reshape(16, -1), c["h1"].shape, 3, 3, 1)
        dz1 = self._unpool(dh1, c["m1"]) * (c["z1"] > 0)
        dz1f = dz1.transpose(0, 2, 3, 1).reshape(-1, 8)
        g["w1"] = (dz1f.T @ c["c1"]).reshape(p["w1"].shape)
        g["b1"] = dz1f.sum(0)
        return g

    @staticmethod
    def _unpool(d, mask):
        n, c, h, w = d.shape
        return (mask * d[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)

    def predict(self, x):
        return self.forward(x)[0].argmax(axis=1)


def train_cnn(seed=DEFAULT_SEED, epochs=40, batch=32, lr=3e-3):
    """Train the CNN with Adam on the digits split of ``seed``; returns ``(split, net)``."""
    split = load_digits_split(seed)
    rng = np.random.default_rng(seed)
    net = _Net(rng)
    x = digits_images(split.x_train).astype(np.float64)
    y = split.y_train
    m = {k: np.zeros_like(v) for k, v in net.p.items()}
    v = {k: np.zeros_like(v) for k, v in net.p.items()}
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for s in range(0, len(x), batch):
            idx = order[s:s + batch]
            g = net.gradients(x[idx], y[idx])
            t += 1
            for k in net.p:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
                mh, vh = m[k] / (1 - 0.9 ** t), v[k] / (1 - 0.999 ** t)
                net.p[k] -= lr * mh / (np.sqrt(vh) + 1e-8)
    return split, net


def cnn_onnx(net):
    """The trained network as a float32 ONNX model (opset 13, batch dimension ``N``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    p = {k: v.astype(np.float32) for k, v in net.p.items()}
    inits = [numpy_helper.from_array(v, k) for k, v in p.items()]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["z1"], name="conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["z1"], ["a1"], name="relu1"),
        helper.make_node("MaxPool", ["a1"], ["h1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["h1", "w2", "b2"], ["z2"], name="conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["z2"], ["a2"], name="relu2"),
        helper.make_node("MaxPool", ["a2"], ["h2"], name="pool2", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["h2"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="dense", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "digits_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="systolix")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


class _Calibration:
    def __init__(self, x, name="input"):
        self._it = iter([{name: x[i:i + 64]} for i in range(0, len(x), 64)])

    def get_next(self):
        return next(self._it, None)


def quantize_cnn(float_path, out_path, calibration, fmt, per_channel):
    """onnxruntime's ``quantize_static`` of ``float_path`` (``reduce_range=True``, uint8
    activations, int8 weights) in ``fmt`` ``"qop"`` or ``"qdq"``."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    quantize_static(str(float_path), str(out_path), _Calibration(calibration),
                    quant_format=QuantFormat.QOperator if fmt == "qop" else QuantFormat.QDQ,
                    per_channel=per_channel, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def write_models(out_dir=MODELS_DIR, seed=DEFAULT_SEED):
    """Train, export and quantize; returns the float model's held-out accuracy."""
    import onnx
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    split, net = train_cnn(seed)
    accuracy = float(np.mean(net.predict(digits_images(split.x_test)) == split.y_test))
    float_path = out_dir / MODEL_FILES["float"]
    onnx.save(cnn_onnx(net), float_path)
    calibration = digits_images(split.x_train)
    quantize_cnn(float_path, out_dir / MODEL_FILES["qop"], calibration, "qop", False)
    quantize_cnn(float_path, out_dir / MODEL_FILES["qdq"], calibration, "qdq", True)
    return accuracy


def write_test_input(path, seed=DEFAULT_SEED):
    """Write the held-out images as the CNN's float32 input (``.npy``); returns the labels."""
    split = load_digits_split(seed)
    np.save(path, digits_images(split.x_test))
    return split.y_test


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--test-input":
        write_test_input(sys.argv[2])
    elif len(sys.argv) == 1:
        print(f"float accuracy on the held-out images: {write_models():.4f}")
    else:
        sys.exit("usage: python -m systolix.apps.cnn [--test-input X.npy]")
