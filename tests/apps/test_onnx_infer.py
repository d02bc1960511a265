"""Quantized ONNX models through the engine RTL: every GEMM layer in RTL, the output equal to
the integer reference and to onnxruntime's (one cheap case here; every held-out image, both
formats, Verilator and the OS / WS / tensor-core engines under slow)."""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from helpers import WORK_DIR
from systolix.apps.cnn import digits_images, model_path
from systolix.apps.mlp import load_digits_split
from systolix.apps.onnx_infer import onnx_engine, run_onnx
from systolix.config import Dataflow
from systolix.frontend.lower import load_plan
from systolix.frontend.random_model import (calibration_input, grouped_conv_model,
                                            quantized_model, random_spec, relu_model)

pytestmark = pytest.mark.rtl

logging.getLogger().setLevel(logging.ERROR)


def _images(count):
    split = load_digits_split(0)
    return digits_images(split.x_test[:count]), split.y_test[:count]


def _check(summary, layers=3):
    assert summary["matches_reference"] and summary["matches_onnxruntime"], \
        summary["problems"]
    assert len(summary["layers"]) == layers
    for layer in summary["layers"]:
        assert layer["rtl_cycles"] == layer["model_cycles"] > 0
        assert layer["rtl_job_cycles"] == layer["model_job_cycles"]
        assert 0 < layer["utilization"] <= 1


def test_cnn_on_icarus():
    x, _ = _images(2)
    out, summary = run_onnx(model_path("qdq"), x, onnx_engine(), "icarus", WORK_DIR,
                            progress=lambda msg: None)
    _check(summary)
    assert out.dtype == np.float32 and out.shape == (2, 10)
    # onnxruntime runs every layer of the shipped CNN as a quantized kernel
    assert [l["onnxruntime_kernel"] for l in summary["layers"]] == ["quantized"] * 3
    assert summary["onnxruntime_float32"] == []


ENGINES = {
    "os": lambda: onnx_engine(rows=8, cols=8, dataflow=Dataflow.OUTPUT_STATIONARY),
    "ws": lambda: onnx_engine(rows=8, cols=8, dataflow=Dataflow.WEIGHT_STATIONARY),
    "tc": lambda: onnx_engine("tensorcore", mma=(4, 4, 4), cores=2),
}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["qop", "qdq"])
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_cnn_a_few_images_on_every_engine(fmt, engine):
    x, _ = _images(5)
    _, summary = run_onnx(model_path(fmt), x, ENGINES[engine](), "icarus", WORK_DIR,
                          progress=lambda msg: None)
    _check(summary)


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("fmt", ["qop", "qdq"])
@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_cnn_every_held_out_image_on_verilator(fmt, engine):
    x, y = _images(360)
    out, summary = run_onnx(model_path(fmt), x, ENGINES[engine](), "verilator", WORK_DIR,
                            progress=lambda msg: None)
    _check(summary)
    assert np.mean(out.argmax(axis=1) == y) > 0.93


@pytest.mark.slow
def test_random_model_through_rtl(tmp_path, seed):
    spec = random_spec(seed, fully_quantized=True)  # onnxruntime runs every layer quantized
    print(spec)
    path = quantized_model(spec, tmp_path / "m.onnx")
    # K must fit the buffers (the requantizer needs whole sums): room for the largest layer
    max_k = max(layer.weights[0].shape[0] for layer in load_plan(path).layers)
    _, summary = run_onnx(path, calibration_input(spec, 3, seed=seed + 1),
                          onnx_engine(rows=4, cols=4, max_m=16, max_k=max(max_k, 16), max_n=8),
                          "icarus", WORK_DIR, progress=lambda msg: None)
    _check(summary, len(summary["layers"]))


@pytest.mark.slow
def test_grouped_conv_through_rtl(tmp_path, seed):
    """Two groups: two GEMMs per layer, int8 outputs (the int8 requantizer)."""
    path, x = grouped_conv_model(seed, "qdq", tmp_path / "g.onnx")
    _, summary = run_onnx(path, x, onnx_engine(rows=4, cols=4, max_m=32), "icarus", WORK_DIR,
                          progress=lambda msg: None)
    _check(summary, 1)
    assert summary["layers"][0]["groups"] == 2 and summary["layers"][0]["jobs"] == 6


@pytest.mark.slow
@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_relu_that_is_not_redundant_through_rtl(tmp_path, seed, act):
    """A Relu folded into the clamp above the type's minimum (the output zero point): the
    hardware requantizer's low clamp at work, equal to the integer reference."""
    path, x = relu_model(seed, act, "fused", tmp_path / "r.onnx")
    _, summary = run_onnx(path, x[:2], onnx_engine(rows=4, cols=4, max_m=49, max_n=8),
                          "icarus", WORK_DIR, progress=lambda msg: None)
    assert summary["matches_reference"], summary["problems"]
    # onnxruntime runs this layer in float32: a rare one-step difference names it
    (layer,) = summary["layers"]
    assert layer["onnxruntime_kernel"] == "float32"
    assert summary["matches_onnxruntime"] or "in float32" in summary["problems"][1]
    assert layer["rtl_cycles"] == layer["model_cycles"] > 0


@pytest.mark.slow
def test_infer_model_cli(tmp_path):
    x, _ = _images(3)
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run([sys.executable, "-m", "systolix", "infer", "--model",
                           str(model_path("qop")), "--input", str(tmp_path / "x.npy"), "-o",
                           str(tmp_path / "y.npy"), "--sim", "icarus", "--json",
                           "--work-dir", str(WORK_DIR)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["matches_onnxruntime"] is True
    assert [l["gemm"] for l in summary["layers"]] == [[192, 9, 8], [48, 72, 16], [3, 64, 10]]
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32 and y.shape == (3, 10)
