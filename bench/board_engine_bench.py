#!/usr/bin/env python3
"""Engine bitstreams: whole engines behind the UART host link, built for a board and clocked
from its PLL.

Builds each engine of ``ENGINES`` with ``systolix build engine ... --board B --freq F --json``
(niced) and writes ``bench/results/board_engine.{json,md}``. Each row carries the exact
``command``, the clock the design runs at on the board (the PLL's output, which nextpnr times),
nextpnr's Fmax, ``peak_gops`` = 2 x MACs x that clock, ``sustained_gops`` at that clock on
the row's job ``stream`` (``--stream``: exact cycle model, end to end), the design's LUT4 / FF / DSP / block RAM
(yosys), the logic cells placed (nextpnr: LUT4 and FF packed together), and the wall time of
the build (yosys + nextpnr + icepack; the machine may be shared, so times are pessimistic).
Bitstreams go to ``bench/results/boards/`` (not committed).

Usage: ``.venv/bin/python bench/board_engine_bench.py [--only BOARD]`` (``--only``: build that
board's rows and keep the other rows of the committed JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"

#: (board, goal in peak GOPS, engine flags)
ENGINES = [
    # 24 MACs (16 on the 8 SB_MAC16, 8 LUT-built), weight-stationary: its PEs are the cheapest
    # in logic cells; double-buffered: its command and load control are registered
    ("icebreaker", 2.0, ["--rows", "6", "--cols", "4", "--dataflow", "ws", "--mult", "auto",
                         "--pipeline", "full", "--acc-width", "19", "--max-m", "8",
                         "--max-k", "8", "--max-n", "8", "--buffering", "double",
                         "--freq", "42"]),
    # 156 DSP and 100 LUT multipliers; the buffers hold 128 x 256 x 128 jobs, double-buffered:
    # a 256^3 product is 4 such jobs (M and N halved, the whole K), so the sustained figure's
    # stream of 32 of them is 8 back-to-back 256^3 products
    ("ulx3s-85f", 51.2, ["--rows", "16", "--cols", "16", "--mult", "auto", "--pipeline", "deep",
                        "--buffering", "double", "--max-m", "128", "--max-k", "256",
                        "--max-n", "128", "--freq", "100", "--stream", "32x128x256x128"]),
]


#: Sustained GOPS (at the board's clock, from the exact cycle model on the row's ``--stream``)
#: that a board's row must reach besides its peak goal.
SUSTAINED_GOALS = {"ulx3s-85f": 45.0}


def _argv(board, flags):
    """The row's ``systolix`` arguments (its ``command`` writes to ``bits``)."""
    return ["build", "engine", *flags, "--board", board, "-o", "bits"]


def build_command(board, flags):
    """The row's ``command``: the ``systolix build`` line that makes its bitstream."""
    return "systolix " + " ".join(_argv(board, flags))


def build(board, flags):
    argv = _argv(board, flags)
    command = build_command(board, flags)
    real = [sys.executable, "-m", "systolix", *argv[:-1], str(OUT / "boards"), "--json"]
    start = time.monotonic()
    proc = subprocess.run(real, capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - start
    if proc.returncode:  # (the one-line error, not the progress lines before it)
        lines = proc.stderr.strip().splitlines() or ["no error message"]
        error = next((x for x in lines if x.startswith("systolix: error:")), lines[-1])
        return {"command": command, "board": board, "error": error,
                "build_wall_s": round(wall, 1)}
    r = json.loads(proc.stdout)
    d = r["board_design"]
    placed = r["placed"]
    lc = next((v for k, v in placed.items() if k in ("ICESTORM_LC", "TRELLIS_COMB")), None)
    return {
        "command": command,
        "board": r["board"],
        "design": r["design"],
        "macs": r["macs"],
        "clock_mhz": r["board_clock_mhz"],
        "pll": r["pll"],
        "board_fmax_mhz": round(r["board_fmax_mhz"], 2),
        "peak_gops": round(r["peak_gops"], 3),
        "stream": r["sustained"]["stream"],
        "end_to_end_utilization": round(r["sustained"]["end_to_end_utilization"], 4),
        "sustained_gops": round(r["sustained"]["sustained_gops"], 3),
        "lut4": d["lut4"], "ff": d["ff"], "dsp": d["dsp"], "bram": d["bram"],
        "total": r["board_total"],
        "logic_cells": lc,
        "placed": placed,
        "baud": r["host_link"]["baud"],
        "bitstream_bytes": r["bitstream_bytes"],
        "build_wall_s": round(wall, 1),
        "tools": r["tools"],
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted({b for b, _, _ in ENGINES}),
                   help="build this board's rows only; keep the others from the committed JSON")
    args = p.parse_args()
    os.nice(10)
    old = {}
    if args.only and (OUT / "board_engine.json").exists():
        old = {r["command"]: r for r in json.loads((OUT / "board_engine.json").read_text())}
    rows = []
    for board, goal, flags in ENGINES:
        command = build_command(board, flags)
        if args.only and board != args.only:
            if command in old:
                rows.append(old[command])
            continue
        print(f"== {board}: {' '.join(flags)}", file=sys.stderr)
        row = build(board, flags)
        row["goal_gops"] = goal
        row["goal_sustained_gops"] = SUSTAINED_GOALS.get(board)
        row["met"] = "error" not in row and row["peak_gops"] >= goal \
            and row["board_fmax_mhz"] >= row["clock_mhz"] \
            and row["sustained_gops"] >= (row["goal_sustained_gops"] or 0)
        rows.append(row)
    (OUT / "board_engine.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| board | design | clock (PLL) | Fmax | peak | sustained (stream, end to end) "
             "| LUT4 / FF / DSP / BRAM | logic cells | build wall | goal |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('board', '')} | `{r['command']}` | | | | | | | "
                         f"{r['build_wall_s']} s | "
                         f"failed: {r['error']} |")
            continue
        lc = r["logic_cells"]
        lines.append(
            f"| {r['board']} | `{r['design']}` | {r['clock_mhz']:g} MHz | "
            f"{r['board_fmax_mhz']:.1f} MHz | {r['peak_gops']:.2f} GOPS | "
            + (f"{r['sustained_gops']:.2f} GOPS ({r['stream']}, "
               f"{r['end_to_end_utilization']:.1%}) | " if "sustained_gops" in r else "- | ")
            + f"{r['lut4']:,} / {r['ff']:,} / {r['dsp']} / {r['bram']} | "
            f"{lc['used']:,} / {lc['available']:,} | {r['build_wall_s']:.0f} s | "
            f">= {r['goal_gops']:g} GOPS peak"
            + (f", >= {r['goal_sustained_gops']:g} sustained" if r.get("goal_sustained_gops")
               else "") + f": {'met' if r['met'] else 'missed'} |")
    lines.append("")
    lines += [f"- `{r['command']}`" for r in rows]
    (OUT / "board_engine.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
