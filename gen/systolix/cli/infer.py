"""``systolix infer``: classify held-out digits with an int8 MLP through the engine RTL."""

from __future__ import annotations

import argparse
import json
import sys

from ..apps.infer import inference_engine, run_inference
from ..apps.mlp import MAX_SEED
from ..apps.report import print_inference
from ..config import Dataflow
from ..errors import SystolixError
from ..sim.runner import check_simulator
from .common import SIMULATORS, integer, integer_in, text


def positive_float(value):
    try:
        f = float(value)
    except ValueError:
        f = float("nan")
    if not f > 0 or f == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value!r}")
    return f

__all__ = ["add_parser"]


def add_parser(sub):
    f = sub.add_parser("infer", help="classify held-out digits with an int8 MLP through the "
                                     "engine RTL (GEMM + requantization per layer)")
    f.add_argument("--images", type=integer, default=None,
                   help="how many held-out images (default: all 360)")
    f.add_argument("--rows", type=integer, default=8, help="array rows (default 8)")
    f.add_argument("--cols", type=integer, default=8, help="array columns (default 8)")
    f.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="ws",
                   help="default ws (weight-stationary, as a TPU)")
    f.add_argument("--batch", type=integer, default=64,
                   help="images per engine job = the engine's max M (default 64)")
    f.add_argument("--buffering", choices=["single", "double"], default="double",
                   help="the engine's buffers (default double: loads and drains overlap "
                        "compute)")
    f.add_argument("--fmax", type=positive_float, default=None, metavar="MHZ",
                   help="report images per second at this clock, e.g. the engine's Fmax from "
                        "'systolix synth engine --requant ...'")
    f.add_argument("--sim", choices=SIMULATORS, default="verilator",
                   help="simulator (default verilator)")
    f.add_argument("--seed", type=integer_in(0, MAX_SEED), default=0,
                   help=f"data split / training seed, 0..{MAX_SEED} (default 0)")
    f.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    f.add_argument("--work-dir", type=text, default="sim_out", metavar="DIR")
    f.set_defaults(handler=_infer)


def _infer(args):
    try:
        config = inference_engine(args.rows, args.cols, Dataflow(args.dataflow), args.batch,
                                  buffering=args.buffering)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    check_simulator(args.sim)
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    report = run_inference(config, args.sim, args.images, args.work_dir, args.seed, log,
                           fmax_mhz=args.fmax)
    if args.json:
        print(json.dumps(report))
    else:
        print_inference(report)
    if not (all(report["layers_bit_exact"]) and report["predictions_identical"]):
        raise SystolixError("the RTL's layer outputs differ from the integer reference")
    return 0
