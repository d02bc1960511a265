#!/usr/bin/env python3
"""Synthesis benchmark: the design spaces shown in docs/benchmarks.md and the synthesis goals.

Runs (all through the cached ``systolix`` flow, at most 2 tool processes, niced):

* ECP5-85F: output-stationary int8 arrays 2x2, 4x4, 8x8 without pipelining, 8x8 with the
  ``product`` and ``full`` pipelines, and 2x2 .. 8x8 plus 12x13 (all 156 MULT18X18D) with the
  ``deep`` pipeline;
* iCE40 UP5K: 1x1, 2x2, 2x4 (all 8 SB_MAC16) and 4x4 (does not fit) plain, and 2x2, 4x4
  (16 MACs on 8 SB_MAC16 in MODE_8x8) with the ``full`` and ``deep`` pipelines;
* with ``--boards``: bitstreams for ULX3S-85F (8x8, deep pipeline) and iCEBreaker (``--fit``,
  deep pipeline).

Writes ``bench/results/<target>/`` (sweep.json, sweep.md, PNG plots) and
``bench/results/goals.{json,md}`` with each goal, the measured value and whether it is met.
Usage: ``.venv/bin/python bench/synth_bench.py [--boards] [--jobs N]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "gen"))

from systolix.config import SystolicConfig  # noqa: E402
from systolix.synth.flow import SynthOptions  # noqa: E402
from systolix.synth.sweep import run_sweep  # noqa: E402
from systolix.synth.targets import TARGETS  # noqa: E402

OUT = ROOT / "bench" / "results"


def ecp5_points():
    pts = [SystolicConfig(n, n) for n in (2, 4, 8)]
    pts += [SystolicConfig(8, 8, pipeline=p) for p in ("product", "full")]
    pts += [SystolicConfig(n, n, pipeline="deep") for n in (2, 4, 8)]
    pts.append(SystolicConfig(12, 13, pipeline="deep"))  # 156 MACs = every MULT18X18D
    return pts


def up5k_points():
    pts = [SystolicConfig(r, c) for r, c in ((1, 1), (2, 2), (2, 4), (4, 4))]
    pts += [SystolicConfig(n, n, pipeline=p) for p in ("full", "deep") for n in (2, 4)]
    return pts


def _find(results, name):
    return next((r for r in results if r["name"] == name), None)


def goals(ecp5, up5k):
    g = []
    r8 = max((r for r in ecp5 if r["fits"] and r["config"]["rows"] == r["config"]["cols"] == 8),
             key=lambda r: r["fmax_mhz"], default=None)
    g.append({"goal": "8x8 int8 array on ECP5-85F at >= 150 MHz",
              "design": r8 and r8["name"],
              "measured": r8 and r8.get("fmax_mhz"),
              "met": bool(r8 and r8["fits"] and r8["fmax_mhz"] >= 150)})
    r156 = [r for r in ecp5 if r["fits"] and r["dsp"] == 156]
    g.append({"goal": "a design using all 156 MULT18X18D of the 85F placed and routed",
              "design": r156[0]["name"] if r156 else None,
              "measured": r156[0]["placed"]["dsp"] if r156 else None,
              "met": bool(r156 and r156[0]["placed"]["dsp"] == 156)})
    best = max((r for r in up5k if r["fits"]), key=lambda r: r["macs"], default=None)
    g.append({"goal": "UP5K: 16 int8 MACs from 8 SB_MAC16 (MODE_8x8)",
              "design": best and best["name"],
              "measured": best and f"{best['macs']} MACs on {best['dsp']} SB_MAC16",
              "met": bool(best and best["macs"] >= 16 and best["dsp"] <= 8)})
    return g


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--boards", action="store_true", help="also build the two bitstreams")
    p.add_argument("--only", choices=["ecp5-85f", "ice40-up5k"], default=None)
    args = p.parse_args()
    os.nice(10)
    opts = SynthOptions(harness="on")
    results = {}
    for target, points in (("ice40-up5k", up5k_points()), ("ecp5-85f", ecp5_points())):
        if args.only and args.only != target:
            prev = OUT / target / "sweep.json"
            results[target] = json.loads(prev.read_text())["results"] if prev.exists() else []
            continue
        print(f"== {target}: {len(points)} points", file=sys.stderr)
        summary = run_sweep(points, TARGETS[target], opts, OUT / target, jobs=args.jobs)
        results[target] = summary["results"]
    if args.boards:
        for board, flags in (("ulx3s-85f", ["--rows", "8", "--cols", "8", "--pipeline", "deep"]),
                             ("icebreaker", ["--fit", "--pipeline", "deep"])):
            print(f"== build {board} {' '.join(flags)}", file=sys.stderr)
            proc = subprocess.run([sys.executable, "-m", "systolix", "build", "systolic",
                                   *flags, "--board", board, "-o", str(OUT / "boards"),
                                   "--json"], capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr, file=sys.stderr)
                continue
            r = json.loads(proc.stdout)
            (OUT / "boards" / f"{board}.json").write_text(json.dumps(r, indent=2) + "\n")
    g = goals(results["ecp5-85f"], results["ice40-up5k"])
    (OUT / "goals.json").write_text(json.dumps(g, indent=2) + "\n")
    lines = ["| goal | design | measured | met |", "|---|---|---|---|"]
    for x in g:
        m = x["measured"]
        m = f"{m:.1f} MHz" if isinstance(m, float) else m
        lines.append(f"| {x['goal']} | `{x['design']}` | {m} | {'yes' if x['met'] else 'no'} |")
    (OUT / "goals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
