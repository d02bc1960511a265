#!/usr/bin/env python3
"""Matrix-engine benchmark: utilization and RTL-simulation speed across GEMM sizes.

For each dataflow, builds one engine (default 16x16 array, buffers for 256 x 256 x 256) once
with Verilator (the build is timed separately and cached), then runs random int8 GEMMs through
the RTL, checks every result against numpy bit for bit and every cycle count against the model,
and records: compute cycles, utilization, SCALE-Sim's per-fold estimate, whole-job cycles, and
wall time -> verified MACs per second. Writes JSON and a Markdown table.

    .venv/bin/python bench/engine_bench.py [--rows 16 --cols 16 --max 256 --sim verilator]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from systolix.config import Dataflow, EngineConfig, SystolicConfig
from systolix.model.cycles import scalesim_cycles
from systolix.sim.runner import build
from verified import log, verified_engine_runs  # bench/verified.py

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(64, 64, 64), (128, 128, 128), (256, 256, 256), (200, 96, 250), (256, 16, 256),
          (16, 256, 16)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--cols", type=int, default=16)
    p.add_argument("--max", type=int, default=256, help="buffer limit for M, K and N")
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default=str(ROOT / "sim_out" / "bench"), metavar="DIR")
    args = p.parse_args(argv)

    shapes = [s for s in SHAPES if max(s) <= args.max]
    rng = np.random.default_rng(args.seed)
    rows, builds = [], {}
    steps = 2 * (1 + len(shapes))
    step = 0
    for dataflow in Dataflow:
        config = EngineConfig(SystolicConfig(args.rows, args.cols, dataflow),
                              args.max, args.max, args.max)
        step += 1
        log(f"[{step}/{steps}] building {config.name} for {args.sim} ...")
        t0 = time.monotonic()
        build(config, args.sim, args.work_dir)
        builds[dataflow.value] = round(time.monotonic() - t0, 1)
        log(f"        {builds[dataflow.value]} s (0 when cached)")
        for m, k, n in shapes:
            step += 1
            a = rng.integers(-128, 128, (m, k), dtype=np.int64)
            b = rng.integers(-128, 128, (k, n), dtype=np.int64)
            t0 = time.monotonic()
            [(run, model)] = verified_engine_runs(config, [(a, b)], args.sim, args.work_dir,
                                                  args.seed)
            wall = time.monotonic() - t0
            scalesim = scalesim_cycles(config, m, k, n)
            rows.append({
                "dataflow": dataflow.value, "array": f"{args.rows}x{args.cols}",
                "m": m, "k": k, "n": n, "macs": m * k * n,
                "compute_cycles": run.cycles, "utilization": round(model.utilization, 4),
                "scalesim_cycles": scalesim,
                "speedup_vs_scalesim": round(scalesim / run.cycles, 3),
                "job_cycles": run.job_cycles,
                "end_to_end_utilization": round(model.end_to_end_utilization, 4),
                "wall_seconds": round(wall, 2),
                "verified_macs_per_second": round(m * k * n / wall),
                "sim_cycles_per_second": round(run.job_cycles / wall),
            })
            log(f"[{step}/{steps}] {dataflow.value} {m}x{k}x{n}: {run.cycles} compute cycles "
                f"({model.utilization:.2%}), job {run.job_cycles}, {wall:.2f} s wall")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"simulator": args.sim, "array": f"{args.rows}x{args.cols}",
            "buffers": f"{args.max}x{args.max}x{args.max}", "seed": args.seed,
            "build_seconds": builds, "results": rows}
    (out / "engine.json").write_text(json.dumps(meta, indent=2) + "\n")
    lines = [
        f"Engine benchmark: {args.rows}x{args.cols} int8 array, buffers "
        f"{args.max}x{args.max}x{args.max}, {args.sim} (warm build), seed {args.seed}.", "",
        "| dataflow | M x K x N | compute cycles | utilization | SCALE-Sim | speed-up | "
        "job cycles | end-to-end util. | wall (s) | verified MAC/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataflow']} | {r['m']}x{r['k']}x{r['n']} | {r['compute_cycles']:,} | "
            f"{r['utilization']:.2%} | {r['scalesim_cycles']:,} | "
            f"{r['speedup_vs_scalesim']:.2f}x | {r['job_cycles']:,} | "
            f"{r['end_to_end_utilization']:.1%} | {r['wall_seconds']:.2f} | "
            f"{r['verified_macs_per_second'] / 1e6:.1f} M |")
    (out / "engine.md").write_text("\n".join(lines) + "\n")
    log(f"wrote {out / 'engine.json'} and {out / 'engine.md'}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
