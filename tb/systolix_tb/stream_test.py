"""cocotb test: push payloads through a stream pipeline (``i`` -> ``o``) with random stalls on
both sides and compare what comes out, in order, with the expected payloads.

Used for units with a plain stream-in / stream-out contract, such as the requantizer. Started by
:func:`systolix.sim.runner.run`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from systolix.sim.job import JOB_ENV, StreamOutcome, read_job, write_outcome
from systolix_tb.streams import StreamSink, StreamSource


@cocotb.test()
async def run_stream_job(dut):
    job_path = Path(os.environ[JOB_ENV])
    job = read_job(job_path)
    rng = random.Random(job.seed)
    dut._log.info("job %s: %d beats into %s, stall_prob=%s seed=%d", job_path,
                  len(job.inputs), job.config.name, job.stall_prob, job.seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    dut.rst.value = 1
    clk, read_only = RisingEdge(dut.clk), ReadOnly()
    for _ in range(2):
        await clk
    dut.rst.value = 0

    source = StreamSource(dut, "i", job.inputs, stall_prob=job.stall_prob, rng=rng)
    sink = StreamSink(dut, "o", len(job.expected), stall_prob=job.stall_prob, rng=rng)
    budget = 100 + 50 * len(job.inputs)
    while not sink.done:
        source.drive()
        sink.drive()
        await read_only
        source.sample()
        sink.sample()
        await clk
        budget -= 1
        if budget < 0:
            break
    extra = 0
    source.idle()
    for _ in range(10):  # nothing more may come out
        sink.drive()
        await read_only
        extra += int(dut.o__valid.value) and sink._ready_now
        await clk
    failures = []
    if not sink.done:
        failures.append(f"only {len(sink.payloads)} of {len(job.expected)} beats came out")
    if extra:
        failures.append(f"{extra} beats more than the {len(job.expected)} expected")
    bad = [i for i, (g, w) in enumerate(zip(sink.payloads, job.expected)) if g != w]
    if bad:
        failures.append(f"{len(bad)} beats differ; first is beat {bad[0]}")
    write_outcome(StreamOutcome(outputs=sink.payloads, failures=failures), job_path.parent)
    assert not failures, "; ".join(failures)
