"""The matrix engine in Amaranth's simulator: both dataflows, awkward shapes, stalls, rejects."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.model import golden, tiling
from systolix.config import Dataflow, EngineConfig, Numerics, SystolicConfig
from systolix.model.cycles import engine_cycles
from systolix.hdl.engine import MatrixEngine

import slow_quant
from helpers import requant_entries

pytestmark = pytest.mark.amaranth


def engine(rows, cols, dataflow, numerics=None, **limits):
    return EngineConfig(SystolicConfig(rows, cols, Dataflow(dataflow), numerics or Numerics()),
                        **limits)


#: ``first c.valid cycle - last load handshake cycle (A, B or q) = compute + PORT_GAP`` (plus the
#: requantizer's stages): the cycle after the last word, in which LOAD sees it counted and
#: leaves (1); the compute phase; the drain's first buffer read (1); its word valid one cycle
#: later (1). Backpressure on C cannot delay the first ``c.valid``, stalls on A/B cannot move
#: the compute phase: the measurement is exact with stalls too.
PORT_GAP = 3


def simulate(config, jobs, *, stall=0.0, seed=0, fill=0):
    """Run ``jobs`` (list of (A, B), or (m, k, n) tuples to be rejected) back to back;
    ``fill`` goes into the padding lanes of the A and B words.

    Returns per job: (C or None, error flag, compute cycles, total cycles from command
    handshake to ``done``). The compute cycles are measured at the ports (see
    :data:`PORT_GAP`) and must equal the engine's own ``cycles`` output.
    """
    dut = MatrixEngine(config)
    rng = random.Random(seed)
    out = []

    async def tb(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            await ctx.tick()
            cycle += 1
            assert cycle < 200_000, "hung"

        for job in jobs:
            q_words = []
            if isinstance(job[0], int):
                dims, a_words, b_words = job, [], []
            else:
                a, b = job[:2]
                dims = (a.shape[0], a.shape[1], b.shape[1])
                a_words = tiling.engine_a_words(config, a, fill)
                b_words = tiling.engine_b_words(config, b, fill)
                if config.requant is not None:
                    q_words = tiling.engine_q_words(config, job[2], dims[2])
            ctx.set(dut.cmd.payload, {"m": dims[0], "k": dims[1], "n": dims[2]})
            ctx.set(dut.cmd.valid, 1)
            while not ctx.get(dut.cmd.ready):
                await tick()
            start = cycle
            await tick()
            ctx.set(dut.cmd.valid, 0)
            ai = bi = qi = 0
            words = []
            last_load = first_c = None
            while True:
                if first_c is None and ctx.get(dut.c.valid):
                    first_c = cycle
                if config.requant is not None:
                    offer_q = qi < len(q_words) and rng.random() >= stall
                    ctx.set(dut.q.valid, offer_q)
                    if offer_q:
                        ctx.set(dut.q.payload.as_value(), q_words[qi])
                    if offer_q and ctx.get(dut.q.ready):
                        qi += 1
                        last_load = cycle
                # offer (maybe) this cycle's words, then see what the handshake took
                offer_a = ai < len(a_words) and rng.random() >= stall
                offer_b = bi < len(b_words) and rng.random() >= stall
                take_c = rng.random() >= stall
                ctx.set(dut.a.valid, offer_a)
                ctx.set(dut.b.valid, offer_b)
                ctx.set(dut.c.ready, take_c)
                if offer_a:
                    ctx.set(dut.a.payload.as_value(), a_words[ai])
                if offer_b:
                    ctx.set(dut.b.payload.as_value(), b_words[bi])
                if ctx.get(dut.done):
                    break
                if offer_a and ctx.get(dut.a.ready):
                    ai += 1
                    last_load = cycle
                if offer_b and ctx.get(dut.b.ready):
                    bi += 1
                    last_load = cycle
                if take_c and ctx.get(dut.c.valid):
                    words.append(ctx.get(dut.c.payload.as_value()))
                await tick()
            total = cycle - start
            err = ctx.get(dut.error)
            if isinstance(job[0], int):
                out.append((None, err, ctx.get(dut.cycles), total))
                continue
            assert ai == len(a_words) and bi == len(b_words), "not all words were taken"
            c, last = tiling.engine_c_matrix(config, words, *dims[::2])
            assert last[-1] and not last[:-1].any(), "last flag misplaced"
            compute = first_c - last_load - PORT_GAP - config.output_latency
            assert compute == ctx.get(dut.cycles), \
                f"compute phase {compute} cycles at the ports, {ctx.get(dut.cycles)} by `cycles`"
            out.append((c, err, compute, total))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(out) == len(jobs), f"{len(out)} results for {len(jobs)} jobs"
    return out


def rand(rng, n, shape):
    return rng.integers(n.in_min, n.in_max + 1, shape)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("rows,cols", [(3, 2), (2, 4), (1, 1)])
def test_awkward_shapes_exact_results_and_cycles(dataflow, rows, cols, seed):
    config = engine(rows, cols, dataflow, max_m=9, max_k=7, max_n=5)
    rng = np.random.default_rng(seed)
    n = config.numerics
    shapes = [(9, 7, 5), (1, 1, 1), (4, 3, 2), (5, 1, 3), (1, 7, 1), (2, 6, 5)]
    jobs = [(rand(rng, n, (m, k)), rand(rng, n, (k, p))) for m, k, p in shapes]
    for (a, b), (c, err, cycles, total) in zip(jobs, simulate(config, jobs)):
        where = f"{a.shape}x{b.shape} seed {seed}"
        assert not err
        np.testing.assert_array_equal(c, golden.gemm(a, b, n, config.accumulation_chunk),
                                      err_msg=where)
        model = engine_cycles(config, a.shape[0], a.shape[1], b.shape[1])
        assert (cycles, total) == (model.compute, model.total), where


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_stalls_change_nothing_but_time(dataflow, seed):
    config = engine(2, 3, dataflow, Numerics(acc_width=18, saturate=True),
                    max_m=6, max_k=9, max_n=7)
    rng = np.random.default_rng(seed)
    n = config.numerics
    jobs = [(np.full((6, 9), -128), np.full((9, 7), -128)),
            (rand(rng, n, (5, 8)), rand(rng, n, (8, 7)))]
    results = simulate(config, jobs, stall=0.4, seed=seed)
    for (a, b), (c, err, cycles, total) in zip(jobs, results):
        np.testing.assert_array_equal(c, golden.gemm(a, b, n, config.accumulation_chunk),
                                      err_msg=f"seed {seed}")
        model = engine_cycles(config, a.shape[0], a.shape[1], b.shape[1])
        assert cycles == model.compute and total > model.total
    assert results[0][0][0, 0] == n.acc_max


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_rejected_command_leaves_the_next_job_intact(dataflow, seed):
    config = engine(2, 2, dataflow, max_m=4, max_k=4, max_n=4)
    rng = np.random.default_rng(seed)
    n = config.numerics
    good = (rand(rng, n, (4, 4)), rand(rng, n, (4, 4)))
    jobs = [good, (5, 4, 4), (0, 1, 1), (4, 4, 65535), good]
    results = simulate(config, jobs)
    assert [r[1] for r in results] == [0, 1, 1, 1, 0]
    assert [r[3] for r in results[1:4]] == [1, 1, 1]  # done one cycle after the command
    want = golden.gemm(*good, n)
    np.testing.assert_array_equal(results[0][0], want)
    np.testing.assert_array_equal(results[4][0], want)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_requantized_output(dataflow, out_signed, seed):
    """The engine's C leaves through the requantizer: per-column bias/multiplier/shift, zero
    point and clamps, bit-exact with the integer definitions, with stalls on every stream.
    The parameters are fitted to each job's accumulators, so most outputs are unclamped and
    the rounding (ties included: tiny operands give shifts 0..2) shows in them."""
    from systolix.config import RequantConfig
    config = EngineConfig(SystolicConfig(2, 3, Dataflow(dataflow)), 5, 9, 7,
                          requant=RequantConfig(3, out_signed))
    rng = np.random.default_rng(seed)
    shapes = [(5, 9, 7), (5, 9, 7), (3, 4, 2), (1, 1, 1), (5, 8, 6), (4, 9, 7), (2, 3, 5),
              (5, 9, 7)]
    jobs = requant_entries(rng, config, shapes, out_signed)
    results = simulate(config, jobs, stall=0.3, seed=seed)
    assert len(results) == len(jobs)
    for (a, b, q), (c, err, cycles, total) in zip(jobs, results):
        acc = golden.gemm(a, b, config.numerics, config.accumulation_chunk)
        assert c.tolist() == slow_quant.requantize_slow(acc, q).tolist(), f"seed {seed}"
        assert c.dtype == (np.int8 if out_signed else np.uint8)
        assert cycles == engine_cycles(config, *a.shape, b.shape[1]).compute
    # without stalls the whole job is exact too (the requantizer adds its latency once)
    results = simulate(config, jobs[:3])
    assert len(results) == 3
    for (a, b, _), (_, _, _, total) in zip(jobs, results):
        assert total == engine_cycles(config, *a.shape, b.shape[1]).total
