# amaranth: UnusedElaboratable=no
"""The LUT-built multiplier is exactly ``a * b``, ``latency`` cycles late.

Emitted as Verilog and run in Icarus: every int8 x int8 operand pair (and every pair of a few
small, mixed shapes) for both algorithms, and a random stream through the pipelined versions
compared with the product of the operands ``latency`` cycles earlier.
"""

import shutil

import pytest
from amaranth.back import verilog
from amaranth.hdl import Signal, signed, unsigned

from systolix.hdl.lutmult import LUTMultiplier

from helpers import check_every_product, icarus_result, verilog_signed

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]


#: int8 x int8 in full, and smaller or mixed shapes (odd widths, 1-bit operands)
SHAPES = [(signed(8), signed(8)), (unsigned(8), unsigned(4)), (signed(5), signed(3)),
          (unsigned(4), unsigned(7)), (signed(2), signed(1)), (unsigned(1), unsigned(2))]
#: under the slow marker: also uint8 x uint8 in full
SLOW_SHAPES = SHAPES + [(unsigned(8), unsigned(8))]


@pytest.mark.parametrize("algorithm,shapes", [
    ("booth", SHAPES),
    pytest.param("booth", SLOW_SHAPES, marks=pytest.mark.slow, id="booth-uint8"),
    pytest.param("array", SLOW_SHAPES, marks=pytest.mark.slow, id="array-uint8")])
def test_every_operand_pair(algorithm, shapes, tmp_path):
    """Exhaustive, combinational (latency 0), every shape in one module."""
    check_every_product(tmp_path, [LUTMultiplier(sa, sb, latency=0, algorithm=algorithm)
                                   for sa, sb in shapes])


@pytest.mark.parametrize("latency", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_pipelined_product_is_latency_cycles_late(latency, tmp_path, seed):
    sa, sb = signed(8), unsigned(7)
    mult = LUTMultiplier(sa, sb, latency=latency)
    wp = len(mult.p)
    dut = verilog.convert(mult, name="m", emit_src=False)
    tb = f"""module tb;
  reg clk = 0, rst = 0; reg [7:0] a = 0; reg [6:0] b = 0; wire [{wp - 1}:0] p;
  reg signed [63:0] hist [0:{latency}];
  integer t, k, e = 0, n = 0, seed = {seed % 2 ** 31};
  m u(.clk(clk), .rst(rst), .a(a), .b(b), .p(p));
  always #5 clk = ~clk;
  initial begin
    for (t = 0; t < 2000; t = t + 1) begin
      @(negedge clk);
      for (k = {latency}; k > 0; k = k - 1) hist[k] = hist[k - 1];
      if (t > {latency}) begin n = n + 1; if (p !== hist[{latency}][{wp - 1}:0]) e = e + 1; end
      a = $random(seed); b = $random(seed);
      hist[0] = {verilog_signed('a', sa)} * {verilog_signed('b', sb)};
      if (t % 7 == 3) a = 8'h80;  // the most negative operand, often
      if (t % 7 == 3) hist[0] = -128 * {verilog_signed('b', sb)};
    end
    $display("RESULT errors=%0d checked=%0d", e, n); $finish;
  end
endmodule
"""
    got = icarus_result(tmp_path, {"tb.v": tb, "dut.v": dut}, timeout=120)
    assert got["checked"] > 1900 and got["errors"] == 0, (got, seed)


def test_bad_arguments():
    with pytest.raises(ValueError, match="latency must be 0, 1 or 2, not 3"):
        LUTMultiplier(signed(8), signed(8), latency=3)
    with pytest.raises(ValueError, match="algorithm must be one of booth, array, not 'wallace'"):
        LUTMultiplier(signed(8), signed(8), algorithm="wallace")
    with pytest.raises(ValueError, match="a_shape must be 1..32 bits wide, not 33"):
        LUTMultiplier(signed(33), signed(8))
    a, b = Signal(signed(8)), Signal(unsigned(8))
    assert LUTMultiplier(a.shape(), b.shape()).p.shape() == (a * b).shape()
