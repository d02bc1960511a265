# amaranth: UnusedElaboratable=no
"""Fast unit tests of the gateware in Amaranth's own simulator (no Verilog, no cocotb)."""

import gc
import warnings

import numpy as np
import pytest

from systolix.model import golden
from systolix.config import Numerics, SystolicConfig
from systolix.model.cycles import os_stream_cycles
from systolix.hdl.pe import OutputStationaryPE
from systolix.hdl.skew import DelayLanes, deskew_delays, skew_delays
from systolix.hdl.os_array import OutputStationaryArray, drain_tree_levels
from helpers import run_amaranth as run

pytestmark = pytest.mark.amaranth


@pytest.mark.parametrize("delays", [(0, 1, 2, 3), (3, 2, 1, 0), (1,), (2, 0, 5)])
def test_delay_lanes_delay_each_lane_exactly(delays):
    dut = DelayLanes(8, delays)
    seen = []

    async def tb(ctx):
        for t in range(12):
            ctx.set(dut.i, [(t * 10 + lane) % 256 for lane in range(len(delays))])
            seen.append([ctx.get(dut.o[lane]) for lane in range(len(delays))])
            await ctx.tick()

    run(dut, tb)
    for t in range(12):
        for lane, d in enumerate(delays):
            expect = ((t - d) * 10 + lane) % 256 if t >= d else 0
            assert seen[t][lane] == expect, (t, lane)


def test_skew_helpers():
    assert skew_delays(4) == (0, 1, 2, 3)
    assert deskew_delays(4) == (3, 2, 1, 0)
    assert deskew_delays(3, extra=1) == (3, 2, 1)


@pytest.mark.parametrize("bad", [(), (-1,), (1.5,)])
def test_delay_lanes_rejects_bad_delays(bad):
    with warnings.catch_warnings():
        # the half-built component is reported "never used" when collected: expected here
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            DelayLanes(8, bad)
        gc.collect()


@pytest.mark.parametrize("numerics", [
    Numerics(), Numerics(saturate=True, acc_width=16), Numerics(acc_width=16),
    Numerics(signed=False, in_width=4, acc_width=9, saturate=True),
])
@pytest.mark.parametrize("drain_tree", [False, True])
def test_pe_accumulates_per_spec(numerics, drain_tree):
    """Random beats with random gaps and tile ends: drain_out must equal the golden sum."""
    seed = 1234
    rng = np.random.default_rng(seed)
    dut = OutputStationaryPE(numerics, drain_tree=drain_tree)
    beats = []
    for _ in range(5):
        k = int(rng.integers(1, 40))
        a = rng.integers(numerics.in_min, numerics.in_max + 1, k)
        b = rng.integers(numerics.in_min, numerics.in_max + 1, k)
        beats.append((a, b))
    results = []

    async def tb(ctx):
        for a, b in beats:
            for i in range(len(a)):
                if rng.random() < 0.3:  # idle cycle: must not disturb the accumulator
                    ctx.set(dut.valid, 0)
                    ctx.set(dut.last, 0)
                    ctx.set(dut.a, int(numerics.in_max))
                    await ctx.tick()
                    assert ctx.get(dut.drain_out) == 0
                ctx.set(dut.valid, 1)
                ctx.set(dut.a, int(a[i]))
                ctx.set(dut.b, int(b[i]))
                ctx.set(dut.last, int(i == len(a) - 1))
                await ctx.tick()
                assert ctx.get(dut.a_out) == int(a[i])  # one-cycle forwarding
                if i == len(a) - 1:  # result_latency = 1
                    results.append(ctx.get(dut.drain_out))
                else:  # no result: the drain output is 0
                    assert ctx.get(dut.drain_out) == 0
        ctx.set(dut.valid, 0)

    run(dut, tb)
    assert len(results) == len(beats)
    for (a, b), got in zip(beats, results):
        want = golden.gemm(a.reshape(1, -1), b.reshape(-1, 1), numerics)[0, 0]
        assert got == want, f"seed={seed}"


def test_pe_drain_passes_through_with_one_cycle_delay():
    dut = OutputStationaryPE(Numerics())

    async def tb(ctx):
        for v in (5, -7, 123456):
            ctx.set(dut.drain_in, v)
            await ctx.tick()
            assert ctx.get(dut.drain_out) == v

    run(dut, tb)


@pytest.mark.parametrize("hold", [1, 3])
def test_pe_holds_result_then_shifts(hold):
    dut = OutputStationaryPE(Numerics(), hold_cycles=hold)
    trace = []

    async def tb(ctx):
        ctx.set(dut.drain_in, -1)
        ctx.set(dut.a, 3)
        ctx.set(dut.b, 4)
        ctx.set(dut.valid, 1)
        ctx.set(dut.last, 1)
        await ctx.tick()
        ctx.set(dut.valid, 0)
        for t in range(hold + 2):
            trace.append(ctx.get(dut.drain_out))
            ctx.set(dut.drain_in, 100 + t)
            await ctx.tick()

    run(dut, tb)
    # the result (12) stays for hold + 1 cycles, then values from above flow through
    assert trace == [12] * (hold + 1) + [100 + hold]


@pytest.mark.parametrize("stages", [0, 2])
def test_pe_shows_a_result_for_one_cycle_then_0(stages):
    """drain_out is the finished sum for exactly one cycle (a column ORs its PEs' outputs),
    also for two tiles back to back, and 0 in every other cycle."""
    dut = OutputStationaryPE(Numerics(), pipeline_stages=stages, drain_tree=True)
    trace = []

    async def tb(ctx):
        for a, b, last in [(3, 4, 1), (5, 6, 0), (1, 1, 1)]:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.valid, 1)
            ctx.set(dut.last, last)
            await ctx.tick()
            trace.append(ctx.get(dut.drain_out))
        ctx.set(dut.valid, 0)
        ctx.set(dut.last, 0)
        for _ in range(stages + 3):
            await ctx.tick()
            trace.append(ctx.get(dut.drain_out))

    run(dut, tb)
    assert trace == [0] * stages + [12, 0, 31] + [0] * 3


def simulate_array(config, tiles, stall_prob=0.0, seed=0):
    """Drive (a_tile, b_tile) pairs through the array; returns the C tiles and total cycles."""
    rng = np.random.default_rng(seed)
    dut = OutputStationaryArray(config)
    R, C = config.rows, config.cols
    beats = [(a[:, k], b[k, :], k == a.shape[1] - 1) for a, b in tiles for k in range(a.shape[1])]
    out_rows = []
    marks = {}

    async def tb(ctx):
        cycle, n = 0, 0
        while len(out_rows) < R * len(tiles) or cycle < marks.get("end", 0) + 2 * R + C + 2:
            if n < len(beats):
                valid = rng.random() >= stall_prob
                a, b, last = beats[n]
                ctx.set(dut.i.valid, int(valid))
                ctx.set(dut.i.payload, {"a": [int(x) for x in a], "b": [int(x) for x in b],
                                        "last": int(last)})
                if valid and ctx.get(dut.i.ready):
                    marks.setdefault("first", cycle)
                    n += 1
            else:
                ctx.set(dut.i.valid, 0)
            if ctx.get(dut.o.valid):
                out_rows.append((ctx.get(dut.o.payload.row),
                                 [ctx.get(dut.o.payload.data[c]) for c in range(C)]))
                marks["end"] = cycle
            await ctx.tick()
            cycle += 1
            assert cycle < 100_000

    run(dut, tb)
    assert len(out_rows) == R * len(tiles), "extra output rows after the last tile"
    results = []
    for t in range(len(tiles)):
        chunk = out_rows[t * R:(t + 1) * R]
        order = list(range(R)) if config.drain_tree else list(range(R - 1, -1, -1))
        assert [r for r, _ in chunk] == order  # top row first from a drain tree
        results.append(np.array([d for _, d in sorted(chunk)]))
    return results, marks["end"] - marks["first"] + 1


@pytest.mark.parametrize("pipeline", ["none", "product", "full", "deep"])
@pytest.mark.parametrize("rows,cols,ks", [
    (3, 2, [5, 1, 7, 3]), (1, 1, [1, 1, 4]), (2, 4, [2, 2, 9]), (4, 1, [6, 4, 4, 1]),
])
def test_array_matches_golden_and_cycle_model(rows, cols, ks, pipeline):
    config = SystolicConfig(rows, cols, pipeline=pipeline)
    seed = 99
    rng = np.random.default_rng(seed)
    n = config.numerics
    tiles = [(rng.integers(n.in_min, n.in_max + 1, (rows, k)),
              rng.integers(n.in_min, n.in_max + 1, (k, cols))) for k in ks]
    results, cycles = simulate_array(config, tiles)
    for (a, b), got in zip(tiles, results):
        np.testing.assert_array_equal(got, golden.gemm(a, b, n), err_msg=f"seed={seed}")
    assert cycles == os_stream_cycles(config, ks)[0]


def test_pe_rejects_a_hold_with_a_drain_tree():
    with pytest.raises(ValueError, match="hold_cycles must be 0 with drain_tree, not 2"):
        OutputStationaryPE(Numerics(), hold_cycles=2, drain_tree=True)
    with pytest.raises(TypeError, match="drain_tree must be a bool, not 1"):
        OutputStationaryPE(Numerics(), drain_tree=1)


def test_drain_tree_levels():
    assert [drain_tree_levels(r) for r in (1, 2, 4, 5, 16, 17, 64)] == [0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("rows,cols,ks", [(5, 2, [5, 9, 1, 6]), (17, 1, [17, 2])])
def test_tall_array_drains_through_a_deeper_tree(rows, cols, ks):
    """Columns whose drain tree has 2 and 3 levels (one gate with a single input): the same
    results and cycles; tiles back to back (K >= R) and spaced by the ready rule (K < R)."""
    config = SystolicConfig(rows, cols, pipeline="full", mult="lut")
    seed = 17
    rng = np.random.default_rng(seed)
    tiles = [(rng.integers(-128, 128, (rows, k)), rng.integers(-128, 128, (k, cols)))
             for k in ks]
    results, cycles = simulate_array(config, tiles)
    for (a, b), got in zip(tiles, results):
        np.testing.assert_array_equal(got, golden.gemm(a, b, config.numerics),
                                      err_msg=f"seed={seed}")
    assert cycles == os_stream_cycles(config, ks)[0]


@pytest.mark.parametrize("pipeline", ["none", "full"])
def test_array_survives_input_stalls(pipeline):
    config = SystolicConfig(3, 3, numerics=Numerics(acc_width=18, saturate=True),
                            pipeline=pipeline)
    seed = 7
    rng = np.random.default_rng(seed)
    tiles = [(np.full((3, 8), -128), np.full((8, 3), -128)),
             (rng.integers(-128, 128, (3, 2)), rng.integers(-128, 128, (2, 3)))]
    results, _ = simulate_array(config, tiles, stall_prob=0.4, seed=seed)
    for (a, b), got in zip(tiles, results):
        np.testing.assert_array_equal(got, golden.gemm(a, b, config.numerics))
    assert results[0][0, 0] == config.numerics.acc_max  # 8 * 16384 saturates 18 bits


@pytest.mark.parametrize("drain_tree", [False, True])
@pytest.mark.parametrize("stages", [1, 2, 3])
def test_pipelined_pe_delays_result_by_its_stages(stages, drain_tree):
    """A pipelined PE gives the same sum, exactly `stages` cycles later than the plain one."""
    dut = OutputStationaryPE(Numerics(), pipeline_stages=stages, drain_tree=drain_tree)
    assert dut.result_latency == 1 + stages
    seen = []

    async def tb(ctx):
        for k, (a, b) in enumerate([(3, 4), (-128, -128), (127, -5)]):
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.valid, 1)
            ctx.set(dut.last, int(k == 2))
            await ctx.tick()
            assert ctx.get(dut.a_out) == a  # forwarding stays one cycle
        ctx.set(dut.valid, 0)
        ctx.set(dut.last, 0)
        for _ in range(stages + 2):
            seen.append(ctx.get(dut.drain_out))
            await ctx.tick()

    run(dut, tb)
    # drain_out shows the sum result_latency cycles after the last beat, 0 before and after
    assert seen[stages] == 12 + 16384 - 635
    assert seen[:stages] + seen[stages + 1:] == [0] * (stages + 1)


@pytest.mark.parametrize("pipeline", ["none", "deep"])
def test_lut_multiplier_array_matches_golden_and_cycle_model(pipeline):
    config = SystolicConfig(3, 2, pipeline=pipeline, mult="lut")
    rng = np.random.default_rng(5)
    ks = [5, 1, 7, 3]
    tiles = [(rng.integers(-128, 128, (3, k)), rng.integers(-128, 128, (k, 2))) for k in ks]
    tiles[0] = (np.full((3, 5), -128), np.full((5, 2), -128))
    results, cycles = simulate_array(config, tiles)
    for (a, b), got in zip(tiles, results):
        np.testing.assert_array_equal(got, golden.gemm(a, b, config.numerics))
    assert cycles == os_stream_cycles(config, ks)[0]


@pytest.mark.parametrize("stages,multiplier,drain_tree", [
    (1, "dsp", False), (2, "lut", False), (3, "dsp", False), (2, "lut", True), (1, "dsp", True)])
def test_pipelined_pe_restarts_from_zero_after_any_reset(stages, multiplier, drain_tree):
    """The pipelined PE clears its accumulator in the cycle after a reset, also after one that
    a ResetInserter adds (as the board link's JOB and ABORT do), although the accumulator
    register itself has no reset."""
    from amaranth.hdl import Module, ResetInserter, Signal
    pe = OutputStationaryPE(Numerics(), pipeline_stages=stages, multiplier=multiplier,
                            drain_tree=drain_tree)
    abort = Signal()
    top = Module()
    top.submodules.pe = ResetInserter(abort)(pe)
    seen = []

    async def tb(ctx):
        for a, b in [(100, 100), (-7, 9), (5, 5), (1, 2), (9, 9)]:  # a tile, abandoned
            ctx.set(pe.a, a)
            ctx.set(pe.b, b)
            ctx.set(pe.valid, 1)
            await ctx.tick()
        ctx.set(pe.valid, 0)
        ctx.set(abort, 1)
        await ctx.tick()
        ctx.set(abort, 0)
        for k, (a, b) in enumerate([(3, 4), (-128, -128), (127, -5)]):
            ctx.set(pe.a, a)
            ctx.set(pe.b, b)
            ctx.set(pe.valid, 1)
            ctx.set(pe.last, int(k == 2))
            await ctx.tick()
        ctx.set(pe.valid, 0)
        ctx.set(pe.last, 0)
        for _ in range(stages + 2):
            seen.append(ctx.get(pe.drain_out))
            await ctx.tick()

    run(top, tb)
    assert seen[stages] == 12 + 16384 - 635


@pytest.mark.parametrize("bad", [4, -1, True, "full"])
def test_pe_rejects_bad_pipeline_stages(bad):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError):
            OutputStationaryPE(Numerics(), pipeline_stages=bad)
        gc.collect()


@pytest.mark.parametrize("pipeline,stages", [("none", 0), ("product", 1), ("full", 2)])
def test_array_latency_properties_follow_the_pipeline(pipeline, stages):
    from systolix.model.cycles import result_latency
    config = SystolicConfig(3, 5, pipeline=pipeline)
    dut = OutputStationaryArray(config)
    assert dut.pipeline_stages == stages
    assert dut.result_latency == 3 + 5 - 1 + stages == result_latency(config)
    assert dut.drain_cycles == 3  # the ready/drain behaviour does not change
    assert dut.completion_latency == dut.result_latency + 3 - 1
