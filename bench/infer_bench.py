#!/usr/bin/env python3
"""Quantized-MLP benchmark: all 360 held-out digits through requantizing engines in RTL.

For each engine, every layer's int8 output must equal the numpy integer reference bit for bit
(else no result is written). Records accuracies, cycles per image and simulation wall time;
writes bench/results/infer.{json,md}.

    .venv/bin/python bench/infer_bench.py [--sim verilator]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from systolix.config import Dataflow
from systolix.apps.infer import inference_engine, run_inference

ROOT = Path(__file__).resolve().parent.parent
ENGINES = [(8, 8, Dataflow.WEIGHT_STATIONARY), (8, 8, Dataflow.OUTPUT_STATIONARY),
           (16, 16, Dataflow.WEIGHT_STATIONARY), (4, 4, Dataflow.WEIGHT_STATIONARY)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default=str(ROOT / "sim_out" / "bench"), metavar="DIR")
    args = p.parse_args(argv)
    rows = []
    for i, (r, c, dataflow) in enumerate(ENGINES):
        config = inference_engine(r, c, dataflow)
        print(f"[{i + 1}/{len(ENGINES)}] {config.name} on {args.sim} (first use builds it)",
              file=sys.stderr, flush=True)
        report = run_inference(config, args.sim, None, args.work_dir,
                               progress=lambda msg: print("      " + msg, file=sys.stderr,
                                                          flush=True))
        if not (all(report["layers_bit_exact"]) and report["predictions_identical"]):
            raise SystemExit(f"{config.name}: RTL differs from the integer reference")
        rows.append(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "infer.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"Digits MLP (64-64-10, {rows[0]['macs_per_inference']} MACs per image), all "
        f"{rows[0]['images']} held-out images, {args.sim}; float accuracy "
        f"{rows[0]['float_accuracy']:.2%}.", "",
        "| engine | int8 reference | RTL | bit-exact | compute cycles / image | "
        "job cycles / image | array utilization | simulation wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['int8_reference_accuracy']:.2%} | "
                     f"{r['rtl_accuracy']:.2%} | {'yes' if all(r['layers_bit_exact']) else 'NO'}"
                     f" | {r['compute_cycles_per_inference']:.1f} | "
                     f"{r['job_cycles_per_inference']:.1f} | {r['array_utilization']:.1%} | "
                     f"{r['wall_seconds']:.1f} |")
    (out / "infer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
