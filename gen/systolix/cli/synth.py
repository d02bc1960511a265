"""Command-line front end of the FPGA flow: ``systolix synth``, ``sweep`` and ``build``.

:func:`add_parsers` adds the three sub-commands to the main parser; :data:`HANDLERS` maps
their names to the functions that run them. Each handler returns an exit status and raises
:class:`~systolix.errors.SystolixError` for user errors (the CLI prints those as one line).
"""

from __future__ import annotations

import json
import sys

from ..errors import SystolixError

__all__ = ["add_parsers", "HANDLERS"]


def _eprint(text):
    print(text, file=sys.stderr, flush=True)


def _positive_float(text):
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be in range 1..1000 MHz, not {text}")
    return value


def _add_flow_args(p, *, harness_default="auto"):
    from ..synth.targets import TARGETS
    g = p.add_argument_group("flow")
    g.add_argument("--target", choices=list(TARGETS), default="ecp5-85f",
                   help="FPGA device (default ecp5-85f)")
    g.add_argument("--freq", type=_positive_float, default=None, metavar="MHZ",
                   help="clock target for nextpnr (default 150 on ECP5, 50 on iCE40)")
    g.add_argument("--harness", choices=["auto", "on", "off"], default=harness_default,
                   help="I/O-light harness: auto = when the ports exceed the package pins "
                        f"(default {harness_default})")
    g.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    g.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="result cache (default $SYSTOLIX_CACHE_DIR or ~/.cache/systolix)")
    g.add_argument("--no-cache", action="store_true", help="run the tools even if cached")


def add_parsers(sub, add_engine_args):
    """Add ``synth``, ``sweep`` and ``build`` to the sub-parsers ``sub``.

    ``add_engine_args(parser)`` adds the engine flags shared with ``generate``.
    """
    from ..synth.designs import KINDS
    from ..synth.board import BOARDS

    s = sub.add_parser("synth", help="synthesize, place and route; report area and Fmax")
    s.add_argument("kind", choices=list(KINDS), help="what to synthesize")
    add_engine_args(s)
    _add_flow_args(s)
    s.add_argument("--json", action="store_true", help="print the result as one JSON object")

    w = sub.add_parser("sweep", help="synthesize a design space; JSON, Markdown and plots")
    w.add_argument("kind", choices=list(KINDS), help="what to sweep")
    add_engine_args(w)
    _add_flow_args(w, harness_default="on")
    w.add_argument("--sizes", default="2x2,4x4,8x8", metavar="RxC,...",
                   help="array sizes (default 2x2,4x4,8x8); N alone means NxN")
    w.add_argument("--variants", default=None, metavar="V,...",
                   help="architecture variants, e.g. pipeline options none,full "
                        "(default: the --pipeline flag only)")
    w.add_argument("-j", "--jobs", type=int, default=2, help="parallel tool processes (default 2)")
    w.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for sweep.json, sweep.md and the PNG plots")
    w.add_argument("--json", action="store_true", help="print the results as one JSON object")

    b = sub.add_parser("build", help="build a bitstream for a board (amaranth-boards)")
    b.add_argument("kind", choices=list(KINDS), help="what to build")
    add_engine_args(b)
    b.add_argument("--board", choices=list(BOARDS), required=True, help="target board")
    b.add_argument("--fit", action="store_true",
                   help="ignore --rows/--cols: place the largest square array that fits")
    b.add_argument("--freq", type=_positive_float, default=None, metavar="MHZ",
                   help="clock target for nextpnr (default: the target's)")
    b.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    b.add_argument("--baud", type=int, default=115200,
                   help="engine: UART baud rate of the host link (default 115200)")
    b.add_argument("--cache-dir", default=None, metavar="DIR")
    b.add_argument("-o", "--output", required=True, metavar="DIR", help="bitstream directory")
    b.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _options(args):
    from ..synth.flow import SynthOptions
    try:
        return SynthOptions(freq=args.freq, harness=getattr(args, "harness", "auto"),
                            seed=args.seed)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None


def _config(args):
    from ..synth.designs import get_kind
    kind = get_kind(args.kind)
    if kind.from_args is None:
        raise SystolixError(f"design kind {args.kind!r} has no command-line flags")
    return kind.from_args(args)


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
    lines.append(f"  reports   : {r['report_dir']}" + (" (cached)" if r["cached"] else ""))
    return "\n".join(lines)


def _cmd_synth(args):
    from ..synth.flow import require_fit, synthesize
    from ..synth.targets import get_target
    config = _config(args)
    target = get_target(args.target)
    result = synthesize(config, target, _options(args), cache_dir=args.cache_dir,
                        use_cache=not args.no_cache, progress=lambda s: _eprint(f"[synth] {s}"))
    require_fit(result)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_result(result.to_dict()))
    return 0


def _parse_sizes(text):
    sizes = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        try:
            if "x" in part:
                r, c = part.split("x")
                sizes.append((int(r), int(c)))
            else:
                sizes.append((int(part), int(part)))
        except ValueError:
            raise SystolixError(f"bad size {part!r} in --sizes: use RxC or N, e.g. 4x4,8x8") \
                from None
    if not sizes:
        raise SystolixError("--sizes lists no size")
    return sizes


def _cmd_sweep(args):
    from ..synth.designs import get_kind
    from ..synth.sweep import run_sweep
    from ..synth.targets import get_target
    if not 1 <= args.jobs <= 2:
        raise SystolixError(f"--jobs must be 1 or 2 on this project's 2-core machines, "
                            f"not {args.jobs}")
    base = _config(args)
    kind = get_kind(args.kind)
    if kind.sweep_configs is None:
        raise SystolixError(f"sweep walks array sizes; it has no design space for "
                            f"'{args.kind}'")
    variants = [v.strip() for v in args.variants.split(",")] if args.variants else None
    configs = kind.sweep_configs(_parse_sizes(args.sizes), variants, base)
    target = get_target(args.target)
    summary = run_sweep(configs, target, _options(args), args.output, jobs=args.jobs,
                        cache_dir=args.cache_dir, use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(summary))
    else:
        for path in summary["files"]:
            print(f"wrote {path}")
    return 0


def _cmd_build(args):
    from ..synth.board import build_bitstream
    result = build_bitstream(args, progress=lambda s: _eprint(f"[build] {s}"))
    if args.json:
        print(json.dumps(result))
    else:
        if result["synth"] is not None:
            print(format_result(result["synth"]))
        else:
            print(f"{result['design']} behind the UART host link at "
                  f"{result['host_link']['baud']} baud")
        d = result["board_design"]
        print(f"  on board  : {result['board']} ({result['board_clock_mhz']:g} MHz board clock): "
              f"Fmax {result['board_fmax_mhz']:.1f} MHz with the board's pins; design "
              f"{d['lut4']} LUT4, {d['ff']} FF, {d['dsp']} DSP")
        print(f"  bitstream : {result['bitstream']} ({result['bitstream_bytes']:,} bytes)")
    return 0


HANDLERS = {"synth": _cmd_synth, "sweep": _cmd_sweep, "build": _cmd_build}
