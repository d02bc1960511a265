#!/usr/bin/env python3
"""Engine synthesis benchmark: what each engine delivers on the FPGA, old options against new.

Every row is one ``systolix synth engine ... --json`` run (through the synthesis cache; at most
``--jobs`` tool processes, niced) of an engine with 64-deep buffers:

* cores: output-stationary and weight-stationary arrays 4x4, 8x8, 16x16, and tensor-core
  engines of the same MACs (2x2x4, 4x4x4, 8x8x4: m = n = size / 2, k = 4);
* with and without the requantizer (``--requant``);
* two option sets, side by side: ``old`` (the defaults: no PE pipeline, one MMA pipeline
  register, single buffering) and ``new`` (``--pipeline deep`` / the MMA unit's deepest
  pipeline, ``--buffering double``);
* targets: ECP5-85F for all, iCE40 UP5K for the 4x4 engines (16-deep buffers there).

Besides Fmax and LUT4/FF/DSP/BRAM, each row has the engine's end-to-end utilization and
sustained GOPS (2 x MACs x Fmax x utilization, ``systolix.synth.throughput``) on three job
streams, from the exact cycle model: 8 back-to-back 64^3 jobs, 8 back-to-back 256^3 jobs and
the digits MLP (64-64-10, 4 batches of 64 images). A stream that does not fit the synthesized
buffers (256^3 always) is modelled on the same engine with buffers just large enough, at the
measured Fmax; the row says so (``model_buffers``).

Placement moves an engine's Fmax by several percent, so ``--seeds 1,2,3`` places every row
with each of the fixed nextpnr seeds and keeps the fastest; the row records every seed's Fmax
(``seed_fmax_mhz``) and its ``command`` is the winning seed's. The default is seed 1 alone.

Writes ``bench/results/engine_synth.{json,md}``; rows already there are kept unless re-run
(``--only`` selects rows by a substring of their label, e.g. ``"ecp5-85f os 8x8"``).
Usage: ``nice .venv/bin/python bench/engine_synth_bench.py [--only TEXT] [--seeds 1,2,3]
[--jobs N] [--dry-run]``. Not part of ``make test``: ``make bench-engine-synth``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "gen"))

from systolix import kinds  # noqa: E402
from systolix.synth.throughput import cube_stream, mlp_stream, sustained  # noqa: E402

OUT = ROOT / "bench" / "results"
STREAMS = (cube_stream(64), cube_stream(256), mlp_stream())
SIZES = (4, 8, 16)
CORES = ("os", "ws", "tc")
#: Deepest MMA pipeline of a k = 4 dot-product unit (ceil(log2 4) + 2: every cut and the
#: multipliers' operands registered).
_TC_DEEPEST = 4
VARIANTS = {
    "old": {"systolic": [], "tc": []},
    "new": {"systolic": ["--pipeline", "deep", "--buffering", "double"],
            "tc": ["--pipeline", str(_TC_DEEPEST), "--buffering", "double"]},
}
TARGETS = {"ecp5-85f": {"sizes": SIZES, "buffers": 64},
           "ice40-up5k": {"sizes": (4,), "buffers": 16}}


@dataclasses.dataclass(frozen=True)
class Row:
    target: str
    core: str
    size: int
    requant: bool
    variant: str
    seed: int = 1

    @property
    def label(self):
        core = (f"tc {self.size // 2}x{self.size // 2}x4" if self.core == "tc"
                else f"{self.core} {self.size}x{self.size}")
        return (f"{self.target} {core}{' requant' if self.requant else ''} {self.variant}")

    def argv(self):
        """The ``systolix`` arguments of this row."""
        buffers = TARGETS[self.target]["buffers"]
        if self.core == "tc":
            half = str(self.size // 2)
            core = ["--arch", "tensorcore", "--m", half, "--n", half, "--k", "4"]
        else:
            core = ["--rows", str(self.size), "--cols", str(self.size), "--dataflow", self.core]
        args = ["synth", "engine", *core,
                "--max-m", str(buffers), "--max-k", str(buffers), "--max-n", str(buffers)]
        if self.requant:
            args.append("--requant")
        args += VARIANTS[self.variant]["tc" if self.core == "tc" else "systolic"]
        return args + ["--target", self.target, "--seed", str(self.seed), "--json"]

    @property
    def command(self):
        return "systolix " + shlex.join(self.argv())


def all_rows():
    return [Row(t, c, s, rq, v) for t, spec in TARGETS.items() for s in spec["sizes"]
            for c in CORES for rq in (False, True) for v in VARIANTS]


def _model_config(config, stream):
    """``config`` with buffers large enough for every job of ``stream`` (at least its own)."""
    have = {f"max_{d}": getattr(config, f"max_{d}") for d in "mkn"}
    need = {f"max_{d}": max(have[f"max_{d}"], *(j[i] for j in stream.jobs))
            for i, d in enumerate("mkn")}
    return dataclasses.replace(config, **need), need != have


def run_row(row):
    """Synthesize one row (a ``systolix`` subprocess, so the command is exactly what ran) and
    add the stream figures."""
    t0 = time.monotonic()
    proc = subprocess.run(["nice", sys.executable, "-m", "systolix", *row.argv()],
                          capture_output=True, text=True, cwd=ROOT)
    out = {"label": row.label, "command": row.command, **dataclasses.asdict(row),
           "seconds": round(time.monotonic() - t0, 1)}
    del out["seed"]  # in the command
    if proc.returncode != 0:
        out.update(fits=False, error=(proc.stderr.strip().splitlines() or ["?"])[-1])
        return out
    r = json.loads(proc.stdout)
    config = kinds.config_from_dict(r["config"])
    out.update({k: r.get(k) for k in ("name", "fits", "fmax_mhz", "lut4", "ff", "dsp", "bram",
                                      "macs", "peak_gops", "in_harness", "cached",
                                      "columns_kept")})
    out["critical_path"] = r.get("critical_path")
    out["streams"] = {}
    for stream in STREAMS:
        model, enlarged = _model_config(config, stream)
        s = sustained(model, stream, r["fmax_mhz"])
        if enlarged:
            s["model_buffers"] = [model.max_m, model.max_k, model.max_n]
        out["streams"][stream.name] = s
    return out


def _key(r):
    return r["label"]


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def markdown(rows):
    by = {_key(r): r for r in rows}
    lines = ["# Engine synthesis benchmark", "",
             "`bench/engine_synth_bench.py`: each engine synthesized with nextpnr seed 1, or the "
             "fastest of the seeds its row lists (`seed_fmax_mhz`; `command` in "
             "engine_synth.json reproduces a row); utilization and sustained GOPS "
             "from the exact cycle model of each job stream at the measured Fmax (the 256^3 "
             "stream on the same engine with 256-deep buffers). `old` = default options, "
             "`new` = " + " ".join(VARIANTS["new"]["systolic"]) + " (tensor core: --pipeline "
             f"{_TC_DEEPEST}). Entries are old / new.", ""]
    s64, s256, mlp = (s.name for s in STREAMS)
    lines += ["| target | engine | Fmax MHz | LUT4 | FF | DSP | BRAM | e2e " + s64 + " | e2e "
              + s256 + " | MLP cycles/image | sustained GOPS " + s64 + " | sustained GOPS "
              + s256 + " |", "|---" * 12 + "|"]
    seen = []
    for r in rows:
        base = r["label"].rsplit(" ", 1)[0]
        if base in seen:
            continue
        seen.append(base)
        pair = [by.get(f"{base} {v}") for v in VARIANTS]

        def both(f):
            return " / ".join("-" if p is None else f(p) for p in pair)

        def stat(key, spec=","):
            return both(lambda p: (_fmt(p.get(key), spec)
                                   + ("*" if key == "fmax_mhz" and p.get("columns_kept") is False
                                      else "")) if p.get("fits") else
                        _failure(p) if key == "fmax_mhz" else "-")

        def stream(name, key, spec):
            return both(lambda p: _fmt(p["streams"][name].get(key), spec)
                        if p.get("fits") else "-")
        target, engine = base.split(" ", 1)
        lines.append(f"| {target} | {engine} | {stat('fmax_mhz', '.1f')} | {stat('lut4')} | "
                     f"{stat('ff')} | {stat('dsp')} | {stat('bram')} | "
                     f"{stream(s64, 'end_to_end_utilization', '.1%')} | "
                     f"{stream(s256, 'end_to_end_utilization', '.1%')} | "
                     f"{stream(mlp, 'cycles_per_item', '.1f')} | "
                     f"{stream(s64, 'sustained_gops', '.2f')} | "
                     f"{stream(s256, 'sustained_gops', '.2f')} |")
    failed = [r for r in rows if not r.get("fits")]
    if failed:
        lines += ["", "Rows without a result:", ""]
        lines += [f"- {r['label']}: {r.get('error', '?').removeprefix('systolix: error: ')}"
                  for r in failed]
    if any(r.get("columns_kept") is False for r in rows):
        lines += ["", "\\* synthesized with the array's columns flattened: with them kept apart, "
                  "yosys 0.70's ABC9 fails an internal assertion (docs/synthesis.md)."]
    return "\n".join(lines) + "\n"


def _failure(row):
    """What a row without a result says: it does not fit, or a tool failed (see its JSON)."""
    error = row.get("error", "")
    return "does not fit" if "does not fit" in error or not error else "tool failed"


def write(rows):
    OUT.mkdir(parents=True, exist_ok=True)
    order = {r.label: i for i, r in enumerate(all_rows())}
    rows = sorted(rows, key=lambda r: order.get(_key(r), len(order)))
    (OUT / "engine_synth.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    (OUT / "engine_synth.md").write_text(markdown(rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=None, metavar="TEXT",
                   help="run the rows whose label contains TEXT (repeatable)")
    p.add_argument("--seeds", default="1", metavar="S,S,..",
                   help="nextpnr seeds to place each row with; the fastest is kept (default 1)")
    p.add_argument("--jobs", type=int, default=2, help="rows synthesized at once (default 2)")
    p.add_argument("--dry-run", action="store_true", help="list the rows' commands only")
    args = p.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = [dataclasses.replace(r, seed=seed) for r in all_rows()
            if not args.only or any(t in r.label for t in args.only) for seed in seeds]
    if args.dry_run:
        for r in rows:
            print(f"{r.label}: {r.command}")
        return 0
    path = OUT / "engine_synth.json"
    done = {_key(r): r for r in json.loads(path.read_text())["rows"]} if path.exists() else {}
    tried = {}  # label -> {seed: result} of this run
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_row, r): r for r in rows}
        for f in as_completed(futures):
            r, seed = f.result(), futures[f].seed
            tried.setdefault(_key(r), {})[seed] = r
            fmax = _fmt(r.get("fmax_mhz"), ".1f")
            print(f"{r['label']} (seed {seed}): Fmax {fmax} MHz ({r['seconds']} s)"
                  + ("" if r.get("fits") else f" {r.get('error')}"), flush=True)
            by_seed = tried[_key(r)]
            best = max(by_seed.values(), key=lambda x: x.get("fmax_mhz") or 0)
            if len(seeds) > 1:
                best = {**best, "seed_fmax_mhz": {str(k): v.get("fmax_mhz")
                                                  for k, v in sorted(by_seed.items())}}
            done[_key(r)] = best
            write(list(done.values()))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
