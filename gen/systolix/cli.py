"""``systolix`` command line: generate, run, demo, synth, sweep, build.

Every user error ends as one line on stderr (``systolix: error: ...``) and a non-zero exit:
1 for a bad input or environment, 2 for a malformed command line.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from . import __version__, synth_cli
from .config import PIPELINES, Dataflow, Numerics, SystolicConfig
from .errors import SystolixError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage dump) and exit 2."""

    def error(self, message):
        self.exit(2, f"systolix: error: {message} (see '{self.prog} --help')\n")


def _add_engine_args(p):
    g = p.add_argument_group("engine")
    g.add_argument("--rows", type=int, default=8, help="array rows R (default 8)")
    g.add_argument("--cols", type=int, default=8, help="array columns C (default 8)")
    g.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="os",
                   help="os = output-stationary (default)")
    g.add_argument("--in-width", type=int, default=8, help="operand bits, 2..16 (default 8)")
    g.add_argument("--acc-width", type=int, default=32,
                   help="accumulator bits (default 32; results are int64 above 32)")
    g.add_argument("--unsigned", action="store_true", help="unsigned operands (default signed)")
    g.add_argument("--saturate", action="store_true",
                   help="saturate the accumulator instead of wrapping")
    g.add_argument("--pipeline", choices=list(PIPELINES), default="none",
                   help="PE register stages before the accumulator: none (default), product, "
                        "full (operands and product; MULT18X18D registers on ECP5)")


def _config(args):
    try:
        return SystolicConfig(
            rows=args.rows, cols=args.cols, dataflow=Dataflow(args.dataflow),
            numerics=Numerics(in_width=args.in_width, acc_width=args.acc_width,
                              signed=not args.unsigned, saturate=args.saturate),
            pipeline=args.pipeline)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None


def _parser():
    p = _Parser(prog="systolix", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"systolix {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="emit Verilog and a JSON manifest")
    g.add_argument("kind", choices=["systolic"], help="what to generate")
    _add_engine_args(g)
    g.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for <name>.v and <name>.json")

    r = sub.add_parser("run", help="run C = A x B through the generated RTL in simulation")
    r.add_argument("--a", required=True, metavar="A.npy", help="M x K operand (.npy/.csv/.txt)")
    r.add_argument("--b", required=True, metavar="B.npy", help="K x N operand (.npy/.csv/.txt)")
    r.add_argument("-o", "--output", required=True, metavar="C.npy", help="where to write C")
    _add_engine_args(r)
    r.add_argument("--sim", choices=["icarus", "verilator"], default="icarus",
                   help="simulator (default icarus)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    r.add_argument("--work-dir", default="sim_out", metavar="DIR",
                   help="simulator builds and logs (default ./sim_out)")

    d = sub.add_parser("demo", help="8x8 array, random 64x64x64 GEMM in RTL, report")
    d.add_argument("--sim", choices=["icarus", "verilator"], default="icarus")
    d.add_argument("--size", type=int, default=64, help="M = K = N (default 64)")
    d.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    d.add_argument("--rtl-dir", default="rtl", metavar="DIR", help="where the RTL goes")
    d.add_argument("--work-dir", default="sim_out", metavar="DIR")
    synth_cli.add_parsers(sub, _add_engine_args)
    return p


def _cmd_generate(args):
    from .emit import write_design
    config = _config(args)
    v, m = write_design(config, args.output)
    print(f"wrote {v}")
    print(f"wrote {m}")
    return 0


def run_gemm(config, a, b, simulator, work_dir):
    """Simulate C = A x B; returns the summary dict and C (checked against numpy)."""
    from . import golden
    from .cycle_model import scalesim_cycles
    from .simjob import SimJob
    from .simulate import run_job

    runs, failures, _ = run_job(SimJob(config, [(a, b)]), simulator, work_dir)
    run = runs[0]
    want = golden.gemm(a, b, config.numerics)
    match = run.c is not None and np.array_equal(run.c, want)
    m, k = a.shape
    n = b.shape[1]
    summary = {
        "m": m, "k": k, "n": n,
        "simulator": simulator,
        "match": bool(match),
        "cycles": run.cycles,
        "model_cycles": run.model_cycles,
        "cycles_match_model": run.cycles == run.model_cycles,
        "scalesim_cycles": scalesim_cycles(config, m, k, n),
        "macs": run.macs,
        "utilization": run.utilization,
        "config": config.to_dict(),
    }
    if failures:
        summary["failures"] = failures
    return summary, run.c


def _cmd_run(args):
    from .matrices import check_gemm_shapes, check_operand, check_output_path, load_matrix
    from .matrices import save_matrix
    from .simulate import check_simulator

    config = _config(args)
    a = load_matrix(args.a, "A")
    b = load_matrix(args.b, "B")
    check_gemm_shapes(a, b)
    check_operand(a, config.numerics, "A")
    check_operand(b, config.numerics, "B")
    check_output_path(args.output)
    check_simulator(args.sim)

    summary, c = run_gemm(config, a, b, args.sim, args.work_dir)
    if summary["match"]:
        save_matrix(c, args.output)
        summary["output"] = args.output
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(config, summary)
    if not summary["match"]:
        detail = "; ".join(summary.get("failures", [])) or "result differs from numpy"
        raise SystolixError(f"RTL result does not match the numpy reference ({detail}); "
                            f"{args.output} not written")
    if not summary["cycles_match_model"]:  # C is right, but a model is wrong: a systolix bug
        raise SystolixError(f"RTL took {summary['cycles']} cycles but the cycle model predicts "
                            f"{summary['model_cycles']}; please report this")
    return 0


def _print_summary(config, s):
    print(f"C = A({s['m']}x{s['k']}) x B({s['k']}x{s['n']}) on {config.name} [{s['simulator']}]")
    print(f"  matches numpy : {'yes' if s['match'] else 'NO'}")
    print(f"  cycles        : {s['cycles']} (model {s['model_cycles']}: "
          f"{'exact' if s['cycles_match_model'] else 'DIFFERENT'}; "
          f"SCALE-Sim estimate {s['scalesim_cycles']})")
    util = s["utilization"]
    print(f"  utilization   : {util:.1%} of {config.macs} MACs" if util is not None else
          "  utilization   : n/a")
    if "output" in s:
        print(f"  wrote         : {s['output']}")


def _cmd_demo(args):
    from .demo import run_demo
    return run_demo(size=args.size, simulator=args.sim, seed=args.seed, rtl_dir=args.rtl_dir,
                    work_dir=args.work_dir)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return {"generate": _cmd_generate, "run": _cmd_run, "demo": _cmd_demo,
                **synth_cli.HANDLERS}[args.command](args)
    except SystolixError as e:
        print(f"systolix: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("systolix: interrupted", file=sys.stderr)
        return 130
