"""``systolix estimate``: the cycle model from the command line, without the generator."""

import json
import subprocess
import sys

import pytest

from systolix.config import Dataflow, EngineConfig, SystolicConfig, TensorCoreConfig
from systolix.config.core import TensorCore
from systolix.model.cycles import engine_cycles, gemm_cycles, ws_array_cycles

pytestmark = pytest.mark.model


def estimate(*args):
    return subprocess.run([sys.executable, "-c",
                           "import sys; from systolix.cli.app import main; rc = main(sys.argv[1:]);"
                           " assert 'amaranth' not in sys.modules, 'Amaranth imported'; "
                           "sys.exit(rc)", "estimate", *map(str, args)],
                          capture_output=True, text=True)


def test_every_kind_matches_the_cycle_models(tmp_path):
    jobs = tmp_path / "jobs.txt"
    jobs.write_text("# a stream\n512 512 512\n7 300 9  # odd sizes\n")
    proc = estimate("systolic", "--rows", 256, "--cols", 256, "--jobs", jobs, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    cfg = SystolicConfig(256, 256)
    want = [gemm_cycles(cfg, 512, 512, 512).cycles, gemm_cycles(cfg, 7, 300, 9).cycles]
    assert [g["cycles"] for g in out["gemms"]] == want and out["cycles"] == sum(want)

    proc = estimate("systolic", "--dataflow", "ws", "--rows", 16, "--cols", 32,
                    "--gemm", 100, 200, 300, "--json")
    ws = SystolicConfig(16, 32, Dataflow.WEIGHT_STATIONARY)
    assert json.loads(proc.stdout)["cycles"] == ws_array_cycles(ws, 100, 200, 300).cycles

    proc = estimate("engine", "--rows", 64, "--cols", 64, "--gemm", 64, 100, 33,
                    "--max-m", 128, "--json")
    eng = EngineConfig(SystolicConfig(64, 64), 128, 100, 33)
    assert json.loads(proc.stdout)["cycles"] == engine_cycles(eng, 64, 100, 33).total

    proc = estimate("tensorcore", "--m", 8, "--n", 8, "--k", 16, "--cores", 2,
                    "--gemm", 64, 64, 64, "--json")
    tc = TensorCore(TensorCoreConfig(8, 8, 16), 2)
    assert json.loads(proc.stdout)["cycles"] == tc.schedule(64, 64, 64)[2]

    proc = estimate("engine", "--gemm", 64, 64, 64)
    assert proc.returncode == 0 and "64 x 64 x 64:" in proc.stdout, proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (("systolic", "--rows", 257, "--gemm", 1, 1, 1), "rows must be in range"),
    (("systolic", "--gemm", 1, 0, 1), "must be a positive integer"),
    (("systolic",), "give the work"),
    (("engine", "--max-k", 8, "--gemm", 4, 9, 4), "K = 9 exceeds"),
    (("systolic", "--jobs", "/nonexistent/jobs"), "cannot read job stream"),
    (("tensorcore", "--pipeline", "x", "--gemm", 4, 4, 4), "number of register stages"),
])
def test_bad_input_is_one_line(args, fragment):
    proc = estimate(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("systolix: error: ") and fragment in lines[0]
