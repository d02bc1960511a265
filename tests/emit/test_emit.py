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
from systolix.emit import manifest, verilog_text, write_design

pytestmark = pytest.mark.amaranth


def _generate(out_dir, *flags):
    subprocess.run([sys.executable, "-m", "systolix", "generate", "systolic", *flags,
                    "-o", str(out_dir)], check=True, capture_output=True)


def test_same_config_gives_byte_identical_output(tmp_path):
    flags = ("--rows", "3", "--cols", "5", "--unsigned", "--saturate", "--acc-width", "24")
    _generate(tmp_path / "one", *flags)
    _generate(tmp_path / "two", *flags)
    name = "systolic_os_3x5_uint8_acc24_saturate"
    for ext in (".v", ".json"):
        assert (tmp_path / "one" / (name + ext)).read_bytes() == \
            (tmp_path / "two" / (name + ext)).read_bytes()
    text = (tmp_path / "one" / (name + ".v")).read_text()
    assert f"module {name}(" in text and str(ROOT) not in text  # no source paths leak in


@pytest.mark.parametrize("cfg", [c for _, c in demo_designs()], ids=lambda c: c.name)
def test_committed_demo_rtl_is_current(cfg):
    assert (ROOT / "rtl" / f"{cfg.name}.v").read_text() == verilog_text(cfg), \
        "rtl/ is stale: run `make generate`"
    committed = json.loads((ROOT / "rtl" / f"{cfg.name}.json").read_text())
    assert committed == json.loads(json.dumps(manifest(cfg)))


def test_manifest_contents(tmp_path):
    cfg = SystolicConfig(4, 2, numerics=Numerics(acc_width=40, saturate=True))
    _, path = write_design(cfg, tmp_path)
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


def test_engine_buffers_beyond_the_limit_are_refused_before_elaboration():
    import time

    from systolix import emit
    from systolix.config import EngineConfig
    from systolix.errors import SystolixError
    fits = EngineConfig(SystolicConfig(16, 16), 256, 256, 256)
    assert fits.buffer_bits <= emit.MAX_BUFFER_BITS
    emit.check_buffer_size(fits)
    for dims in [(1024, 1024, 1024), (65535, 65535, 65535)]:
        big = EngineConfig(SystolicConfig(8, 8), *dims)
        assert big.buffer_bits > emit.MAX_BUFFER_BITS
        t0 = time.monotonic()
        with pytest.raises(SystolixError, match=f"{big.buffer_bits:,} bits, more than the "
                                                f"4,194,304"):
            emit.build(big)
        assert time.monotonic() - t0 < 1


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
    v_path, m_path = write_design(cfg, tmp_path)
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
