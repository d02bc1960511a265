#!/usr/bin/env python3
"""Job-stream benchmark: end-to-end utilization of J jobs back to back through an engine's RTL,
single- against double-buffered.

Each row is one ``systolix run --engine`` with a batch (``--a`` of shape (J, M, K), ``--b`` of
(J, K, N)), run as that command line (recorded in the row's ``command``); the CLI checks every
C bit for bit and every ``done`` cycle against ``stream_cycles``. Writes
bench/results/engine_streams.{json,md}.

    .venv/bin/python bench/engine_stream_bench.py [--sim verilator] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
#: (rows, jobs, M = K = N, dataflow, buffering)
ROWS = [(8, 8, 64, "os", "single"), (8, 8, 64, "os", "double"),
        (8, 8, 64, "ws", "single"), (8, 8, 64, "ws", "double"),
        (16, 8, 256, "os", "single"), (16, 8, 256, "os", "double"),
        (16, 8, 256, "ws", "single"), (16, 8, 256, "ws", "double")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--quick", action="store_true", help="only the 8 x 8 rows")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default="sim_out/bench", metavar="DIR")
    args = p.parse_args(argv)
    data = ROOT / "sim_out" / "bench" / "streams"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    results = []
    for rows, jobs, size, dataflow, buffering in ROWS:
        if args.quick and rows > 8:
            continue
        a_path = data / f"a_{jobs}x{size}.npy"
        b_path = data / f"b_{jobs}x{size}.npy"
        if not a_path.exists():
            np.save(a_path, rng.integers(-128, 128, (jobs, size, size), dtype=np.int64))
            np.save(b_path, rng.integers(-128, 128, (jobs, size, size), dtype=np.int64))
        out = data / f"c_{rows}_{dataflow}_{buffering}_{jobs}x{size}.npy"
        cmd = ["systolix", "run", "--engine", "--rows", str(rows), "--cols", str(rows),
               "--dataflow", dataflow, "--buffering", buffering,
               "--a", str(a_path.relative_to(ROOT)), "--b", str(b_path.relative_to(ROOT)),
               "-o", str(out.relative_to(ROOT)), "--sim", args.sim, "--json",
               "--work-dir", args.work_dir]
        print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        run = subprocess.run([str(ROOT / ".venv" / "bin" / cmd[0]), *cmd[1:]], cwd=ROOT,
                             capture_output=True, text=True)
        wall = time.monotonic() - t0
        if run.returncode:
            sys.exit(f"failed: {run.stderr.strip()}")
        s = json.loads(run.stdout)
        results.append({"rows": rows, "cols": rows, "dataflow": dataflow,
                        "buffering": buffering, "jobs": jobs, "m": size, "k": size, "n": size,
                        "stream_cycles": s["stream_cycles"],
                        "model_stream_cycles": s["model_stream_cycles"],
                        "compute_cycles": s["cycles"],
                        "end_to_end_utilization": s["end_to_end_utilization"],
                        "match": s["match"], "wall_seconds_with_build": round(wall, 1),
                        "simulator": args.sim, "command": shlex.join(cmd)})
        print(f"  {results[-1]['end_to_end_utilization']:.2%} end to end, "
              f"{s['stream_cycles']} cycles (model {s['model_stream_cycles']}), "
              f"{wall:.0f} s", file=sys.stderr, flush=True)
        write(results, args)  # after every row: a long run keeps what it measured


def write(results, args):
    out_dir = Path(args.out)
    (out_dir / "engine_streams.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [f"Job streams through engine RTL ({args.sim}), seed {args.seed}: J jobs back to "
             f"back, first command to last C word; every C bit and every `done` cycle "
             f"checked against the models.", "",
             "| engine | buffering | stream | cycles (model) | end-to-end util. | wall (s, "
             "incl. build) |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['rows']}x{r['cols']} {r['dataflow']} | {r['buffering']} | "
                     f"{r['jobs']} x {r['m']}^3 | {r['stream_cycles']:,} "
                     f"({r['model_stream_cycles']:,}) | {r['end_to_end_utilization']:.2%} | "
                     f"{r['wall_seconds_with_build']} |")
    (out_dir / "engine_streams.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
