"""Every output port is 0 or 1 from time zero, through reset and while idle, in a plain-Verilog
testbench (no cocotb) under `iverilog -g2012`, whose SystemVerilog rules apply declaration
initialisers before any process starts (no time-zero event).

Two testbench styles: inputs declared with initialisers (`reg rst = 1;`: no input ever changes
until reset is released, the harshest case) and inputs set by an `initial` block.
"""

import json
import subprocess

import pytest

from systolix.config import (Dataflow, EngineConfig, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.emit import write_design

pytestmark = pytest.mark.rtl

WS = Dataflow.WEIGHT_STATIONARY
RESET_CYCLES = 3
IDLE_CYCLES = 6

DESIGNS = {
    "os_array": SystolicConfig(2, 2),
    "ws_array": SystolicConfig(2, 3, WS),
    "tensor_core": TensorCoreConfig(2, 2, 2),
    "os_engine": EngineConfig(SystolicConfig(2, 2), 4, 4, 4),
    "ws_engine": EngineConfig(SystolicConfig(2, 2, WS), 4, 4, 4),
    "tc_engine": EngineConfig(max_m=4, max_k=4, max_n=4, core=TensorCoreConfig(2, 2, 2)),
    "requant": RequantConfig(2),
    "engine_requant": EngineConfig(SystolicConfig(2, 2), 4, 4, 4, requant=RequantConfig(2)),
}


def make_testbench(top, ports, style, extra_checks=""):
    """A testbench that samples every output each 1 ns from 1 ns on: reset for RESET_CYCLES
    cycles from time zero, then IDLE_CYCLES with all inputs 0. Prints one line per X/Z
    output and a final PASS/FAIL."""
    inputs = [p for p in ports if p["direction"] == "input" and p["name"] != "clk"]
    outputs = [p for p in ports if p["direction"] == "output"]
    lines = ["`timescale 1ns/1ps", "module tb;"]
    for p in inputs + [{"name": "clk", "width": 1}]:
        init = "1" if p["name"] == "rst" else "0"
        lines.append(f"  reg [{p['width'] - 1}:0] {p['name']}"
                     + (f" = {init};" if style == "declared" else ";"))
    for p in outputs:
        lines.append(f"  wire [{p['width'] - 1}:0] {p['name']};")
    conns = ", ".join(f".{p['name']}({p['name']})" for p in ports)
    lines += [f"  {top} dut({conns});", "  integer bad = 0;", "  integer t;"]
    if style == "initial":
        lines.append("  initial begin " + " ".join(
            f"{p['name']} = {1 if p['name'] == 'rst' else 0};"
            for p in inputs + [{"name": "clk"}]) + " end")
    lines.append("  task check; begin")
    for p in outputs:
        lines.append(f"    if ((^{p['name']}) === 1'bx) begin bad = bad + 1; "
                     f"$display(\"X/Z at %0d ns: {p['name']} = %b\", $time, {p['name']}); end")
    lines.append(extra_checks)
    lines += [
        "  end endtask",
        "  always #5 clk = ~clk;",
        "  initial begin",
        f"    for (t = 1; t < {10 * (RESET_CYCLES + IDLE_CYCLES)}; t = t + 1) begin",
        f"      if (t == {10 * RESET_CYCLES + 1}) rst = 0;",  # just after a rising edge
        "      #1 check;",
        "    end",
        "    if (bad) $display(\"FAIL %0d\", bad); else $display(\"PASS\");",
        "    $finish;",
        "  end",
        "endmodule",
    ]
    return "\n".join(lines) + "\n"


def _engine_checks(ports):
    names = {p["name"] for p in ports}
    checks = [
        # while idle: busy low, done/error low, every valid/ready defined; cmd__ready low only
        # while in reset, high after it
        "    if (busy !== 1'b0 || done !== 1'b0 || error !== 1'b0 || c__valid !== 1'b0) "
        "begin bad = bad + 1; $display(\"not idle at %0d ns\", $time); end",
        "    if (cmd__ready !== !rst) "
        "begin bad = bad + 1; $display(\"cmd__ready %b at %0d ns\", cmd__ready, $time); end",
    ]
    assert {"busy", "done", "error", "cmd__ready", "c__valid"} <= names
    return "\n".join(checks)


def _valid_checks(ports):
    """With no input beats, no output beat is ever valid."""
    return "\n".join(
        f"    if ({p['name']} !== 1'b0) begin bad = bad + 1; "
        f"$display(\"{p['name']} high at %0d ns\", $time); end"
        for p in ports if p["direction"] == "output" and p["name"].endswith("valid"))


def run_tb(tmp_path, top, v_paths, tb_text):
    tb = tmp_path / "tb.v"
    tb.write_text(tb_text)
    vvp = tmp_path / "tb.vvp"
    subprocess.run(["iverilog", "-g2012", "-o", str(vvp), "-s", "tb", str(tb),
                    *map(str, v_paths)], check=True, capture_output=True, text=True)
    return subprocess.run(["vvp", "-n", str(vvp)], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Each design emitted once for both testbench styles."""
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = write_design(DESIGNS[kind], tmp_path_factory.mktemp(kind))
        return cache[kind]
    return get


@pytest.mark.parametrize("style", ["declared", "initial"])
@pytest.mark.parametrize("kind", DESIGNS)
def test_outputs_defined_from_time_zero(kind, style, emitted, tmp_path):
    config = DESIGNS[kind]
    v, m, _ = emitted(kind)
    ports = json.loads(m.read_text())["ports"]
    extra = _valid_checks(ports)
    if isinstance(config, EngineConfig):
        extra += "\n" + _engine_checks(ports)
    out = run_tb(tmp_path, config.name, [v], make_testbench(config.name, ports, style, extra))
    assert out.strip().splitlines()[-1] == "PASS", f"{kind}:\n{out[:3000]}"


def test_checker_sees_x(tmp_path):
    """The testbench flags an output that is X at time zero (and Z), so it can fail."""
    v = tmp_path / "xdemo.v"
    v.write_text("module xdemo(input clk, input rst, output reg [1:0] q, output z);\n"
                 "  reg [1:0] n;\n  always @* n = q;\n  always @(posedge clk) q <= rst ? 0 : n;\n"
                 "  assign z = 1'bz;\nendmodule\n")
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1},
             {"name": "q", "direction": "output", "width": 2},
             {"name": "z", "direction": "output", "width": 1}]
    out = run_tb(tmp_path, "xdemo", [v], make_testbench("xdemo", ports, "declared"))
    assert "X/Z at 1 ns: q = xx" in out and "X/Z at 1 ns: z = z" in out
    assert out.strip().splitlines()[-1].startswith("FAIL")
