"""Parsers for the tools' machine-readable reports: ``yosys stat -json`` and ``nextpnr --report``.

Nothing here reads a human-oriented log, except :func:`nextpnr_capacity_error` and
:func:`nextpnr_placement_failure`, which only turn nextpnr's own "does not fit" messages into a
one-line error when the pre-check from the yosys statistics could not see the problem.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

__all__ = ["CellCounts", "parse_yosys_stat", "NextpnrReport", "parse_nextpnr_report",
           "nextpnr_capacity_error", "nextpnr_placement_failure", "nextpnr_timing_failure"]

# Cells that are 1 LUT4-equivalent each, or 2 (an ECP5 CCU2C carry cell is two LUT4 halves).
_LUT_WEIGHTS = {"LUT4": 1, "CCU2C": 2, "SB_LUT4": 1, "DPR16X4C": 2}
_DSP_CELLS = ("MULT18X18D", "ALU54B", "SB_MAC16")
_BRAM_CELLS = ("DP16KD", "PDPW16KD", "SB_RAM40_4K")
_SPRAM_CELLS = ("SB_SPRAM256KA",)


def _is_ff(cell):
    return cell == "TRELLIS_FF" or cell.startswith("SB_DFF")


@dataclass(frozen=True)
class CellCounts:
    """Technology-mapped cell counts of one module (or of the whole design).

    Attributes
    ----------
    lut4 : int
        LUT4 equivalents: LUT4 / SB_LUT4 cells, plus two per ECP5 CCU2C carry cell.
    ff : int
        Flip-flops (TRELLIS_FF, SB_DFF*).
    dsp : int
        DSP blocks (MULT18X18D and ALU54B on ECP5, SB_MAC16 on iCE40).
    bram : int
        Block RAMs (DP16KD, SB_RAM40_4K).
    spram : int
        iCE40 UP5K single-port RAMs (SB_SPRAM256KA).
    carry : int
        Carry cells (CCU2C / SB_CARRY), already included in ``lut4`` on ECP5.
    cells : dict
        All cell types and counts as yosys reports them (submodule instances excluded).
    """

    lut4: int = 0
    ff: int = 0
    dsp: int = 0
    bram: int = 0
    spram: int = 0
    carry: int = 0
    cells: dict = field(default_factory=dict)

    @classmethod
    def from_cells(cls, cells):
        cells = {k: int(v) for k, v in cells.items() if not k.startswith("$")}
        return cls(
            lut4=sum(n * _LUT_WEIGHTS.get(c, 0) for c, n in cells.items()),
            ff=sum(n for c, n in cells.items() if _is_ff(c)),
            dsp=sum(cells.get(c, 0) for c in _DSP_CELLS),
            bram=sum(cells.get(c, 0) for c in _BRAM_CELLS),
            spram=sum(cells.get(c, 0) for c in _SPRAM_CELLS),
            carry=cells.get("CCU2C", 0) + cells.get("SB_CARRY", 0),
            cells=cells,
        )

    def to_dict(self):
        return {"lut4": self.lut4, "ff": self.ff, "dsp": self.dsp, "bram": self.bram,
                "spram": self.spram, "carry": self.carry, "cells": dict(sorted(self.cells.items()))}


def parse_yosys_stat(text, *, submodule=None):
    """Parse the output of ``stat -json -top <top>``.

    Parameters
    ----------
    text : str
        The JSON text.
    submodule : str or None
        Name of a module kept as its own hierarchy level (the design inside the I/O harness).

    Returns
    -------
    (total, part) : (CellCounts, CellCounts or None)
        ``total`` for the whole design (hierarchy included); ``part`` for ``submodule`` with
        the modules kept inside it (the array's columns).
    """
    data = json.loads(text)
    if "design" not in data or "num_cells_by_type" not in data["design"]:
        raise ValueError("not a yosys 'stat -json -top' report: no design totals")
    modules = {name.lstrip("\\"): m for name, m in data.get("modules", {}).items()}
    submodule_names = set(modules)
    total_cells = {k: v for k, v in data["design"]["num_cells_by_type"].items()
                   if k.lstrip("\\") not in submodule_names}
    part = None
    if submodule is not None:
        if submodule not in modules:
            raise ValueError(f"module {submodule!r} is not in the yosys report "
                             f"(modules: {', '.join(sorted(modules))})")
        part = CellCounts.from_cells(_cells_within(modules, submodule))
    return CellCounts.from_cells(total_cells), part


def _cells_within(modules, name):
    """Cell counts of module ``name``, each instance of a module in ``modules`` replaced by
    that module's counts."""
    cells = {}
    for kind, count in modules[name]["num_cells_by_type"].items():
        child = kind.lstrip("\\")
        inner = _cells_within(modules, child) if child in modules else {kind: 1}
        for k, v in inner.items():
            cells[k] = cells.get(k, 0) + v * count
    return cells


@dataclass(frozen=True)
class NextpnrReport:
    """What ``nextpnr-<family> --report`` says about a placed and routed design.

    Attributes
    ----------
    fmax : dict
        Achieved frequency (MHz) per clock net.
    constraint : dict
        Target frequency (MHz) per clock net.
    utilization : dict
        ``{bel_type: (used, available)}``.
    critical_path : dict or None
        The slowest clock-to-clock path: ``{"from", "to", "delay_ns", "logic_ns", "routing_ns"}``.
    """

    fmax: dict
    constraint: dict
    utilization: dict
    critical_path: dict | None

    @property
    def fmax_mhz(self):
        """The design's Fmax: the slowest clock's achieved frequency (None without clocks)."""
        return min(self.fmax.values()) if self.fmax else None

    def used(self, bel):
        return self.utilization.get(bel, (0, 0))[0]

    def to_dict(self):
        return {"fmax_mhz": self.fmax, "constraint_mhz": self.constraint,
                "utilization": {k: {"used": u, "available": a}
                                for k, (u, a) in sorted(self.utilization.items()) if u},
                "critical_path": self.critical_path}


def _cell_name(endpoint):
    return endpoint.get("cell", "?") + "." + endpoint.get("port", "?")


def parse_nextpnr_report(text):
    """Parse the JSON written by ``nextpnr --report``."""
    data = json.loads(text)
    if "fmax" not in data or "utilization" not in data:
        raise ValueError("not a nextpnr --report file: no 'fmax' or 'utilization'")
    fmax = {clk: float(v["achieved"]) for clk, v in data["fmax"].items()}
    constraint = {clk: float(v["constraint"]) for clk, v in data["fmax"].items()}
    utilization = {bel: (int(v["used"]), int(v["available"]))
                   for bel, v in data["utilization"].items()}
    critical = None
    clocked = [p for p in data.get("critical_paths", [])
               if p.get("from", "").startswith(("posedge", "negedge"))
               and p.get("to", "").startswith(("posedge", "negedge"))]
    if clocked:
        path = max(clocked, key=lambda p: sum(s["delay"] for s in p["path"]))
        steps = path["path"]
        critical = {
            "from": _cell_name(steps[0]["from"]),
            "to": _cell_name(steps[-1]["to"]),
            "delay_ns": round(sum(s["delay"] for s in steps), 3),
            "logic_ns": round(sum(s["delay"] for s in steps
                                  if s["type"] in ("logic", "clk-to-q", "setup")), 3),
            "routing_ns": round(sum(s["delay"] for s in steps if s["type"] == "routing"), 3),
        }
    return NextpnrReport(fmax=fmax, constraint=constraint, utilization=utilization,
                         critical_path=critical)


_USES = re.compile(r"Design uses (\d+) ([A-Za-z0-9_]+)[^\n]*?has (?:only )?(\d+)")
_UTILISATION = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_NO_BELS = re.compile(r"no BELs remaining to implement cell type '([A-Za-z0-9_]+)'")

#: nextpnr bel/cell types and the resource they are counted as.
RESOURCE_OF_CELL = {
    "ICESTORM_DSP": "dsp", "SB_MAC16": "dsp", "MULT18X18D": "dsp", "ALU54B": "dsp",
    "ICESTORM_LC": "lut4", "TRELLIS_COMB": "lut4", "TRELLIS_SLICE": "lut4",
    "TRELLIS_FF": "ff",
    "ICESTORM_RAM": "bram", "SB_RAM40_4K": "bram", "DP16KD": "bram",
    "SB_IO": "io", "TRELLIS_IO": "io",
}


_TIMING_FAIL = re.compile(r"Max frequency for clock[^\n]*?: ([0-9.]+) MHz \(FAIL at ([0-9.]+) MHz\)")


def nextpnr_timing_failure(log_text):
    """``(fmax_mhz, clock_mhz)`` of the clock nextpnr's log says failed timing last (after
    routing; placement reports an estimate first), or ``None``."""
    found = _TIMING_FAIL.findall(log_text)
    return (float(found[-1][0]), float(found[-1][1])) if found else None


def nextpnr_capacity_error(log_text):
    """What nextpnr ran out of, from its log: ``(cell_type, needed, available)``, where the
    counts are ``None`` when nextpnr does not state them; ``None`` if the log shows no such
    failure."""
    match = _USES.search(log_text)
    if match:
        return match.group(2), int(match.group(1)), int(match.group(3))
    match = _NO_BELS.search(log_text)
    if match:
        return match.group(1), None, None
    for cell, used, available in _UTILISATION.findall(log_text):  # e.g. "Failed to expand
        if int(used) > int(available):                            # region" after it
            return cell, int(used), int(available)
    return None


#: the placer's two ways of giving up: the analytic placer names the cell it could not place
_NO_LEGAL_PLACEMENT = re.compile(r"Unable to find legal placement for (?:all cells|cell "
                                 r"'[^']*' of type '([A-Za-z0-9_]+)')")
_LOGIC_CELLS = ("ICESTORM_LC", "TRELLIS_COMB")


def nextpnr_placement_failure(log_text):
    """nextpnr's placer giving up on a design that fits by count but not in place ("Unable to
    find legal placement for ...", near the device's utilisation limit): ``(cell_type, used,
    available)`` of the cell type it could not place (the logic cells if it does not say) from
    its utilisation table, all three ``None`` if the log has no such row; ``None`` if the log
    shows no such failure."""
    match = _NO_LEGAL_PLACEMENT.search(log_text)
    if not match:
        return None
    wanted = (match.group(1),) if match.group(1) else _LOGIC_CELLS
    for cell, used, available in _UTILISATION.findall(log_text):
        if cell in wanted:
            return cell, int(used), int(available)
    return None, None, None
