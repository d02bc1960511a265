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
#: (rows, jobs, (M, K, N), dataflow, buffering, further engine flags)
ROWS = [(8, 8, (64,) * 3, "os", "single", []), (8, 8, (64,) * 3, "os", "double", []),
        (8, 8, (64,) * 3, "ws", "single", []), (8, 8, (64,) * 3, "ws", "double", []),
        (16, 8, (256,) * 3, "os", "single", []), (16, 8, (256,) * 3, "os", "double", []),
        (16, 8, (256,) * 3, "ws", "single", []), (16, 8, (256,) * 3, "ws", "double", []),
        # the ULX3S engine of bench/board_engine_bench.py, as built: 8 back-to-back 256^3
        # products, each 4 jobs of 128 x 256 x 128 (M and N halved, the whole K)
        (16, 32, (128, 256, 128), "os", "double",
         ["--mult", "auto", "--pipeline", "deep", "--max-m", "128", "--max-k", "256",
          "--max-n", "128"])]


def label(rows, jobs, shape, dataflow, buffering, flags):
    """A row's name for ``--only``: e.g. ``16x16 os double 32x128x256x128 auto``."""
    return (f"{rows}x{rows} {dataflow} {buffering} {jobs}x{'x'.join(map(str, shape))}"
            + (" " + flags[flags.index("--mult") + 1] if "--mult" in flags else ""))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--quick", action="store_true", help="only the 8 x 8 rows")
    p.add_argument("--only", action="append", default=None, metavar="LABEL",
                   help="run the rows of this label (repeatable; e.g. '16x16 os double "
                        "32x128x256x128 auto') and keep the others from the committed JSON")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default="sim_out/bench", metavar="DIR")
    args = p.parse_args(argv)
    data = ROOT / "sim_out" / "bench" / "streams"
    data.mkdir(parents=True, exist_ok=True)
    old = {}
    if args.only and (Path(args.out) / "engine_streams.json").exists():
        old = {r["command"]: r
               for r in json.loads((Path(args.out) / "engine_streams.json").read_text())}
    results = []
    for rows, jobs, (m, k, n), dataflow, buffering, flags in ROWS:
        if args.quick and rows > 8:
            continue
        name = "x".join(map(str, (jobs, m, k, n) if len({m, k, n}) > 1 else (jobs, m)))
        a_path = data / f"a_{name}.npy"
        b_path = data / f"b_{name}.npy"
        if not a_path.exists():
            # (one generator per shape, so a row's data does not depend on the rows run before)
            rng = np.random.default_rng([args.seed, jobs, m, k, n])
            np.save(a_path, rng.integers(-128, 128, (jobs, m, k), dtype=np.int64))
            np.save(b_path, rng.integers(-128, 128, (jobs, k, n), dtype=np.int64))
        suffix = "_" + flags[flags.index("--mult") + 1] if "--mult" in flags else ""
        out = data / f"c_{rows}_{dataflow}_{buffering}{suffix}_{name}.npy"
        cmd = ["systolix", "run", "--engine", "--rows", str(rows), "--cols", str(rows),
               "--dataflow", dataflow, "--buffering", buffering, *flags,
               "--a", str(a_path.relative_to(ROOT)), "--b", str(b_path.relative_to(ROOT)),
               "-o", str(out.relative_to(ROOT)), "--sim", args.sim, "--json",
               "--work-dir", args.work_dir]
        if args.only and label(rows, jobs, (m, k, n), dataflow, buffering, flags) \
                not in args.only:
            if shlex.join(cmd) in old:
                results.append(old[shlex.join(cmd)])
            continue
        print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
        t0 = time.monotonic()
        run = subprocess.run([str(ROOT / ".venv" / "bin" / cmd[0]), *cmd[1:]], cwd=ROOT,
                             capture_output=True, text=True)
        wall = time.monotonic() - t0
        if run.returncode:
            sys.exit(f"failed: {run.stderr.strip()}")
        s = json.loads(run.stdout)
        results.append({"rows": rows, "cols": rows, "dataflow": dataflow,
                        "buffering": buffering, "jobs": jobs, "m": m, "k": k, "n": n,
                        "mult": flags[flags.index("--mult") + 1] if "--mult" in flags
                        else "dsp",
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
    write(results, args)


def _shape(r):
    if r["m"] == r["k"] == r["n"]:
        return f"{r['jobs']} x {r['m']}^3"
    return f"{r['jobs']} x {r['m']} x {r['k']} x {r['n']}"


def write(results, args):
    out_dir = Path(args.out)
    (out_dir / "engine_streams.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [f"Job streams through engine RTL ({args.sim}), seed {args.seed}: J jobs back to "
             f"back, first command to last C word; every C bit and every `done` cycle "
             f"checked against the models.", "",
             "| engine | buffering | stream | cycles (model) | end-to-end util. | wall (s, "
             "incl. build) |", "|---|---|---|---|---|---|"]
    for r in results:
        mult = f", --mult {r['mult']}" if r.get("mult", "dsp") != "dsp" else ""
        lines.append(f"| {r['rows']}x{r['cols']} {r['dataflow']}{mult} | {r['buffering']} | "
                     f"{_shape(r)} | {r['stream_cycles']:,} "
                     f"({r['model_stream_cycles']:,}) | {r['end_to_end_utilization']:.2%} | "
                     f"{r['wall_seconds_with_build']} |")
    (out_dir / "engine_streams.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
