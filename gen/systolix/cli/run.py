"""``systolix run``: C = A x B through the generated RTL in simulation."""

from __future__ import annotations

import json

from ..apps.report import print_gemm_summary
from ..errors import SystolixError
from ..model.matrices import (check_gemm_shapes, check_operand, check_output_path, load_matrix,
                              save_matrix)
from ..sim.runner import check_simulator
from ..sim.verify import run_gemm
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


def _run(args):
    check_run_flags(args)
    a = load_matrix(args.a, "A")
    b = load_matrix(args.b, "B")
    check_gemm_shapes(a, b)
    config = run_config(args, (a.shape[0], a.shape[1], b.shape[1]))
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
        print_gemm_summary(config, summary)
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
