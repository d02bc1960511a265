"""The ECP5 mapping of :class:`~systolix.hdl.buffer.BufferMemory` (DP16KD blocks reading
through their output register) and the iCE40 one (SB_RAM40_4K blocks, then a fabric register)
behave exactly like the generic RTL (a memory and a register).

Yosys ships no simulation model of DP16KD, so both versions are emitted as Verilog and run side
by side in Icarus against the small behavioural model below, written from the primitive's
documented ports for the subset used (port A writes, port B reads, DATA_WIDTH 1/2/4/9/18 with
the address's low bits unused, the x18 mode's byte enables on AD[1:0], CEB loading the read
register, OCEB the output register under REGMODE_B = "OUTREG"); it checks the wiring (address
bits, data slices, enables, register stages), not Lattice's silicon. The same holds for the
SB_RAM40_4K model (256 x 16 mode only: RE with RCLKE loads the read data, WE with WCLKE
writes the bits whose MASK bit is low).
"""

import shutil

import pytest
from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data

from systolix.hdl.buffer import BufferMemory
from systolix.synth.flow import SynthPlatform

from helpers import icarus_result

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]


def _dp16kd_model():
    ports = [f"{p}{i}" for p in ("ADA", "ADB") for i in range(14)]
    ports += [f"{p}{i}" for p in ("DIA", "DIB") for i in range(18)]
    ports += ["CLKA", "CEA", "OCEA", "WEA", "RSTA", "CSA0", "CSA1", "CSA2",
              "CLKB", "CEB", "OCEB", "WEB", "RSTB", "CSB0", "CSB1", "CSB2"]
    outs = [f"{p}{i}" for p in ("DOA", "DOB") for i in range(18)]
    cat = lambda p, n: "{" + ", ".join(f"{p}{i}" for i in reversed(range(n))) + "}"  # noqa
    return f"""
module DP16KD(input {", ".join(ports)}, output {", ".join(outs)});
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter GSR = "ENABLED";
  localparam LOW = DATA_WIDTH_A == 18 ? 4 : DATA_WIDTH_A == 9 ? 3 : DATA_WIDTH_A == 4 ? 2
                 : DATA_WIDTH_A == 2 ? 1 : 0;
  wire [13:0] ada = {cat("ADA", 14)};
  wire [13:0] adb = {cat("ADB", 14)};
  wire [17:0] dia = {cat("DIA", 18)};
  reg [17:0] mem [0:16383];
  reg [17:0] rd = 0, out = 0;
  integer i;
  initial for (i = 0; i < 16384; i = i + 1) mem[i] = 0;
  always @(posedge CLKA) if (CEA && WEA) begin
    if (DATA_WIDTH_A == 18) begin   // AD[1:0]: byte enables
      if (ada[0]) mem[ada >> LOW][8:0] <= dia[8:0];
      if (ada[1]) mem[ada >> LOW][17:9] <= dia[17:9];
    end else
      mem[ada >> LOW] <= dia & ((18'd1 << DATA_WIDTH_A) - 1);
  end
  always @(posedge CLKB) begin
    if (CEB) rd <= mem[adb >> LOW];
    if (OCEB) out <= rd;
  end
  wire [17:0] dob = REGMODE_B == "OUTREG" ? out : rd;
  assign {cat("DOB", 18)} = dob;
  assign {cat("DOA", 18)} = 18'd0;
endmodule
"""


def _sb_ram40_model():
    return """
module SB_RAM40_4K(input RCLK, RCLKE, RE, WCLK, WCLKE, WE, input [10:0] RADDR, WADDR,
                   input [15:0] MASK, WDATA, output reg [15:0] RDATA);
  parameter READ_MODE = 0;
  parameter WRITE_MODE = 0;
  reg [15:0] mem [0:255];
  integer i;
  initial begin
    for (i = 0; i < 256; i = i + 1) mem[i] = 0;
    RDATA = 0;
    if (READ_MODE != 0 || WRITE_MODE != 0) $error("model: 256 x 16 mode only");
  end
  always @(posedge WCLK) if (WCLKE && WE)
    mem[WADDR[7:0]] <= (mem[WADDR[7:0]] & MASK) | (WDATA & ~MASK);
  always @(posedge RCLK) if (RCLKE && RE) RDATA <= mem[RADDR[7:0]];
endmodule
"""


def _testbench(abits, width, depth, cycles, seed):
    return f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, w_en = 0, r_en = 1, r_oe = 1;
  reg [{abits - 1}:0] w_addr = 0, r_addr = 0;
  reg [{width - 1}:0] w_data = 0;
  wire [{width - 1}:0] dg, dt;
  gold g(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
         .r_addr(r_addr), .r_en(r_en), .r_oe(r_oe), .r_data(dg));
  gate t(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en),
         .r_addr(r_addr), .r_en(r_en), .r_oe(r_oe), .r_data(dt));
  integer i, k, errors = 0, reads = 0, seed = {seed};
  always #5 clk = ~clk;
  initial begin
    repeat (2) @(posedge clk);
    @(negedge clk) rst = 0;
    for (i = 0; i < {cycles}; i = i + 1) begin
      @(negedge clk);
      if (dg !== dt) errors = errors + 1;
      if (r_en && r_oe && dg != 0) reads = reads + 1;
      // 8 neighbouring addresses in each third (so that reads find written words, and words
      // that differ in any address bit do too)
      w_addr = ($unsigned($random(seed)) % 3) * {depth // 3 - 8} + $unsigned($random(seed)) % 8;
      r_addr = ($unsigned($random(seed)) % 3) * {depth // 3 - 8} + $unsigned($random(seed)) % 8;
      if (i % 512 == 0) r_addr = {depth - 1};
      if (i % 512 == 1) w_addr = {depth - 1};
      for (k = 0; k < {width}; k = k + 1) w_data[k] = $random(seed);
      w_en = ($random(seed) % 2) != 0;
      r_en = ($random(seed) % 4) != 0;
      r_oe = ($random(seed) % 4) != 0;
    end
    $display("RESULT errors=%0d reads=%0d", errors, reads);
    $finish;
  end
endmodule
"""


def _emit(shape, depth, name, platform):
    return verilog.convert(BufferMemory(shape, depth), name=name, platform=platform,
                           emit_src=False)


#: (word shape, depth, DP16KD blocks): x18 (the 8x8 engines' 64-bit words), x9, x4 at a depth
#: that is no power of two, x1, and a word layout.
CASES = [
    (64, 1024, 4),
    pytest.param(13, 2048, 2, marks=pytest.mark.slow),
    pytest.param(5, 3000, 2, marks=pytest.mark.slow),
    pytest.param(3, 16384, 3, marks=pytest.mark.slow),
    pytest.param(data.ArrayLayout(8, 3), 200, 2, marks=pytest.mark.slow),
]


def _gate_equals_gold(shape, depth, family, cell, blocks, model, cycles, tmp_path, seed):
    """Emit the buffer generic (gold) and on ``family``'s ``blocks`` ``cell`` primitives
    (gate), run both side by side on Icarus and return the testbench's counts."""
    gold = _emit(shape, depth, "gold", None)
    gate = _emit(shape, depth, "gate", SynthPlatform(family))
    assert cell not in gold
    assert gate.count(f"  {cell} ") == blocks
    width = Shape.cast(shape).width
    bench = _testbench(max(1, (depth - 1).bit_length()), width, depth, cycles, seed % 2**31)
    got = icarus_result(tmp_path, {"tb.v": bench, "gold.v": gold, "gate.v": gate,
                                   f"{cell.lower()}.v": model})
    assert got["errors"] == 0, f"{got} (seed {seed})"
    return got, gate


@pytest.mark.parametrize("shape,depth,blocks", CASES)
def test_dp16kd_buffer_equals_generic_rtl(shape, depth, blocks, tmp_path, seed):
    got, gate = _gate_equals_gold(shape, depth, "ecp5", "DP16KD", blocks, _dp16kd_model(), 3000,
                                  tmp_path, seed)
    assert gate.count('.REGMODE_B("OUTREG")') == blocks
    assert got["reads"] > 500, got  # the reads really returned written words


#: (word shape, depth, SB_RAM40_4K blocks): a word that is no multiple of 16 bits (the 6-row
#: engines' A words), and a layout of 76 bits at the largest depth.
ICE40_CASES = [
    (48, 24, 3),
    pytest.param(data.ArrayLayout(19, 4), 256, 5, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("shape,depth,blocks", ICE40_CASES)
def test_sb_ram40_buffer_equals_generic_rtl(shape, depth, blocks, tmp_path, seed):
    got, _ = _gate_equals_gold(shape, depth, "ice40", "SB_RAM40_4K", blocks, _sb_ram40_model(),
                               2000, tmp_path, seed)
    assert got["reads"] > 300, got  # the reads really returned written words


def test_deeper_than_one_block_falls_back_to_generic_rtl():
    """A memory deeper than one DP16KD (16384 words) is the generic RTL on ECP5 too, one
    deeper than one SB_RAM40_4K in 256 x 16 mode on iCE40, as is every memory on a platform
    without the hook."""
    assert _emit(1, 16385, "t", SynthPlatform("ecp5")) == _emit(1, 16385, "t", None)
    assert _emit(8, 257, "t", SynthPlatform("ice40")) == _emit(8, 257, "t", None)
    assert _emit(8, 64, "t", object()) == _emit(8, 64, "t", None)
