"""``systolix infer --model`` against bad models, inputs and flags: one line on stderr, exit 1
(or 2 for a malformed command line), nothing written and no simulation started."""

import numpy as np
import pytest

from systolix.apps.cnn import model_path
from systolix.cli import app

pytestmark = pytest.mark.model


@pytest.fixture
def here(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    np.save(tmp_path / "in" / "x64.npy", np.zeros((2, 1, 8, 8)))
    np.save(tmp_path / "in" / "flat.npy", np.zeros((2, 64), np.float32))
    np.savez(tmp_path / "in" / "x.npz", x=np.zeros(3))
    (tmp_path / "in" / "bad.onnx").write_bytes(b"\x08\x07not a model")
    (tmp_path / "in" / "text.npy").write_text("1 2\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_sim(monkeypatch):
    from systolix.sim import runner

    def must_not_run(*args, **kwargs):
        raise AssertionError("a simulation was started")
    monkeypatch.setattr(runner, "run", must_not_run)
    monkeypatch.setattr(runner, "build", must_not_run)


QOP = str(model_path("qop"))
OUT = ["-o", "out/y.npy", "--work-dir", "out/w"]
CASES = [
    (["--model", "in/none.onnx", "--input", "in/x.npy"] + OUT, 1,
     "in/none.onnx: no such model file"),
    (["--model", "in/bad.onnx", "--input", "in/x.npy"] + OUT, 1,
     "in/bad.onnx: not a valid ONNX model ("),
    (["--model", str(model_path("float")), "--input", "in/x.npy"] + OUT, 1,
     "node 'conv1' (Conv): input 'input' is a float tensor: the model is not quantized"),
    (["--model", QOP, "--input", "in/x64.npy"] + OUT, 1, "the input must be float32, not float64"),
    (["--model", QOP, "--input", "in/flat.npy"] + OUT, 1,
     "the input must have shape Nx1x8x8, not 2x64"),
    (["--model", QOP, "--input", "in/none.npy"] + OUT, 1, "in/none.npy: no such input file"),
    (["--model", QOP, "--input", "in/text.npy"] + OUT, 1, "in/text.npy: not a .npy array"),
    (["--model", QOP, "--input", "in/x.npz"] + OUT, 1, "in/x.npz: not a .npy array"),
    (["--model", QOP] + OUT, 1, "--model needs --input X.npy"),
    (["--model", QOP, "--input", "in/x.npy"], 1, "--model needs -o Y.npy"),
    (["--model", QOP, "--input", "in/x.npy", "--images", "3"] + OUT, 1,
     "--images is for the digits MLP"),
    (["--model", QOP, "--input", "in/x.npy", "--mma", "4x4"] + OUT, 1,
     "--mma and --cores go with --arch tensorcore"),
    (["--model", QOP, "--input", "in/x.npy", "--arch", "tensorcore", "--mma", "4x4"] + OUT, 1,
     "--mma must be MxNxK"),
    (["--model", QOP, "--input", "in/x.npy", "--max-k", "64", "--sim", "icarus"] + OUT, 1,
     "layer 'conv2_quant': K = 72 exceeds the engine's buffers (max K = 64); raise --max-k"),
    (["--input", "in/x.npy", "--images", "3"], 1, "--input goes with --model"),
    (["--max-n", "8", "--images", "3"], 1, "--max-n goes with --model"),
    (["--model", ""] + OUT, 2, "argument --model: must not be empty"),
]


@pytest.mark.parametrize("argv,code,fragment", CASES,
                         ids=[" ".join(c[0])[-60:] for c in CASES])
def test_bad_model_input_or_flag(here, no_sim, capsys, argv, code, fragment):
    try:
        got = app.main(["infer", *argv])
    except SystemExit as e:
        got = e.code
    _, err = capsys.readouterr()
    lines = [l for l in err.strip().splitlines() if not l.startswith("layer ")]
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("systolix: error: "), err
    assert fragment in lines[0], lines[0]
    assert not (here / "out").exists()
