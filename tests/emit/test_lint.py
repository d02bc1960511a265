"""Verilator lint (`--lint-only -Wall`) of emitted Verilog, with every waiver justified.

Any warning class not listed here fails the test, so new lint findings cannot slip in.
"""

import pytest

from helpers import WAIVERS, WORK_DIR
from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.emit import write_design
from systolix.sim.runner import lint

pytestmark = [pytest.mark.rtl, pytest.mark.verilator]


WS = Dataflow.WEIGHT_STATIONARY


@pytest.mark.parametrize("config", [
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
    EngineConfig(SystolicConfig(2, 3, WS), 4, 5, 7, requant=RequantConfig(3, out_signed=False)),
    EngineConfig(max_m=5, max_k=7, max_n=6, core=TensorCoreConfig(2, 2, 2), cores=2),
    EngineConfig(max_m=3, max_k=3, max_n=5, core=TensorCoreConfig(3, 1, 3, pipeline=0)),
    EngineConfig(max_m=1, max_k=1, max_n=1, core=TensorCoreConfig(1, 1, 1)),
    EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2, pipeline=2),
                 requant=RequantConfig(2)),
], ids=lambda c: c.name)
def test_verilator_lint_clean(config):
    v, _ = write_design(config, WORK_DIR / "lint", only_if_changed=True)
    rc, out = lint(v, config.name, [f"-Wno-{w}" for w in WAIVERS])
    assert rc == 0, out
    assert "%Warning" not in out and "%Error" not in out, out


def test_waivers_are_still_needed():
    """If Amaranth stops producing a waived class, the waiver should go."""
    out = ""
    for config in (SystolicConfig(2, 2), EngineConfig(SystolicConfig(2, 2, WS), 4, 4, 4)):
        v, _ = write_design(config, WORK_DIR / "lint", only_if_changed=True)
        out += lint(v, config.name)[1]
    for warning in WAIVERS:
        assert f"%Warning-{warning}" in out, f"{warning} no longer occurs: drop its waiver"
