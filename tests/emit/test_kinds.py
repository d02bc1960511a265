"""The kind registry (systolix.kinds) is the one table of design kinds: every kind round-trips
through its dict, builds, has a complete manifest, and the command line offers exactly the
registered kinds."""

import re

import pytest
from amaranth.lib import wiring

from helpers import ROOT
from systolix import emit, kinds
from systolix.cli import main
from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.errors import SystolixError

pytestmark = pytest.mark.amaranth

WS = Dataflow.WEIGHT_STATIONARY

#: Small configs of every kind; a new kind must add its own (see test_samples_cover_every_kind).
SAMPLES = {
    "systolic": [SystolicConfig(2, 3), SystolicConfig(3, 2, WS), SystolicConfig(2, 2,
                                                                               pipeline="full")],
    "engine": [EngineConfig(SystolicConfig(2, 2), 4, 5, 6),
               EngineConfig(SystolicConfig(2, 3, WS), 5, 4, 6, requant=RequantConfig(3)),
               EngineConfig(core=TensorCoreConfig(2, 2, 2), cores=2, max_m=4, max_k=4,
                            max_n=8)],
    "requant": [RequantConfig(2, out_signed=False)],
    "tensorcore": [TensorCoreConfig(2, 3, 2, 0, Numerics(8, 20, True, True))],
}
ALL = [c for configs in SAMPLES.values() for c in configs]


def test_samples_cover_every_kind():
    assert list(SAMPLES) == kinds.names()


@pytest.mark.parametrize("config", ALL, ids=lambda c: c.name)
def test_kind_round_trips_builds_and_has_a_manifest(config):
    kind = kinds.of(config)
    d = config.to_dict()
    assert d["kind"] == kind.name and kinds.get(kind.name) is kind
    assert isinstance(config, kind.config)
    assert kind.from_dict(d) == config
    assert kinds.config_from_dict(d) == config
    top = kind.build(config)  # (kinds.py's linter option: no warning that it is unused)
    assert isinstance(top, wiring.Component)
    m = emit.manifest(config)
    assert m["module"] == config.name and m["config"] == d and "timing" in m
    assert m["ports"], "no ports"
    for port in m["ports"]:
        assert port["meaning"], f"port {port['name']} has no meaning"
        for field in port.get("fields", []):
            assert field["meaning"], f"field {port['name']}.{field['name']} has no meaning"
    if kind.cycles is not None and not (isinstance(config, SystolicConfig)
                                        and config.dataflow is WS):  # (no bare-WS GEMM model)
        model = kind.cycles(config, 2, 3, 2)
        assert model.macs == 2 * 3 * 2 and 0 < model.utilization <= 1


def test_lookup_errors():
    with pytest.raises(SystolixError, match="unknown design kind 'gpu'; choose one of "
                                            "systolic, engine, requant, tensorcore"):
        kinds.get("gpu")
    with pytest.raises(ValueError, match="unknown config kind 'gpu'"):
        kinds.config_from_dict({"kind": "gpu"})
    with pytest.raises(TypeError, match="not a design config"):
        kinds.of(Numerics())
    with pytest.raises(TypeError, match="cannot emit"):
        emit.build(Numerics())


def _choices(capsys, *argv):
    with pytest.raises(SystemExit):
        main([*argv, "no-such-kind", "-o", "unused"])
    err = capsys.readouterr().err
    listed = re.search(r"choose from (.*?)\)", err).group(1)
    return [name.strip(" '\"") for name in listed.split(",")]


@pytest.mark.parametrize("command", ["generate", "synth", "sweep", "build"])
def test_command_line_kinds_are_the_registered_ones(capsys, command):
    assert _choices(capsys, command) == kinds.command_line_names()
    assert set(kinds.command_line_names()) <= set(kinds.names())


def test_there_is_one_registry():
    """No other module keeps a table of kinds (as ``KINDS`` in emit and synth and the class
    table of ``config_from_dict`` did; the command line's choices are checked above)."""
    pkg = ROOT / "gen" / "systolix"
    others = [p.relative_to(pkg).as_posix() for p in pkg.rglob("*.py")
              if p.name != "kinds.py" and re.search(r"^\s*KINDS\b.*=|\"tensorcore\":\s*\w+Config",
                                                    p.read_text(), re.M)]
    assert others == []


def test_engine_protocol_text_matches_the_engine_docstring():
    """The manifest's protocol text is data (kinds.ENGINE_PROTOCOL), not cut out of a docstring
    at run time; it must still say what MatrixEngine's docstring says."""
    from systolix.hdl.engine import MatrixEngine
    doc = MatrixEngine.__doc__.split("**Command** ")[1].split("Parameters\n")[0]
    assert " ".join(kinds.engine_protocol()) == " ".join(doc.split())
