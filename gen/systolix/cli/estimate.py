"""``systolix estimate``: cycles of a GEMM or a job stream from the cycle model, no RTL.

This path imports no Amaranth (it answers in a fraction of a second): the flags are turned into
a config here, with the same meanings and defaults as ``generate``'s.
"""

from __future__ import annotations

import json

from ..config import Dataflow, EngineConfig, Numerics, SystolicConfig, TensorCoreConfig
from ..config.tensorcore import DEFAULT_MMA_PIPELINE
from ..errors import SystolixError
from ..model.estimate import estimate_stream, verified_sizes

__all__ = ["add_parser", "TARGETS"]

TARGETS = {"systolic": "a bare systolic array (--rows, --cols, --dataflow)",
         "engine": "a matrix engine: one job per GEMM, load + compute + drain",
         "tensorcore": "tensor-core MMA units (--m, --n, --k, --cores), compute phase"}


def _positive(value):
    import argparse
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {value!r}")
    return int(value)


def add_parser(sub):
    p = sub.add_parser("estimate", help="cycles of a GEMM or job stream from the cycle model "
                                        "(no RTL, any size up to 256x256)")
    p.add_argument("kind", choices=list(TARGETS), help="; ".join(f"{k}: {v}"
                                                               for k, v in TARGETS.items()))
    p.add_argument("--gemm", nargs=3, type=_positive, action="append", metavar=("M", "K", "N"),
                   help="a GEMM C = A(M x K) x B(K x N); repeat for a stream of jobs")
    p.add_argument("--jobs", metavar="FILE",
                   help="a job stream: one 'M K N' per line ('#' starts a comment)")
    p.add_argument("--rows", type=_positive, default=8, help="array rows R (default 8)")
    p.add_argument("--cols", type=_positive, default=8, help="array columns C (default 8)")
    p.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="os",
                   help="os (default) or ws")
    p.add_argument("--pipeline", default=None, metavar="P",
                   help="array: PE pipeline option (default none); tensorcore: register "
                        f"stages (default {DEFAULT_MMA_PIPELINE})")
    p.add_argument("--arch", choices=["systolic", "tensorcore"], default="systolic",
                   help="an engine's compute core (default systolic)")
    p.add_argument("--m", type=_positive, default=4, help="MMA rows m (default 4)")
    p.add_argument("--n", type=_positive, default=4, help="MMA columns n (default 4)")
    p.add_argument("--k", type=_positive, default=4, help="MMA dot-product length k (default 4)")
    p.add_argument("--cores", type=_positive, default=1, help="MMA units (default 1)")
    for dim in "mkn":
        p.add_argument(f"--max-{dim}", type=_positive, default=None, metavar="N",
                       help=f"engine: largest {dim.upper()} its buffers hold (default: the "
                            f"largest {dim.upper()} of the GEMMs)")
    p.add_argument("--in-width", type=_positive, default=8, help="operand bits (default 8)")
    p.add_argument("--acc-width", type=_positive, default=32,
                   help="accumulator bits (default 32)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=_estimate)


def _read_jobs(path):
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise SystolixError(f"cannot read job stream {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SystolixError(f"job stream {path} is not text") from None
    gemms = []
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() and int(f) >= 1 for f in fields):
            raise SystolixError(f"{path}:{number}: expected 'M K N' (three positive integers), "
                                f"not {line.strip()!r}")
        gemms.append(tuple(int(f) for f in fields))
    if not gemms:
        raise SystolixError(f"job stream {path} holds no GEMM")
    return gemms


def _config(args, gemms):
    numerics = Numerics(in_width=args.in_width, acc_width=args.acc_width)
    tensorcore = args.kind == "tensorcore" or (args.kind == "engine" and args.arch == "tensorcore")
    if tensorcore:
        pipeline = DEFAULT_MMA_PIPELINE if args.pipeline is None else args.pipeline
        if not str(pipeline).isdigit():
            raise SystolixError(f"--pipeline of a tensor core is a number of register stages, "
                                f"not {pipeline!r}")
        core = TensorCoreConfig(m=args.m, n=args.n, k=args.k, pipeline=int(pipeline),
                                numerics=numerics)
    else:
        array = SystolicConfig(rows=args.rows, cols=args.cols, dataflow=Dataflow(args.dataflow),
                               numerics=numerics,
                               pipeline="none" if args.pipeline is None else args.pipeline)
    if args.kind == "systolic":
        return array
    if args.kind == "tensorcore":
        return core
    limits = [getattr(args, f"max_{d}") or max(g[i] for g in gemms) for i, d in enumerate("mkn")]
    for g in gemms:
        for d, dim, lim in zip("MKN", g, limits):
            if dim > lim:
                raise SystolixError(f"{d} = {dim} exceeds the engine's buffers (max {d} = {lim})"
                                    f"; raise --max-{d.lower()} or split the GEMM")
    if tensorcore:
        return EngineConfig(None, *limits, core=core, cores=args.cores)
    return EngineConfig(array, *limits)


def _estimate(args):
    if (args.gemm is None) == (args.jobs is None):
        raise SystolixError("give the work: --gemm M K N (repeatable) or --jobs FILE")
    gemms = [tuple(g) for g in args.gemm] if args.gemm else _read_jobs(args.jobs)
    try:
        config = _config(args, gemms)
        result = estimate_stream(config, gemms, cores=args.cores)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    name = config.name if not isinstance(config, TensorCoreConfig) or args.cores == 1 else \
        f"{config.name} x{args.cores}"
    verified = verified_sizes()
    result = {"design": name, "config": config.to_dict(), **result,
              "verified_in_rtl": verified}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{name}: {config.macs * (args.cores if args.kind == 'tensorcore' else 1):,} MACs "
          f"per cycle")
    for g in result["gemms"]:
        extra = ""
        if "compute" in g:
            extra = f"  (load {g['load']}, compute {g['compute']}, drain {g['drain']})"
        elif "scalesim_cycles" in g:
            extra = f"  (SCALE-Sim formula: {g['scalesim_cycles']:,})"
        print(f"  {g['m']} x {g['k']} x {g['n']}: {g['cycles']:,} cycles, "
              f"utilization {g['utilization']:.1%}{extra}")
    if len(result["gemms"]) > 1:
        print(f"  total: {result['cycles']:,} cycles, utilization {result['utilization']:.1%}")
    if verified["record"]:
        print(f"verified in RTL ({verified['record']}): bit- and cycle-exact GEMMs on "
              f"{', '.join(verified['gemm']) or 'none'}; emitted "
              f"{'; '.join(_sizes(verified['emitted']))}")
    else:
        print("verified in RTL: no benchmark record found (bench/results/scale.json)")
    return 0


def _sizes(tags):
    """``["systolic os 8x8", "systolic os 16x16", ...]`` -> ``["systolic os 8x8 .. 16x16"]``
    (the sizes of each design, in the record's order)."""
    by_design = {}
    for tag in tags:
        design, size = tag.rsplit(" ", 1)
        by_design.setdefault(design, []).append(size)
    return [f"{design} {', '.join(sizes)}" for design, sizes in by_design.items()]
