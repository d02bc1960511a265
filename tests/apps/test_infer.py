"""End to end: the quantized digits MLP through a requantizing engine in RTL, bit-exact per
layer with the numpy integer reference (a few images here; `make bench` runs all 360)."""

import json
import subprocess
import sys

import pytest

from helpers import WORK_DIR
from systolix.config import Dataflow
from systolix.apps.infer import inference_engine, run_inference

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_a_few_digits_bit_exact(simulator):
    # 10 images in jobs of 4 rows: three engine jobs per layer, the last one ragged
    config = inference_engine(4, 4, Dataflow.WEIGHT_STATIONARY, batch=4)
    report = run_inference(config, simulator, images=10, work_dir=WORK_DIR,
                           progress=lambda msg: None)
    assert report["layers_bit_exact"] == [True, True]
    assert report["predictions_identical"]
    assert report["rtl_accuracy"] == report["int8_reference_accuracy"]
    assert report["engine_jobs"] == 6
    assert report["compute_cycles_per_inference"] > 0


def test_infer_cli_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "systolix", "infer", "--images", "0",
                           "--sim", "icarus", "--work-dir", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "systolix: error: --images must be in range 1..360, not 0"
    proc = subprocess.run([sys.executable, "-m", "systolix", "infer", "--batch", "0",
                           "--json", "--work-dir", str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 1 and proc.stderr.startswith("systolix: error: max_m must be")
    assert json.loads(proc.stdout or "null") is None
