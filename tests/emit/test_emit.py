import json
import re
import subprocess
import sys

import pytest

from helpers import ROOT
from systolix.apps.demo import demo_designs
from systolix import __version__
from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.model.cycles import ws_array_cycles
from systolix.emit import lint_config, manifest, verilog_text, write_design
from systolix.errors import SystolixError

WS = Dataflow.WEIGHT_STATIONARY

pytestmark = pytest.mark.amaranth


def _generate(out_dir, *flags):
    subprocess.run([sys.executable, "-m", "systolix", "generate", "systolic", *flags,
                    "-o", str(out_dir)], check=True, capture_output=True)


def test_same_config_gives_byte_identical_output(tmp_path):
    flags = ("--rows", "3", "--cols", "5", "--unsigned", "--saturate", "--acc-width", "24")
    _generate(tmp_path / "one", *flags)
    _generate(tmp_path / "two", *flags)
    name = "systolic_os_3x5_uint8_acc24_saturate"
    for ext in (".v", ".json", ".vlt"):
        assert (tmp_path / "one" / (name + ext)).read_bytes() == \
            (tmp_path / "two" / (name + ext)).read_bytes()
    text = (tmp_path / "one" / (name + ".v")).read_text()
    assert f"module {name}(" in text and str(ROOT) not in text  # no source paths leak in


@pytest.mark.parametrize("cfg", [c for _, c in demo_designs()], ids=lambda c: c.name)
def test_committed_demo_rtl_is_current(cfg):
    text = verilog_text(cfg)
    assert (ROOT / "rtl" / f"{cfg.name}.v").read_text() == text, \
        "rtl/ is stale: run `make generate`"
    assert (ROOT / "rtl" / f"{cfg.name}.vlt").read_text() == lint_config(cfg.name, text)
    committed = json.loads((ROOT / "rtl" / f"{cfg.name}.json").read_text())
    assert committed == json.loads(json.dumps(manifest(cfg, verilog=text)))


def test_manifest_contents(tmp_path):
    cfg = SystolicConfig(4, 2, numerics=Numerics(acc_width=40, saturate=True))
    _, path, _ = write_design(cfg, tmp_path)
    m = json.loads(path.read_text())
    assert m["module"] == cfg.name
    assert m["config"]["numerics"]["overflow"] == "saturate"
    assert m["config"]["numerics"]["output_dtype"] == "int64"
    assert m["timing"]["result_latency"] == 4 + 2 - 1
    assert m["timing"]["min_last_spacing"] == 4
    assert m["tools"]["systolix"] == __version__ and m["tools"]["amaranth"].startswith("0.5")
    names = [p["name"] for p in m["ports"]]
    assert names == ["clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload",
                     "o__valid"]
    widths = {p["name"]: p["width"] for p in m["ports"]}
    text = (tmp_path / f"{cfg.name}.v").read_text()
    for name, width in widths.items():  # the manifest agrees with the Verilog
        decl = f"[{width - 1}:0] {name};" if width > 1 else f" {name};"
        assert decl in text, name


def test_write_design_is_all_or_nothing(tmp_path):
    """If one of the three files cannot be written, none of them is left behind."""
    cfg = SystolicConfig(2, 2)
    (tmp_path / f"{cfg.name}.vlt").mkdir()  # the .vlt cannot be written: a directory is there
    with pytest.raises(SystolixError, match=r"cannot write .*\.vlt"):
        write_design(cfg, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{cfg.name}.vlt"]
    (tmp_path / f"{cfg.name}.vlt").rmdir()
    paths = write_design(cfg, tmp_path)
    assert [p.suffix for p in paths] == [".v", ".json", ".vlt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def _ports(m):
    return {p["name"]: p for p in m["ports"]}


def test_every_manifest_has_timing_cycle_model_reset_and_lint():
    for cfg in (SystolicConfig(2, 2), SystolicConfig(2, 3, WS), RequantConfig(2),
                TensorCoreConfig(2, 2, 2), EngineConfig(SystolicConfig(2, 2), 4, 4, 4),
                EngineConfig(SystolicConfig(2, 2, WS), 4, 4, 4),
                EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2))):
        m = manifest(cfg)
        missing = {"timing", "reset", "lint"} - set(m)
        if not isinstance(cfg, RequantConfig):  # a pipeline of fixed latency: timing says it
            missing |= {"cycle_model"} - set(m)
        assert not missing, f"{cfg.name}: no {missing}"
        assert "time zero" in m["reset"]["description"]
        assert m["lint"]["usage"] == f"verilator --lint-only -Wall {cfg.name}.v {cfg.name}.vlt"
        ports = _ports(m)
        assert ports["clk"]["direction"] == "input" and "rising edge" in ports["clk"]["meaning"]
        assert ports["rst"]["direction"] == "input" and "reset" in ports["rst"]["meaning"]


def test_ws_array_cycle_model_example_matches_the_model():
    cfg = SystolicConfig(3, 2, WS)
    m = manifest(cfg)
    assert m["cycle_model"]["example"] == ws_array_cycles(cfg, 12, 12, 8).to_dict()
    # 2R + C + M + (tiles - 1) * max(M, R), tiles = ceil(K/R) * ceil(N/C)
    assert ws_array_cycles(cfg, 12, 12, 8).cycles == 6 + 2 + 12 + (4 * 4 - 1) * 12
    assert ws_array_cycles(cfg, 1, 3, 2).cycles == 6 + 2 + 1
    assert ws_array_cycles(cfg, 2, 4, 2).cycles == 6 + 2 + 2 + 1 * 3


def test_engine_description_names_only_its_own_core():
    os_, ws = (manifest(EngineConfig(SystolicConfig(2, 2, d), 4, 4, 4))["timing"]["description"]
               for d in (Dataflow.OUTPUT_STATIONARY, WS))
    tc = manifest(EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2)))
    tc = tc["timing"]["description"]
    for text in (os_, ws):
        assert "tensor core" not in text.lower() and "fragment" not in text
        assert "(both dataflows)" in text
    assert "output-stationary:" in os_ and "weight-stationary" not in os_.lower()
    assert "weight-stationary:" in ws and "output-stationary" not in ws.lower()
    assert "``a``, tensor core" in tc and "``b``, tensor core" in tc and "Tensor core:" in tc
    assert "stationary" not in tc.lower() and "(both dataflows)" not in tc
    for text in (os_, ws, tc):  # shared parts stay
        assert "**Load**" in text and "**Drain**" in text and "reads 0 after a rejected" in text


def test_engine_cycles_and_lane_bit_positions_are_stated():
    cfg = EngineConfig(SystolicConfig(2, 3, numerics=Numerics(acc_width=24)), 4, 4, 4)
    ports = _ports(manifest(cfg))
    assert "0 after a rejected command" in ports["cycles"]["meaning"]
    data = {f["name"]: f for f in ports["c__payload"]["fields"]}["data"]
    assert data["elements"] == 3 and data["element_width"] == 24
    assert data["element_bits"].startswith("element i at bits [i*24 +: 24]")
    a = _ports(manifest(SystolicConfig(2, 3, WS)))
    assert a["psum"]["element_bits"].startswith(f"element i at bits [i*{a['psum']['element_width']}")
    mma = _ports(manifest(TensorCoreConfig(2, 3, 4)))
    d = {f["name"]: f for f in mma["o__payload"]["fields"]}["d"]
    assert d["element_bits"].startswith("element (r, c) at bits [(r*3 + c)*32 +: 32]")


def _not_elaborated(config):
    raise AssertionError("elaborated, should have been refused first")


def test_engine_buffers_beyond_the_limit_are_refused_before_elaboration(monkeypatch):
    from systolix import emit
    from systolix.config import EngineConfig
    from systolix.errors import SystolixError
    fits = EngineConfig(SystolicConfig(16, 16), 256, 256, 256)
    assert fits.buffer_bits <= emit.MAX_BUFFER_BITS
    emit.check_buffer_size(fits)
    monkeypatch.setattr(emit, "_kind", _not_elaborated)
    for dims in [(1024, 1024, 1024), (65535, 65535, 65535)]:
        big = EngineConfig(SystolicConfig(8, 8), *dims)
        assert big.buffer_bits > emit.MAX_BUFFER_BITS
        with pytest.raises(SystolixError, match=f"{big.buffer_bits:,} bits, more than the "
                                                f"8,388,608"):
            emit.build(big)


def test_write_design_writes_both_files_or_none(tmp_path):
    config = SystolicConfig(2, 2)
    (tmp_path / f"{config.name}.json").mkdir()  # the manifest cannot be written
    with pytest.raises(Exception, match="cannot write"):
        write_design(config, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{config.name}.json"]


KIND_EXAMPLES = [
    SystolicConfig(2, 3), SystolicConfig(2, 3, Dataflow.WEIGHT_STATIONARY),
    EngineConfig(SystolicConfig(2, 2), 4, 4, 4, requant=RequantConfig(2)),
    EngineConfig(None, 4, 4, 4, core=TensorCoreConfig(2, 2, 2)),
    TensorCoreConfig(2, 2, 2), RequantConfig(2),
]


@pytest.mark.parametrize("cfg", KIND_EXAMPLES, ids=lambda c: c.name)
def test_verilog_port_directions_are_the_manifests(cfg, tmp_path):
    """Amaranth infers each port's direction from what drives it; it must be the direction
    the signature (hence the manifest) gives, for every kind."""
    v_path, m_path = write_design(cfg, tmp_path)[:2]
    text = v_path.read_text()
    top = text[text.index(f"module {cfg.name}("):]
    top = top[:top.index("endmodule")]
    declared = {name: direction for direction, name in re.findall(
        r"^\s*(input|output)\s+(?:signed\s+)?(?:\[\d+:\d+\]\s+)?(\S+);", top, re.M)}
    ports = json.loads(m_path.read_text())["ports"]
    assert declared == {p["name"]: p["direction"] for p in ports}
    assert "output" in declared.values() and "input" in declared.values()


def test_manifest_of_a_config_warns_about_nothing():
    """`manifest(config)` builds the component only to read its ports and latencies."""
    code = ("from systolix.config import EngineConfig, SystolicConfig\n"
            "from systolix.emit import manifest, verilog_text\n"
            "import gc\n"
            "verilog_text(SystolicConfig(2, 2))  # Amaranth warns only once it has elaborated\n"
            "manifest(SystolicConfig(2, 2)); manifest(EngineConfig(SystolicConfig(2, 2), 4, 4, 4))\n"
            "gc.collect()\n")
    p = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
