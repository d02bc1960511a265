"""Whether a design can fit a device, decided from its config before any tool runs.

A systolic array (bare or inside an engine) needs one DSP multiplier per PE that the
multiplier plan (:func:`systolix.config.multiplier_plan`) gives a DSP block, and a few LUT4s
per bit of every PE's accumulator, drain register and LUT-built multiplier. :func:`precheck`
refuses an array whose DSP blocks exceed the device, or whose LUT4 lower bound does, with one
line naming the resource and the numbers; yosys' cell counts check everything else afterwards.
"""

from __future__ import annotations

import math

from ..config import EngineConfig, SystolicConfig, multiplier_plan
from .targets import Target

__all__ = ["LUT_MULT_LUT4", "PE_LUT4_PER_ACC_BIT", "array_of", "dsp_pairs", "plan_for",
           "estimate", "precheck"]

#: LUT4s of one int8 x int8 LUT multiplier as yosys maps it (``bench/results/mult.md``; CCU2C
#: counted as 2): on ECP5 the :class:`~systolix.hdl.chainmult.CarryChainMultiplier`, 72 (36
#: carry cells), on iCE40 the radix-4 Booth :class:`~systolix.hdl.lutmult.LUTMultiplier`, 105.
#: Scaled by (in_width / 8)^2 for other widths.
LUT_MULT_LUT4 = {"ecp5": 72, "ice40": 105}

#: A lower bound of the LUT4s a PE spends per accumulator bit besides its multiplier (the
#: accumulator's adder, 1 per bit, and the drain register's load-or-shift choice, 1 per bit;
#: measured 2.0-2.2), so that the estimate never refuses a design that would fit.
PE_LUT4_PER_ACC_BIT = 1.8


def array_of(config):
    """The :class:`SystolicConfig` inside ``config`` (a bare array or an engine), or None."""
    if isinstance(config, SystolicConfig):
        return config
    if isinstance(config, EngineConfig):
        return config.array
    return None


def dsp_pairs(array: SystolicConfig, target: Target):
    """Two PEs share one DSP block: iCE40's SB_MAC16 in MODE_8x8, used by pipelined PEs of
    operands up to 8 bits (:class:`systolix.hdl.dsp.ICE40DSP`)."""
    return (target.family == "ice40" and array.pipeline_stages >= 1
            and array.numerics.in_width <= 8)


def plan_for(array: SystolicConfig, target: Target):
    """The per-PE multiplier plan the array gets on ``target``."""
    return multiplier_plan(array, target.dsp, pairs=dsp_pairs(array, target))


def _blocks(array, target, plan):
    """DSP blocks the plan's DSP multipliers take."""
    pairs = dsp_pairs(array, target)
    blocks = 0
    C = array.cols
    for row in plan:
        for c, kind in enumerate(row):
            if kind != "dsp":
                continue
            if pairs and c < C - C % 2:
                blocks += c % 2 == 0  # one block for the pair (c, c + 1)
            else:
                blocks += 1
    return blocks


def estimate(config, target: Target):
    """``{"dsp_multipliers", "lut_multipliers", "dsp_blocks", "lut4_min"}`` for the array in
    ``config`` on ``target``, or None for a design without a systolic array."""
    array = array_of(config)
    if array is None:
        return None
    plan = plan_for(array, target)
    luts = sum(row.count("lut") for row in plan)
    num = array.numerics
    mult_lut4 = LUT_MULT_LUT4.get(target.family, LUT_MULT_LUT4["ecp5"])
    per_mult = math.ceil(mult_lut4 * (num.in_width / 8) ** 2)
    lut4_min = int(luts * per_mult + array.macs * PE_LUT4_PER_ACC_BIT * num.acc_width)
    return {"dsp_multipliers": array.macs - luts, "lut_multipliers": luts,
            "dsp_blocks": _blocks(array, target, plan), "lut4_per_lut_multiplier": per_mult,
            "lut4_min": lut4_min}


def precheck(config, target: Target):
    """One line saying why ``config`` cannot fit ``target`` (``"does not fit: ..."``), or None.

    ``mult="auto"`` never needs more DSP blocks than the device has; its LUT multipliers can
    still exceed the LUT4s, which is refused here as for ``mult="lut"``.
    """
    found = estimate(config, target)
    if found is None:
        return None
    if found["dsp_blocks"] > target.dsp:
        return (f"does not fit: needs {found['dsp_blocks']} DSP ({target.dsp_cell}), "
                f"{target.device} has {target.dsp}")
    if found["lut4_min"] > target.lut4:
        lut = found["lut_multipliers"]
        return (f"does not fit: needs at least {found['lut4_min']} LUT4 ({lut} LUT "
                f"multipliers of ~{found['lut4_per_lut_multiplier']} LUT4 and "
                f"{array_of(config).macs} accumulators), {target.device} has {target.lut4}")
    return None
