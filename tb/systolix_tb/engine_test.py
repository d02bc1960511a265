"""cocotb test: run the jobs of a job file through a generated matrix engine.

Per job: offer the command, load A and B (concurrently, with random stalls if asked, and an
overrun word that the engine must refuse), let the engine compute with no Python in the loop,
drain C (with random backpressure), then check the result, the ``error`` flag, the ``done``
pulse and the cycles: the compute phase is measured at the ports (see :data:`PORT_GAP`) and
must equal the engine's own ``cycles``. Outside the drains (between jobs, while loading, and
for :data:`TAIL_CYCLES` after the last job) no C word may appear. Started by
:func:`systolix.sim.runner.run`.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from systolix.model import tiling
from systolix.model.cycles import engine_cycles
from systolix.sim.job import JOB_ENV, JobOutcome, is_reject, read_job, write_outcome
from systolix_tb.scoreboard import GemmScoreboard
from systolix_tb.streams import StreamSink, StreamSource

PERIOD_NS = 10
#: ``first c__valid cycle - last load handshake cycle = compute + PORT_GAP`` (plus the
#: requantizer's stages): the cycle after the last A/B/q word, in which LOAD sees it counted and
#: leaves (1); the compute phase; the drain's first buffer read (1); that word valid one cycle
#: later (1). Stalls on A/B/q only move the last handshake and backpressure on C cannot delay the
#: first ``c__valid``, so the measurement is exact with stalls too.
PORT_GAP = 3
#: Idle cycles after the last job in which no C word (and no ``done``) may appear.
TAIL_CYCLES = 64


def now():
    return int(get_sim_time(unit="ns")) // PERIOD_NS


async def reset(dut):
    for name in ("cmd__valid", "a__valid", "b__valid", "c__ready", "cmd__payload"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


class Quiet:
    """Records C words offered outside a job's drain (``check`` in the read-only phase)."""

    def __init__(self, dut, failures):
        self._valid = dut.c__valid
        self._failures = failures
        self._reported = set()
        self.where = "before the first job"

    def check(self):
        if int(self._valid.value) and self.where not in self._reported:
            self._reported.add(self.where)
            self._failures.append(f"c__valid high {self.where} (cycle {now()})")


async def issue(dut, dims, clk, read_only, quiet):
    """Offer the command until the engine takes it; returns the handshake cycle."""
    m, k, n = dims
    dut.cmd__payload.value = m | (k << 16) | (n << 32)
    dut.cmd__valid.value = 1
    while True:
        await read_only
        quiet.check()
        if int(dut.cmd__ready.value):
            cycle = now()
            await clk
            dut.cmd__valid.value = 0
            return cycle
        await clk


async def wait_done(dut, clk, read_only, limit, quiet=None):
    """Wait (at most ``limit`` cycles) for the ``done`` pulse; returns its cycle.

    Call in a writable phase; returns in the read-only phase of the ``done`` cycle."""
    for _ in range(limit):
        await read_only
        if quiet is not None:
            quiet.check()
        if int(dut.done.value):
            return now()
        await clk
    raise AssertionError(f"no done pulse within {limit} cycles")


@cocotb.test()
async def run_engine_job(dut):
    job_path = Path(os.environ[JOB_ENV])
    job = read_job(job_path)
    config = job.config
    rng = random.Random(job.seed)
    dut._log.info("job %s: %d entries on %s, stall_prob=%s seed=%d", job_path,
                  len(job.operands), config.name, job.stall_prob, job.seed)

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    await reset(dut)
    clk, read_only = RisingEdge(dut.clk), ReadOnly()
    await clk

    outcome = JobOutcome()
    scoreboard = GemmScoreboard(config.numerics, dut._log, config.accumulation_chunk)
    quiet = Quiet(dut, outcome.failures)
    dut.c__ready.value = 1  # outside a drain: a stray C word would be taken, and is reported
    first = None
    for j, entry in enumerate(job.operands):
        if is_reject(entry):  # a command the engine must reject
            start = await issue(dut, entry, clk, read_only, quiet)
            first = start if first is None else first
            quiet.where = f"while rejecting command {j}"
            end = await wait_done(dut, clk, read_only, 4, quiet)
            quiet.where = f"after rejecting command {j}"
            await clk
            outcome.results.append(None)
            outcome.cycles.append(None)
            outcome.job_cycles.append(end - start)
            outcome.errors.append(int(dut.error.value))
            continue

        a, b = entry[:2]
        params = entry[2] if len(entry) == 3 else None
        m, k = a.shape
        n = b.shape[1]
        model = engine_cycles(config, m, k, n)
        overrun = (1 << len(dut.a__payload)) - 1  # all ones: any lane taken would show
        a_src = StreamSource(dut, "a", tiling.engine_a_words(config, a),
                             stall_prob=job.stall_prob, rng=rng, overrun=overrun)
        b_src = StreamSource(dut, "b", tiling.engine_b_words(config, b),
                             stall_prob=job.stall_prob, rng=rng,
                             overrun=(1 << len(dut.b__payload)) - 1)
        sources = [a_src, b_src]
        if config.requant is not None:
            sources.append(StreamSource(dut, "q", tiling.engine_q_words(config, params, n),
                                        stall_prob=job.stall_prob, rng=rng,
                                        overrun=(1 << len(dut.q__payload)) - 1))
        start = await issue(dut, (m, k, n), clk, read_only, quiet)
        first = start if first is None else first
        quiet.where = f"while loading gemm {j}"
        wall = [time.perf_counter()]
        last_load = start

        # Load: both streams at once; a finished stream keeps offering a word nobody may take.
        async def cycle():
            nonlocal last_load
            for src in sources:
                src.drive()
            await read_only
            quiet.check()
            before = sum(src.taken for src in sources)
            for src in sources:
                src.sample()
            if sum(src.taken for src in sources) != before:
                last_load = now()
            await clk

        budget = (model.load + 10) * (1 + int(40 * job.stall_prob)) + 100
        while not all(src.done for src in sources):
            await cycle()
            budget -= 1
            if budget < 0:
                raise AssertionError(f"gemm {j}: load stuck at "
                                     f"{[src.taken for src in sources]} words (A, B, params)")
        for _ in range(2):  # the overrun words stay offered into the compute phase
            await cycle()
        for src in sources:
            src.idle()
        if any(src.extra for src in sources):
            outcome.failures.append(f"gemm {j}: engine took {[src.extra for src in sources]} "
                                    f"words beyond the job (A, B, params)")

        wall.append(time.perf_counter())
        # Compute: no Python per cycle; the drain starts when c__valid first rises.
        sink = StreamSink(dut, "c", model.c_words, stall_prob=job.stall_prob, rng=rng)
        sink.drive()
        await read_only
        if int(dut.c__valid.value):
            outcome.failures.append(f"gemm {j}: c__valid already high when the load ended")
        else:
            await with_timeout(RisingEdge(dut.c__valid), (model.compute + 200) * PERIOD_NS,
                               "ns")
            await read_only
        first_c = now()
        wall.append(time.perf_counter())
        budget = (model.drain + 10) * (1 + int(40 * job.stall_prob)) + 100
        while True:
            sink.sample()
            if sink.done:
                break
            await clk
            sink.drive()
            await read_only
            budget -= 1
            if budget < 0:
                raise AssertionError(f"gemm {j}: drain stuck after {len(sink.payloads)} words")
        await clk
        end = await wait_done(dut, clk, read_only, 1)
        quiet.where = f"after gemm {j}'s last word"
        quiet.check()
        await clk
        sink.idle_ready()

        # The compute phase as the ports show it, against the engine's own counter; with no
        # stalls the load and drain phases against the model too (check_engine compares the
        # compute phase with the model in every case).
        out_lat = config.requant.latency if config.requant is not None else 0
        compute = first_c - last_load - PORT_GAP - out_lat
        if compute != int(dut.cycles.value):
            outcome.failures.append(f"gemm {j}: compute phase {compute} cycles at the ports, "
                                    f"the engine's `cycles` says {int(dut.cycles.value)}")
        if not job.stall_prob and (last_load - start, end - first_c) != (model.load,
                                                                        model.drain):
            outcome.failures.append(f"gemm {j}: load {last_load - start} and drain "
                                    f"{end - first_c} cycles, model {model.load} and "
                                    f"{model.drain}")

        wall.append(time.perf_counter())
        dut._log.info("gemm %d wall seconds: load %.2f, compute %.2f, drain %.2f", j,
                      *(b - a for a, b in zip(wall, wall[1:])))
        try:
            c, last = tiling.engine_c_matrix(config, sink.payloads, m, n)
        except ValueError as e:
            outcome.failures.append(f"gemm {j}: {e}")
            c = None
        else:
            if not last[-1] or last[:-1].any():
                outcome.failures.append(f"gemm {j}: `last` not on the final C word only")
            scoreboard.check(f"gemm {j} ({m}x{k}x{n})", a, b, c, params)
        outcome.results.append(c)
        outcome.cycles.append(compute)
        outcome.job_cycles.append(end - start)
        outcome.errors.append(int(dut.error.value))
        dut._log.info("gemm %d: %dx%dx%d compute %d cycles (model %d), job %d (model %d)", j,
                      m, k, n, outcome.cycles[-1], model.compute, end - start, model.total)
    outcome.total_cycles = now() - first
    quiet.where = "after the last job"
    for _ in range(TAIL_CYCLES):
        await read_only
        quiet.check()
        if int(dut.done.value):
            outcome.failures.append(f"`done` pulsed after the last job (cycle {now()})")
            break
        await clk
    outcome.failures.extend(scoreboard.failures)
    write_outcome(outcome, job_path.parent)
    assert not outcome.failures, "; ".join(outcome.failures)
