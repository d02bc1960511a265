"""The fit check from the config alone: DSP blocks and a LUT4 lower bound, before any tool."""

import dataclasses

import pytest

from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                              TensorCoreConfig)
from systolix.synth.fit import array_dsp_budget, estimate, plan_for, precheck
from systolix.synth.sweep import markdown_table, per_mac, variant_of
from systolix.synth.targets import TARGETS

pytestmark = pytest.mark.model

ECP5, UP5K = TARGETS["ecp5-85f"], TARGETS["ice40-up5k"]


def test_dsp_blocks_beyond_the_device_are_refused():
    assert precheck(SystolicConfig(16, 16), ECP5) == \
        "does not fit: needs 256 DSP (MULT18X18D), LFE5U-85F-6BG381C has 156"
    assert precheck(SystolicConfig(12, 13, pipeline="deep"), ECP5) is None  # exactly 156
    # UP5K: pipelined int8 PEs share an SB_MAC16 in pairs, unpipelined ones take one each
    assert precheck(SystolicConfig(4, 4, pipeline="full"), UP5K) is None
    assert precheck(SystolicConfig(4, 4), UP5K) == \
        "does not fit: needs 16 DSP (SB_MAC16), iCE40UP5K-SG48 has 8"
    assert precheck(SystolicConfig(3, 5, pipeline="full"), UP5K) == \
        "does not fit: needs 9 DSP (SB_MAC16), iCE40UP5K-SG48 has 8"
    engine = EngineConfig(SystolicConfig(16, 16), 16, 16, 16)
    assert "needs 256 DSP" in precheck(engine, ECP5)


def test_auto_never_needs_more_dsp_blocks_than_the_device():
    for rows, cols in ((12, 13), (13, 13), (16, 16)):
        found = estimate(SystolicConfig(rows, cols, pipeline="deep", mult="auto"), ECP5)
        assert found["dsp_blocks"] == 156 and found["dsp_multipliers"] == 156
        assert found["lut_multipliers"] == rows * cols - 156
    found = estimate(SystolicConfig(4, 6, pipeline="full", mult="auto"), UP5K)
    assert (found["dsp_blocks"], found["dsp_multipliers"], found["lut_multipliers"]) == (8, 16, 8)
    assert precheck(SystolicConfig(16, 16, pipeline="deep", mult="auto"), ECP5) is None


def test_auto_leaves_the_requantizers_dsp_blocks_alone():
    """An engine's requantizer takes 4 MULT18X18D per lane on ECP5 (6 / 3 SB_MAC16 on iCE40):
    ``auto`` fills only the rest with the array, ``dsp`` is refused when both do not fit."""
    deep = SystolicConfig(12, 13, pipeline="deep")
    for mode, per_lane in (("gemmlowp", 4), ("float32", 4)):
        engine = EngineConfig(dataclasses.replace(deep, mult="auto"),
                              requant=RequantConfig(13, mode=mode))
        assert array_dsp_budget(engine, ECP5) == 156 - 13 * per_lane
        found = estimate(engine, ECP5)
        assert (found["dsp_blocks"], found["array_dsp_blocks"], found["other_dsp_blocks"]) == \
            (156, 156 - 13 * per_lane, 13 * per_lane)
        assert found["lut_multipliers"] == 13 * per_lane and precheck(engine, ECP5) is None
        plan = plan_for(engine, ECP5)
        assert sum(row.count("dsp") for row in plan) == 156 - 13 * per_lane
    # without the requantizer the array has them all
    assert array_dsp_budget(EngineConfig(deep), ECP5) == 156
    assert estimate(EngineConfig(deep), ECP5)["other_dsp_blocks"] == 0
    assert precheck(EngineConfig(deep, requant=RequantConfig(13)), ECP5) == (
        "does not fit: needs 208 DSP (MULT18X18D; 156 for the array, 52 for the requantizer), "
        "LFE5U-85F-6BG381C has 156")
    # UP5K: a 4-lane requantizer alone needs 24 SB_MAC16 of 8; auto gives the array none
    small = EngineConfig(SystolicConfig(4, 4, pipeline="full", mult="auto"), 16, 16, 16,
                         requant=RequantConfig(4))
    assert array_dsp_budget(small, UP5K) == 0
    assert plan_for(small, UP5K) == (("lut",) * 4,) * 4
    assert precheck(small, UP5K) == ("does not fit: needs 24 DSP (SB_MAC16; 0 for the array, "
                                     "24 for the requantizer), iCE40UP5K-SG48 has 8")
    float_engine = dataclasses.replace(small, requant=RequantConfig(4, mode="float32"))
    assert estimate(float_engine, UP5K)["other_dsp_blocks"] == 12


def test_lut_multipliers_beyond_the_device_are_refused():
    msg = precheck(SystolicConfig(32, 32, pipeline="full", mult="auto"), ECP5)
    assert msg.startswith("does not fit: needs at least ") and msg.endswith(
        " LUT4 (868 LUT multipliers of ~72 LUT4 and 1024 accumulators), "
        "LFE5U-85F-6BG381C has 83640")
    assert precheck(SystolicConfig(8, 8, pipeline="full", mult="lut"), UP5K).startswith(
        "does not fit: needs at least ")
    assert precheck(SystolicConfig(4, 4, pipeline="full", mult="lut"), UP5K) is None
    # the estimate is a lower bound: narrower operands and accumulators cost less
    small = SystolicConfig(8, 8, mult="lut", numerics=Numerics(in_width=4, acc_width=16))
    assert estimate(small, UP5K)["lut4_min"] < estimate(
        dataclasses.replace(small, numerics=Numerics()), UP5K)["lut4_min"]


def test_weight_stationary_lut_estimate_is_a_lower_bound():
    """A WS PE has no accumulator or drain register, only the adder of its partial sum: the
    LUT4 bound stays below the measured 4x4 array (1,368 LUT4, ``bench/results/mult.md``) and
    lets a WS array fill the device where an OS one of the same size cannot."""
    ws = SystolicConfig(4, 4, Dataflow.WEIGHT_STATIONARY, pipeline="full", mult="lut")
    found = estimate(ws, ECP5)
    assert found["adders"] == 12 and found["lut4_min"] <= 1368
    big = SystolicConfig(32, 32, Dataflow.WEIGHT_STATIONARY, pipeline="full", mult="auto")
    assert precheck(big, ECP5) is None
    assert precheck(dataclasses.replace(big, dataflow=Dataflow.OUTPUT_STATIONARY), ECP5) \
        .startswith("does not fit: needs at least ")
    assert precheck(dataclasses.replace(big, rows=40, cols=40), ECP5).endswith(
        " LUT4 (1444 LUT multipliers of ~72 LUT4 and 1560 partial-sum adders), "
        "LFE5U-85F-6BG381C has 83640")


def test_output_stationary_lut_estimate_is_a_lower_bound():
    """An OS PE's drain register costs no LUT (only its share of the column's drain tree): the
    bound stays below the measured 4x4 array with 20-bit accumulators (1,591 LUT4,
    ``bench/results/mult.md``: 16 multipliers of 72 LUT4, 16 accumulators, 4 drain trees)."""
    os_ = SystolicConfig(4, 4, pipeline="full", mult="lut", numerics=Numerics(acc_width=20))
    found = estimate(os_, ECP5)
    assert found["adders"] == 16 and found["lut4_min"] <= 1591


def test_buffers_beyond_the_devices_memory_are_refused():
    # 208 DP16KD of 18 Kibit, and at most 16 bits per LUT4 and 1 per FF besides
    most = 208 * 18 * 1024 + 17 * 83640
    array = SystolicConfig(16, 16, pipeline="deep", mult="auto")
    double = EngineConfig(array, 256, 256, 256, buffering="double")
    assert double.buffer_bits == 6 * 2 ** 20 > most
    assert precheck(double, ECP5) == (
        f"does not fit: the buffers hold 6,291,456 bits, LFE5U-85F-6BG381C has 3,833,856 in "
        f"208 DP16KD (at most {most:,} with every LUT4 as RAM and every FF)")
    single = dataclasses.replace(double, buffering="single")
    assert single.buffer_bits < most and precheck(single, ECP5) is None
    # a tensor-core engine has no array to estimate, but its buffers are checked
    tc = EngineConfig(core=TensorCoreConfig(), max_m=1024, max_k=256, max_n=256)
    assert precheck(tc, UP5K).startswith("does not fit: the buffers hold ")


def test_designs_without_an_array_are_not_estimated():
    assert precheck(TensorCoreConfig(), ECP5) is None and estimate(TensorCoreConfig(), ECP5) is None


def test_sweep_table_has_per_mac_columns():
    config = SystolicConfig(2, 2, pipeline="full", mult="lut")
    ok = {"fits": True, "name": config.name, "config": config.to_dict(), "macs": 4,
          "lut4": 700, "ff": 500, "dsp": 0, "bram": 0, "fmax_mhz": 150.0, "peak_gops": 1.2,
          "gops_per_klut": 1.7, "gops_per_dsp": None, "harness": {"used": False}}
    bad = {"fits": False, "name": "x", "config": SystolicConfig(4, 4).to_dict(), "macs": 16,
           "error": "does not fit: needs 16 DSP (SB_MAC16), iCE40UP5K-SG48 has 8"}
    assert per_mac(ok, "lut4") == 175 and per_mac(ok, "ff") == 125 and per_mac(bad, "ff") is None
    assert variant_of(ok["config"]) == "full/lut" and variant_of(bad["config"]) == "none"
    lines = markdown_table([ok, bad], UP5K).splitlines()
    head = [c.strip() for c in lines[2].split("|")]
    row = [c.strip() for c in lines[4].split("|")]
    assert head[6:8] == ["LUT4/MAC", "FF/MAC"] and row[6:8] == ["175.0", "125.0"]
    assert len(lines[5].split("|")) == len(lines[2].split("|"))
