"""``systolix run``: C = A x B through the generated RTL in simulation."""

from __future__ import annotations

import json

from ..apps.report import print_gemm_summary
from ..errors import SystolixError
from ..model.matrices import (check_gemm_shapes, check_operand, check_output_path, load_matrix,
                              save_matrix)
from ..sim.runner import check_simulator
from ..sim.verify import run_batch, run_gemm
from .common import add_gemm_files, SIMULATORS, text
from .config_flags import add_design_flags, check_run_flags, run_config

__all__ = ["add_parser"]


def add_parser(sub):
    r = sub.add_parser("run", help="run C = A x B through the generated RTL in simulation")
    add_gemm_files(r)
    r.add_argument("--engine", action="store_true",
                   help="run through the matrix engine (buffers + controller in RTL); "
                        "required for --dataflow ws and --arch tensorcore")
    add_design_flags(r, buffers=None)
    r.add_argument("--sim", choices=SIMULATORS, default="icarus", help="simulator (default icarus)")
    r.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    r.add_argument("--work-dir", type=text, default="sim_out", metavar="DIR",
                   help="simulator builds and logs (default ./sim_out)")
    r.set_defaults(handler=_run)


def _batch_shapes(a, b, engine, output):
    """(M, K, N) of a batch ``a`` (J, M, K) with ``b`` (K, N) or (J, K, N); one-line errors."""
    if not engine:
        raise SystolixError(f"A holds a batch of {a.shape[0]} matrices: batches run on the "
                            f"engine, add --engine")
    if not str(output).endswith(".npy"):
        raise SystolixError(f"a batch's C is 3-D ({a.shape[0]} matrices): write it to a .npy "
                            f"file, not {output}")
    if b.ndim == 3 and b.shape[0] != a.shape[0]:
        raise SystolixError(f"shape mismatch: A is a batch of {a.shape[0]} matrices but B of "
                            f"{b.shape[0]} (give one B, or one per A)")
    if a.shape[2] != b.shape[-2]:
        raise SystolixError(f"shape mismatch: A's matrices are {a.shape[1]}x{a.shape[2]} but "
                            f"B's are {b.shape[-2]}x{b.shape[-1]} (A's columns must equal B's "
                            f"rows)")
    return a.shape[1], a.shape[2], b.shape[-1]


def _run(args):
    check_run_flags(args)
    a = load_matrix(args.a, "A", ndims=(2, 3))
    b = load_matrix(args.b, "B", ndims=(2, 3))
    batch = a.ndim == 3
    if batch:
        dims = _batch_shapes(a, b, args.engine, args.output)
    elif b.ndim == 3:
        raise SystolixError(f"B holds a batch of {b.shape[0]} matrices but A is one matrix: "
                            f"give A as a batch (J, M, K)")
    else:
        check_gemm_shapes(a, b)
        dims = (a.shape[0], a.shape[1], b.shape[1])
    config = run_config(args, dims)
    check_operand(a.reshape(-1, a.shape[-1]), config.numerics, "A")
    check_operand(b.reshape(-1, b.shape[-1]), config.numerics, "B")
    check_output_path(args.output)
    check_simulator(args.sim)

    if batch:
        summary, c = run_batch(config, a, b, args.sim, args.work_dir)
    else:
        summary, c = run_gemm(config, a, b, args.sim, args.work_dir)
    if summary["match"]:
        save_matrix(c, args.output)
        summary["output"] = args.output
    if args.json:
        print(json.dumps(summary))
    elif batch:
        _print_batch(config, summary)
    else:
        print_gemm_summary(config, summary)
    if not summary["match"]:
        detail = "; ".join(summary.get("failures", [])) or "result differs from numpy"
        raise SystolixError(f"RTL result does not match the numpy reference ({detail}); "
                            f"{args.output} not written")
    if batch and not summary["cycles_match_model"]:
        raise SystolixError(f"RTL cycles differ from the cycle model "
                            f"({'; '.join(summary.get('failures', []))}); please report this")
    if not summary["cycles_match_model"]:  # C is right, but a model is wrong: a systolix bug
        got = (summary["cycles"], summary.get("job_cycles"))
        want = (summary["model_cycles"], summary.get("model_job_cycles"))
        raise SystolixError(f"RTL took {got} cycles (compute, job) but the cycle model predicts "
                            f"{want}; please report this")
    return 0


def _print_batch(config, s):
    print(f"C[j] = A[j]({s['m']}x{s['k']}) x B{'' if s['shared_b'] else '[j]'}({s['k']}x"
          f"{s['n']}), j < {s['jobs']}, on {config.name} [{s['simulator']}]")
    print(f"  matches numpy : {'yes' if s['match'] else 'NO'}")
    if s["stream_cycles"] is not None:
        print(f"  stream        : {s['stream_cycles']} cycles, first command to last C word "
              f"(model {s['model_stream_cycles']})")
        print(f"  end to end    : {s['end_to_end_utilization']:.1%} of {config.macs} MACs "
              f"({config.buffering}-buffered"
              + (", weights kept" if s["shared_b"] and s["jobs"] > 1 else "") + ")")
    if s.get("output"):
        print(f"  wrote         : {s['output']}")
