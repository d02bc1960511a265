"""Command-line front end of the FPGA flow: ``systolix synth``, ``sweep`` and ``build``.

:func:`add_parser` adds the three sub-commands to the main parser, each with its handler.
Each handler returns an exit status and raises :class:`~systolix.errors.SystolixError` for user
errors (the CLI prints those as one line).
"""

from __future__ import annotations

import argparse
import json
import os

from ..cluster import check_scheduler_address
from ..config import EngineConfig
from ..errors import SystolixError
from ..kinds import command_line_names, get
from ..synth.board import BOARD_PLATFORMS, build_bitstream
from ..synth.fit import precheck
from ..synth.flow import DoesNotFit, SynthOptions, require_fit, synthesize
from ..synth.sweep import run_sweep
from ..synth.targets import TARGETS, get_target
from ..synth.throughput import (STREAM_JOBS, STREAM_SYNTAX, default_stream, parse_stream,
                                sustained)
from .common import KindHelp, Parser, add_baud, baud, eprint, integer, integer_in, number_in, text
from .config_flags import GENERATE_KINDS, add_design_flags, design_config

__all__ = ["add_parser", "format_result", "default_jobs"]

_freq = number_in(1, 1000, " MHz")
#: nextpnr's placer seed is a C int
_placer_seed = integer_in(0, 2**31 - 1)


def default_jobs():
    """Worker processes of a sweep: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _add_flow_args(p, *, harness_default="auto"):
    g = p.add_argument_group("flow")
    g.add_argument("--target", choices=list(TARGETS), default="ecp5-85f",
                   help="FPGA device (default ecp5-85f)")
    g.add_argument("--freq", type=_freq, default=None, metavar="MHZ",
                   help="clock target for nextpnr (default 150 on ECP5, 50 on iCE40)")
    g.add_argument("--harness", choices=["auto", "on", "off"], default=harness_default,
                   help="I/O-light harness: auto = when the ports exceed the package pins "
                        f"(default {harness_default})")
    g.add_argument("--seed", type=_placer_seed, default=1, help="nextpnr placer seed (default 1)")
    g.add_argument("--cache-dir", type=text, default=None, metavar="DIR",
                   help="result cache (default $SYSTOLIX_CACHE_DIR or ~/.cache/systolix)")
    g.add_argument("--no-cache", action="store_true", help="run the tools even if cached")


def _kind_arg(p, kind, what):
    if kind is None:
        p.add_argument("kind", choices=command_line_names(), help=what)


def _synth_flags(p, kind=None):
    _kind_arg(p, kind, "what to synthesize")
    add_design_flags(p, kind=kind)
    _add_flow_args(p)
    _stream_flag(p, kind, "at Fmax")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _stream_flag(p, kind, clock):
    p.add_argument("--stream", type=text, default=None, metavar="S",
                   help=f"engine: the job stream of the sustained-GOPS figure ({clock}), "
                        f"{STREAM_SYNTAX} (default {STREAM_JOBS} jobs of the largest cube the "
                        f"buffers hold, at most 256^3)"
                        if kind in (None, "engine") else argparse.SUPPRESS)


def _sweep_flags(p, kind=None):
    _kind_arg(p, kind, "what to sweep")
    add_design_flags(p, kind=kind)
    _add_flow_args(p, harness_default="on")
    p.add_argument("--sizes", type=text, default="2x2,4x4,8x8", metavar="RxC,...",
                   help="array sizes (default 2x2,4x4,8x8); N alone means NxN")
    p.add_argument("--variants", type=text, default=None, metavar="V,...",
                   help="architecture variants, e.g. pipeline options none,full "
                        "(default: the --pipeline flag only)")
    p.add_argument("-j", "--jobs", type=integer_in(1, 1024), default=None,
                   help="parallel tool processes (default: the number of CPUs, "
                        f"{default_jobs()} here)")
    p.add_argument("--scheduler", type=text, default=None, metavar="tcp://HOST:PORT",
                   help="run every design point as a task on this Dask cluster's workers "
                        "(started with `dask scheduler` and `dask worker`) instead of -j local "
                        "processes")
    p.add_argument("-o", "--output", type=text, required=True, metavar="DIR",
                   help="directory for sweep.json, sweep.md and the PNG plots")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


def _build_flags(p, kind=None):
    _kind_arg(p, kind, "what to build")
    add_design_flags(p, kind=kind)
    p.add_argument("--board", choices=list(BOARD_PLATFORMS), required=True, help="target board")
    p.add_argument("--fit", action="store_true",
                   help="place the near-square array with the most MACs that fits (instead of "
                        "--rows/--cols)")
    p.add_argument("--freq", type=_freq, default=None, metavar="MHZ",
                   help="clock target for nextpnr (default: the target's); engine: the clock "
                        "it runs at, from the board's PLL (icebreaker: the highest the PLL "
                        "makes at or below MHZ; ulx3s-85f: the nearest; default: the board's "
                        "oscillator)"
                        if kind in (None, "engine") else
                        "clock target for nextpnr (default: the target's)")
    p.add_argument("--seed", type=_placer_seed, default=1, help="nextpnr placer seed (default 1)")
    _stream_flag(p, kind, "at the board's clock")
    if kind in (None, "engine"):
        add_baud(p, "engine: UART baud rate of the host link")
    else:
        p.set_defaults(baud=None)
    p.add_argument("--cache-dir", type=text, default=None, metavar="DIR")
    p.add_argument("-o", "--output", type=text, required=True, metavar="DIR",
                   help="bitstream directory")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


_COMMANDS = {
    "synth": ("synthesize, place and route; report area and Fmax", _synth_flags),
    "sweep": ("synthesize a design space; JSON, Markdown and plots", _sweep_flags),
    "build": ("build a bitstream for a board (amaranth-boards)", _build_flags),
}


def add_parser(sub):
    """Add ``synth``, ``sweep`` and ``build`` to the sub-parsers ``sub``."""
    for command, (what, add_flags) in _COMMANDS.items():
        def kind_parsers(command=command, what=what, add_flags=add_flags):
            parsers = {}
            for kind in command_line_names():
                parsers[kind] = Parser(prog=f"systolix {command} {kind}",
                                       description=what[0].upper() + what[1:] + ".")
                add_flags(parsers[kind], kind)
            return parsers
        p = sub.add_parser(command, help=what, add_help=False)
        p.add_argument("-h", "--help", action=KindHelp, kind_parsers=kind_parsers)
        add_flags(p)
        p.set_defaults(handler=HANDLERS[command])


def _options(args, harness):
    try:
        return SynthOptions(freq=args.freq, harness=harness, seed=args.seed)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None


def _config(args):
    if args.kind not in GENERATE_KINDS:
        raise SystolixError(f"design kind {args.kind!r} has no command-line flags")
    return design_config(args, args.kind, args.command)


def format_result(r):
    """Human-readable summary of one synthesis result (a dict from ``SynthResult.to_dict``)."""
    t = r["target"]
    if not r["fits"]:
        return f"{r['name']} on {t['name']}: {r['error']}"
    h = r["harness"]
    lines = [f"{r['name']} on {t['name']} ({t['device']})"
             + (", in harness" if r["in_harness"] else "")]
    pct = lambda used, have: f"{used:,} / {have:,} ({100 * used / have:.1f} %)" if have else "-"
    lines.append(f"  LUT4      : {pct(r['lut4'], t['lut4'])}  ({r['carry']} carry cells)")
    lines.append(f"  FF        : {pct(r['ff'], t['ff'])}")
    lines.append(f"  DSP       : {pct(r['dsp'], t['dsp'])} {t['dsp_cell']}")
    lines.append(f"  block RAM : {pct(r['bram'], t['bram'])} {t['bram_cell']}")
    if h["used"]:
        c = h["cost"]
        lines.append(f"  harness   : +{c['lut4']} LUT4, +{c['ff']} FF (serial-in chain of "
                     f"{h['input_bits']} bits, XOR tree over {h['output_bits']} outputs; "
                     f"{h['pins']} pins instead of {h['design_pins']})")
    met = "met" if r["meets_target"] else "missed"
    lines.append(f"  Fmax      : {r['fmax_mhz']:.1f} MHz (target {r['freq_target_mhz']:g} MHz: "
                 f"{met})")
    cp = r["critical_path"]
    if cp:
        lines.append(f"  critical  : {cp['delay_ns']:.2f} ns (logic {cp['logic_ns']:.2f}, "
                     f"routing {cp['routing_ns']:.2f}) {cp['from']} -> {cp['to']}")
    per_lut = f"{r['gops_per_klut']:.2f}" if r["gops_per_klut"] else "-"
    per_dsp = f"{r['gops_per_dsp']:.3f}" if r["gops_per_dsp"] else "-"
    lines.append(f"  peak      : {r['peak_gops']:.2f} GOPS (2 x {r['macs']} MACs x Fmax); "
                 f"{per_lut} GOPS per 1k LUT4, {per_dsp} GOPS per DSP")
    if r.get("sustained") is not None:
        lines.append(_sustained_line(r["sustained"]))
    if r.get("columns_kept") is False:
        lines.append("  note      : the array's columns were flattened (yosys' ABC9 failed an "
                     "internal assertion with them kept apart)")
    lines.append(f"  reports   : {r['report_dir']}" + (" (cached)" if r["cached"] else ""))
    return "\n".join(lines)


def _sustained_line(st):
    line = (f"  sustained : {st['sustained_gops']:.2f} GOPS on {st['stream']} "
            f"({st['end_to_end_utilization']:.1%} end to end: {st['macs']:,} MACs in "
            f"{st['total_cycles']:,} cycles")
    if "cycles_per_item" in st:
        line += f", {st['cycles_per_item']:.1f} per image, {st['items_per_second']:,.0f}/s"
    return line + ")"


def _stream(args, config, command="synth"):
    """The job stream of an engine's sustained figure (None for other kinds), checked
    against the engine's buffers before any tool runs."""
    if not isinstance(config, EngineConfig):
        if args.stream is not None:
            raise SystolixError(f"--stream rates an engine: it cannot be used with "
                                f"'{command} {args.kind}'")
        return None
    try:
        stream = default_stream(config) if args.stream is None else parse_stream(args.stream)
        sustained(config, stream, None)
    except ValueError as e:
        raise SystolixError(str(e)) from None
    return stream


def _refuse_unfit(config, target):
    """Refuse an array the device cannot hold (DSP blocks, LUT4s) before any tool runs."""
    problem = precheck(config, target)
    if problem:
        raise DoesNotFit(problem)


def _cmd_synth(args):
    config = _config(args)
    stream = _stream(args, config)
    target = get_target(args.target)
    _refuse_unfit(config, target)
    result = synthesize(config, target, _options(args, args.harness), cache_dir=args.cache_dir,
                        use_cache=not args.no_cache, progress=lambda s: eprint(f"[synth] {s}"))
    require_fit(result)
    out = result.to_dict()
    if stream is not None:
        out["sustained"] = sustained(config, stream, out["fmax_mhz"])
    if args.json:
        print(json.dumps(out))
    else:
        print(format_result(out))
    return 0


def _parse_sizes(value):
    sizes = []
    for part in value.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            r, c = part.split("x") if "x" in part else (part, part)
            sizes.append((integer(r.strip()), integer(c.strip())))
        except (ValueError, argparse.ArgumentTypeError):
            raise SystolixError(f"bad size {part!r} in --sizes: use RxC or N, e.g. 4x4,8x8") \
                from None
    if not sizes:
        raise SystolixError("--sizes lists no size")
    return sizes


#: Sweep flags that say how to run the sweep, not what a point is.
_SWEEP_ONLY = {"command", "kind", "handler", "sizes", "variants", "jobs", "scheduler", "output",
               "json", "cache_dir", "no_cache", "rows", "cols"}


def point_commands(args, configs, variants):
    """The ``systolix synth`` line that reproduces each point of a sweep alone: the sweep's
    design and flow flags that differ from ``synth``'s defaults (the harness, which defaults to
    ``on`` in a sweep, always), then the point's size and, with ``variants``, its pipeline."""
    p = Parser(prog="systolix synth")
    _synth_flags(p)
    defaults = vars(p.parse_args([args.kind]))
    flags = []
    for dest, value in vars(args).items():
        if dest in _SWEEP_ONLY or dest not in defaults or (variants and dest == "pipeline"):
            continue
        if value == defaults[dest] and dest not in ("target", "harness"):
            continue
        flag = "--" + dest.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    commands = []
    for config in configs:
        array = config.array if isinstance(config, EngineConfig) else config
        point = ["--rows", str(array.rows), "--cols", str(array.cols)]
        if variants:
            point += ["--pipeline", array.pipeline]
        commands.append(" ".join(["systolix", "synth", args.kind, *point, *flags]))
    return commands


def _cmd_sweep(args):
    for name in ("rows", "cols"):
        if getattr(args, name, None) is not None:
            raise SystolixError(f"--{name} does not apply to sweep: the array sizes come from "
                                f"--sizes")
    if args.variants and args.pipeline is not None:
        raise SystolixError("--pipeline does not apply with --variants: each variant is a "
                            "pipeline option")
    sizes = _parse_sizes(args.sizes)
    base = _config(args)
    kind = get(args.kind)
    if kind.sweep is None:
        raise SystolixError(f"sweep walks array sizes; it has no design space for "
                            f"'{args.kind}'")
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    configs = kind.sweep(sizes, variants, base)
    target = get_target(args.target)
    if args.scheduler is not None:
        if args.jobs is not None:
            raise SystolixError("-j/--jobs sets local processes: it does not apply with "
                                "--scheduler (the cluster's workers run the points)")
        check_scheduler_address(args.scheduler)
    jobs = default_jobs() if args.jobs is None else args.jobs
    summary = run_sweep(configs, target, _options(args, args.harness), args.output, jobs=jobs,
                        cache_dir=args.cache_dir, use_cache=not args.no_cache,
                        scheduler=args.scheduler,
                        commands=point_commands(args, configs, bool(variants)))
    if args.json:
        print(json.dumps(summary))
    else:
        for path in summary["files"]:
            print(f"wrote {path}")
    return 0


def _cmd_build(args):
    if args.kind != "engine" and args.baud is not None:
        raise SystolixError(f"--baud sets an engine's host link: it cannot be used with "
                            f"'build {args.kind}'")
    if args.fit:
        if args.kind == "engine":
            raise SystolixError("--fit searches array sizes; give an engine's size explicitly")
        if args.kind != "systolic":
            raise SystolixError(f"--fit searches array sizes: it cannot be used with "
                                f"'build {args.kind}'")
        given = [f"--{name}" for name in ("rows", "cols") if getattr(args, name) is not None]
        if given:
            raise SystolixError(f"{', '.join(given)} cannot be used with --fit: it searches "
                                f"the array size")
    config = _config(args)
    stream = _stream(args, config, "build")
    if not args.fit and args.kind != "engine":  # (an engine's host link is checked first)
        _refuse_unfit(config, TARGETS[BOARD_PLATFORMS[args.board].target])
    result = build_bitstream(config, args.board, _options(args, "on"), args.output,
                             fit=args.fit, baud=baud(args), cache_dir=args.cache_dir,
                             progress=lambda s: eprint(f"[build] {s}"))
    if stream is not None:
        result["sustained"] = sustained(config, stream, result["board_clock_mhz"])
    if args.json:
        print(json.dumps(result))
    else:
        if result["synth"] is not None:
            print(format_result(result["synth"]))
        else:
            print(f"{result['design']} behind the UART host link at "
                  f"{result['host_link']['baud']} baud")
        d = result["board_design"]
        clock = (f"{result['board_clock_mhz']:g} MHz from the PLL" if result.get("pll")
                 else f"{result['board_clock_mhz']:g} MHz board clock")
        print(f"  on board  : {result['board']} ({clock}): "
              f"Fmax {result['board_fmax_mhz']:.1f} MHz with the board's pins; design "
              f"{d['lut4']} LUT4, {d['ff']} FF, {d['dsp']} DSP, {d['bram']} block RAM")
        if result.get("peak_gops") is not None:
            print(f"  peak      : {result['peak_gops']:.2f} GOPS (2 x {result['macs']} MACs x "
                  f"{result['board_clock_mhz']:g} MHz)")
        if result.get("sustained") is not None:
            print(_sustained_line(result["sustained"]))
        print(f"  bitstream : {result['bitstream']} ({result['bitstream_bytes']:,} bytes)")
    return 0


HANDLERS = {"synth": _cmd_synth, "sweep": _cmd_sweep, "build": _cmd_build}
