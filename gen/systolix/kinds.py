# amaranth: UnusedElaboratable=no
"""The design kinds: every top-level design systolix emits, synthesizes or simulates.

One table, :data:`KINDS`, holds per kind everything the layers above need: its name (the
``kind`` of its config dict and the command line's kind argument), its config class (whose
``from_dict`` rebuilds it), the top-level component, the manifest's port and field meanings and
kind-specific sections, its GEMM cycle model and the design space ``systolix sweep`` walks.
:mod:`systolix.emit`, :mod:`systolix.synth` and the command line use it; adding a kind is a
config class, a component, one :class:`Kind` here (and its command-line flags in
:mod:`systolix.cli`).

Lookups: :func:`names`, :func:`command_line_names`, :func:`get` (by name), :func:`of` (by config
object) and :func:`config_from_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from .config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from .errors import SystolixError
from .model.cycles import engine_cycles, gemm_cycles, ws_array_cycles

__all__ = ["Kind", "KINDS", "COMMON_PORT_MEANING", "ENGINE_PROTOCOL", "engine_protocol", "names",
           "command_line_names", "get", "of", "config_from_dict"]


@dataclass(frozen=True)
class Kind:
    """One kind of design.

    Attributes
    ----------
    name : str
        ``config.to_dict()["kind"]``, and the kind argument of ``generate``, ``synth``,
        ``sweep`` and ``build``.
    summary : str
        What it is, in a few words (the command line's help).
    config : type
        The frozen config class (``name``, ``macs``, ``accumulation_chunk``, ``to_dict`` with
        ``"kind"``, ``from_dict``).
    build : callable
        ``build(config) -> wiring.Component``: the top-level component.
    port_meaning : dict
        Manifest meaning of each port (over :data:`COMMON_PORT_MEANING`).
    field_meaning : callable
        ``field_meaning(config) -> dict``: manifest meaning of each payload struct field.
    sections : callable
        ``sections(config, top) -> dict``: the kind's manifest sections (``timing``,
        ``cycle_model``).
    cycles : callable or None
        ``cycles(config, m, k, n)``: the exact cycle model of one GEMM (an object with
        ``macs``, ``utilization`` and ``to_dict``: :class:`~systolix.model.cycles.GemmCycles`,
        :class:`~systolix.model.cycles.EngineCycles`), None if the kind runs no GEMM on its
        own.
    sweep : callable or None
        ``sweep(sizes, variants, base) -> list of configs``: the design space ``systolix sweep``
        walks (``sizes`` are ``(rows, cols)`` pairs, ``variants`` architecture option strings
        or None, ``base`` the config built from the command line's flags).
    command_line : bool
        ``generate``, ``synth``, ``sweep`` and ``build`` take it (its flags live in
        :mod:`systolix.cli`).
    """

    name: str
    summary: str
    config: type
    build: Callable
    port_meaning: dict
    field_meaning: Callable
    sections: Callable
    cycles: Callable | None = None
    sweep: Callable | None = None
    command_line: bool = True

    def from_dict(self, d):
        """Rebuild a config of this kind from its ``to_dict`` form."""
        return self.config.from_dict(d)


#: Meanings of the ports every design has (a kind may refine them).
COMMON_PORT_MEANING = {
    "clk": "clock; everything is synchronous to its rising edge",
    "rst": "synchronous reset, active high; clears accumulators and all valid flags",
}


# --- systolic array (output- or weight-stationary) -----------------------------------------

_SYSTOLIC_PORT_MEANING = {
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
}

_SYSTOLIC_FIELD_MEANING = {
    "a": "a[r] = A[tile_row0 + r, k], element r at bits [r*in_width, (r+1)*in_width)",
    "b": "b[c] = B[k, tile_col0 + c], element c at bits [c*in_width, (c+1)*in_width)",
    "last": "this beat is k = K - 1: the tile is complete after it",
    "data": "data[c] = C[tile_row0 + row, tile_col0 + c], element c at bits "
            "[c*acc_width, (c+1)*acc_width), two's complement",
    "row": ("row of the tile this beat carries; counts down from rows - 1 to 0 (up from 0 to "
            "rows - 1 with --mult lut, whose columns drain through OR trees)"),
}


# (The components are imported when built: job files are read in every simulation process,
# which should not pay for importing the gateware. The linter option on this file's first line
# spares a component built only to be inspected, as emit.manifest does, Amaranth's warning that
# it was never elaborated: Amaranth reads it from the file that creates the component.)

def _build_systolic(config: SystolicConfig):
    if config.dataflow is Dataflow.WEIGHT_STATIONARY:
        from .hdl.ws_array import WeightStationaryArray
        return WeightStationaryArray(config)
    from .hdl.os_array import OutputStationaryArray
    return OutputStationaryArray(config)


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
            "gemm": ("cycles = 2R + C + M + (tiles - 1) * max(M, R)"
                     + (f" + {config.pipeline_stages} (PE pipeline)"
                        if config.pipeline_stages else "")
                     + ", tiles = ceil(K/R) * ceil(N/C): first weight push to last psum beat, "
                     "inclusive, at the tightest legal schedule (next weights pushed during the current tile's M beats, "
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


def _systolic_sweep(sizes, variants, base):
    configs = []
    for rows, cols in sizes:
        for variant in variants or [None]:
            changes = {"rows": rows, "cols": cols}
            if variant is not None:
                changes["pipeline"] = variant
            try:
                configs.append(dataclasses.replace(base, **changes))
            except (TypeError, ValueError) as e:
                raise SystolixError(f"sweep point {rows}x{cols} {variant or ''}: {e}") \
                    from None
    return configs


# --- matrix engine (compute core + buffers + controller) -----------------------------------

_ENGINE_PORT_MEANING = {
    "cmd__payload": "command: the GEMM's m, k, n and the keep-weights flag (fields below)",
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
}

_ENGINE_FIELD_MEANING = {
    "m": "rows of A and C (1..max_m)",
    "k": "columns of A, rows of B (1..max_k)",
    "n": "columns of B and C (1..max_n)",
    "keep": "keep-weights: reuse the B (and parameter) words of the last job that loaded "
            "them, send only A (rejected without such weights of this K and N)",
    "last": "the job's final C word",
    "data": "data[c] = C[m, n0 + c], two's complement (bit positions below)",
}


def _build_engine(config: EngineConfig):
    from .hdl.engine import MatrixEngine
    return MatrixEngine(config)


def _engine_field_meaning(config: EngineConfig):
    if config.requant:
        return {**_ENGINE_FIELD_MEANING, "data": "data[c] = C[m, n0 + c], requantized to 8 bits"}
    return _ENGINE_FIELD_MEANING


#: The engine's protocol for its manifest (as :class:`~systolix.hdl.engine.MatrixEngine`
#: documents it): command, load (the word layouts of every core), compute (every core's
#: schedule) and drain, one string per paragraph or layout; a paragraph that holds for some
#: cores only is ``(cores, text)`` with cores among ``os``, ``ws``, ``tc``.
ENGINE_PROTOCOL = (
    ('(stream ``cmd``): ``{m, k, n}``, accepted only when idle. A command with a zero '
     'dimension or one beyond ``max_m``/``max_k``/``max_n`` is rejected: ``error`` rises, '
     '``done`` pulses one cycle later, no data is accepted and the buffers are untouched. '
     'Otherwise the job runs three phases and ``done`` pulses after the last C word has been'
     ' taken.'),
    ('**Load** (streams ``a`` and ``b``, concurrently, each at most one word per cycle). '
     "Each stream carries its buffer's words in address order; ``ready`` stays high until "
     "the job's word count is reached. Word layouts (lane 0 at the least significant bits; "
     'lanes past the matrix edge are padding, any value):'),
    ({"os", "ws"}, '* ``b`` (both dataflows): for each column tile n0 = 0, C, 2C, ..: for k in 0..K-1: '
     '``lane c = B[k, n0 + c]``. ``ceil(N/C) * K`` words.'),
    ({"os"}, '* ``a``, output-stationary: for each row tile m0 = 0, R, ..: for k in 0..K-1: ``lane r'
     ' = A[m0 + r, k]``. ``ceil(M/R) * K`` words.'),
    ({"ws"}, '* ``a``, weight-stationary: for each k-tile k0 = 0, R, ..: for m in 0..M-1: ``lane r ='
     ' A[m, k0 + r]``. ``ceil(K/R) * M`` words.'),
    ({"tc"}, '* ``a``, tensor core: one m x k fragment per word (row-major, element (r, j) = ``A[m0 '
     '+ r, k0 + j]``): for each row tile m0 = 0, m, ..: for each k-step k0 = 0, k, ... '
     '``ceil(M/m) * ceil(K/k)`` words.'),
    ({"tc"}, '* ``b``, tensor core: one k x C fragment per word (row-major, element (j, c) = ``B[k0 '
     '+ j, n0 + c]``; unit u takes columns u*n .. u*n + n - 1): for each column tile n0 = 0,'
     ' C, ..: for each k-step k0. ``ceil(N/C) * ceil(K/k)`` words.'),
    ('**Compute** (no port activity; ``busy`` high).'),
    ({"os"}, 'Output-stationary: each R x C output tile streams its K beats through the array, tiles'
     ' back to back (at least R cycles apart).'),
    ({"ws"}, 'Weight-stationary: each (column tile, k-tile) pair loads its R x C weights into the '
     "PEs' shadow registers while the previous pair computes, then streams the M rows of A; "
     'partial sums are accumulated into the C buffer (read-modify-write, the accumulation '
     'chunk is R).'),
    ({"tc"}, 'Tensor core: the m x C output tiles go in groups of L (the MMA latency); a group '
     'issues k-step 0 of its L tiles on consecutive cycles, then k-step 1, and so on, one '
     'MMA per cycle on all units (the units share the A fragment, each takes its n columns '
     "of the B fragment). Each tile's D leaves the pipeline exactly when its next k-step "
     "enters, and is fed straight back as C: the accumulators live in the units' pipelines, "
     "with no read-modify-write. A tile's final D (an m x C fragment, one C buffer word) is "
     'written to C. Lanes of A past K are masked to zero (the accumulation chunk is k).'),
    ('``cycles`` counts the cycles of this phase (and the flush of the last results into C); it '
     'is cleared when a command is accepted, so it reads 0 after a rejected command, and holds '
     "the job's count from ``done`` until the next command is accepted."),
    ('**Drain** (stream ``c``, backpressure honoured): for m in 0..M-1: for each column '
     'tile: ``data[c] = C[m, n0 + c]``, ``last`` on the final word. ``ceil(N/C) * M`` words.'),
)


def engine_protocol(config: EngineConfig | None = None):
    """The paragraphs of :data:`ENGINE_PROTOCOL`: all of them, or those of ``config``'s core."""
    tag = None if config is None else (
        "tc" if config.arch == "tensorcore" else config.dataflow.value)
    return [p if isinstance(p, str) else p[1] for p in ENGINE_PROTOCOL
            if isinstance(p, str) or tag is None or tag in p[0]]


def _engine_sections(config: EngineConfig, top):
    example = engine_cycles(config, config.max_m, config.max_k, config.max_n)
    return {
        "timing": {
            "buffer_read_latency": top.buffer_read_latency,
            "output_latency": top.output_latency,
            "description": " ".join(["**Command**", *engine_protocol(config)]),
        },
        "cycle_model": {
            "compute": config.compute.compute_formula,
            "total": ("load + compute + drain + 3 + output_latency (command handshake to done),"
                      " load = max(A, B, parameter words), drain = C words, every stream at "
                      "full rate"),
            "example": example.to_dict(),
        },
    }


def _engine_sweep(sizes, variants, base):
    if base.array is None:
        raise SystolixError("sweep walks array sizes: it takes a systolic engine, not a "
                            "tensor-core one")
    arrays = _systolic_sweep(sizes, variants, base.array)
    return [dataclasses.replace(base, array=a) for a in arrays]


# --- requantizer ----------------------------------------------------------------------------

def _build_requant(config: RequantConfig):
    from .hdl.requant import Requantizer
    return Requantizer(config)


#: Port meanings of the requantizer, whose stream names coincide with the array's.
_REQUANT_PORT_MEANING = {
    "i__payload": "one beat: int32 accumulators and per-lane parameters, and last",
    "i__valid": "input beat is valid",
    "i__ready": "an input beat can be taken: fewer beats in flight than the output FIFO "
                "holds (a registered credit count, no path from o__ready)",
    "o__payload": "requantized 8-bit outputs, one per lane, and last",
    "o__valid": "output beat is valid",
    "o__ready": "the consumer takes the output beat; may be low for any number of cycles",
}

_REQUANT_FIELD_MEANING = {
    "acc": "int32 accumulators, one per lane",
    "params": "per lane: bias, multiplier, shift, zero_point, clamp_min, clamp_max "
              "(gemmlowp) or bias, scale_bits, zero_point, clamp_min, clamp_max (float32)",
    "last": "marks a job's final beat; passed through with its data",
    "data": "requantized outputs, one per lane",
}


_REQUANT_SPEC = {
    "gemmlowp": ("per lane: x = sat32(acc + bias); p = x * multiplier (64-bit); "
                 "y = SaturatingRoundingDoublingHighMul(x, multiplier) (INT32_MAX if both "
                 "are INT32_MIN, else (p + (2^30 if p >= 0 else 1 - 2^30)) / 2^31 truncated "
                 "toward zero); z = RoundingDivideByPOT(y, shift) (ties away from zero); "
                 "out = clamp(z + zero_point, clamp_min, clamp_max)"),
    "float32": ("per lane (onnxruntime's CPU rule, computed exactly in integers): "
                "x = wrap32(acc + bias); f = float32(x) (round to nearest even); "
                "p = f * scale in float32 (scale = the binary32 pattern scale_bits, one "
                "rounding to nearest even); out = clamp(round_half_even(p) + zero_point, "
                "clamp_min, clamp_max)"),
}


def _requant_sections(config: RequantConfig, top):
    return {"timing": {
        "latency": top.latency,
        "description": (f"A beat accepted on i appears on o {top.latency} cycles later "
                        "unless o stalls. The datapath never stalls; an output FIFO holds "
                        "its results, and i__ready is high while the beats in flight fit in "
                        "it, so unstalled it stays high and backpressure on o loses nothing."),
        "mode": config.mode,
        "spec": _REQUANT_SPEC[config.mode],
    }}


# --- tensor-core MMA unit -------------------------------------------------------------------

def _build_mma(config: TensorCoreConfig):
    from .hdl.tensorcore import MMAUnit
    return MMAUnit(config)


_MMA_PORT_MEANING = {
    "clk": COMMON_PORT_MEANING["clk"],
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


# --- the registry ---------------------------------------------------------------------------

#: Every design kind. New kinds go here.
KINDS = (
    Kind("systolic", "the bare array", SystolicConfig, _build_systolic,
         _SYSTOLIC_PORT_MEANING, lambda config: _SYSTOLIC_FIELD_MEANING, _systolic_sections,
         cycles=gemm_cycles, sweep=_systolic_sweep),
    Kind("engine", "array (or tensor-core units) + buffers + controller", EngineConfig,
         _build_engine, _ENGINE_PORT_MEANING, _engine_field_meaning, _engine_sections,
         cycles=engine_cycles, sweep=_engine_sweep),
    Kind("requant", "the requantization unit", RequantConfig, _build_requant,
         _REQUANT_PORT_MEANING, lambda config: _REQUANT_FIELD_MEANING, _requant_sections,
         command_line=False),
    Kind("tensorcore", "an MMA unit", TensorCoreConfig, _build_mma, _MMA_PORT_MEANING,
         lambda config: _MMA_FIELD_MEANING, _tensorcore_sections),
)

_BY_NAME = {kind.name: kind for kind in KINDS}
_BY_TYPE = {kind.config: kind for kind in KINDS}


def names():
    """Names of all kinds, in :data:`KINDS` order."""
    return [kind.name for kind in KINDS]


def command_line_names():
    """Names of the kinds ``generate``, ``synth``, ``sweep`` and ``build`` take."""
    return [kind.name for kind in KINDS if kind.command_line]


def get(name):
    """The kind called ``name``; :class:`~systolix.errors.SystolixError` if there is none."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise SystolixError(f"unknown design kind {name!r}; choose one of "
                            f"{', '.join(_BY_NAME)}") from None


def of(config):
    """The kind of config object ``config``; TypeError if its type is not registered."""
    try:
        return _BY_TYPE[type(config)]
    except KeyError:
        raise TypeError(f"{config!r} is not a design config: not one of "
                        f"{', '.join(t.__name__ for t in _BY_TYPE)}") from None


def config_from_dict(d):
    """Rebuild any config from its ``to_dict`` form (dispatching on ``kind``); ValueError for an
    unknown kind."""
    kind = _BY_NAME.get(d.get("kind"))
    if kind is None:
        raise ValueError(f"unknown config kind {d.get('kind')!r}")
    return kind.from_dict(d)
