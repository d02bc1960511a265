"""Verilator lint (`--lint-only -Wall`) of emitted Verilog with the `.vlt` emitted beside it.

The `.vlt` waives only classes listed, with their justification, in `emit.LINT_WAIVERS`: any
other warning class fails the test, so new lint findings cannot slip in; a waiver that no design
needs any more fails too.
"""

import re

import pytest

from helpers import WORK_DIR, lint_with_config
from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.emit import LINT_WAIVERS, lint_rules, write_design
from systolix.sim.runner import lint

pytestmark = [pytest.mark.rtl, pytest.mark.verilator]

WS = Dataflow.WEIGHT_STATIONARY

CONFIGS = [
    SystolicConfig(4, 4),
    SystolicConfig(1, 1),
    SystolicConfig(3, 5, numerics=Numerics(in_width=16, acc_width=40, saturate=True)),
    SystolicConfig(2, 2, numerics=Numerics(signed=False, acc_width=17, saturate=True)),
    SystolicConfig(4, 3, WS),
    SystolicConfig(1, 1, WS, Numerics(signed=False, acc_width=17)),
    EngineConfig(SystolicConfig(2, 3), 5, 6, 7),
    EngineConfig(SystolicConfig(3, 2, WS, Numerics(acc_width=20, saturate=True)), 8, 8, 4),
    EngineConfig(SystolicConfig(1, 1, WS), 1, 1, 1),
    RequantConfig(2),
    pytest.param(RequantConfig(2, mode="float32"), marks=pytest.mark.slow),
    EngineConfig(SystolicConfig(2, 3, WS), 4, 5, 7, requant=RequantConfig(3, out_signed=False)),
    EngineConfig(max_m=5, max_k=7, max_n=6, core=TensorCoreConfig(2, 2, 2), cores=2),
    EngineConfig(max_m=3, max_k=3, max_n=5, core=TensorCoreConfig(3, 1, 3, pipeline=0)),
    EngineConfig(max_m=1, max_k=1, max_n=1, core=TensorCoreConfig(1, 1, 1)),
    EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2, pipeline=2),
                 requant=RequantConfig(2)),
    TensorCoreConfig(4, 4, 4),
]


def _write(config):
    return write_design(config, WORK_DIR / "lint", only_if_changed=True)


def _classes(output):
    return set(re.findall(r"%Warning-([A-Z0-9_]+)", output))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_verilator_lint_clean_with_emitted_vlt(config):
    v, _, vlt = _write(config)
    lint_with_config(v, vlt, config.name)


def test_vlt_waives_exactly_the_justified_rules(tmp_path):
    """The .vlt lists each waived rule once, for this file only, with its justification; the
    manifest records the same rules."""
    import json
    config = SystolicConfig(2, 2)
    v, m, vlt = write_design(config, tmp_path)
    text = vlt.read_text()
    assert text.startswith("`verilator_config\n")
    rules = re.findall(r'^lint_off -rule (\S+) -file "\*(\S+)"$', text, re.M)
    waived = lint_rules(v.read_text())
    assert rules == [(rule, v.name) for rule in waived]
    for rule, why in waived.items():
        assert f"// {rule}: {why}\n" in text
    assert set(waived) <= set(LINT_WAIVERS)
    manifest = json.loads(m.read_text())
    assert manifest["lint"]["waived"] == waived
    assert manifest["lint"]["config"] == vlt.name


def test_other_warning_classes_fail():
    """A warning class the .vlt does not waive is still reported (the waivers are per rule)."""
    config = SystolicConfig(2, 2)
    v, _, vlt = _write(config)
    bad = WORK_DIR / "lint" / "unwaived_extra.v"
    # an undriven wire: UNDRIVEN is not a waived class
    bad.write_text("module unwaived_extra(input clk, output [1:0] y);\n"
                   "  wire [1:0] z;\n  assign y = z;\nendmodule\n")
    rc, out = lint(bad, "unwaived_extra", [str(vlt)])
    assert rc != 0 and "%Warning-UNDRIVEN" in out
    # a waived class is waived for the design's own file only (clk is unused here)
    assert "%Warning-UNUSEDSIGNAL" in out


def test_waivers_are_still_needed():
    """Every rule a design's .vlt waives occurs in that design without it (else the waiver
    should go), and every rule in LINT_WAIVERS is needed by some design."""
    seen = set()
    for config in (SystolicConfig(2, 2), SystolicConfig(2, 2, WS), RequantConfig(2),
                   EngineConfig(SystolicConfig(2, 2, WS), 4, 4, 4),
                   EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2))):
        v, _, _ = _write(config)
        found = _classes(lint(v, config.name)[1])
        waived = set(lint_rules(v.read_text()))
        # WIDTHEXPAND is waived wherever Amaranth may extend an operand; it need not occur in
        # every design (a bare WS array has none), only in some
        missing = waived - found - {"WIDTHEXPAND"}
        assert not missing, f"{config.name}: {missing} no longer occur: drop the waiver"
        assert found <= waived, f"{config.name}: unwaived {found - waived}"
        seen |= found
    for rule in LINT_WAIVERS:
        assert rule in seen, f"{rule} no longer occurs: drop its waiver"
