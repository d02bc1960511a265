"""``systolix demo``: what ``make demo`` runs."""

from __future__ import annotations

from ..apps.demo import run_demo
from .common import SIMULATORS, integer, text

__all__ = ["add_parser"]


def add_parser(sub):
    d = sub.add_parser("demo", help="8x8 array and engines, random GEMM in RTL, and the "
                                    "quantized MLP on digits; report")
    d.add_argument("--sim", choices=SIMULATORS, default="icarus")
    d.add_argument("--size", type=integer, default=64, help="M = K = N (default 64)")
    d.add_argument("--seed", type=integer, default=None, help="random seed (default: random)")
    d.add_argument("--rtl-dir", type=text, default="rtl", metavar="DIR",
                   help="where the RTL goes")
    d.add_argument("--infer-sim", choices=SIMULATORS, default=None,
                   help="simulator of the MLP step (default verilator if installed)")
    d.add_argument("--infer-images", type=integer, default=None,
                   help="held-out images for the MLP step (default all 360)")
    d.add_argument("--work-dir", type=text, default="sim_out", metavar="DIR")
    d.set_defaults(handler=_demo)


def _demo(args):
    return run_demo(size=args.size, simulator=args.sim, seed=args.seed, rtl_dir=args.rtl_dir,
                    work_dir=args.work_dir, infer_sim=args.infer_sim,
                    infer_images=args.infer_images)
