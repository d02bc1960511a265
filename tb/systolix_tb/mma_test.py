"""cocotb test: issue the MMA beats of a job file into a generated tensor-core MMA unit.

Started by :func:`systolix.sim.runner.run` (or by hand with ``SYSTOLIX_JOB`` set). The beats are
packed into port-level integers before the clock starts and offered one per cycle (with random
gaps when the job asks for them) by the shared :class:`~systolix_tb.driver.BeatDriver`; the
shared :class:`~systolix_tb.monitor.RowMonitor` records every valid output beat. Afterwards every
D must equal :func:`systolix.model.golden.mma` bit for bit and appear exactly ``latency`` cycles after
its beat was accepted, and nothing else may come out.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from systolix.model import golden
from systolix.sim.job import JOB_ENV, MMAOutcome, read_job, write_outcome
from systolix.sim.mma import pack_input_beats, unpack_output_beats
from systolix_tb.driver import BeatDriver
from systolix_tb.gemm_test import reset
from systolix_tb.monitor import RowMonitor


@cocotb.test()
async def run_mma_job(dut):
    job_path = Path(os.environ[JOB_ENV])
    job = read_job(job_path)
    config = job.config
    beats = pack_input_beats(config, job.a, job.b, job.c)
    dut._log.info("job %s: %d MMA beat(s) on %s (latency %d), stall_prob=%s seed=%d",
                  job_path, len(beats), config.name, config.latency, job.stall_prob, job.seed)

    monitor = RowMonitor(dut)
    driver = BeatDriver(dut, [beats], stall_prob=job.stall_prob, rng=random.Random(job.seed))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)

    edge, read_only = RisingEdge(dut.clk), ReadOnly()
    issue = []
    cycle = 0
    # run until every beat is in, then watch longer than the latency for stray results
    while not driver.done or cycle <= issue[-1] + config.latency + 3:
        await edge
        driver.drive(cycle)
        await read_only
        before = driver.accepted
        driver.sample(cycle)
        if driver.accepted != before:
            issue.append(cycle)
        monitor.sample(cycle)
        cycle += 1

    outcome = MMAOutcome(issue_cycles=issue, result_cycles=list(monitor.cycles))
    if len(monitor) != len(beats):
        outcome.failures.append(f"{len(beats)} beats issued but {len(monitor)} results came out")
    if monitor.payloads:
        outcome.d = unpack_output_beats(config, monitor.payloads)
    if outcome.d is not None and len(monitor) == len(beats):
        want = golden.mma(job.a, job.b, job.c, config.numerics)
        bad = np.argwhere(outcome.d != want)
        if len(bad):
            t, r, c = (int(x) for x in bad[0])
            outcome.failures.append(
                f"{len(bad)} of {want.size} elements differ; first in beat {t} at D[{r}, {c}]: "
                f"RTL {int(outcome.d[t, r, c])}, reference {int(want[t, r, c])}")
        late = [(i, o - s) for i, (s, o) in enumerate(zip(issue, monitor.cycles))
                if o - s != config.latency]
        if late:
            outcome.failures.append(f"{len(late)} results not exactly {config.latency} cycles "
                                    f"after their beat; first: beat {late[0][0]} after "
                                    f"{late[0][1]} cycles")
    for msg in outcome.failures:
        dut._log.error(msg)
    write_outcome(outcome, job_path.parent)
    assert not outcome.failures, "; ".join(outcome.failures)
