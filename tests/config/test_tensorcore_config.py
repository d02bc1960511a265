"""Tensor-core MMA unit: config, golden and cycle model, emission, manifest, CLI, lint."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from helpers import ROOT, WORK_DIR, lint_with_config, slow_gemm
from systolix.model import golden
from systolix.config import Numerics, SystolicConfig, TensorCoreConfig
from systolix.emit import build, verilog_text, write_design
from systolix.model.cycles import mma_stream_cycles
from systolix.sim.mma import pack_input_beats, unpack_output_beats

pytestmark = [pytest.mark.model, pytest.mark.amaranth, pytest.mark.rtl]


# --- config -------------------------------------------------------------------------------------

def test_defaults_and_name():
    c = TensorCoreConfig()
    assert (c.m, c.n, c.k, c.pipeline, c.latency) == (4, 4, 4, 1, 2)
    assert c.name == "tensorcore_4x4x4_int8_acc32_wrap"
    assert c.macs == 64 and c.accumulation_chunk == 4 and c.sum_width == 18
    assert TensorCoreConfig(2, 3, 5, pipeline=2,
                            numerics=Numerics(signed=False, saturate=True)).name == \
        "tensorcore_2x3x5_uint8_acc32_saturate_p2"
    assert TensorCoreConfig(pipeline=0).name.endswith("_wrap_p0")


@pytest.mark.parametrize("k,levels,cuts", [
    (1, 0, [(), (0,), (-1, 0)]),
    (2, 1, [(), (0,), (0, 1), (-1, 0, 1)]),
    (4, 2, [(), (1,), (0, 1), (0, 1, 2), (-1, 0, 1, 2)]),
    (5, 3, [(), (1,), (0, 2), (0, 1, 2), (0, 1, 2, 3), (-1, 0, 1, 2, 3)]),
    (64, 6, None),
])
def test_register_cuts(k, levels, cuts):
    c = TensorCoreConfig(k=k)
    assert c.tree_levels == levels and c.max_pipeline == levels + 2
    got = [TensorCoreConfig(k=k, pipeline=p).register_cuts for p in range(levels + 3)]
    if cuts is not None:
        assert got == cuts
    for p, cut in enumerate(got):  # always p distinct, increasing cuts in 0..T (-1 .. T last)
        low = -1 if p == levels + 2 else 0
        assert len(cut) == p and list(cut) == sorted(set(cut)) and all(low <= x <= levels
                                                                        for x in cut)


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(m=0), ValueError, "m must be in range 1..64, not 0"),
    (dict(n=65), ValueError, "n must be in range 1..64, not 65"),
    (dict(k=2.0), TypeError, "k must be an integer"),
    (dict(k=4, pipeline=5), ValueError, r"pipeline must be in range 0..4 for k = 4"),
    (dict(k=1, pipeline=-1), ValueError, r"pipeline must be in range 0..2 for k = 1"),
    (dict(pipeline=True), TypeError, "pipeline must be an integer"),
    (dict(numerics="int8"), TypeError, "numerics must be a Numerics"),
])
def test_config_validation(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        TensorCoreConfig(**kwargs)


def test_dict_round_trip():
    c = TensorCoreConfig(3, 5, 7, pipeline=3, numerics=Numerics(12, 40, False, True))
    d = c.to_dict()
    assert d["kind"] == "tensorcore" and d["latency"] == 4
    assert d["numerics"]["accumulation_chunk"] == 7
    assert TensorCoreConfig.from_dict(json.loads(json.dumps(d))) == c
    with pytest.raises(AttributeError):
        c.k = 4


# --- golden model -------------------------------------------------------------------------------

NUMERICS = [
    Numerics(), Numerics(acc_width=16), Numerics(acc_width=16, saturate=True),
    Numerics(signed=False, acc_width=17, saturate=True), Numerics(in_width=2, acc_width=4),
    Numerics(in_width=16, acc_width=64), Numerics(in_width=16, acc_width=64, saturate=True),
]


def slow_mma(a, b, c, n: Numerics):
    d = np.zeros(c.shape, dtype=object)
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            s = int(c[i, j]) + sum(int(a[i, x]) * int(b[x, j]) for x in range(a.shape[1]))
            if n.saturate:
                s = min(max(s, n.acc_min), n.acc_max)
            else:
                s = (s + 2**(n.acc_width - 1)) % 2**n.acc_width - 2**(n.acc_width - 1)
            d[i, j] = s
    return d


@pytest.mark.parametrize("n", NUMERICS, ids=repr)
def test_mma_matches_python_integers(n, seed):
    rng = np.random.default_rng(seed)
    for m, k, p in [(3, 4, 2), (1, 1, 1), (2, 64, 3)]:
        a = rng.integers(n.in_min, n.in_max + 1, (m, k))
        b = rng.integers(n.in_min, n.in_max + 1, (k, p))
        for c in (rng.integers(n.acc_min, n.acc_max, (m, p), endpoint=True),
                  np.full((m, p), n.acc_max), np.full((m, p), n.acc_min)):
            got = golden.mma(a, b, c, n)
            assert got.dtype == np.dtype(n.output_dtype)
            assert (got == slow_mma(a, b, c, n)).all(), f"seed {seed}"
    # batched: leading dimensions broadcast
    a = rng.integers(n.in_min, n.in_max + 1, (5, 2, 3))
    b = rng.integers(n.in_min, n.in_max + 1, (5, 3, 4))
    c = rng.integers(n.acc_min, n.acc_max, (5, 2, 4), endpoint=True)
    got = golden.mma(a, b, c, n)
    for t in range(5):
        assert (got[t] == slow_mma(a[t], b[t], c[t], n)).all()


@pytest.mark.parametrize("n", NUMERICS, ids=repr)
@pytest.mark.parametrize("k", [1, 4, 5])
def test_chained_mmas_are_gemm_with_chunk_k(n, k, seed):
    rng = np.random.default_rng(seed)
    for m, kk, p in [(3, 23, 2), (1, 1, 1), (2, 20, 3)]:
        a = rng.integers(n.in_min, n.in_max + 1, (m, kk))
        b = rng.integers(n.in_min, n.in_max + 1, (kk, p))
        want = golden.gemm(a, b, n, chunk=k)
        assert (want == slow_gemm(a, b, n, chunk=k)).all()
        np.testing.assert_array_equal(golden.chained_mma_gemm(a, b, n, k), want)


def test_saturating_chain_depends_on_chunk():
    """With saturation the chunk size is visible: the MMA rounds once per k products."""
    n = Numerics(acc_width=16, saturate=True)
    a = np.array([[127, 127, 127, 127]])
    b = np.array([[127], [127], [127], [-128]])
    assert golden.gemm(a, b, n, chunk=1)[0, 0] == 32767 - 16256  # clamps after the third product
    assert golden.chained_mma_gemm(a, b, n, 4)[0, 0] == 3 * 16129 - 16256  # one exact sum: 32131


def test_stream_cycle_model():
    c = TensorCoreConfig(k=8, pipeline=3)
    assert mma_stream_cycles(c, 1) == 1 + 4 and mma_stream_cycles(c, 100) == 104
    with pytest.raises(ValueError):
        mma_stream_cycles(c, 0)


def test_pack_unpack_round_trip(seed):
    config = TensorCoreConfig(3, 2, 4, numerics=Numerics(in_width=16, acc_width=64))
    nm = config.numerics
    rng = np.random.default_rng(seed)
    d = rng.integers(nm.acc_min, nm.acc_max, (6, 3, 2), endpoint=True)
    d[0] = nm.acc_min
    d[1] = nm.acc_max
    payloads = [int(x) for x in pack_input_beats(config, np.zeros((6, 3, 4)),
                                                 np.zeros((6, 4, 2)), d)]
    shift = (3 * 4 + 4 * 2) * 16  # C sits after A and B; D has C's layout at bit 0
    np.testing.assert_array_equal(unpack_output_beats(config, [p >> shift for p in payloads]), d)
    with pytest.raises(ValueError, match="expected"):
        pack_input_beats(config, np.zeros((1, 4, 3)), np.zeros((1, 4, 2)), np.zeros((1, 3, 2)))


# --- emission -----------------------------------------------------------------------------------

def _systolix(*args):
    return subprocess.run([sys.executable, "-m", "systolix", *map(str, args)],
                          capture_output=True, text=True)


def test_emission_is_deterministic(tmp_path):
    flags = ("--m", 2, "--n", 3, "--k", 5, "--pipeline", 2, "--unsigned", "--saturate",
             "--acc-width", 24)
    for d in ("one", "two"):
        proc = _systolix("generate", "tensorcore", *flags, "-o", tmp_path / d)
        assert proc.returncode == 0, proc.stderr
    name = "tensorcore_2x3x5_uint8_acc24_saturate_p2"
    assert proc.stdout.splitlines() == [f"wrote {tmp_path / 'two' / name}.v",
                                        f"wrote {tmp_path / 'two' / name}.json",
                                        f"wrote {tmp_path / 'two' / name}.vlt"]
    for ext in (".v", ".json", ".vlt"):
        assert (tmp_path / "one" / (name + ext)).read_bytes() == \
            (tmp_path / "two" / (name + ext)).read_bytes()
    text = (tmp_path / "one" / (name + ".v")).read_text()
    assert f"module {name}(" in text and str(ROOT) not in text


def test_build_dispatches_on_config_type():
    from systolix.hdl.os_array import OutputStationaryArray
    from systolix.hdl.tensorcore import MMAUnit
    for config, cls in ((TensorCoreConfig(), MMAUnit), (SystolicConfig(2, 2),
                                                        OutputStationaryArray)):
        top = build(config)
        assert type(top) is cls
    with pytest.raises(TypeError, match="cannot emit"):
        build(Numerics())


@pytest.mark.parametrize("config", [
    TensorCoreConfig(),
    TensorCoreConfig(2, 3, 5, pipeline=3, numerics=Numerics(acc_width=40, saturate=True)),
], ids=lambda c: c.name)
def test_manifest_contents(config, tmp_path):
    _, path, _ = write_design(config, tmp_path)
    m = json.loads(path.read_text())
    assert m["module"] == config.name
    assert m["config"] == json.loads(json.dumps(config.to_dict()))
    assert m["timing"]["latency"] == config.latency == config.pipeline + 1
    assert m["timing"]["initiation_interval"] == 1
    names = [p["name"] for p in m["ports"]]
    assert names == ["clk", "rst", "i__payload", "i__valid", "o__payload", "o__valid"]
    nm, w, acc = config.numerics, config.numerics.in_width, config.numerics.acc_width
    widths = {p["name"]: p["width"] for p in m["ports"]}
    mm, n, k = config.m, config.n, config.k
    assert widths["i__payload"] == (mm * k + k * n) * w + mm * n * acc
    assert widths["o__payload"] == mm * n * acc
    fields = {f["name"]: f for p in m["ports"] for f in p.get("fields", [])}
    assert [fields[x]["offset"] for x in "abc"] == [0, mm * k * w, (mm * k + k * n) * w]
    assert fields["a"]["matrix"] == [mm, k] and fields["b"]["matrix"] == [k, n]
    assert fields["c"]["matrix"] == fields["d"]["matrix"] == [mm, n]
    assert fields["d"]["element_width"] == acc and fields["d"]["element_signed"]
    assert fields["a"]["element_signed"] == nm.signed
    text = (tmp_path / f"{config.name}.v").read_text()
    for name, width in widths.items():  # the manifest agrees with the Verilog
        decl = f"[{width - 1}:0] {name};" if width > 1 else f" {name};"
        assert decl in text, name
    assert "i__ready" not in text  # always ready: no port


def test_verilog_has_one_multiplier_per_mac():
    """Each dot-product unit is one module with k multipliers, instantiated m x n times."""
    config = TensorCoreConfig(2, 3, 5)
    text = verilog_text(config)
    bodies = {body.split("(")[0].strip(): body
              for body in re.split(r"^module ", text, flags=re.M)[1:]}
    instances = {name: len(re.findall(rf"^\s*{re.escape(name)}\s", text, re.M))
                 for name in bodies}
    top = config.name
    assert instances[top] == 0 and bodies[top].count(" * ") == 0
    multipliers = sum(body.count(" * ") * instances[name] for name, body in bodies.items())
    assert multipliers == config.macs
    assert sorted(body.count(" * ") for body in bodies.values() if " * " in body) == [config.k]


# --- CLI ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,fragment,code", [
    (["--k", 4, "--pipeline", 5], "pipeline must be in range 0..4 for k = 4", 1),
    (["--m", 0], "m must be in range 1..64, not 0", 1),
    (["--rows", 4], "--rows cannot be used with 'generate tensorcore'", 1),
    (["--acc-width", 15], "acc_width must be at least 16", 1),
    (["--k", "x"], "argument --k: invalid int value", 2),
])
def test_cli_errors_are_one_line(tmp_path, args, fragment, code):
    out = tmp_path / "out"
    proc = _systolix("generate", "tensorcore", *args, "-o", out)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("systolix: error: ") and fragment in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()  # nothing written


def test_cli_rejects_tensorcore_flags_for_systolic(tmp_path):
    proc = _systolix("generate", "systolic", "--k", 4, "-o", tmp_path / "out")
    assert proc.returncode == 1 and "--k cannot be used with 'generate systolic'" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- lint ---------------------------------------------------------------------------------------

@pytest.mark.verilator
@pytest.mark.parametrize("config", [
    TensorCoreConfig(),
    TensorCoreConfig(1, 1, 1, pipeline=0),
    TensorCoreConfig(2, 3, 5, pipeline=4, numerics=Numerics(in_width=16, acc_width=40,
                                                            saturate=True)),
    TensorCoreConfig(3, 2, 3, pipeline=2, numerics=Numerics(signed=False, acc_width=17,
                                                            saturate=True)),
], ids=lambda c: c.name)
def test_verilator_lint_clean(config):
    v, _, vlt = write_design(config, WORK_DIR / "lint", only_if_changed=True)
    lint_with_config(v, vlt, config.name)
