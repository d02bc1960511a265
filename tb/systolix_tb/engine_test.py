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
from cocotb.triggers import Event, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
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
    if job.keep and not job.stream:
        raise AssertionError("keep-weights entries need a stream job (stream=True)")
    if job.resets and not job.stream:
        raise AssertionError("streams cut by a reset need a stream job (stream=True)")
    if job.stream:
        for spec in job.resets:
            await run_cut_by_reset(dut, config, spec, rng, outcome, scoreboard, clk, read_only)
        await run_stream(dut, job, rng, outcome, scoreboard, clk, read_only)
        outcome.failures.extend(scoreboard.failures)
        write_outcome(outcome, job_path.parent)
        assert not outcome.failures, "; ".join(outcome.failures)
        return
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
        out_lat = config.output_latency
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


def _command(entry, keep):
    if is_reject(entry):
        m, k, n = (int(v) for v in entry[:3])
    else:
        (m, k), n = entry[0].shape, entry[1].shape[1]
    return m | (k << 16) | (n << 32) | (int(keep) << 48)


async def _source(dut, prefix, words, stall, rng, clk, read_only, log):
    """Offer ``words`` in order on stream ``prefix``; sleeps while ``ready`` is low. ``log``
    gets the cycle of each handshake."""
    valid = getattr(dut, f"{prefix}__valid")
    ready = getattr(dut, f"{prefix}__ready")
    payload = getattr(dut, f"{prefix}__payload")
    i = 0
    while i < len(words):
        if stall and rng.random() < stall:
            valid.value = 0
            await clk
            continue
        payload.value = words[i]
        valid.value = 1
        await read_only
        if not int(ready.value):
            await RisingEdge(ready)
            await read_only
        log.append(now())
        i += 1
        await clk
    valid.value = 0


class _Stream:
    """A job stream in flight: the commands, the load streams and the C sink as cocotb tasks
    (see :func:`run_stream`), and what they have seen so far."""

    def __init__(self, dut, config, entries, keeps, stall, rng, clk, read_only):
        rq = config.requant is not None
        cmds, a_q, b_q, q_q, self.counts = [], [], [], [], []
        for i, entry in enumerate(entries):
            keep = keeps[i] if i < len(keeps) else False
            cmds.append(_command(entry, keep))
            if is_reject(entry):
                continue
            a, b = entry[:2]
            a_q.extend(tiling.engine_a_words(config, a))
            if not keep:
                b_q.extend(tiling.engine_b_words(config, b))
                if rq:
                    q_q.extend(tiling.engine_q_words(config, entry[2], b.shape[1]))
            self.counts.append(engine_cycles(config, a.shape[0], a.shape[1],
                                             b.shape[1]).c_words)
        self.commands = len(cmds)
        self.handshakes, self.dones, self.loads, self.words = [], [], [], []
        self.all_done = Event()

        async def commands():
            for word in cmds:
                while stall and rng.random() < stall:
                    dut.cmd__valid.value = 0
                    await clk
                dut.cmd__payload.value = word
                dut.cmd__valid.value = 1
                await read_only
                if not int(dut.cmd__ready.value):
                    await RisingEdge(dut.cmd__ready)
                    await read_only
                self.handshakes.append(now())
                await clk
            dut.cmd__valid.value = 0

        async def sink():
            while True:
                ready = not (stall and rng.random() < stall)
                dut.c__ready.value = int(ready)
                await read_only
                if not int(dut.c__valid.value) and ready:
                    await RisingEdge(dut.c__valid)
                    await read_only
                if ready and int(dut.c__valid.value):
                    self.words.append(dut.c__payload.value.to_unsigned())
                await clk

        async def done_monitor():
            while True:
                await read_only
                if not int(dut.done.value):
                    await RisingEdge(dut.done)
                    await read_only
                self.dones.append((now(), int(dut.error.value), int(dut.cycles.value)))
                if len(self.dones) == len(cmds):
                    self.all_done.set()
                await clk

        self.tasks = [cocotb.start_soon(commands()), cocotb.start_soon(sink()),
                      cocotb.start_soon(done_monitor())]
        for prefix, q in (("a", a_q), ("b", b_q)) + ((("q", q_q),) if rq else ()):
            self.tasks.append(cocotb.start_soon(_source(dut, prefix, q, stall, rng, clk,
                                                        read_only, self.loads)))

    def stop(self):
        for t in self.tasks:
            t.cancel()


def _check_results(config, entries, words, counts, scoreboard, failures, label=""):
    """Split ``words`` into the C matrices of ``entries`` (as many as ``counts`` covers),
    check each against the golden model; returns the C matrices (None for rejects)."""
    rq = config.requant is not None
    counts = list(counts)
    results, w = [], 0
    for i, entry in enumerate(entries):
        if is_reject(entry):
            results.append(None)
            continue
        if not counts:
            break
        a, b = entry[:2]
        (m, k), n = a.shape, b.shape[1]
        count = counts.pop(0)
        chunk = words[w:w + count]
        w += count
        try:
            c, last = tiling.engine_c_matrix(config, chunk, m, n)
        except ValueError as e:
            failures.append(f"{label}gemm {i}: {e}")
            results.append(None)
            continue
        if not last[-1] or last[:-1].any():
            failures.append(f"{label}gemm {i}: `last` not on the final C word only")
        scoreboard.check(f"{label}gemm {i} ({m}x{k}x{n})", a, b, c, entry[2] if rq else None)
        results.append(c)
    return results


#: Cycles ``rst`` is held high when a stream is cut by a reset.
RESET_CYCLES = 2
#: Idle cycles after such a reset in which no C word and no ``done`` may appear.
AFTER_RESET_CYCLES = 16


def _defined(signal):
    return all(ch in "01" for ch in str(signal.value))


async def run_cut_by_reset(dut, config, spec, rng, outcome, scoreboard, clk, read_only):
    """Run the stream ``spec`` (``entries``, ``keep``, ``stall_prob``) and assert ``rst``
    ``spec["cycle"]`` cycles after its first command handshake. Checks the reset's documented
    reaction: every ``ready`` low while ``rst`` is high; every valid output, ``busy``, ``done``,
    ``error`` and ``cycles`` defined and 0 from the first rising edge with ``rst`` high and
    while idle after it; no C word and no ``done`` of the cancelled jobs afterwards; a
    keep-weights command is rejected (no weights are known) with ``done`` in the next cycle.
    The jobs done before the reset are checked against the golden model. Appends
    ``{"cycle", "done", "words"}`` (jobs done and C words taken before the reset) to
    ``outcome.resets``."""
    failures = outcome.failures
    entries, keeps, stall = spec["entries"], spec.get("keep", []), spec.get("stall_prob", 0.0)
    cut = int(spec["cycle"])
    label = f"reset in cycle {cut}: "
    stream = _Stream(dut, config, entries, keeps, stall, rng, clk, read_only)
    limit = (cut + 100) * (1 + int(40 * stall))
    while not stream.handshakes:
        await clk
        limit -= 1
        if limit < 0:
            raise AssertionError(f"{label}the stream's first command was never taken")
    while now() - stream.handshakes[0] < cut:
        await clk
    stream.stop()
    done, words = len(stream.dones), len(stream.words)
    outcome.resets.append({"cycle": cut, "done": done, "words": words})
    if done >= stream.commands:
        failures.append(f"{label}the stream had ended ({done} done pulses): nothing was cut")
    _check_results(config, entries[:done], stream.words, stream.counts[:done], scoreboard,
                   failures, label)

    inputs = ("cmd", "a", "b") + (("q",) if config.requant is not None else ())
    readies = [getattr(dut, f"{p}__ready") for p in inputs]
    outputs = [dut.c__valid, dut.busy, dut.done, dut.error, dut.cycles]
    for p in inputs:
        getattr(dut, f"{p}__valid").value = 0
    dut.c__ready.value = 1  # a C word of a cancelled job would be taken, and is reported
    dut.rst.value = 1
    for i in range(RESET_CYCLES + 1):
        await read_only
        high = [r._name for r in readies if not _defined(r) or int(r.value)]
        if high:
            failures.append(f"{label}{', '.join(high)} not low while rst is high")
        if i:  # from the first rising edge with rst high
            bad = [o._name for o in outputs if not _defined(o) or int(o.value)]
            if bad:
                failures.append(f"{label}{', '.join(bad)} not 0 during reset "
                                f"(cycle {now()})")
        await clk
    dut.rst.value = 0
    for _ in range(AFTER_RESET_CYCLES):
        await read_only
        bad = [o._name for o in outputs if not _defined(o) or int(o.value)]
        if bad:
            failures.append(f"{label}{', '.join(bad)} not 0 after the reset (cycle {now()})")
            break
        await clk

    # keep-weights with no weights known since the reset: rejected, no word taken or given;
    # K and N are those of the last weights the engine took, so only the reset can refuse it
    loading = [e for i, e in enumerate(entries[:len(stream.handshakes)])
               if not is_reject(e) and not (keeps[i] if i < len(keeps) else False)]
    probe = (loading or entries)[-1 if loading else 0]
    (m, k), n = probe[0].shape, probe[1].shape[1]
    dut.cmd__payload.value = _command(probe, True)
    dut.cmd__valid.value = 1
    await read_only
    if not int(dut.cmd__ready.value):
        failures.append(f"{label}the engine does not take a command after the reset")
        await RisingEdge(dut.cmd__ready)
        await read_only
    taken = now()
    await clk
    dut.cmd__valid.value = 0
    for _ in range(8):
        await read_only
        if int(dut.c__valid.value):
            failures.append(f"{label}a C word after the keep-weights command")
            break
        if int(dut.done.value):
            if not int(dut.error.value) or now() - taken != 1:
                failures.append(f"{label}keep-weights {m}x{k}x{n} after the reset: done "
                                f"{now() - taken} cycles after the command with error "
                                f"{int(dut.error.value)}, expected 1 cycle with error 1")
            break
        await clk
    else:
        failures.append(f"{label}no done for keep-weights {m}x{k}x{n} after the reset")
    await clk
    dut._log.info("%sstream cut after %d of %d done pulses, %d C words", label, done,
                  stream.commands, words)


async def run_stream(dut, job, rng, outcome, scoreboard, clk, read_only):
    """All of the job's commands and words offered at once as flat streams (the engine takes
    each stream's words only for the job it is loading), the C sink always there (randomly not
    ready with stalls), every ``done`` recorded with ``error`` and ``cycles``."""
    config = job.config
    stall = job.stall_prob
    stream = _Stream(dut, config, job.operands, [job.keeps(i) for i in range(len(job.operands))],
                     stall, rng, clk, read_only)
    handshakes, dones, words = stream.handshakes, stream.dones, stream.words
    commands = stream.commands
    bound = sum(engine_cycles(config, *(e[0].shape), e[1].shape[1]).total
                for e in job.operands if not is_reject(e))
    bound = (bound + 20 * commands + 100) * (1 + int(40 * stall))
    try:
        await with_timeout(stream.all_done.wait(), bound * PERIOD_NS, "ns")
    except SimTimeoutError:
        outcome.failures.append(f"stream stuck: {len(dones)} of {commands} done pulses, "
                                f"{len(words)} C words")
    for _ in range(TAIL_CYCLES):  # nothing after the last done
        await clk
    stream.stop()
    dut.c__ready.value = 1
    if len(dones) > commands:
        outcome.failures.append(f"{len(dones)} done pulses for {commands} commands")
    if len(words) != sum(stream.counts):
        outcome.failures.append(f"{len(words)} C words, the jobs have {sum(stream.counts)}")
    first = handshakes[0] if handshakes else 0
    for i, entry in enumerate(job.operands):
        t, err, cyc = dones[i] if i < len(dones) else (None, None, None)
        outcome.errors.append(err)
        outcome.cycles.append(None if is_reject(entry) else cyc)
        outcome.job_cycles.append(None if t is None or i >= len(handshakes)
                                  else t - handshakes[i])
        outcome.done_cycles.append(None if t is None else t - first)
    results = _check_results(config, job.operands, words, stream.counts, scoreboard,
                             outcome.failures)
    outcome.results.extend(results + [None] * (len(job.operands) - len(results)))
    outcome.total_cycles = dones[-1][0] - first if dones else 0
    dut._log.info("stream of %d commands: %d cycles from the first handshake to the last done",
                  commands, outcome.total_cycles)
