"""cocotb test: run the GEMMs of a job file through a generated systolic array.

Started by :func:`systolix.sim.runner.run` (or by hand with ``SYSTOLIX_JOB`` set). All
operands are packed into port-level integers before the clock starts, so the per-cycle work in
Python is one write, one handshake check and one output sample.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from systolix.model import tiling
from systolix.model.cycles import gemm_cycles
from systolix.sim.job import JOB_ENV, JobOutcome, read_job, write_outcome
from systolix_tb.driver import BeatDriver
from systolix_tb.monitor import RowMonitor
from systolix_tb.scoreboard import GemmScoreboard

#: Cycles with neither an accepted beat nor an output row after which the run is declared hung.
HANG_CYCLES = 2000


async def reset(dut, cycles=2):
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def run_gemm_job(dut):
    job_path = Path(os.environ[JOB_ENV])
    job = read_job(job_path)
    config = job.config
    R = config.rows
    dut._log.info("job %s: %d GEMM(s) on %s, back_to_back=%s stall_prob=%s seed=%d",
                  job_path, len(job.operands), config.name, job.back_to_back, job.stall_prob,
                  job.seed)

    packed = [tiling.pack_input_beats(config, a, b) for a, b in job.operands]
    rows_per_job = [R * len(tiles) for _, tiles in packed]
    rows_before = [sum(rows_per_job[:i]) for i in range(len(packed) + 1)]

    monitor = RowMonitor(dut)
    driver = BeatDriver(
        dut, [beats for beats, _ in packed], stall_prob=job.stall_prob,
        rng=random.Random(job.seed),
        # Isolated jobs wait until the previous job's last row is out.
        may_start=lambda j: job.back_to_back or len(monitor) >= rows_before[j])

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)

    edge, read_only = RisingEdge(dut.clk), ReadOnly()
    cycle, idle = 0, 0
    while len(monitor) < rows_before[-1]:
        await edge
        driver.drive(cycle)
        await read_only
        before = (driver.accepted, len(monitor))
        driver.sample(cycle)
        monitor.sample(cycle)
        idle = 0 if (driver.accepted, len(monitor)) != before else idle + 1
        if idle > HANG_CYCLES:
            raise AssertionError(f"no progress for {HANG_CYCLES} cycles at cycle {cycle}: "
                                 f"{driver.accepted} beats in, {len(monitor)} rows out")
        cycle += 1
    if driver.accepted != sum(len(b) for b, _ in packed):
        raise AssertionError("array produced all rows before accepting all beats")
    # Nothing more may come out: watch for longer than any tile's drain takes.
    for _ in range(2 * R + config.cols + 2):
        await edge
        await read_only
        monitor.sample(cycle)
        cycle += 1
    if len(monitor) != rows_before[-1]:
        raise AssertionError(f"array produced {len(monitor) - rows_before[-1]} output rows "
                             f"more than the {rows_before[-1]} expected")

    outcome = JobOutcome()
    scoreboard = GemmScoreboard(config.numerics, dut._log)
    rows, data = tiling.unpack_output_rows(config, monitor.payloads)
    for j, ((a, b), (_, tiles)) in enumerate(zip(job.operands, packed)):
        lo, hi = rows_before[j], rows_before[j + 1]
        m, n = a.shape[0], b.shape[1]
        try:
            c = tiling.assemble(config, m, n, tiles, rows[lo:hi], data[lo:hi])
        except ValueError as e:
            outcome.failures.append(f"gemm {j}: {e}")
            outcome.results.append(None)
            outcome.cycles.append(None)
            continue
        scoreboard.check(f"gemm {j} ({m}x{a.shape[1]}x{n})", a, b, c)
        outcome.results.append(c)
        outcome.cycles.append(monitor.cycles[hi - 1] - driver.first_accept[j] + 1)
        model = gemm_cycles(config, m, a.shape[1], n).cycles
        dut._log.info("gemm %d: %dx%dx%d in %d cycles (model %d)", j, m, a.shape[1], n,
                      outcome.cycles[-1], model)
    outcome.total_cycles = monitor.cycles[-1] - driver.first_accept[0] + 1
    outcome.failures.extend(scoreboard.failures)
    write_outcome(outcome, job_path.parent)
    assert not outcome.failures, "; ".join(outcome.failures)
