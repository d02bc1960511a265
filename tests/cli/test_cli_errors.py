"""Every command and flag against bad values (zero, negative, huge, NaN, infinity, wrong type,
empty, a flag that does not apply): one line on stderr, exit 1 (bad input) or 2 (malformed
command line), nothing written, and no simulation or synthesis started."""

import os
import time

import numpy as np
import pytest

from systolix.cli import app, synth as synth_cli
from systolix.cli.common import integer
from systolix.config import SystolicConfig

pytestmark = pytest.mark.model


def call(argv):
    """``systolix *argv`` in this process: (exit status, stdout, stderr)."""
    try:
        return app.main([str(a) for a in argv]), None
    except SystemExit as e:
        return e.code, None


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory with two valid operands under in/; the output paths are under out/
    (which must never appear) and the working directory itself (which must stay as it was)."""
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.ones((3, 4), dtype=np.int8))
    np.save(tmp_path / "in" / "b.npy", np.ones((4, 2), dtype=np.int8))
    (tmp_path / "in" / "text.npy").write_text("1 2\n3 4\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYSTOLIX_CACHE_DIR", str(tmp_path / "out" / "cache"))
    return tmp_path


def _must_not_run(*args, **kwargs):
    raise AssertionError("a simulation or synthesis was started")


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if any command gets as far as simulating or synthesizing."""
    from systolix.cli import board, run
    from systolix.sim import runner
    monkeypatch.setattr(runner, "run", _must_not_run)
    monkeypatch.setattr(run, "run_gemm", _must_not_run)
    monkeypatch.setattr(synth_cli, "synthesize", _must_not_run)
    monkeypatch.setattr(synth_cli, "run_sweep", _must_not_run)
    monkeypatch.setattr(synth_cli, "build_bitstream", _must_not_run)
    monkeypatch.setattr(board, "SerialTransport", _must_not_run)


GEN = ["generate", "systolic"]
ENG = ["generate", "engine"]
TC = ["generate", "tensorcore"]
RUN = ["run", "--a", "in/a.npy", "--b", "in/b.npy", "-o", "out/c.npy", "--work-dir", "out/w"]
SYN = ["synth", "systolic"]
SWEEP = ["sweep", "systolic", "-o", "out/s"]
BUILD = ["build", "systolic", "--board", "icebreaker", "-o", "out/b"]
BUILD_ENG = ["build", "engine", "--board", "icebreaker", "-o", "out/b"]
INFO = ["board", "info", "--port", "loop://"]
BGEN = ["board", "generate", "--board", "icebreaker", "-o", "out/g"]
O = ["-o", "out/g"]

CASES = [
    # generate: integers are strict, ranges are the config's
    (GEN + ["--rows", "0"] + O, 1, "rows must be in range 1..256, not 0"),
    (GEN + ["--rows", "-3"] + O, 1, "rows must be in range 1..256, not -3"),
    (GEN + ["--rows", "99999999999"] + O, 1, "rows must be in range 1..256, not 99999999999"),
    (GEN + ["--rows", "4_0"] + O, 2, "invalid int value: '4_0'"),
    (GEN + ["--rows", " 4"] + O, 2, "invalid int value: ' 4'"),
    (GEN + ["--rows", "4.0"] + O, 2, "invalid int value: '4.0'"),
    (GEN + ["--rows", "nan"] + O, 2, "invalid int value: 'nan'"),
    (GEN + ["--cols", "inf"] + O, 2, "invalid int value: 'inf'"),
    (GEN + ["--cols", ""] + O, 2, "invalid int value: ''"),
    (GEN + ["--in-width", "0"] + O, 1, "in_width must be in range 2..16, not 0"),
    (GEN + ["--acc-width", "99999"] + O, 1, "acc_width must be in range"),
    (GEN + ["--pipeline", "fast"] + O, 1, "pipeline"),
    (GEN + ["--dataflow", "xs"] + O, 2, "invalid choice"),
    (GEN + ["-o", ""], 2, "argument -o/--output: must not be empty"),
    (GEN, 2, "required: -o/--output"),
    (["generate", "gpu"] + O, 2, "invalid choice: 'gpu'"),
    # generate: flags of another kind
    (GEN + ["--max-m", "8"] + O, 1, "--max-m sizes an engine's buffers: use it with engine"),
    (GEN + ["--max-k", "64"] + O, 1, "--max-k sizes an engine's buffers"),
    (GEN + ["--m", "4"] + O, 1, "--m cannot be used with 'generate systolic'"),
    (GEN + ["--cores", "2"] + O, 1, "--cores cannot be used with 'generate systolic'"),
    (GEN + ["--arch", "tensorcore"] + O, 1, "--arch selects an engine's core"),
    (GEN + ["--baud", "9600"] + O, 2, "unrecognized arguments: --baud 9600"),
    (TC + ["--rows", "4"] + O, 1, "--rows cannot be used with 'generate tensorcore'"),
    (TC + ["--max-k", "8"] + O, 1, "--max-k cannot be used with 'generate tensorcore'"),
    (TC + ["--m", "0"] + O, 1, "m must be in range"),
    (TC + ["--pipeline", "x"] + O, 1, "--pipeline of a tensor core is a number"),
    (TC + ["--pipeline", "1_0"] + O, 1, "--pipeline of a tensor core is a number"),
    (ENG + ["--cores", "2"] + O, 1, "--cores cannot be used with 'generate engine'"),
    (ENG + ["--arch", "tensorcore", "--dataflow", "ws"] + O, 1,
     "--dataflow cannot be used with 'generate engine --arch tensorcore'"),
    (ENG + ["--arch", "tensorcore", "--cores", "0"] + O, 1, "cores must be in range"),
    # engine buffers: zero, too large for the command port, too large to generate
    (ENG + ["--max-m", "0"] + O, 1, "max_m must be in range 1..65535, not 0"),
    (ENG + ["--max-n", "65536"] + O, 1, "max_n must be in range 1..65535, not 65536"),
    (ENG + ["--max-m", "65535", "--max-k", "65535", "--max-n", "65535"] + O, 1,
     "more than the 8,388,608 (8 Mibit) that are generated"),
    (ENG + ["--max-m", "1024", "--max-k", "1024", "--max-n", "1024"] + O, 1,
     "more than the 8,388,608 (8 Mibit)"),
    # run
    (RUN[:2] + [""] + RUN[3:], 2, "argument --a: must not be empty"),
    (RUN[:-1] + [""], 2, "argument --work-dir: must not be empty"),
    (RUN + ["--sim", "gpu"], 2, "invalid choice: 'gpu'"),
    (RUN + ["--engine", "--max-k", "4_0"], 2, "invalid int value: '4_0'"),
    (RUN + ["--max-m", "8"], 1, "--max-m sizes an engine's buffers: use it with --engine"),
    (RUN + ["--cores", "2"], 1, "--cores cannot be used with 'run --arch systolic'"),
    (RUN + ["--arch", "tensorcore"], 1, "tensor-core MMA units need the engine's controller"),
    (RUN + ["--dataflow", "ws"], 1, "weight-stationary array needs the engine's controller"),
    (RUN + ["--engine", "--max-m", "1024", "--max-k", "1024", "--max-n", "1024"], 1,
     "8 Mibit"),
    (RUN + ["--rows", "0"], 1, "rows must be in range 1..256, not 0"),
    (["run", "--a", "in/text.npy", "--b", "in/b.npy", "-o", "out/c.npy"], 1,
     "A: in/text.npy is not a .npy file"),
    # infer
    (["infer", "--seed", "-1"], 2, "argument --seed: must be in range 0..4294967295, not -1"),
    (["infer", "--seed", "99999999999"], 2, "must be in range 0..4294967295, not 99999999999"),
    (["infer", "--seed", "nan"], 2, "invalid int value: 'nan'"),
    (["infer", "--rows", "4_0"], 2, "invalid int value: '4_0'"),
    (["infer", "--batch", "0", "--work-dir", "out/w"], 1, "max_m must be in range"),
    (["infer", "--rows", "0", "--work-dir", "out/w"], 1, "rows must be in range"),
    (["infer", "--work-dir", ""], 2, "argument --work-dir: must not be empty"),
    (["infer", "--sim", "gpu"], 2, "invalid choice"),
    # demo
    (["demo", "--size", "0", "--rtl-dir", "out/r", "--work-dir", "out/w"], 1,
     "--size must be in range 1..1024, not 0"),
    (["demo", "--size", "1e3"], 2, "invalid int value: '1e3'"),
    (["demo", "--size", "1024", "--rtl-dir", "out/r", "--work-dir", "out/w"], 1,
     "8 Mibit) that are generated"),
    (["demo", "--seed", "-1", "--rtl-dir", "out/r", "--work-dir", "out/w"], 1,
     "--seed must be in range"),
    (["demo", "--infer-images", "0", "--rtl-dir", "out/r", "--work-dir", "out/w"], 1,
     "--infer-images must be in range 1..360"),
    (["demo", "--rtl-dir", ""], 2, "argument --rtl-dir: must not be empty"),
    # synth
    (SYN + ["--freq", "0"], 2, "argument --freq: must be in range 1..1000 MHz, not 0"),
    (SYN + ["--freq", "-5"], 2, "must be in range 1..1000 MHz"),
    (SYN + ["--freq", "nan"], 2, "must be in range 1..1000 MHz, not nan"),
    (SYN + ["--freq", "inf"], 2, "must be in range 1..1000 MHz, not inf"),
    (SYN + ["--freq", "fast"], 2, "not a number: 'fast'"),
    (SYN + ["--seed", "-1"], 2, "argument --seed: must be in range 0..2147483647, not -1"),
    (SYN + ["--seed", "99999999999"], 2, "must be in range 0..2147483647"),
    (SYN + ["--target", "xc7a35t"], 2, "invalid choice"),
    (SYN + ["--cache-dir", ""], 2, "argument --cache-dir: must not be empty"),
    (SYN + ["--rows", "0"], 1, "rows must be in range 1..256, not 0"),
    (SYN + ["--max-m", "8"], 1, "--max-m sizes an engine's buffers"),
    (["synth", "tensorcore", "--max-m", "8"], 1, "cannot be used with 'synth tensorcore'"),
    (["synth", "engine", "--max-m", "4096", "--max-k", "4096"], 1, "8 Mibit"),
    (SYN + ["--baud", "9600"], 2, "unrecognized arguments"),
    (SYN + ["--requant"], 1, "--requant configures an engine: use it with engine"),
    (SYN + ["--stream", "8x64"], 1, "--stream rates an engine"),
    (["synth", "engine", "--stream", "8x65"], 1, "job 0 has M = 65, beyond the engine's buffers"),
    (["synth", "engine", "--stream", "0x8"], 1, "stream must be JxS"),
    (["synth", "engine", "--stream", "8x0"], 1, "stream dimensions must be at least 1"),
    (["synth", "engine", "--stream", "8x4x4"], 1, "stream must be JxS"),
    (["synth", "engine", "--requant", "int4"], 2, "invalid choice: 'int4'"),
    (["synth", "engine", "--requant", "--acc-width", "24"], 1, "acc_width must be 32"),
    (["synth", "engine", "--buffering", "triple"], 2, "invalid choice: 'triple'"),
    (["synth", "tensorcore", "--buffering", "double"], 1,
     "--buffering cannot be used with 'synth tensorcore'"),
    # arrays the device cannot hold: refused before synthesis
    (["synth", "engine", "--rows", "12", "--cols", "13", "--pipeline", "deep", "--requant",
      "--target", "ecp5-85f"], 1,
     "does not fit: needs 208 DSP (MULT18X18D; 156 for the array, 52 for the requantizer), "
     "LFE5U-85F-6BG381C has 156"),
    (SYN + ["--rows", "16", "--cols", "16", "--target", "ecp5-85f"], 1,
     "does not fit: needs 256 DSP (MULT18X18D), LFE5U-85F-6BG381C has 156"),
    (SYN + ["--rows", "16", "--cols", "16", "--mult", "dsp", "--target", "ecp5-85f"], 1,
     "needs 256 DSP"),
    (SYN + ["--rows", "32", "--cols", "32", "--mult", "auto", "--pipeline", "full",
            "--target", "ecp5-85f"], 1, "does not fit: needs at least "),
    (SYN + ["--rows", "8", "--cols", "8", "--mult", "lut", "--target", "ice40-up5k"], 1,
     "LUT4 (64 LUT multipliers of ~105 LUT4 and 64 accumulators), iCE40UP5K-SG48 has 5280"),
    (BUILD + ["--rows", "4", "--cols", "4"], 1, "needs 16 DSP (SB_MAC16), iCE40UP5K-SG48 has 8"),
    (["synth", "engine", "--rows", "16", "--cols", "16", "--mult", "auto", "--max-m", "256",
      "--max-k", "256", "--max-n", "256", "--buffering", "double", "--target", "ecp5-85f"], 1,
     "does not fit: the buffers hold 6,291,456 bits, LFE5U-85F-6BG381C has 3,833,856 in 208 "
     "DP16KD"),
    (GEN + ["--mult", "fpga"] + O, 2, "invalid choice: 'fpga'"),
    (TC + ["--mult", "lut"] + O, 1, "--mult cannot be used with 'generate tensorcore'"),
    # sweep
    (SWEEP + ["-j", "0"], 2, "argument -j/--jobs: must be in range 1..1024, not 0"),
    (SWEEP + ["-j", "-1"], 2, "must be in range 1..1024, not -1"),
    (SWEEP + ["-j", "x"], 2, "invalid int value: 'x'"),
    (SWEEP + ["--sizes", "4_0"], 1, "bad size '4_0' in --sizes"),
    (SWEEP + ["--sizes", "2x"], 1, "bad size '2x' in --sizes"),
    (SWEEP + ["--sizes", ","], 1, "--sizes lists no size"),
    (SWEEP + ["--sizes", ""], 2, "argument --sizes: must not be empty"),
    (SWEEP + ["--sizes", "0"], 1, "sweep point 0x0"),
    (SWEEP + ["--sizes", "999"], 1, "rows must be in range 1..256"),
    (SWEEP + ["--rows", "4"], 1, "--rows does not apply to sweep"),
    (SWEEP + ["--variants", "none,full", "--pipeline", "deep"], 1,
     "--pipeline does not apply with --variants"),
    (SWEEP + ["--variants", "warp"], 1, "sweep point"),
    (["sweep", "tensorcore", "-o", "out/s"], 1, "no design space for 'tensorcore'"),
    (["sweep", "systolic", "-o", ""], 2, "argument -o/--output: must not be empty"),
    # build
    (BUILD + ["--baud", "9600"], 1, "--baud sets an engine's host link: it cannot be used "
                                    "with 'build systolic'"),
    (BUILD + ["--fit", "--rows", "4"], 1, "--rows cannot be used with --fit"),
    (BUILD + ["--board", "nope"], 2, "invalid choice: 'nope'"),
    (BUILD + ["--freq", "inf"], 2, "must be in range 1..1000 MHz"),
    (BUILD_ENG + ["--baud", "0"], 2, "argument --baud: must be in range 1..100000000, not 0"),
    (BUILD_ENG + ["--baud", "11_5200"], 2, "invalid int value: '11_5200'"),
    (BUILD_ENG + ["--fit"], 1, "--fit searches array sizes; give an engine's size"),
    (BUILD_ENG + ["--max-m", "0"], 1, "max_m must be in range"),
    (BUILD_ENG + ["--requant"], 1, "--requant cannot be used with 'build engine'"),
    (RUN + ["--engine", "--requant"], 1, "--requant needs requantization parameters"),
    (["build", "tensorcore", "--board", "icebreaker", "--fit", "-o", "out/b"], 1,
     "--fit searches array sizes: it cannot be used with 'build tensorcore'"),
    # board
    (["board", "info", "--port", ""], 2, "argument --port: must not be empty"),
    (INFO + ["--baud", "0"], 2, "argument --baud: must be in range 1..100000000, not 0"),
    (INFO + ["--baud", "nan"], 2, "invalid int value: 'nan'"),
    (INFO + ["--timeout", "nan"], 2, "argument --timeout: must be in range 0..3600, not nan"),
    (INFO + ["--timeout", "-1"], 2, "must be in range 0..3600, not -1"),
    (INFO + ["--timeout", "inf"], 2, "must be in range 0..3600, not inf"),
    (INFO + ["--retries", "-1"], 1, "--retries must be at least 0, not -1"),
    (INFO + ["--retries", "3_0"], 2, "invalid int value: '3_0'"),
    (BGEN + ["--baud", "4_0"], 2, "invalid int value: '4_0'"),
    (BGEN + ["--timeout-ms", "inf"], 2, "must be in range 0..60000, not inf"),
    (BGEN + ["--rows", "0"], 1, "rows must be in range 1..256, not 0"),
    (BGEN + ["--max-m", "0"], 1, "max_m must be in range"),
    (BGEN + ["--cores", "2"], 2, "unrecognized arguments: --cores 2"),
    (["board", "generate", "--board", "icebreaker", "-o", ""], 2, "must not be empty"),
]


@pytest.mark.parametrize("argv,code,fragment", CASES,
                         ids=[" ".join(c[0])[:70] for c in CASES])
def test_bad_flag_is_one_line_and_writes_nothing(here, no_tools, capsys, argv, code, fragment):
    before = sorted(p.relative_to(here) for p in here.rglob("*"))
    t0 = time.monotonic()
    got = call(argv)[0]
    seconds = time.monotonic() - t0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("systolix: error: "), err
    assert fragment in lines[0], lines[0]
    assert sorted(p.relative_to(here) for p in here.rglob("*")) == before
    assert seconds < 10, f"took {seconds:.1f} s to refuse"


def test_strict_integer():
    assert [integer(t) for t in ("0", "40", "-3", "+7", "007")] == [0, 40, -3, 7, 7]
    for bad in ("4_0", " 4", "4 ", "4.0", "", "0x10", "١٢", "nan", "inf", "1e3"):
        with pytest.raises(Exception, match="invalid int value"):
            integer(bad)


def test_sweep_jobs_default_to_the_cpus_and_take_any_positive_number(here, monkeypatch):
    seen = []
    monkeypatch.setattr(synth_cli, "run_sweep",
                        lambda configs, *a, jobs, **k: seen.append(jobs) or {"files": []})
    assert call(["sweep", "systolic", "--sizes", "2", "-j", "3", "-o", "out"])[0] == 0
    assert call(["sweep", "systolic", "--sizes", "2", "-j", "64", "-o", "out"])[0] == 0
    assert call(["sweep", "systolic", "--sizes", "2", "-o", "out"])[0] == 0
    assert seen == [3, 64, len(os.sched_getaffinity(0))]


def test_generate_with_empty_output_writes_nothing_here(here, capsys):
    assert call(["generate", "systolic", "--rows", "2", "--cols", "2", "-o", ""])[0] == 2
    assert sorted(p.name for p in here.iterdir()) == ["in"]


@pytest.mark.amaranth
def test_generate_leaves_no_verilog_when_the_manifest_cannot_be_written(here, capsys):
    name = SystolicConfig(2, 2).name
    (here / "out").mkdir()
    (here / "out" / f"{name}.json").mkdir()  # the manifest cannot replace a directory
    assert call(["generate", "systolic", "--rows", "2", "--cols", "2", "-o", "out"])[0] == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"systolix: error: cannot write out/{name}.json")
    assert sorted(p.name for p in (here / "out").iterdir()) == [f"{name}.json"]


@pytest.mark.amaranth
def test_generate_keeps_an_existing_verilog_file_when_the_manifest_fails(here, capsys):
    """Only files this run created are removed: an earlier <name>.v (the same configuration,
    so the same text) stays."""
    name = SystolicConfig(2, 2).name
    (here / "out").mkdir()
    (here / "out" / f"{name}.v").write_text("earlier\n")
    (here / "out" / f"{name}.json").mkdir()
    assert call(["generate", "systolic", "--rows", "2", "--cols", "2", "-o", "out"])[0] == 1
    assert (here / "out" / f"{name}.v").is_file()


@pytest.mark.parametrize("kind,shown,hidden", [
    ("systolic", ["--rows", "--dataflow", "--pipeline"],
     ["--max-m", "--m ", "--arch", "--cores", "tensor cores:"]),
    ("engine", ["--rows", "--max-m", "--arch", "--cores", "--m "], []),
    ("tensorcore", ["--m ", "--k ", "--pipeline", "dot-product unit"],
     ["--rows", "--dataflow", "--max-m", "--arch", "--cores", "PE register stages"]),
])
def test_generate_kind_help_is_that_kinds_only(capsys, kind, shown, hidden):
    for argv in (["generate", kind, "--help"], ["generate", kind, "-h"],
                 ["generate", "--rows", "2", kind, "--help"]):
        assert call(argv)[0] == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: systolix generate {kind} ")
        assert all(flag in text for flag in shown), text
        assert not any(flag in text for flag in hidden), text


def test_generate_help_without_a_kind_shows_every_flag(capsys):
    assert call(["generate", "--help"])[0] == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("{systolic,engine,tensorcore}", "--rows", "--max-m",
                                         "--m ", "--arch"))


def test_synth_kind_help(capsys):
    assert call(["build", "systolic", "--help"])[0] == 0
    text = capsys.readouterr().out
    assert "--board" in text and "--baud" not in text and "--max-m" not in text
    assert call(["build", "engine", "--help"])[0] == 0
    assert "--baud" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    assert call(["--help"])[0] == 0
    text = capsys.readouterr().out
    for command in ("generate", "run", "infer", "board", "demo", "synth", "sweep", "build"):
        assert f"\n    {command} " in text, command
