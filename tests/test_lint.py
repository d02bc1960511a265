"""Verilator lint (`--lint-only -Wall`) of emitted Verilog, with every waiver justified.

Any warning class not listed here fails the test, so new lint findings cannot slip in.
"""

import pytest

from helpers import WORK_DIR
from systolix.config import Numerics, SystolicConfig
from systolix.emit import write_design
from systolix.simulate import lint

pytestmark = pytest.mark.verilator

#: Warning classes Amaranth's Verilog backend always produces, and why each is harmless.
WAIVERS = {
    # Amaranth writes a design and its submodules to one file as `top`, `top.a_skew`, ...
    "DECLFILENAME": "one file per generated design is the intended packaging",
    # Amaranth arithmetic is exact: it relies on Verilog's implicit sign/zero extension of a
    # narrow operand (e.g. a 16-bit product) to the width of the sum it is added to.
    "WIDTHEXPAND": "operand extension to the result width is the intended arithmetic",
    # Amaranth declares registers as `reg x = <init>;` (their power-on / reset value) and then
    # assigns them in always blocks; FPGAs and simulators honour the initial value.
    "PROCASSINIT": "initial values of registers are the reset values, by design",
    # Forwarding registers of the last column / bottom row and the unused top bits of exact
    # intermediate sums have no reader; synthesis removes them.
    "UNUSEDSIGNAL": "array-edge forwarding outputs and intermediate bits are unused by design",
}


@pytest.mark.parametrize("config", [
    SystolicConfig(4, 4),
    SystolicConfig(1, 1),
    SystolicConfig(3, 5, numerics=Numerics(in_width=16, acc_width=40, saturate=True)),
    SystolicConfig(2, 2, numerics=Numerics(signed=False, acc_width=17, saturate=True)),
], ids=lambda c: c.name)
def test_verilator_lint_clean(config):
    v, _ = write_design(config, WORK_DIR / "lint", only_if_changed=True)
    rc, out = lint(v, config.name, [f"-Wno-{w}" for w in WAIVERS])
    assert rc == 0, out
    assert "%Warning" not in out and "%Error" not in out, out


def test_waivers_are_still_needed():
    """If Amaranth stops producing a waived class, the waiver should go."""
    config = SystolicConfig(2, 2)
    v, _ = write_design(config, WORK_DIR / "lint", only_if_changed=True)
    rc, out = lint(v, config.name)
    for warning in WAIVERS:
        assert f"%Warning-{warning}" in out, f"{warning} no longer occurs: drop its waiver"
