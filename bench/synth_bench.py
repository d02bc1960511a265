#!/usr/bin/env python3
"""Synthesis benchmark: the design spaces shown in docs/benchmarks.md and the synthesis goals.

Runs (all through the cached ``systolix`` flow, at most 2 tool processes, niced):

* ECP5-85F: output-stationary int8 arrays 2x2, 4x4, 8x8 without pipelining, 8x8 with the
  ``product`` and ``full`` pipelines, and 2x2 .. 8x8 plus 12x13 (all 156 MULT18X18D) with the
  ``deep`` pipeline;
* iCE40 UP5K: 1x1, 2x2, 2x4 (all 8 SB_MAC16) and 4x4 (does not fit) plain, and 2x2, 4x4
  (16 MACs on 8 SB_MAC16 in MODE_8x8) with the ``full`` and ``deep`` pipelines;
* with ``--auto``, the arrays that fill each device with ``--mult auto`` (DSP multipliers
  first, LUT-built ones for the other PEs), shapes that are not powers of two included:
  ECP5-85F 12x16 and 14x16 with the ``deep`` pipeline at a 100 MHz clock target (the bare
  16x16 array in the harness did not finish routing in 90 min; its engine is the ULX3S build),
  UP5K 4x5, 5x4, 4x6, 6x4 and 5x5 with the ``full`` pipeline at 42 MHz (the iCEBreaker
  engine's clock);
* with ``--boards``: bitstreams for ULX3S-85F (8x8, deep pipeline) and iCEBreaker (``--fit``,
  deep pipeline).

Writes ``bench/results/<target>/`` (sweep.json, sweep.md, PNG plots), ``--auto``
``bench/results/<target>/auto/``, and ``bench/results/goals.{json,md}`` with each goal, the
measured value and whether it is met. Every point records ``command``, the ``systolix synth``
line that reproduces it. A sweep that is stopped resumes from the synthesis cache.
Usage: ``.venv/bin/python bench/synth_bench.py [--auto] [--boards] [--jobs N] [--only TARGET]``
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


#: ``--auto``: per target, the ``--mult auto`` points and the clock target (MHz; None = the
#: target's default).
AUTO = {
    "ice40-up5k": ([SystolicConfig(r, c, pipeline="full", mult="auto")
                    for r, c in ((4, 5), (5, 4), (4, 6), (6, 4), (5, 5))], 42.0),
    "ecp5-85f": ([SystolicConfig(r, c, pipeline="deep", mult="auto")
                  for r, c in ((12, 16), (14, 16))], 100.0),
}


def command(config, target, options):
    """The ``systolix synth`` line that reproduces one point (the flags these points use)."""
    return (f"systolix synth systolic --rows {config.rows} --cols {config.cols} "
            f"--pipeline {config.pipeline} --mult {config.mult} --target {target} "
            + (f"--freq {options.freq:g} " if options.freq is not None else "")
            + f"--harness {options.harness} --seed {options.seed}")


def sweep(points, target, options, out, jobs):
    return run_sweep(points, TARGETS[target], options, out, jobs=jobs,
                     commands=[command(c, target, options) for c in points])["results"]


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


def auto_goals(auto):
    """Per target: the ``--mult auto`` array with the most MACs that meets its clock target."""
    g = []
    for target, results in auto.items():
        ok = [r for r in results if r["fits"] and r["meets_target"]]
        best = max(ok, key=lambda r: r["macs"], default=None)
        freq = next((r["freq_target_mhz"] for r in results if r.get("freq_target_mhz")), None)
        g.append({"goal": f"{target}: the largest --mult auto array that meets its clock target"
                          + (f" ({freq:g} MHz)" if freq else ""),
                  "design": best and best["name"],
                  "measured": best and (f"{best['macs']} MACs ({best['dsp']} DSP), "
                                        f"{best['fmax_mhz']:.1f} MHz, "
                                        f"{best['peak_gops']:.2f} GOPS"),
                  "met": best is not None})
    return g


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--boards", action="store_true", help="also build the two bitstreams")
    p.add_argument("--auto", action="store_true",
                   help="also sweep the --mult auto arrays that fill each device")
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
        results[target] = sweep(points, target, opts, OUT / target, args.jobs)
    auto = {}
    for target, (points, freq) in AUTO.items():
        out = OUT / target / "auto"
        if not args.auto or (args.only and args.only != target):
            if (out / "sweep.json").exists():
                auto[target] = json.loads((out / "sweep.json").read_text())["results"]
            continue
        print(f"== {target} --mult auto: {len(points)} points", file=sys.stderr)
        auto[target] = sweep(points, target, SynthOptions(freq=freq, harness="on"), out,
                             args.jobs)
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
    g = goals(results["ecp5-85f"], results["ice40-up5k"]) + auto_goals(auto)
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
