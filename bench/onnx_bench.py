#!/usr/bin/env python3
"""Quantized digits CNN benchmark: all 360 held-out images through engines in RTL, per layer
the RTL's cycles beside the exact cycle model and SCALE-Sim's.

For each format (onnxruntime's QOperator and QDQ) and engine, every GEMM layer runs on the
engine in RTL; the output must equal the integer reference and onnxruntime's (else no result
is written). Records accuracies (float model, onnxruntime int8, RTL) and per layer the GEMM
shape, jobs, compute cycles (RTL, exact model, SCALE-Sim) and utilization; writes
bench/results/onnx.{json,md}.

    .venv/bin/python bench/onnx_bench.py [--sim verilator]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from systolix.apps.cnn import model_path, write_test_input
from systolix.apps.onnx_infer import onnx_engine, run_onnx
from systolix.apps.scalesim import available, run_scalesim
from systolix.config import Dataflow
from systolix.frontend.ort import run_onnxruntime

ROOT = Path(__file__).resolve().parent.parent
#: (label, onnx_engine arguments, the command line's engine flags)
ENGINES = [
    ("ws", dict(rows=8, cols=8, dataflow=Dataflow.WEIGHT_STATIONARY), "--dataflow ws"),
    ("os", dict(rows=8, cols=8, dataflow=Dataflow.OUTPUT_STATIONARY), "--dataflow os"),
    ("tc", dict(arch="tensorcore", mma=(4, 4, 4), cores=2),
     "--arch tensorcore --mma 4x4x4 --cores 2"),
]
INPUT = "sim_out/bench/digits_x.npy"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default=str(ROOT / "sim_out" / "bench"), metavar="DIR")
    args = p.parse_args(argv)
    logging.getLogger().setLevel(logging.ERROR)
    (ROOT / INPUT).parent.mkdir(parents=True, exist_ok=True)
    y = write_test_input(ROOT / INPUT)
    x = np.load(ROOT / INPUT)
    float_out = run_onnxruntime(model_path("float"), x)
    float_acc = float(np.mean(next(iter(float_out.values())).argmax(axis=1) == y))
    rows = []
    for fmt in ("qop", "qdq"):
        ort_out = next(iter(run_onnxruntime(model_path(fmt), x).values()))
        for label, kwargs, flags in ENGINES:
            config = onnx_engine(**kwargs)
            print(f"{fmt} on {config.name} [{args.sim}]", file=sys.stderr, flush=True)
            out, s = run_onnx(model_path(fmt), x, config, args.sim, args.work_dir,
                              progress=lambda m: print("    " + m, file=sys.stderr,
                                                       flush=True))
            if not (s["matches_reference"] and s["matches_onnxruntime"]):
                raise SystemExit(f"{fmt} on {config.name}: {s['problems']}")
            if config.arch == "systolic" and available():
                for layer in s["layers"]:
                    shapes = [(f"{layer['node']}_{i}", m, k, n)
                              for i, (m, k, n, _) in enumerate(layer["job_shapes"])]
                    got = run_scalesim(config.array, shapes)
                    layer["scalesim_cycles"] = sum(
                        got[name] * count for (name, *_), (*_, count) in
                        zip(shapes, layer["job_shapes"]))
            rows.append({
                "command": f"python -m systolix.apps.cnn --test-input {INPUT} && systolix "
                           f"infer --model gen/systolix/apps/models/{model_path(fmt).name} "
                           f"--input {INPUT} -o sim_out/bench/y.npy {flags} --sim {args.sim}"
                           f" --json",
                "format": fmt, "engine": s["layers"][0]["engine"], "simulator": args.sim,
                "images": len(x), "float_accuracy": float_acc,
                "onnxruntime_int8_accuracy": float(np.mean(ort_out.argmax(axis=1) == y)),
                "rtl_accuracy": float(np.mean(out.argmax(axis=1) == y)),
                "matches_onnxruntime": s["matches_onnxruntime"],
                "layers": s["layers"], "wall_seconds": s["wall_seconds"],
            })
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "onnx.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"Digits CNN (conv 3x3x8, pool, conv 3x3x16, pool, dense 64x10), all {len(x)} "
        f"held-out images, {args.sim}, engines with 64-row jobs; float accuracy "
        f"{float_acc:.2%}. Compute cycles summed over a layer's jobs; SCALE-Sim {'3.0.0 on' if available() else 'not installed:'} the "
        f"same job shapes.", "",
        "| format | engine | onnxruntime int8 | RTL | equal to onnxruntime | layer | GEMM "
        "M x K x N | jobs | RTL cycles | model cycles | SCALE-Sim cycles | utilization |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for i, l in enumerate(r["layers"]):
            head = (f"| {r['format']} | {r['engine']} | {r['onnxruntime_int8_accuracy']:.2%} | "
                    f"{r['rtl_accuracy']:.2%} | {'yes' if r['matches_onnxruntime'] else 'NO'} |"
                    if i == 0 else "| | | | | |")
            lines.append(f"{head} {l['node']} | {'x'.join(map(str, l['gemm']))} | {l['jobs']} | "
                         f"{l['rtl_cycles']} | {l['model_cycles']} | "
                         f"{l.get('scalesim_cycles', '-')} | {l['utilization']:.1%} |")
    (out / "onnx.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
