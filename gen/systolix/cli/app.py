"""``systolix`` command line: generate, run, demo, synth, sweep, build.

Every user error ends as one line on stderr (``systolix: error: ...``) and a non-zero exit:
1 for a bad input or environment, 2 for a malformed command line.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import __version__
from . import synth as synth_cli
from ..config import (DEFAULT_MMA_PIPELINE, PIPELINES, Dataflow, EngineConfig, Numerics,
                      SystolicConfig, TensorCoreConfig)
from ..errors import SystolixError

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
                   help="os = output-stationary (default), ws = weight-stationary")
    g.add_argument("--in-width", type=int, default=8, help="operand bits, 2..16 (default 8)")
    g.add_argument("--acc-width", type=int, default=32,
                   help="accumulator bits (default 32; results are int64 above 32)")
    g.add_argument("--unsigned", action="store_true", help="unsigned operands (default signed)")
    g.add_argument("--saturate", action="store_true",
                   help="saturate the accumulator instead of wrapping")
    g.add_argument("--pipeline", default=None, metavar="P",
                   help=f"arrays: PE register stages before the accumulator, one of "
                        f"{', '.join(PIPELINES)} (default none); tensor cores: register stages "
                        f"in each dot-product unit, 0..ceil(log2 k)+1 (default "
                        f"{DEFAULT_MMA_PIPELINE})")


def _add_synth_args(p):
    """Flags of ``synth``/``sweep``/``build``: as for ``generate`` (array, engine buffers and
    core, tensor core)."""
    _add_engine_args(p)
    _add_buffer_args(p, ENGINE_DEFAULT_MAX)
    _add_tensorcore_args(p)
    _add_arch_args(p)


#: Default buffer limits of a generated engine (M, K, N up to 64 each).
ENGINE_DEFAULT_MAX = 64


def _add_buffer_args(p, default):
    g = p.add_argument_group("engine buffers")
    for dim, what in (("m", "rows of A and C"), ("k", "columns of A / rows of B"),
                      ("n", "columns of B and C")):
        g.add_argument(f"--max-{dim}", type=int, default=default, metavar="N",
                       help=f"largest {dim.upper()} ({what}) the buffers hold"
                            + (f" (default {default})" if default else
                               " (default: this GEMM's own)"))
    p.set_defaults(max_default=default)


def _mma_pipeline(value):
    """A tensor core's ``--pipeline``: register stages, an integer (default 1)."""
    if value is None:
        return DEFAULT_MMA_PIPELINE
    try:
        return int(value)
    except ValueError:
        raise SystolixError(f"--pipeline of a tensor core is a number of register stages, not "
                            f"{value!r}") from None


def _config(args, dims=None):
    """The config the flags describe; ``dims`` (m, k, n) fills unset engine buffer limits."""
    try:
        numerics = Numerics(in_width=args.in_width, acc_width=args.acc_width,
                            signed=not args.unsigned, saturate=args.saturate)
        tensorcore = getattr(args, "arch", None) == "tensorcore"
        if tensorcore:
            core = TensorCoreConfig(m=args.m, n=args.n, k=args.k,
                                    pipeline=_mma_pipeline(args.pipeline),
                                    numerics=numerics)
        else:
            array = SystolicConfig(rows=args.rows, cols=args.cols,
                                   dataflow=Dataflow(args.dataflow), numerics=numerics,
                                   pipeline="none" if args.pipeline is None else args.pipeline)
        limits = [getattr(args, f"max_{d}") for d in "mkn"]
        if not getattr(args, "engine", False) and getattr(args, "kind", None) != "engine":
            given = [f"--max-{d}" for d, lim in zip("mkn", limits)
                     if lim not in (None, args.max_default)]
            if given:
                raise SystolixError(f"{given[0]} sizes an engine's buffers: use it with "
                                    f"{'--engine' if hasattr(args, 'engine') else 'engine'}")
            return array
        if dims is not None:
            limits = [dim if lim is None else lim for lim, dim in zip(limits, dims)]
        config = (EngineConfig(None, *limits, core=core, cores=args.cores) if tensorcore else
                  EngineConfig(array, *limits))
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    if dims is not None:
        for d, dim, lim in zip("MKN", dims, limits):
            if dim > lim:
                raise SystolixError(f"{d} = {dim} exceeds the engine's buffers (max {d} = {lim});"
                                    f" raise --max-{d.lower()}")
    return config


def _parser():
    p = _Parser(prog="systolix", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"systolix {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="emit Verilog and a JSON manifest")
    g.add_argument("kind", choices=["systolic", "engine", "tensorcore"],
                   help="systolic = the bare array, engine = array + buffers + controller, "
                        "tensorcore = an MMA unit")
    _add_engine_args(g)
    _add_buffer_args(g, ENGINE_DEFAULT_MAX)
    _add_tensorcore_args(g)
    _add_arch_args(g)
    g.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="directory for <name>.v and <name>.json")

    r = sub.add_parser("run", help="run C = A x B through the generated RTL in simulation")
    r.add_argument("--a", required=True, metavar="A.npy", help="M x K operand (.npy/.csv/.txt)")
    r.add_argument("--b", required=True, metavar="B.npy", help="K x N operand (.npy/.csv/.txt)")
    r.add_argument("-o", "--output", required=True, metavar="C.npy", help="where to write C")
    _add_engine_args(r)
    r.add_argument("--engine", action="store_true",
                   help="run through the matrix engine (buffers + controller in RTL); "
                        "required for --dataflow ws and --arch tensorcore")
    _add_buffer_args(r, None)
    _add_tensorcore_args(r)
    _add_arch_args(r)
    r.add_argument("--sim", choices=["icarus", "verilator"], default="icarus",
                   help="simulator (default icarus)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    r.add_argument("--work-dir", default="sim_out", metavar="DIR",
                   help="simulator builds and logs (default ./sim_out)")

    f = sub.add_parser("infer", help="classify held-out digits with an int8 MLP through the "
                                     "engine RTL (GEMM + requantization per layer)")
    f.add_argument("--images", type=int, default=None,
                   help="how many held-out images (default: all 360)")
    f.add_argument("--rows", type=int, default=8, help="array rows (default 8)")
    f.add_argument("--cols", type=int, default=8, help="array columns (default 8)")
    f.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="ws",
                   help="default ws (weight-stationary, as a TPU)")
    f.add_argument("--batch", type=int, default=64,
                   help="images per engine job = the engine's max M (default 64)")
    f.add_argument("--sim", choices=["icarus", "verilator"], default="verilator",
                   help="simulator (default verilator)")
    f.add_argument("--seed", type=int, default=0, help="data split / training seed (default 0)")
    f.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    f.add_argument("--work-dir", default="sim_out", metavar="DIR")

    from . import board as board_cli
    board_cli.add_parsers(sub)

    d = sub.add_parser("demo", help="8x8 array and engines, random GEMM in RTL, and the "
                                    "quantized MLP on digits; report")
    d.add_argument("--sim", choices=["icarus", "verilator"], default="icarus")
    d.add_argument("--size", type=int, default=64, help="M = K = N (default 64)")
    d.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    d.add_argument("--rtl-dir", default="rtl", metavar="DIR", help="where the RTL goes")
    d.add_argument("--infer-sim", choices=["icarus", "verilator"], default=None,
                   help="simulator of the MLP step (default verilator if installed)")
    d.add_argument("--infer-images", type=int, default=None,
                   help="held-out images for the MLP step (default all 360)")
    d.add_argument("--work-dir", default="sim_out", metavar="DIR")
    synth_cli.add_parsers(sub, _add_synth_args)
    return p


_SYSTOLIC_ONLY = {"rows": 8, "cols": 8, "dataflow": "os"}
_TENSORCORE_ONLY = {"m": 4, "n": 4, "k": 4}


def _add_tensorcore_args(p):
    g = p.add_argument_group("tensorcore")
    g.add_argument("--m", type=int, help="rows of A, C and D (default 4)")
    g.add_argument("--n", type=int, help="columns of B, C and D (default 4)")
    g.add_argument("--k", type=int, help="columns of A, rows of B: the dot-product length "
                                         "(default 4)")
    # None = not given, so flags of the other kind can be rejected instead of ignored
    p.set_defaults(**{name: None for name in _SYSTOLIC_ONLY})


def _add_arch_args(p):
    g = p.add_argument_group("engine core")
    g.add_argument("--arch", choices=["systolic", "tensorcore"], default=None,
                   help="the engine's compute core: a systolic array (default; --rows, --cols, "
                        "--dataflow) or tensor-core MMA units (--m, --n, --k, --pipeline, "
                        "--cores)")
    g.add_argument("--cores", type=int, default=None,
                   help="MMA units side by side of a tensor-core engine (default 1)")


def _resolve_arch(args, label, tensorcore, allow_cores):
    """Reject flags of the other core kind (naming them and ``label``), fill in defaults."""
    mine, other = ((_TENSORCORE_ONLY, _SYSTOLIC_ONLY) if tensorcore else
                   (_SYSTOLIC_ONLY, _TENSORCORE_ONLY))
    given = [f"--{name}" for name in other if getattr(args, name, None) is not None]
    if not allow_cores and getattr(args, "cores", None) is not None:
        given.append("--cores")
    if given:
        raise SystolixError(f"{', '.join(given)} cannot be used with '{label}'")
    for name, default in mine.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if allow_cores and args.cores is None:
        args.cores = 1


def _generate_config(args, verb="generate"):
    """The config of ``<verb> <kind>`` (generate, synth, sweep, build); flags of the other
    kind are an error."""
    if args.kind != "engine" and args.arch is not None:
        raise SystolixError(f"--arch selects an engine's core: it cannot be used with "
                            f"'{verb} {args.kind}'")
    tensorcore = args.kind == "tensorcore" or args.arch == "tensorcore"
    label = f"{verb} engine --arch tensorcore" if args.kind == "engine" and tensorcore else \
        f"{verb} {args.kind}"
    if args.kind == "tensorcore":
        given = [f"--max-{d}" for d in "mkn"
                 if getattr(args, f"max_{d}") not in (None, args.max_default)]
        if given:
            raise SystolixError(f"{', '.join(given)} cannot be used with '{label}'")
    _resolve_arch(args, label, tensorcore, allow_cores=args.kind == "engine" and tensorcore)
    if args.kind != "tensorcore":
        return _config(args)
    pipeline = _mma_pipeline(args.pipeline)
    try:
        return TensorCoreConfig(
            m=args.m, n=args.n, k=args.k, pipeline=pipeline,
            numerics=Numerics(in_width=args.in_width, acc_width=args.acc_width,
                              signed=not args.unsigned, saturate=args.saturate))
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None


def _cmd_generate(args):
    from ..emit import write_design
    config = _generate_config(args)
    v, m = write_design(config, args.output)
    print(f"wrote {v}")
    print(f"wrote {m}")
    return 0


def _cmd_run(args):
    from ..model.matrices import check_gemm_shapes, check_operand, check_output_path, load_matrix
    from ..model.matrices import save_matrix
    from ..sim.runner import check_simulator

    tensorcore = args.arch == "tensorcore"
    if tensorcore and not args.engine:
        raise SystolixError("the tensor-core MMA units need the engine's controller to tile "
                            "the GEMM: add --engine")
    _resolve_arch(args, "run --arch tensorcore" if tensorcore else "run --arch systolic",
                  tensorcore, allow_cores=tensorcore)
    a = load_matrix(args.a, "A")
    b = load_matrix(args.b, "B")
    check_gemm_shapes(a, b)
    config = _config(args, (a.shape[0], a.shape[1], b.shape[1]))
    if isinstance(config, SystolicConfig) and config.dataflow is Dataflow.WEIGHT_STATIONARY:
        raise SystolixError("the weight-stationary array needs the engine's controller to "
                            "schedule its weights: add --engine")
    check_operand(a, config.numerics, "A")
    check_operand(b, config.numerics, "B")
    check_output_path(args.output)
    check_simulator(args.sim)

    from ..sim.verify import run_gemm
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
        got = (summary["cycles"], summary.get("job_cycles"))
        want = (summary["model_cycles"], summary.get("model_job_cycles"))
        raise SystolixError(f"RTL took {got} cycles (compute, job) but the cycle model predicts "
                            f"{want}; please report this")
    return 0


def _print_summary(config, s):
    print(f"C = A({s['m']}x{s['k']}) x B({s['k']}x{s['n']}) on {config.name} [{s['simulator']}]")
    print(f"  matches numpy : {'yes' if s['match'] else 'NO'}")
    label = "compute cycles" if "job_cycles" in s else "cycles        "
    scalesim = ("" if s["scalesim_cycles"] is None else
                f"; SCALE-Sim estimate {s['scalesim_cycles']}")
    print(f"  {label}: {s['cycles']} (model {s['model_cycles']}: "
          f"{'exact' if s['cycles_match_model'] else 'DIFFERENT'}{scalesim})")
    if "job_cycles" in s:
        print(f"  whole job     : {s['job_cycles']} cycles with loading and draining "
              f"(model {s['model_job_cycles']})")
    util = s["utilization"]
    print(f"  utilization   : {util:.1%} of {config.macs} MACs" if util is not None else
          "  utilization   : n/a")
    if s.get("end_to_end_utilization") is not None:
        print(f"  end to end    : {s['end_to_end_utilization']:.1%} (loading and draining "
              f"included)")
    if "output" in s:
        print(f"  wrote         : {s['output']}")


def _cmd_infer(args):
    from ..apps.infer import inference_engine, run_inference
    from ..sim.runner import check_simulator

    try:
        config = inference_engine(args.rows, args.cols, Dataflow(args.dataflow), args.batch)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    check_simulator(args.sim)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    report = run_inference(config, args.sim, args.images, args.work_dir, args.seed, log)
    if args.json:
        print(json.dumps(report))
    else:
        print_inference(report)
    if not (all(report["layers_bit_exact"]) and report["predictions_identical"]):
        raise SystolixError("the RTL's layer outputs differ from the integer reference")
    return 0


def print_inference(r, indent=""):
    print(f"{indent}digits MLP {' -> '.join(r['layers'])} ({r['macs_per_inference']} MACs per "
          f"image), {r['images']} held-out images on {r['engine']} [{r['simulator']}]")
    print(f"{indent}  accuracy      : float {r['float_accuracy']:.1%}, int8 reference "
          f"{r['int8_reference_accuracy']:.1%}, RTL {r['rtl_accuracy']:.1%}")
    print(f"{indent}  bit-exact     : {'every layer' if all(r['layers_bit_exact']) else 'NO'}"
          f" ({r['engine_jobs']} engine jobs)")
    print(f"{indent}  cycles/image  : {r['compute_cycles_per_inference']:.1f} compute, "
          f"{r['job_cycles_per_inference']:.1f} with loading and draining "
          f"({r['array_utilization']:.1%} array utilization while computing)")


def _cmd_demo(args):
    from ..apps.demo import run_demo
    return run_demo(size=args.size, simulator=args.sim, seed=args.seed, rtl_dir=args.rtl_dir,
                    work_dir=args.work_dir, infer_sim=args.infer_sim,
                    infer_images=args.infer_images)


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        from . import board as board_cli
        return {"generate": _cmd_generate, "run": _cmd_run, "infer": _cmd_infer,
                "demo": _cmd_demo, "board": board_cli.main,
                **synth_cli.HANDLERS}[args.command](args)
    except SystolixError as e:
        print(f"systolix: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("systolix: interrupted", file=sys.stderr)
        return 130
