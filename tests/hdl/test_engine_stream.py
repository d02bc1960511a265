"""Job streams through the matrix engine in Amaranth's simulator: commands offered back to
back, both buffering schemes, keep-weights, rejects in the middle of a stream, random stalls on
every stream, and the stream's cycles against :func:`systolix.model.cycles.stream_cycles`."""

import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from systolix.config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from systolix.hdl.engine import MatrixEngine
from systolix.model import golden, tiling
from systolix.model.cycles import engine_cycles, stream_cycles

import slow_quant
from helpers import requant_entries

pytestmark = pytest.mark.amaranth


def simulate_stream(config, jobs, *, stall=0.0, seed=0):
    """Offer every job's command, words and C sink at once, as flat streams (the engine takes
    each stream's words only for the job it is loading).

    ``jobs``: ``(A, B, keep)`` or ``(A, B, params, keep)`` (``keep``: reuse the weights in the
    engine, B is then not sent), or ``(m, k, n, keep)`` ints: a command the engine must reject.

    Returns ``(results, done_cycles, first_handshake)``: per command ``(C or None, error,
    cycles)`` at its ``done`` pulse, in order.
    """
    dut = MatrixEngine(config)
    rng = random.Random(seed)
    rq = config.requant is not None
    cmds, a_q, b_q, q_q, c_counts = [], [], [], [], []
    for job in jobs:
        if isinstance(job[0], int):
            cmds.append(job)
            continue
        a, b, *rest = job
        keep = rest[-1]
        m, k = a.shape
        n = b.shape[1]
        cmds.append((m, k, n, keep))
        a_q.extend(tiling.engine_a_words(config, a))
        if not keep:
            b_q.extend(tiling.engine_b_words(config, b))
            if rq:
                q_q.extend(tiling.engine_q_words(config, rest[0], n))
        c_counts.append(engine_cycles(config, m, k, n).c_words)
    seen = {"results": [], "done": [], "first": None, "words": []}

    async def tb(ctx):
        cycle = 0
        ci = 0
        streams = [(dut.a, a_q), (dut.b, b_q)] + ([(dut.q, q_q)] if rq else [])
        idx = [0] * len(streams)
        while len(seen["done"]) < len(cmds):
            offer_cmd = ci < len(cmds) and rng.random() >= stall
            ctx.set(dut.cmd.valid, offer_cmd)
            if offer_cmd:
                m, k, n, keep = cmds[ci]
                ctx.set(dut.cmd.payload, {"m": m, "k": k, "n": n, "keep": keep})
            offers = []
            for s, (port, words) in enumerate(streams):
                offer = idx[s] < len(words) and rng.random() >= stall
                ctx.set(port.valid, offer)
                if offer:
                    ctx.set(port.payload.as_value(), words[idx[s]])
                offers.append(offer)
            take_c = rng.random() >= stall
            ctx.set(dut.c.ready, take_c)
            if ctx.get(dut.done):
                seen["done"].append(cycle)
                seen["results"].append((ctx.get(dut.error), ctx.get(dut.cycles)))
            if offer_cmd and ctx.get(dut.cmd.ready):
                seen["first"] = cycle if seen["first"] is None else seen["first"]
                ci += 1
            for s, (port, _) in enumerate(streams):
                if offers[s] and ctx.get(port.ready):
                    idx[s] += 1
            if take_c and ctx.get(dut.c.valid):
                seen["words"].append(ctx.get(dut.c.payload.as_value()))
            await ctx.tick()
            cycle += 1
            assert cycle < 300_000, "hung"
        for _ in range(20):  # nothing after the last done
            assert not ctx.get(dut.done) and not ctx.get(dut.c.valid), "activity after the end"
            await ctx.tick()
        seen["idx"] = idx

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert seen["idx"] == [len(a_q), len(b_q)] + ([len(q_q)] if rq else []), \
        "not all words were taken"
    assert len(seen["words"]) == sum(c_counts), "C words beyond the jobs'"
    out, w = [], 0
    for job, (err, cyc) in zip(jobs, seen["results"]):
        if isinstance(job[0], int):
            out.append((None, err, cyc))
            continue
        count = engine_cycles(config, job[0].shape[0], job[0].shape[1], job[1].shape[1]).c_words
        c, last = tiling.engine_c_matrix(config, seen["words"][w:w + count], job[0].shape[0],
                                         job[1].shape[1])
        assert last[-1] and not last[:-1].any(), "last flag misplaced"
        w += count
        out.append((c, err, cyc))
    return out, seen["done"], seen["first"]


def _rand(rng, n, shape):
    return rng.integers(n.in_min, n.in_max + 1, shape)


def _check(config, jobs, results, where):
    n = config.numerics
    for job, (c, err, cyc) in zip(jobs, results):
        if isinstance(job[0], int):
            assert err == 1 and cyc == 0, where
            continue
        a, b = job[:2]
        acc = golden.gemm(a, b, n, config.accumulation_chunk)
        if config.requant is not None:
            want = slow_quant.requantize_slow(acc, job[2])
            assert c.tolist() == want.tolist(), where
        else:
            np.testing.assert_array_equal(c, acc, err_msg=where)
        assert err == 0, where
        assert cyc == engine_cycles(config, a.shape[0], a.shape[1], b.shape[1]).compute, where


def _configs():
    yield EngineConfig(SystolicConfig(2, 3, Dataflow.OUTPUT_STATIONARY), 5, 7, 7)
    yield EngineConfig(SystolicConfig(3, 2, Dataflow.WEIGHT_STATIONARY), 5, 7, 7)
    yield EngineConfig(core=TensorCoreConfig(2, 2, 2, 1), max_m=5, max_k=7, max_n=7, cores=2)
    # pipelined PEs: the A and B words are registered on their way to the array
    yield EngineConfig(SystolicConfig(2, 3, Dataflow.OUTPUT_STATIONARY, pipeline="deep"), 5, 7, 7)
    yield EngineConfig(SystolicConfig(3, 2, Dataflow.WEIGHT_STATIONARY, pipeline="full"), 5, 7, 7)
    # R >= 4: the read-modify-write's accumulate registers (one more compute cycle)
    yield EngineConfig(SystolicConfig(4, 2, Dataflow.WEIGHT_STATIONARY, pipeline="deep"), 5, 7, 7)
    # a pipelined tensor core: the drain's row select after the C buffer's output register
    yield EngineConfig(core=TensorCoreConfig(2, 2, 2, 2), max_m=5, max_k=7, max_n=7, cores=2)
    # LUT multipliers: the columns drain through OR trees, rows leaving top row first
    yield EngineConfig(SystolicConfig(3, 2, Dataflow.OUTPUT_STATIONARY, pipeline="full",
                                      mult="lut"), 5, 7, 7)


SLOW = pytest.mark.slow
BUFFERINGS = [pytest.param("single", marks=SLOW), "double"]


@pytest.mark.parametrize("buffering", BUFFERINGS)
@pytest.mark.parametrize("index", [pytest.param(0, id="os", marks=SLOW), pytest.param(1, id="ws"),
                                   pytest.param(2, id="tc", marks=SLOW),
                                   pytest.param(3, id="os-deep"),
                                   pytest.param(4, id="ws-full", marks=SLOW),
                                   pytest.param(5, id="ws-deep-r4"),
                                   pytest.param(6, id="tc-p2"),
                                   pytest.param(7, id="os-lut")])
def test_stream_exact_results_and_cycles(index, buffering, seed):
    """Jobs back to back, keep-weights among them: bit-exact, and with no stalls every
    ``done`` in the cycle :func:`stream_cycles` says."""
    base = list(_configs())[index]
    config = EngineConfig(**{**{f: getattr(base, f) for f in ("array", "max_m", "max_k", "max_n",
                                                               "core", "cores")},
                             "buffering": buffering})
    rng = np.random.default_rng(seed)
    n = config.numerics
    b = _rand(rng, n, (7, 5))
    shapes = [(5, 7, 5, False), (4, 7, 5, True), (1, 7, 5, True), (5, 2, 7, False),
              (3, 3, 3, False), (5, 7, 7, False), (2, 7, 7, True)]
    jobs = []
    for m, k, p, keep in shapes:
        if not keep:
            b = _rand(rng, n, (k, p))
        jobs.append((_rand(rng, n, (m, k)), b, keep))
    results, done, first = simulate_stream(config, jobs)
    _check(config, jobs, results, f"seed {seed}")
    model = stream_cycles(config, [(a.shape[0], a.shape[1], bb.shape[1], keep)
                                   for a, bb, keep in jobs])
    assert [d - first for d in done] == model["done"]
    # the same with random stalls on every stream: results and `cycles` unchanged
    results, _, _ = simulate_stream(config, jobs, stall=0.3, seed=seed)
    _check(config, jobs, results, f"seed {seed}, stalls")


@pytest.mark.parametrize("pipeline", ["none", "full"])  # full: the drain reads on credits
@pytest.mark.parametrize("buffering", BUFFERINGS)
def test_requantizing_stream(buffering, pipeline, seed):
    """A WS requantizing engine: weights and parameters kept across jobs, parameters of a new
    layer waiting for their bank while an earlier job drains; exact with and without stalls.
    A pipelined one also registers each C word and its parameters before the requantizer."""
    config = EngineConfig(SystolicConfig(2, 3, Dataflow.WEIGHT_STATIONARY, pipeline=pipeline),
                          6, 9, 7, requant=RequantConfig(3, True), buffering=buffering)
    rng = np.random.default_rng(seed)
    shapes = [(6, 9, 7), (6, 2, 7), (6, 9, 7), (1, 1, 1), (6, 2, 7), (3, 4, 2)]
    entries = requant_entries(rng, config, shapes, True)
    jobs = []
    for i, (a, b, q) in enumerate(entries):
        jobs.append((a, b, q, False))
        if i % 2 == 0:  # a keep-weights job with the same B and parameters
            jobs.append((_rand(rng, config.numerics, (2, a.shape[1])), b, q, True))
    results, done, first = simulate_stream(config, jobs)
    _check(config, jobs, results, f"seed {seed}")
    model = stream_cycles(config, [(j[0].shape[0], j[0].shape[1], j[1].shape[1], j[3])
                                   for j in jobs])
    assert [d - first for d in done] == model["done"]
    results, _, _ = simulate_stream(config, jobs, stall=0.3, seed=seed)
    _check(config, jobs, results, f"seed {seed}, stalls")


@pytest.mark.parametrize("buffering", BUFFERINGS)
@pytest.mark.parametrize("dataflow", [pytest.param("os", marks=SLOW), "ws"])
def test_rejects_inside_a_stream(dataflow, buffering, seed):
    """Bad dimensions, keep-weights before any weights and keep-weights of another K x N: each
    gets its ``done`` with ``error`` in command order, and the jobs around it are intact."""
    config = EngineConfig(SystolicConfig(2, 2, Dataflow(dataflow)), 4, 4, 4,
                          buffering=buffering)
    rng = np.random.default_rng(seed)
    n = config.numerics
    b = _rand(rng, n, (4, 3))
    jobs = [(1, 4, 3, True),                    # keep-weights: none loaded yet
            (_rand(rng, n, (4, 4)), b, False),
            (5, 4, 3, False),                   # M beyond the buffers
            (_rand(rng, n, (3, 4)), b, True),
            (2, 3, 3, True),                    # keep-weights, K differs
            (2, 4, 4, True),                    # keep-weights, N differs
            (0, 1, 1, False),
            (_rand(rng, n, (2, 4)), b, True)]
    for stall in (0.0, 0.3):
        results, _, _ = simulate_stream(config, jobs, stall=stall, seed=seed)
        _check(config, jobs, results, f"seed {seed}, stall {stall}")


@pytest.mark.parametrize("buffering", BUFFERINGS)
def test_reset_mid_stream(buffering, seed):
    """Reset cancels the jobs in flight; afterwards keep-weights is rejected (the weights
    are no longer known) and a new stream runs exactly."""
    config = EngineConfig(SystolicConfig(2, 2, Dataflow.OUTPUT_STATIONARY), 4, 4, 4,
                          buffering=buffering)
    rng = np.random.default_rng(seed)
    n = config.numerics
    jobs = [(_rand(rng, n, (4, 4)), _rand(rng, n, (4, 4)), False) for _ in range(3)]
    after = [(1, 4, 4, True), jobs[0], (_rand(rng, n, (3, 4)), jobs[0][1], True)]
    for cut in (3, 9, 17, 29):  # during load, compute, drain, and the second job
        results = _after_reset(config, jobs, after, cut)
        _check(config, after, results, f"seed {seed}, reset in cycle {cut}")


def _after_reset(config, before, after, cut):
    """Offer ``before``'s first commands and words, reset in cycle ``cut``, then run ``after``
    job by job; returns ``after``'s results."""
    dut = MatrixEngine(config)
    top = Module()
    top.domains.sync = cd = ClockDomain()
    top.submodules.dut = dut
    results = []
    a_words = [w for a, b, _ in before for w in tiling.engine_a_words(config, a)]
    b_words = [w for a, b, _ in before for w in tiling.engine_b_words(config, b)]

    async def tb(ctx):
        # the interrupted stream: command 0 and part of its load and compute
        ctx.set(dut.cmd.payload, {"m": 4, "k": 4, "n": 4, "keep": 0})
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.c.ready, 1)
        for i in range(cut):
            ctx.set(dut.a.valid, 1)
            ctx.set(dut.a.payload.as_value(), a_words[i % len(a_words)])
            ctx.set(dut.b.valid, 1)
            ctx.set(dut.b.payload.as_value(), b_words[i % len(b_words)])
            await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        ctx.set(dut.a.valid, 0)
        ctx.set(dut.b.valid, 0)
        ctx.set(cd.rst, 1)
        assert not ctx.get(dut.cmd.ready) and not ctx.get(dut.a.ready)
        await ctx.tick()
        ctx.set(cd.rst, 0)
        assert not ctx.get(dut.busy) and not ctx.get(dut.c.valid)
        for job in after:
            if isinstance(job[0], int):
                m, k, n, keep = job
                aw, bw = [], []
            else:
                a, b, keep = job
                (m, k), n = a.shape, b.shape[1]
                aw = tiling.engine_a_words(config, a)
                bw = [] if keep else tiling.engine_b_words(config, b)
            ctx.set(dut.cmd.payload, {"m": m, "k": k, "n": n, "keep": keep})
            ctx.set(dut.cmd.valid, 1)
            while not ctx.get(dut.cmd.ready):
                await ctx.tick()
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)
            ai = bi = 0
            got = []
            for _ in range(1000):
                ctx.set(dut.a.valid, ai < len(aw))
                if ai < len(aw):
                    ctx.set(dut.a.payload.as_value(), aw[ai])
                ctx.set(dut.b.valid, bi < len(bw))
                if bi < len(bw):
                    ctx.set(dut.b.payload.as_value(), bw[bi])
                if ctx.get(dut.done):
                    break
                ai += ai < len(aw) and ctx.get(dut.a.ready)
                bi += bi < len(bw) and ctx.get(dut.b.ready)
                if ctx.get(dut.c.valid):
                    got.append(ctx.get(dut.c.payload.as_value()))
                await ctx.tick()
            else:
                raise AssertionError("no done after the reset")
            c = None if isinstance(job[0], int) else \
                tiling.engine_c_matrix(config, got, m, n)[0]
            results.append((c, ctx.get(dut.error), ctx.get(dut.cycles)))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return results


def test_double_buffered_isolated_jobs_take_the_single_buffered_cycles(seed):
    """Job by job (each command after the previous ``done``) a double-buffered engine is the
    single-buffered one at the ports: same compute phase, same whole-job cycles, a reject's
    ``done`` one cycle after its command."""
    from test_engine import simulate
    config = EngineConfig(SystolicConfig(3, 2, Dataflow.WEIGHT_STATIONARY), 9, 7, 5,
                          buffering="double")
    rng = np.random.default_rng(seed)
    n = config.numerics
    jobs = [(_rand(rng, n, (m, k)), _rand(rng, n, (k, p)))
            for m, k, p in [(9, 7, 5), (1, 1, 1), (4, 3, 2)]] + [(10, 1, 1)]
    for job, (c, err, cycles, total) in zip(jobs, simulate(config, jobs)):
        if isinstance(job[0], int):
            assert err and total == 1
            continue
        model = engine_cycles(config, job[0].shape[0], job[0].shape[1], job[1].shape[1])
        assert (cycles, total, err) == (model.compute, model.total, 0), f"seed {seed}"
        np.testing.assert_array_equal(c, golden.gemm(*job, n), err_msg=f"seed {seed}")
