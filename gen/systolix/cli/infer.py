"""``systolix infer``: classify held-out digits with an int8 MLP through the engine RTL, or
run a quantized ONNX model (``--model``) with its GEMMs on the engine, checked against
onnxruntime."""

from __future__ import annotations

import argparse
import json
import sys

from ..apps.infer import inference_engine, run_inference
from ..apps.mlp import MAX_SEED
from ..apps.report import print_inference, print_onnx
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
                                     "engine RTL, or run a quantized ONNX model (--model)")
    f.add_argument("--model", type=text, default=None, metavar="MODEL.onnx",
                   help="a quantized ONNX model (onnxruntime's QOperator or QDQ format); "
                        "without it: the digits MLP")
    f.add_argument("--input", type=text, default=None, metavar="X.npy",
                   help="with --model: the model's float32 input")
    f.add_argument("-o", "--output", type=text, default=None, metavar="Y.npy",
                   help="with --model: write the model's first output here")
    f.add_argument("--images", type=integer, default=None,
                   help="MLP: how many held-out images (default: all 360)")
    f.add_argument("--arch", choices=["systolic", "tensorcore"], default=None,
                   help="--model: the engine's compute core (default systolic)")
    f.add_argument("--rows", type=integer, default=8, help="array rows (default 8)")
    f.add_argument("--cols", type=integer, default=8, help="array columns (default 8)")
    f.add_argument("--dataflow", choices=[d.value for d in Dataflow], default="ws",
                   help="default ws (weight-stationary, as a TPU)")
    f.add_argument("--mma", type=text, default=None, metavar="MxNxK",
                   help="--arch tensorcore: the MMA unit (default 4x4x4)")
    f.add_argument("--cores", type=integer, default=None,
                   help="--arch tensorcore: MMA units (default 1)")
    f.add_argument("--batch", type=integer, default=64,
                   help="rows per engine job = the engine's max M (default 64)")
    f.add_argument("--max-k", type=integer, default=None, metavar="N",
                   help="--model: the engine's max K (default 256)")
    f.add_argument("--max-n", type=integer, default=None, metavar="N",
                   help="--model: the engine's max N (default 64)")
    f.add_argument("--buffering", choices=["single", "double"], default="double",
                   help="MLP: the engine's buffers (default double: loads and drains overlap "
                        "compute)")
    f.add_argument("--fmax", type=positive_float, default=None, metavar="MHZ",
                   help="MLP: report images per second at this clock, e.g. the engine's Fmax "
                        "from 'systolix synth engine --requant ...'")
    f.add_argument("--sim", choices=SIMULATORS, default="verilator",
                   help="simulator (default verilator)")
    f.add_argument("--seed", type=integer_in(0, MAX_SEED), default=None,
                   help=f"MLP: data split / training seed, 0..{MAX_SEED} (default 0)")
    f.add_argument("--json", action="store_true", help="print one JSON object as the summary")
    f.add_argument("--work-dir", type=text, default="sim_out", metavar="DIR")
    f.set_defaults(handler=_infer)


def _infer(args):
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    if args.model is not None:
        return _infer_onnx(args, log)
    for flag, value in (("--input", args.input), ("--output", args.output),
                        ("--arch", args.arch), ("--mma", args.mma), ("--cores", args.cores),
                        ("--max-k", args.max_k), ("--max-n", args.max_n)):
        if value is not None:
            raise SystolixError(f"{flag} goes with --model")
    try:
        config = inference_engine(args.rows, args.cols, Dataflow(args.dataflow), args.batch,
                                  buffering=args.buffering)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    check_simulator(args.sim)
    report = run_inference(config, args.sim, args.images, args.work_dir,
                           0 if args.seed is None else args.seed, log, fmax_mhz=args.fmax)
    if args.json:
        print(json.dumps(report))
    else:
        print_inference(report)
    if not (all(report["layers_bit_exact"]) and report["predictions_identical"]):
        raise SystolixError("the RTL's layer outputs differ from the integer reference")
    return 0


def _mma(value):
    parts = value.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise SystolixError(f"--mma must be MxNxK (e.g. 4x4x4), not {value!r}")
    return tuple(int(p) for p in parts)


def _infer_onnx(args, log):
    import numpy as np

    from ..apps.onnx_infer import onnx_engine, run_onnx
    from ..fileio import atomic_open
    from ..frontend.lower import load_model
    for flag, value in (("--images", args.images), ("--seed", args.seed)):
        if value is not None:
            raise SystolixError(f"{flag} is for the digits MLP; it cannot be used with --model")
    if args.input is None:
        raise SystolixError("--model needs --input X.npy")
    if args.output is None:
        raise SystolixError("--model needs -o Y.npy")
    tensorcore = args.arch == "tensorcore"
    if not tensorcore and (args.mma is not None or args.cores is not None):
        raise SystolixError("--mma and --cores go with --arch tensorcore")
    try:
        config = onnx_engine(args.arch or "systolic", args.rows, args.cols,
                             Dataflow(args.dataflow), _mma(args.mma or "4x4x4"),
                             args.cores or 1, args.batch, args.max_k or 256,
                             args.max_n or 64)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    from ..emit import check_buffer_size
    check_buffer_size(config, "lower --batch, --max-k or --max-n")
    load_model(args.model)  # a missing or corrupt model is reported before the input
    try:
        x = np.load(args.input, allow_pickle=False)
    except FileNotFoundError:
        raise SystolixError(f"{args.input}: no such input file") from None
    except Exception as e:
        raise SystolixError(f"{args.input}: not a .npy array ({str(e).splitlines()[0]})") \
            from None
    if not isinstance(x, np.ndarray):
        raise SystolixError(f"{args.input}: not a .npy array (an .npz archive?)")
    check_simulator(args.sim)
    out, summary = run_onnx(args.model, x, config, args.sim, args.work_dir, log)
    ok = summary["matches_reference"] and summary["matches_onnxruntime"]
    if ok:
        with atomic_open(args.output, "wb") as f:
            np.save(f, out)
        summary["written"] = args.output
    if args.json:
        print(json.dumps(summary))
    else:
        print_onnx(summary)
        if ok:
            print(f"  wrote         : {args.output}")
    if not ok:
        raise SystolixError(f"{args.model}: {'; '.join(summary['problems'])}; nothing written")
    return 0
