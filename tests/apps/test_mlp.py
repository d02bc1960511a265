"""The digits classifier: deterministic training, measured accuracies, and the integer reference
checked against slow Python-integer arithmetic with explicit zero points."""

import numpy as np
import pytest

from slow_quant import rdbpot_c, srdhm_c
from systolix.model import golden
from systolix.apps import mlp
from systolix.config import Numerics
from systolix.model.quant import INT32_MAX, INT32_MIN, RequantParams, requantize

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def digits():
    return mlp.digits_model(mlp.DEFAULT_SEED)


def test_split_is_deterministic_and_stratified(digits):
    split, _, _ = digits
    assert split.x_train.shape == (1437, 64) and split.x_test.shape == (360, 64)
    assert split.x_train.min() == 0.0 and split.x_train.max() == 1.0
    assert set(np.bincount(split.y_test)) <= {35, 36, 37}  # 10 classes, stratified
    again = mlp.load_digits_split(mlp.DEFAULT_SEED)
    assert (again.x_test == split.x_test).all() and (again.y_train == split.y_train).all()
    other = mlp.load_digits_split(1)
    assert not (other.y_test == split.y_test).all()


def test_training_is_deterministic(digits):
    split, model, _ = digits
    again = mlp.train_float_mlp(split, seed=mlp.DEFAULT_SEED)
    assert [w.shape for w in model.weights] == [(64, 64), (64, 10)]
    for a, b in zip(model.weights + model.biases, again.weights + again.biases):
        assert (a == b).all()


def test_accuracies(digits):
    """Measured on the 360 held-out images; asserted with margin, not hard-coded."""
    report = mlp.accuracy_report(mlp.DEFAULT_SEED)
    print(report)
    assert report["test_images"] == 360
    assert report["float_accuracy"] >= 0.9
    assert report["int8_accuracy"] >= report["float_accuracy"] - 0.02
    assert report["float_int8_agreement"] >= 0.97
    assert report["macs_per_inference"] == 64 * 64 + 64 * 10
    assert report["layers"] == ["64x64", "64x10"]
    _, _, q = digits
    assert q.gemm_shapes(32) == [(32, 64, 64), (32, 64, 10)]
    assert sum(m * k * n for m, k, n in q.gemm_shapes(7)) == 7 * q.macs_per_inference


def test_quantized_model_structure(digits):
    split, model, q = digits
    assert q.input_zero_point == -128 and q.input_scale == pytest.approx(1 / 255)
    xq = q.quantize_input(split.x_test)
    assert xq.dtype == np.int8
    assert (xq[split.x_test == 0.0] == -128).all() and (xq[split.x_test == 1.0] == 127).all()
    prev_scale, prev_zp = q.input_scale, q.input_zero_point
    for i, (layer, w) in enumerate(zip(q.layers, model.weights)):
        assert layer.weights.dtype == np.int8 and layer.weights.shape == w.shape
        assert np.abs(layer.weights.astype(int)).max() <= 127
        assert (layer.in_scale, layer.in_zero_point) == (prev_scale, prev_zp)
        live = np.abs(w).max(axis=0) / 127.0 == layer.weight_scales
        assert live.sum() >= w.shape[1] - 8  # only dead units get a raised scale
        assert (np.abs(layer.weights[:, live].astype(int)).max(axis=0) == 127).all()
        deq = layer.weights * layer.weight_scales
        assert np.abs(deq - w).max() <= layer.weight_scales.max() / 2 + 1e-12
        p = layer.params
        assert p.zero_point == layer.out_zero_point and p.out_signed
        if layer.relu:
            assert p.clamp_min == layer.out_zero_point and i < len(q.layers) - 1
        else:
            assert (p.clamp_min, p.clamp_max) == (-128, 127)
        for m0, s, sw in zip(p.multiplier, p.shift, layer.weight_scales):
            real = layer.in_scale * sw / layer.out_scale
            assert m0 * 2.0 ** -(31 + s) == pytest.approx(real, rel=2**-30)
        prev_scale, prev_zp = layer.out_scale, layer.out_zero_point


def slow_layer(x_q, layer):
    """One layer with Python ints and the zero point explicit: sum_k (x - zp) * W + b (unfolded)."""
    p = layer.params
    out = []
    for row in x_q.tolist():
        out_row = []
        for n in range(layer.weights.shape[1]):
            acc = sum((x - layer.in_zero_point) * int(layer.weights[k, n])
                      for k, x in enumerate(row))
            acc += int(layer.bias[n])
            acc = min(max(acc, INT32_MIN), INT32_MAX)
            y = rdbpot_c(srdhm_c(acc, p.multiplier[n]), p.shift[n]) + p.zero_point
            out_row.append(min(max(y, p.clamp_min), p.clamp_max))
        out.append(out_row)
    return np.array(out, dtype=np.int64)


def test_reference_layers_match_slow_python(digits, seed):
    split, _, q = digits
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(split.x_test), 6, replace=False)
    print("images", idx.tolist())
    x_q = q.quantize_input(split.x_test[idx])
    result = q.infer(x_q)
    a = x_q
    for layer, got in zip(q.layers, result.layer_outputs):
        assert (got.astype(np.int64) == slow_layer(a, layer)).all(), f"images {idx.tolist()}"
        a = got
    assert (result.predictions == np.argmax(result.layer_outputs[-1], axis=1)).all()


def test_folded_bias_equals_explicit_zero_point(digits):
    """Raw int8 GEMM + folded bias == (x - zp_in) GEMM + unfolded bias, on all held-out images."""
    split, _, q = digits
    result = q.infer(q.quantize_input(split.x_test))
    a = q.quantize_input(split.x_test).astype(np.int64)
    for layer, got in zip(q.layers, result.layer_outputs):
        explicit = RequantParams(bias=layer.bias, multiplier=layer.params.multiplier,
                                 shift=layer.params.shift, zero_point=layer.params.zero_point,
                                 clamp_min=layer.params.clamp_min, clamp_max=layer.params.clamp_max)
        acc = (a - layer.in_zero_point) @ layer.weights.astype(np.int64)
        assert (requantize(acc, explicit) == got).all()
        folded = layer.bias - layer.in_zero_point * layer.weights.astype(np.int64).sum(axis=0)
        assert folded.tolist() == list(layer.params.bias)
        a = got.astype(np.int64)


def test_infer_injection_and_batching(digits):
    split, _, q = digits
    x_q = q.quantize_input(split.x_test[:50])
    calls = []

    def spy(a, w, p):
        calls.append(a.shape)
        return requantize(golden.gemm(a, w, Numerics()), p)

    whole = q.infer(x_q)
    batched = q.infer(x_q, spy, max_rows=16)
    assert calls == [(16, 64), (16, 64), (16, 64), (2, 64)] * 2
    assert (whole.predictions == batched.predictions).all()
    for a, b in zip(whole.layer_outputs, batched.layer_outputs):
        assert (a == b).all()
    # a faulty engine shows up in the layer where it errs
    off_by_one = q.infer(x_q, lambda a, w, p: (mlp.reference_gemm_requant(a, w, p).astype(np.int16)
                                               .clip(-127, 126) + 1).astype(np.int8))
    assert not (off_by_one.layer_outputs[0] == whole.layer_outputs[0]).all()


def test_infer_rejects(digits):
    split, _, q = digits
    x_q = q.quantize_input(split.x_test[:4])
    with pytest.raises(TypeError, match="int8 array"):
        q.infer(x_q, lambda a, w, p: golden.gemm(a, w, Numerics()))
    with pytest.raises(ValueError, match="shape"):
        q.infer(x_q, lambda a, w, p: mlp.reference_gemm_requant(a, w, p)[:1])
    with pytest.raises(TypeError, match="callable"):
        q.infer(x_q, None)
    with pytest.raises(TypeError, match="integers"):
        q.infer(x_q.astype(float))
    with pytest.raises(ValueError, match="shape"):
        q.infer(x_q[:, :10])
    with pytest.raises(ValueError, match="int8"):
        q.infer(x_q.astype(np.int64) * 4)
    with pytest.raises(ValueError, match="max_rows"):
        q.infer(x_q, max_rows=0)
    with pytest.raises(ValueError, match="shape"):
        q.quantize_input(split.x_test[:4, :8])
    with pytest.raises(ValueError, match="test_size"):
        mlp.load_digits_split(test_size=5)
    with pytest.raises(TypeError, match="seed"):
        mlp.load_digits_split(seed=1.0)
