#!/usr/bin/env python3
"""Systolic engine vs tensor-core engine at equal MAC counts, on the same GEMMs, in RTL.

Pairs (same number of multipliers): an 8x8 array (output- and weight-stationary) vs one 4x4x4
MMA unit (64 MACs), and a 16x16 array vs four 4x4x4 units (256 MACs); all engines have buffers
for M, K, N up to ``--max``. Every engine is built once with Verilator (cached: warm builds),
then the same random int8 GEMMs run through each; every result is checked against numpy bit for
bit and every cycle count (compute phase and whole job) against ``engine_cycles``. Writes
``bench/results/compare.json`` and ``compare.md``.

    .venv/bin/python bench/compare_bench.py [--max 128 --sim verilator]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from systolix.config import Dataflow, EngineConfig, SystolicConfig, TensorCoreConfig
from systolix.sim.runner import build
from verified import log, verified_engine_runs  # bench/verified.py

ROOT = Path(__file__).resolve().parent.parent
#: Square, awkward (not multiples of any tile), short-K, long-K / small-MN, one row, one tile.
SHAPES = [(64, 64, 64), (128, 128, 128), (100, 60, 90), (128, 16, 128), (16, 128, 16),
          (4, 128, 16), (1, 128, 128)]


def engines(limit):
    """(MAC count, label, config) of the compared engines."""
    out = []
    for macs, side, cores in [(64, 8, 1), (256, 16, 4)]:
        for dataflow in Dataflow:
            out.append((macs, f"{side}x{side} {dataflow.value.upper()}",
                        EngineConfig(SystolicConfig(side, side, dataflow), limit, limit, limit)))
        out.append((macs, f"{cores} x 4x4x4 TC",
                    EngineConfig(None, limit, limit, limit, core=TensorCoreConfig(4, 4, 4),
                                 cores=cores)))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max", type=int, default=128, help="buffer limit for M, K and N")
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default=str(ROOT / "sim_out" / "bench"), metavar="DIR")
    args = p.parse_args(argv)

    shapes = [s for s in SHAPES if max(s) <= args.max]
    rng = np.random.default_rng(args.seed)
    operands = [(rng.integers(-128, 128, (m, k), dtype=np.int64),
                 rng.integers(-128, 128, (k, n), dtype=np.int64)) for m, k, n in shapes]
    rows, builds = [], {}
    for macs, label, config in engines(args.max):
        log(f"building {config.name} for {args.sim} ...")
        t0 = time.monotonic()
        build(config, args.sim, args.work_dir)
        builds[config.name] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        checked = verified_engine_runs(config, operands, args.sim, args.work_dir, args.seed)
        wall = time.monotonic() - t0
        for (a, b), (run, model) in zip(operands, checked):
            m, k = a.shape
            n = b.shape[1]
            rows.append({
                "macs_per_cycle": macs, "engine": label, "name": config.name,
                "m": m, "k": k, "n": n, "macs": m * k * n,
                "compute_cycles": run.cycles, "utilization": round(model.utilization, 4),
                "job_cycles": run.job_cycles,
                "end_to_end_utilization": round(model.end_to_end_utilization, 4),
                "a_words": model.a_words, "b_words": model.b_words, "c_words": model.c_words,
                "bit_exact": True, "cycles_match_model": True,
            })
        log(f"  {len(shapes)} GEMMs bit-exact and cycle-exact, {wall:.1f} s wall")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"simulator": args.sim, "buffers": f"{args.max}x{args.max}x{args.max}",
            "seed": args.seed, "build_seconds": builds, "results": rows}
    (out / "compare.json").write_text(json.dumps(meta, indent=2) + "\n")
    labels = list(dict.fromkeys(r["engine"] for r in rows))
    lines = [
        f"Systolic vs tensor-core engine at equal MACs: int8, acc32, buffers "
        f"{args.max}x{args.max}x{args.max}, {args.sim}; every result bit-exact and every "
        f"cycle count equal to the model. Compute cycles (utilization) / whole-job cycles.", "",
        "| M x K x N | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for m, k, n in shapes:
        cells = []
        for label in labels:
            r = next(r for r in rows if r["engine"] == label and (r["m"], r["k"], r["n"])
                     == (m, k, n))
            cells.append(f"{r['compute_cycles']:,} ({r['utilization']:.1%}) / "
                         f"{r['job_cycles']:,}")
        lines.append(f"| {m}x{k}x{n} | " + " | ".join(cells) + " |")
    lines += ["", "Area and Fmax columns: pending the synthesis flow."]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    log(f"wrote {out / 'compare.json'} and {out / 'compare.md'}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
