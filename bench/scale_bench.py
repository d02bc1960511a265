#!/usr/bin/env python3
"""Scale benchmark: emission time and size of OS and WS arrays up to 256x256, Verilator build
time and simulated cycles per second, and a 512^3 GEMM through a 64x64 engine.

* Emission: ``systolix generate systolic --rows N --cols N [--dataflow ws]`` in a fresh process
  for each size (wall and CPU seconds, Verilog bytes).
* Verilator (sizes up to ``--verilator-max``): the output-stationary array is built
  (``sim.runner.build``: emission + compile, timed) and runs one N x 16384 x N GEMM (long
  enough for a rate, not a start-up time), checked bit for bit against numpy and cycle for
  cycle against the model; simulated cycles / wall second.
* Engine (``--engine``): a 64x64 output-stationary engine whose buffers hold 256 x 256 x 256
  (3 Mibit; 512 x 512 x 512 would be 12 Mibit, over the 8 Mibit generated), built with
  Verilator; a 512^3 GEMM is run as the host tiles it, 2 x 2 x 2 jobs of 256^3 in one
  simulation, each job bit- and cycle-exact, and the partial products summed on the host
  (wrapping int32, as the accumulator) equal numpy's 512^3 product.

    nice .venv/bin/python bench/scale_bench.py [--sizes 8,16,...] [--verilator-max 64] [--engine]

Writes bench/results/scale.json and scale.md (every row with its ``command``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from systolix.config import Dataflow, EngineConfig, SystolicConfig
from systolix.model import golden
from systolix.sim.job import SimJob
from systolix.sim.runner import build
from systolix.sim.verify import check
from verified import log  # bench/verified.py

ROOT = Path(__file__).resolve().parent.parent
SIZES = (8, 16, 32, 64, 128, 256)


def _cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu_all():
    """CPU seconds of this process and its finished children (emission runs in-process,
    Yosys, Verilator, make and the C++ compiler as children)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime + _cpu_children()


def _load():
    return round(os.getloadavg()[0], 1)


def _timed_build(cfg, work_dir):
    """Emit and build ``cfg`` for Verilator from scratch; wall and CPU seconds, and the load
    average (1 min) before and after (the machine is shared)."""
    build_dir = Path(work_dir) / cfg.name / "verilator"
    if build_dir.exists():
        shutil.rmtree(build_dir)  # a cold build: emission, verilation, C++ compile
    load0, cpu0, t0 = _load(), _cpu_all(), time.monotonic()
    build(cfg, "verilator", work_dir)
    return {"verilator_build_s": round(time.monotonic() - t0, 1),
            "verilator_build_cpu_s": round(_cpu_all() - cpu0, 1),
            "load_avg": [load0, _load()]}


def emit_row(n, dataflow, out_dir):
    cmd = ["systolix", "generate", "systolic", "--rows", str(n), "--cols", str(n)]
    if dataflow is Dataflow.WEIGHT_STATIONARY:
        cmd += ["--dataflow", "ws"]
    cmd += ["-o", str(out_dir)]
    cpu0, t0 = _cpu_children(), time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]],
                          capture_output=True, text=True)
    wall, cpu = time.monotonic() - t0, _cpu_children() - cpu0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    cfg = SystolicConfig(n, n, dataflow)
    size = (Path(out_dir) / f"{cfg.name}.v").stat().st_size
    return {"design": f"systolic {dataflow.value}", "rows": n, "cols": n,
            "emit_wall_s": round(wall, 1), "emit_cpu_s": round(cpu, 1), "verilog_bytes": size,
            "command": " ".join(cmd[:-2] + ["-o", "rtl_out"])}


def verilator_row(row, n, work_dir, rng, sim_k):
    cfg = SystolicConfig(n, n)
    for stale in ("verilator_note", "verilator_build_cpu_s_partial"):  # of an unfinished build
        row.pop(stale, None)
    row.update(_timed_build(cfg, work_dir))
    # one tile with a long K: the simulation runs long enough for a rate, not a start-up time
    a = rng.integers(-128, 128, (n, sim_k), dtype=np.int64)
    b = rng.integers(-128, 128, (sim_k, n), dtype=np.int64)
    t0 = time.monotonic()
    report = check(SimJob(cfg, [(a, b)]), "verilator", work_dir)
    wall = time.monotonic() - t0
    if not report.ok:
        raise SystemExit(f"{cfg.name}: RTL disagrees with a model ({report})")
    cycles = report.gemms[0].cycles
    row.update({"gemm": f"{n}x{sim_k}x{n}", "gemm_verified": True, "sim_cycles": cycles,
                "sim_wall_s": round(wall, 1),
                "sim_cycles_per_s": round(cycles / wall, 1),
                "sim_command": f"systolix run --rows {n} --cols {n} --a A.npy --b B.npy "
                               f"-o C.npy --sim verilator"})
    return row


def engine_row(work_dir, rng, rows=64, block=256, full=512):
    cfg = EngineConfig(SystolicConfig(rows, rows), block, block, block)
    log(f"building {cfg.name} ({cfg.buffer_bits:,} buffer bits) for verilator ...")
    timing = _timed_build(cfg, work_dir)
    log(f"   {timing}")
    a = rng.integers(-128, 128, (full, full), dtype=np.int64)
    b = rng.integers(-128, 128, (full, full), dtype=np.int64)
    parts = [(i, j, kk) for i in range(full // block) for j in range(full // block)
             for kk in range(full // block)]
    operands = [(a[i * block:(i + 1) * block, kk * block:(kk + 1) * block],
                 b[kk * block:(kk + 1) * block, j * block:(j + 1) * block])
                for i, j, kk in parts]
    log(f"running {len(operands)} jobs of {block}^3 ...")
    t0 = time.monotonic()
    report = check(SimJob(cfg, operands, seed=0), "verilator", work_dir)
    wall = time.monotonic() - t0
    if not report.ok or len(report.gemms) != len(operands):
        raise SystemExit(f"{cfg.name}: RTL disagrees with a model ({report})")
    c = np.zeros((full, full), dtype=np.int64)
    for (i, j, _), run in zip(parts, report.gemms):
        c[i * block:(i + 1) * block, j * block:(j + 1) * block] += run.c
    c = ((c + 2**31) % 2**32) - 2**31  # the accumulator wraps at 32 bits
    want = golden.gemm(a, b, cfg.numerics)
    exact = bool(np.array_equal(c, want))
    if not exact:
        raise SystemExit("the host-tiled 512^3 product differs from numpy")
    cycles = sum(run.job_cycles for run in report.gemms)
    return {"design": "engine os", "rows": rows, "cols": rows, "buffers": f"{block}x{block}x"
            f"{block} ({cfg.buffer_bits:,} bits)", **timing,
            "gemm": f"{full}x{full}x{full} as {len(parts)} jobs of {block}^3",
            "gemm_verified": True, "sim_cycles": cycles, "sim_wall_s": round(wall, 1),
            "sim_cycles_per_s": round(cycles / wall, 1),
            "command": f"systolix run --engine --rows {rows} --cols {rows} --max-m {block} "
                       f"--max-k {block} --max-n {block} --a A.npy --b B.npy -o C.npy "
                       f"--sim verilator  # per {block}^3 block; bench/scale_bench.py --engine "
                       f"tiles {full}^3"}


def markdown(rows, note):
    lines = ["# Scale benchmark", "", note, "",
             "| design | size | emit wall s | emit CPU s | Verilog MB | Verilator build wall s "
             "| build CPU s | load during build | GEMM (bit- and cycle-exact) | simulated cycles/s "
             "| command |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb = f"{r['verilog_bytes'] / 1e6:.2f}" if "verilog_bytes" in r else ""
        load = "-".join(map(str, r["load_avg"])) if "load_avg" in r else ""
        build_s = r.get("verilator_build_s", "")
        if "verilator_note" in r:
            build_s = f"{build_s} ({r['verilator_note']})" if build_s != "" else r["verilator_note"]
        lines.append(f"| {r['design']} | {r['rows']}x{r['cols']} | {r.get('emit_wall_s', '')} | "
                     f"{r.get('emit_cpu_s', '')} | {mb} | {build_s} | "
                     f"{r.get('verilator_build_cpu_s', '')} | {load} | "
                     f"{r.get('gemm', '')} | {r.get('sim_cycles_per_s', '')} | "
                     f"`{r['command']}` |")
    return "\n".join(lines) + "\n"


def _key(row):
    return row["design"], row["rows"], row["cols"]


def merge(old_rows, new_rows):
    """``old_rows`` with each row of the same design and size replaced by the new one (a run
    of some sizes keeps the others' results), in design then size order."""
    merged = {_key(r): r for r in old_rows}
    merged.update({_key(r): r for r in new_rows})
    return sorted(merged.values(), key=lambda r: (r["design"].startswith("engine"), r["rows"],
                                                   r["design"]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--verilator-max", type=int, default=64,
                   help="largest OS array built with Verilator and run (default 64)")
    p.add_argument("--sim-k", type=int, default=16384,
                   help="K of the N x K x N GEMM run on each built array (default 16384)")
    p.add_argument("--engine", action="store_true", help="also the 64x64 engine, 512^3 GEMM")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--note", default=None, help="measurement conditions, for the Markdown "
                   "(default: keep the results file's note)")
    p.add_argument("--no-emit", action="store_true",
                   help="only the Verilator builds and runs of --sizes (keep the emission rows)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"), metavar="DIR")
    p.add_argument("--work-dir", default=str(ROOT / "sim_out" / "bench"), metavar="DIR")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = {"note": "", "rows": []}
    if (out / "scale.json").is_file():
        old = json.loads((out / "scale.json").read_text())
    note = old["note"] if args.note is None else args.note
    results = list(old["rows"])

    def save(row):  # after every row: a long run stopped half-way keeps what it measured
        nonlocal results
        if (out / "scale.json").is_file():  # another run of this script may have added rows
            results = json.loads((out / "scale.json").read_text())["rows"]
        results = merge(results, [row])
        (out / "scale.json").write_text(json.dumps({"note": note, "rows": results}, indent=2)
                                        + "\n")
        (out / "scale.md").write_text(markdown(results, note))

    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",") if s]:
            for dataflow in Dataflow:
                build_it = dataflow is Dataflow.OUTPUT_STATIONARY and n <= args.verilator_max
                if args.no_emit and not build_it:
                    continue
                old_row = next((dict(r) for r in results
                                if _key(r) == (f"systolic {dataflow.value}", n, n)), None)
                if args.no_emit:
                    row = old_row or emit_row(n, dataflow, tmp)
                else:
                    log(f"emitting {dataflow.value} {n}x{n} ...")
                    # an emission-only rerun keeps the row's Verilator results
                    kept = old_row if old_row and not build_it else {}
                    row = {**kept, **emit_row(n, dataflow, tmp)}
                    log(f"   {row['emit_wall_s']} s wall, {row['emit_cpu_s']} s CPU, "
                        f"{row['verilog_bytes']:,} bytes")
                if build_it:
                    log(f"   Verilator build and {n}x{args.sim_k}x{n} GEMM ...")
                    verilator_row(row, n, args.work_dir, rng, args.sim_k)
                    log(f"   build {row['verilator_build_s']} s "
                        f"({row['verilator_build_cpu_s']} CPU s), "
                        f"{row['sim_cycles_per_s']} cycles/s")
                save(row)
    if args.engine:
        save(engine_row(args.work_dir, rng))
    log(f"wrote {out / 'scale.json'} and scale.md")

if __name__ == "__main__":
    main()
