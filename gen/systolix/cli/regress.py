"""``systolix regress``: random GEMM jobs through the RTL, one per seed, on local processes or
a Dask cluster; every failing seed is reported with the command that replays it."""

from __future__ import annotations

import json

from ..cluster import check_scheduler_address
from ..errors import SystolixError
from ..sim.regress import run_regress
from .common import SIMULATORS, integer, integer_in, text
from .synth import default_jobs

__all__ = ["add_parser"]


def add_parser(sub):
    r = sub.add_parser("regress", help="random GEMM jobs (designs, shapes, numerics, stalls "
                                       "drawn from seeds) through the RTL, checked against "
                                       "the models")
    r.add_argument("--seeds", type=integer_in(1, 10**6), required=True, metavar="N",
                   help="how many seeds (jobs) to run")
    r.add_argument("--first-seed", type=integer, default=1, metavar="S",
                   help="the first seed: seeds S .. S+N-1 run (default 1)")
    r.add_argument("--sim", choices=SIMULATORS, default="icarus",
                   help="simulator (default icarus)")
    r.add_argument("-j", "--jobs", type=integer_in(1, 1024), default=None,
                   help="parallel local processes (default: the number of CPUs)")
    r.add_argument("--scheduler", type=text, default=None, metavar="tcp://HOST:PORT",
                   help="run every seed as a task on this Dask cluster's workers instead of "
                        "-j local processes")
    r.add_argument("--work-dir", type=text, default="sim_out/regress", metavar="DIR",
                   help="simulator builds and failing jobs' files (default ./sim_out/regress; "
                        "on a cluster, relative to each worker's directory)")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    r.set_defaults(handler=_regress)


def _regress(args):
    if args.scheduler is not None:
        if args.jobs is not None:
            raise SystolixError("-j/--jobs sets local processes: it does not apply with "
                                "--scheduler (the cluster's workers run the seeds)")
        check_scheduler_address(args.scheduler)
    jobs = default_jobs() if args.jobs is None else args.jobs
    summary = run_regress(args.seeds, args.first_seed, args.sim, args.work_dir, jobs=jobs,
                          scheduler=args.scheduler)
    if args.json:
        print(json.dumps(summary))
    else:
        last = args.first_seed + args.seeds - 1
        which = (f"seed {last}" if args.seeds == 1 else
                 f"{args.seeds} seeds ({args.first_seed}..{last})")
        print(f"{which} on {args.sim}: {summary['passed']} passed, "
              f"{len(summary['failed'])} failed")
        for r in summary["failed"]:
            print(f"seed {r['seed']}: {r['design']}, GEMMs {', '.join(r['gemms'])}, "
                  f"stalls {r['stall_prob']:g}")
            for problem in r["problems"]:
                print(f"  {problem}")
            if r["job_dir"]:
                print(f"  job files: {r['job_dir']}")
            print(f"  replay: {r['command']}")
    if summary["failed"]:
        seeds = ", ".join(str(r["seed"]) for r in summary["failed"])
        raise SystolixError(f"{len(summary['failed'])} of {summary['seeds']} seeds failed: "
                            f"{seeds}")
    return 0
