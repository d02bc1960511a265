"""Whether a design can fit a device, decided from its config before any tool runs.

A systolic array (bare or inside an engine) needs one DSP multiplier per PE that the
multiplier plan (:func:`systolix.config.multiplier_plan`) gives a DSP block, and a few LUT4s
per bit of every PE's accumulator, drain register and LUT-built multiplier. An engine's
requantizer takes DSP blocks of its own (:func:`other_dsp_blocks`), so the array may use only
the rest (:func:`array_dsp_budget`: what ``mult="auto"`` fills). :func:`precheck` refuses a
design whose DSP blocks exceed the device, or whose LUT4 lower bound does, and an engine whose
buffers exceed every bit of memory the device could give them (:func:`memory_bits_max`), with
one line naming the resource and the numbers; yosys' cell counts check everything else
afterwards.
"""

from __future__ import annotations

import math

from ..config import Dataflow, EngineConfig, SystolicConfig, multiplier_plan
from ..hdl.arith import chunk_sum_shape
from .targets import Target

__all__ = ["LUT_MULT_LUT4", "PE_LUT4_PER_ACC_BIT", "WS_PE_LUT4_PER_PSUM_BIT",
           "REQUANT_DSP_PER_LANE", "array_of",
           "dsp_pairs", "other_dsp_blocks", "array_dsp_budget", "plan_for", "estimate",
           "BRAM_BITS", "memory_bits_max", "precheck"]

#: LUT4s of one int8 x int8 LUT multiplier as yosys maps it (``bench/results/mult.md``; CCU2C
#: counted as 2): on ECP5 the :class:`~systolix.hdl.chainmult.CarryChainMultiplier`, 72 (36
#: carry cells), on iCE40 the radix-4 Booth :class:`~systolix.hdl.lutmult.LUTMultiplier`, 105.
#: Scaled by (in_width / 8)^2 for other widths.
LUT_MULT_LUT4 = {"ecp5": 72, "ice40": 105}

#: A lower bound of the LUT4s an output-stationary PE spends per accumulator bit besides its
#: multiplier (the accumulator's adder, 1 per bit; its drain register costs none, its share of
#: the column's drain tree 1/3 to 1/R per bit; measured 1.25-1.4), so that the estimate never
#: refuses a design that would fit.
PE_LUT4_PER_ACC_BIT = 0.9

#: The same for a weight-stationary PE below the top row, per bit of the partial sum it passes
#: down: its adder, 1 per bit (the top row adds nothing; the sum over K tiles is accumulated
#: outside the array).
WS_PE_LUT4_PER_PSUM_BIT = 0.9


#: DSP blocks one lane of the requantizer (:class:`~systolix.hdl.requant.Requantizer`) takes,
#: per (family, mode): its 32 x 32 (gemmlowp) or 24 x 24 (float32) product is four partial
#: products of at most 18 x 18 bits, each an explicit MULT18X18D on ECP5; on iCE40 yosys infers
#: SB_MAC16s for them (measured: ``tests/synth/test_fit.py`` synthesizes one lane of each).
REQUANT_DSP_PER_LANE = {("ecp5", "gemmlowp"): 4, ("ecp5", "float32"): 4,
                        ("ice40", "gemmlowp"): 6, ("ice40", "float32"): 3}


#: Bits of one block RAM, parity bits included: ECP5's DP16KD 18 Kibit, iCE40's SB_RAM40_4K
#: 4 Kibit.
BRAM_BITS = {"ecp5": 18 * 1024, "ice40": 4 * 1024}


def memory_bits_max(target: Target):
    """An upper bound of the bits ``target`` can store: every block RAM bit, 16 per LUT4 (as if
    every LUT were RAM) and one per flip-flop. Buffers beyond it cannot fit, however they are
    mapped."""
    return target.bram * BRAM_BITS[target.family] + 16 * target.lut4 + target.ff


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


def other_dsp_blocks(config, target: Target):
    """DSP blocks that ``config`` uses on ``target`` outside its systolic array: an engine's
    requantizer (:data:`REQUANT_DSP_PER_LANE` per lane), else 0."""
    if isinstance(config, EngineConfig) and config.requant is not None:
        per_lane = REQUANT_DSP_PER_LANE.get((target.family, config.requant.mode), 0)
        return per_lane * config.requant.lanes
    return 0


def array_dsp_budget(config, target: Target):
    """DSP blocks the systolic array of ``config`` may take on ``target``: the device's, less
    those of the design's other parts (:func:`other_dsp_blocks`). The FPGA flow gives it to
    the array as the platform's ``dsp_blocks``, which ``mult="auto"`` fills."""
    return max(0, target.dsp - other_dsp_blocks(config, target))


def plan_for(config, target: Target):
    """The per-PE multiplier plan the array of ``config`` (a bare array or an engine) gets on
    ``target``."""
    array = array_of(config)
    return multiplier_plan(array, array_dsp_budget(config, target),
                           pairs=dsp_pairs(array, target))


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
    """``{"dsp_multipliers", "lut_multipliers", "dsp_blocks", "array_dsp_blocks",
    "other_dsp_blocks", "lut4_min", ...}`` for ``config`` on ``target`` (``dsp_blocks`` is the
    array's and the other parts' together), or None for a design without a systolic array."""
    array = array_of(config)
    if array is None:
        return None
    plan = plan_for(config, target)
    luts = sum(row.count("lut") for row in plan)
    num = array.numerics
    mult_lut4 = LUT_MULT_LUT4.get(target.family, LUT_MULT_LUT4["ecp5"])
    per_mult = math.ceil(mult_lut4 * (num.in_width / 8) ** 2)
    if array.dataflow is Dataflow.WEIGHT_STATIONARY:
        adders = (array.rows - 1) * array.cols
        adder_lut4 = WS_PE_LUT4_PER_PSUM_BIT * array.cols * sum(
            chunk_sum_shape(num, r + 1).width for r in range(1, array.rows))
    else:
        adders = array.macs
        adder_lut4 = array.macs * PE_LUT4_PER_ACC_BIT * num.acc_width
    lut4_min = int(luts * per_mult + adder_lut4)
    array_blocks = _blocks(array, target, plan)
    other = other_dsp_blocks(config, target)
    return {"dsp_multipliers": array.macs - luts, "lut_multipliers": luts,
            "dsp_blocks": array_blocks + other, "array_dsp_blocks": array_blocks,
            "other_dsp_blocks": other, "lut4_per_lut_multiplier": per_mult,
            "adders": adders, "lut4_min": lut4_min}


def precheck(config, target: Target):
    """One line saying why ``config`` cannot fit ``target`` (``"does not fit: ..."``), or None.

    ``mult="auto"`` never needs more DSP blocks than the device has (its array takes what the
    requantizer leaves); its LUT multipliers can still exceed the LUT4s, which is refused here
    as for ``mult="lut"``.
    """
    most = memory_bits_max(target)
    if isinstance(config, EngineConfig) and config.buffer_bits > most:
        bram = target.bram * BRAM_BITS[target.family]
        return (f"does not fit: the buffers hold {config.buffer_bits:,} bits, {target.device} "
                f"has {bram:,} in {target.bram} {target.bram_cell} (at most {most:,} with every "
                f"LUT4 as RAM and every FF)")
    found = estimate(config, target)
    if found is None:
        return None
    if found["dsp_blocks"] > target.dsp:
        parts = (f"; {found['array_dsp_blocks']} for the array, {found['other_dsp_blocks']} "
                 f"for the requantizer" if found["other_dsp_blocks"] else "")
        return (f"does not fit: needs {found['dsp_blocks']} DSP ({target.dsp_cell}{parts}), "
                f"{target.device} has {target.dsp}")
    if found["lut4_min"] > target.lut4:
        lut = found["lut_multipliers"]
        adders = ("partial-sum adders" if array_of(config).dataflow is Dataflow.WEIGHT_STATIONARY
                  else "accumulators")
        return (f"does not fit: needs at least {found['lut4_min']} LUT4 ({lut} LUT "
                f"multipliers of ~{found['lut4_per_lut_multiplier']} LUT4 and "
                f"{found['adders']} {adders}), {target.device} has {target.lut4}")
    return None
