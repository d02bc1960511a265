"""The weight-stationary array in Amaranth's simulator: exact sums, latency, and the schedule rule."""

import gc
import warnings

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.config import Dataflow, Numerics, SystolicConfig
from systolix.hdl.ws_array import WeightStationaryArray, WeightStationaryPE
from systolix.model.cycles import result_latency, ws_array_cycles

pytestmark = pytest.mark.amaranth


def ws(rows, cols, numerics=None, pipeline="none", mult="dsp"):
    return SystolicConfig(rows, cols, Dataflow.WEIGHT_STATIONARY, numerics or Numerics(),
                          pipeline=pipeline, mult=mult)


def drive(config, tiles, *, capture_offset=None, gap=0):
    """Run weight tiles back to back at the tightest legal schedule; return the psum rows.

    ``tiles`` is a list of (A rows (M x R), W (R x C)). Tile j's weights are pushed so that the
    capture lands ``capture_offset`` cycles after the previous swap (default R - 1: the earliest
    legal), swaps are max(M, R) + ``gap`` cycles apart.
    """
    R, C = config.rows, config.cols
    off = R - 1 if capture_offset is None else capture_offset
    # Build a cycle-by-cycle schedule: dict cycle -> inputs.
    sched = {}

    def put(t, **kw):
        sched.setdefault(t, {}).update(kw)

    swap_t = R  # prologue: first capture at R-1, activating swap (a bubble) at R
    for i in range(R):
        put(i, w=tiles[0][1][R - 1 - i], cap=int(i == R - 1))
    put(swap_t, swap=1)
    expect = []
    for j, (a_rows, _) in enumerate(tiles):
        span = max(len(a_rows), R) + gap
        for mi, row in enumerate(a_rows):
            put(swap_t + 1 + mi, a=row, valid=1)
        if j + 1 < len(tiles):
            q = swap_t + off
            for i in range(R):
                put(q - (R - 1) + i, w=tiles[j + 1][1][R - 1 - i], cap=int(i == R - 1))
        for mi, row in enumerate(a_rows):
            expect.append((swap_t + 1 + mi, row @ tiles[j][1]))
        swap_t += span
        put(swap_t, swap=1)
    end = max(sched) + R + C + 2 + config.pipeline_stages

    dut = WeightStationaryArray(config)
    got = []

    async def tb(ctx):
        for t in range(end):
            s = sched.get(t, {})
            ctx.set(dut.a, [int(x) for x in s.get("a", [0] * R)])
            ctx.set(dut.a_valid, s.get("valid", 0))
            ctx.set(dut.swap, s.get("swap", 0))
            ctx.set(dut.w, [int(x) for x in s.get("w", [0] * C)])
            ctx.set(dut.w_capture, s.get("cap", 0))
            if ctx.get(dut.psum_valid):
                got.append((t, [ctx.get(dut.psum[c]) for c in range(C)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return expect, got, dut.result_latency


# Latency, counted independently of the code: a beat's row 0 meets PE (0, 0) in the cycle it
# is offered and its partial sum is registered there; row r's activation is skewed r cycles,
# exactly when the sum arrives from above, so column 0's sum leaves PE (R - 1, 0)'s register R
# cycles after the beat. Activations hop one column per cycle, so column c leaves c cycles later,
# and the de-skew holds it C - 1 - c cycles more: every column together after R + C - 1.
@pytest.mark.parametrize("rows,cols,ms,latency", [
    (3, 2, [5, 1, 4, 3], 4), (1, 1, [2, 1, 3], 1), (4, 3, [4, 4, 6], 6), (2, 5, [1, 1, 1], 6),
])
@pytest.mark.parametrize("numerics", [Numerics(), Numerics(signed=False, acc_width=17)], ids=repr)
def test_sums_exact_and_on_time(rows, cols, ms, latency, numerics, seed):
    config = ws(rows, cols, numerics)
    rng = np.random.default_rng(seed)
    lo, hi = numerics.in_min, numerics.in_max + 1
    tiles = [(rng.integers(lo, hi, (m, rows)), rng.integers(lo, hi, (rows, cols))) for m in ms]
    expect, got, dut_latency = drive(config, tiles)
    assert dut_latency == latency
    assert len(got) == len(expect) == sum(ms), f"seed {seed}"
    assert [t for t, _ in got] == [t + latency for t, _ in expect], f"seed {seed}"
    for (t, want), (_, row) in zip(expect, got):
        assert row == list(want), f"cycle {t}, seed {seed}"


def test_column_sum_never_truncates():
    """All-min operands in 16 rows: 16 * 16384 needs 20 bits; the psum shape holds it exactly."""
    config = ws(16, 2)
    a = np.full((3, 16), -128)
    w = np.full((16, 2), -128)
    expect, got, _ = drive(config, [(a, w)])
    assert got[0][1] == [16 * 16384] * 2 and len(got) == 3


@pytest.mark.parametrize("offset,ok", [(2, True), (1, False), (4, True)])
def test_schedule_rule_is_tight(offset, ok):
    """A 3-row array must see the capture >= R - 1 = 2 cycles after the previous swap; one
    cycle earlier the bottom row still needs its shadow weight and gets the next tile's."""
    config = ws(3, 2)
    rng = np.random.default_rng(5)
    tiles = [(rng.integers(-128, 128, (6, 3)), rng.integers(-128, 128, (3, 2))) for _ in range(3)]
    expect, got, _ = drive(config, tiles, capture_offset=offset)
    assert len(got) == len(expect) == 18
    same = all(row == list(want) for (_, want), (_, row) in zip(expect, got))
    assert same == ok


@pytest.mark.parametrize("pipeline,stages", [("product", 1), ("full", 2), ("deep", 3)])
def test_pipelined_pe(pipeline, stages, seed):
    """Each pipeline stage delays the column sums by one cycle and changes nothing else: exact
    sums of tiles back to back, the same schedule rule (capture R - 1 after the previous swap
    is fine, one earlier is not), and the cycle model."""
    numerics = Numerics(in_width=5, acc_width=12, saturate=True)
    config = ws(3, 4, numerics, pipeline)
    rng = np.random.default_rng(seed)
    lo, hi = numerics.in_min, numerics.in_max + 1
    tiles = [(rng.integers(lo, hi, (m, 3)), rng.integers(lo, hi, (3, 4))) for m in (5, 1, 4, 3)]
    expect, got, dut_latency = drive(config, tiles)
    assert dut_latency == 3 + 4 - 1 + stages == result_latency(config)
    assert [t for t, _ in got] == [t + 6 + stages for t, _ in expect], f"seed {seed}"
    assert [row for _, row in got] == [list(want) for _, want in expect], f"seed {seed}"
    tiles = [(rng.integers(lo, hi, (6, 3)), rng.integers(lo, hi, (3, 4))) for _ in range(3)]
    for offset, ok in ((2, True), (1, False)):
        expect, got, _ = drive(config, tiles, capture_offset=offset)
        same = all(row == list(want) for (_, want), (_, row) in zip(expect, got))
        assert same == ok, f"capture offset {offset}, seed {seed}"


@pytest.mark.parametrize("pipeline", ["full", "deep"])
def test_pipelined_cycle_model(pipeline, seed):
    config = ws(3, 2, pipeline=pipeline)
    rng = np.random.default_rng(seed)
    tiles = [(rng.integers(-128, 128, (5, 3)), rng.integers(-128, 128, (3, 2)))
             for _ in range(3 * 2)]
    _, got, _ = drive(config, tiles)
    assert got[-1][0] + 1 == ws_array_cycles(config, 5, 7, 4).cycles, f"seed {seed}"


@pytest.mark.parametrize("pipeline", ["none", "deep"])
def test_lut_multiplier_array_matches_golden_and_cycle_model(pipeline, seed):
    """LUT-built multipliers (the portable Booth one, in simulation) take the PE's register
    stages as their own: the same exact sums at the same cycles, the same cycle model."""
    config = ws(3, 2, pipeline=pipeline, mult="lut")
    rng = np.random.default_rng(seed)
    tiles = [(rng.integers(-128, 128, (m, 3)), rng.integers(-128, 128, (3, 2)))
             for m in (5, 1, 4, 3, 5, 5)]
    tiles[0] = (np.full((5, 3), -128), np.full((3, 2), -128))
    expect, got, dut_latency = drive(config, tiles)
    assert dut_latency == result_latency(config) == 3 + 2 - 1 + config.pipeline_stages
    assert [t for t, _ in got] == [t + dut_latency for t, _ in expect], f"seed {seed}"
    assert [row for _, row in got] == [list(want) for _, want in expect], f"seed {seed}"
    same = [(rng.integers(-128, 128, (5, 3)), rng.integers(-128, 128, (3, 2))) for _ in range(6)]
    _, got, _ = drive(config, same)
    assert got[-1][0] + 1 == ws_array_cycles(config, 5, 7, 4).cycles, f"seed {seed}"


def test_pe_rejects_bad_arguments():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # half-built components are reported "never used"
        with pytest.raises(TypeError, match="numerics"):
            WeightStationaryPE("int8")
        with pytest.raises(ValueError, match="row"):
            WeightStationaryPE(Numerics(), row=-1)
        with pytest.raises(ValueError, match="dataflow"):
            WeightStationaryArray(SystolicConfig(2, 2))
        with pytest.raises(ValueError, match="pipeline_stages must be 0, 1, 2 or 3, not 4"):
            WeightStationaryPE(Numerics(), pipeline_stages=4)
        with pytest.raises(TypeError, match="shared_multiplier must be a bool, not 1"):
            WeightStationaryPE(Numerics(), pipeline_stages=1, shared_multiplier=1)
        with pytest.raises(ValueError, match="shared_multiplier needs pipeline_stages >= 1"):
            WeightStationaryPE(Numerics(), shared_multiplier=True)
        with pytest.raises(ValueError, match="multiplier must be 'dsp' or 'lut', not 'fpga'"):
            WeightStationaryPE(Numerics(), multiplier="fpga")
        with pytest.raises(ValueError, match="cannot be used with multiplier='lut'"):
            WeightStationaryPE(Numerics(), pipeline_stages=1, shared_multiplier=True,
                               multiplier="lut")
        gc.collect()


@pytest.mark.parametrize("rows,cols,m,k,n", [(3, 2, 5, 6, 4), (3, 2, 2, 7, 2), (1, 1, 3, 2, 1),
                                             (4, 3, 4, 4, 3)])
def test_ws_array_cycle_model(rows, cols, m, k, n, seed):
    """ws_array_cycles (the manifest's cycle model) counts the tightest legal schedule from the
    first weight push to the last psum beat, inclusive."""
    config = ws(rows, cols)
    rng = np.random.default_rng(seed)
    tiles_count = -(-k // rows) * -(-n // cols)
    tiles = [(rng.integers(-128, 128, (m, rows)), rng.integers(-128, 128, (rows, cols)))
             for _ in range(tiles_count)]
    expect, got, _ = drive(config, tiles)
    assert len(got) == len(expect) == m * tiles_count
    assert got[-1][0] + 1 == ws_array_cycles(config, m, k, n).cycles, f"seed {seed}"


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["product", "deep"])
def test_pipelined_array_in_a_double_buffered_stream(pipeline, seed):
    """The pipelined array inside a double-buffered engine: jobs back to back with kept
    weights, every result exact and every ``done`` where stream_cycles puts it."""
    from systolix.config import EngineConfig
    from systolix.model.cycles import stream_cycles
    from test_engine_stream import _check, _rand, simulate_stream
    config = EngineConfig(ws(3, 2, pipeline=pipeline), 5, 7, 7, buffering="double")
    rng = np.random.default_rng(seed)
    n = config.numerics
    jobs, b = [], None
    for m, k, p, keep in [(5, 7, 5, False), (4, 7, 5, True), (1, 2, 7, False), (5, 7, 7, False)]:
        if not keep:
            b = _rand(rng, n, (k, p))
        jobs.append((_rand(rng, n, (m, k)), b, keep))
    results, done, first = simulate_stream(config, jobs)
    _check(config, jobs, results, f"seed {seed}")
    model = stream_cycles(config, [(a.shape[0], a.shape[1], bb.shape[1], keep)
                                   for a, bb, keep in jobs])
    assert [d - first for d in done] == model["done"], f"seed {seed}"
