"""cocotb test: the whole board design (UART -> host link -> engine -> UART) driven by the real
host library, :class:`systolix.board.host.BoardClient`, through a bit-level UART model at the
board's clock and baud rate.

The client is blocking code; it runs in a cocotb ``bridge`` thread and its transport calls
``resume``-d coroutines that drive ``uart_rx`` bit by bit and collect bytes from ``uart_tx``.
The scenario (which checks to run) comes from a :class:`systolix.board.sim.BoardJob`; the
outcome (``failures``, measurements) goes back as a :class:`systolix.board.sim.BoardOutcome`.
Started by :func:`systolix.board.sim.run_board`.
"""

from __future__ import annotations

import os
import random
import time
import tty
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

from systolix.model import golden
from systolix.board import protocol as P
from systolix.board.host import BoardClient, BoardError, job_link_bytes
from systolix.board.sim import BoardOutcome
from systolix.sim.job import JOB_ENV, read_job, write_outcome


def _now_s():
    return get_sim_time(unit="ps") * 1e-12


class SimUart:
    """The host's end of the serial line: drives ``uart_rx``, samples ``uart_tx`` mid-bit."""

    def __init__(self, dut, bit_ps):
        self._dut = dut
        self._bit = bit_ps
        self.received = bytearray()
        self.framing_errors = 0
        dut.uart_rx.value = 1
        cocotb.start_soon(self._monitor())

    async def write(self, data, *, gap_bits=0):
        rx = self._dut.uart_rx
        for byte in bytes(data):
            for level in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                rx.value = level
                await Timer(self._bit, unit="ps")
            if gap_bits:
                await Timer(gap_bits * self._bit, unit="ps")

    async def write_bits(self, levels):
        """Drive raw line levels, one per bit time (for glitches and cut-off bytes)."""
        for level in levels:
            self._dut.uart_rx.value = level
            await Timer(self._bit, unit="ps")

    async def _monitor(self):
        tx = self._dut.uart_tx
        while True:
            await FallingEdge(tx)
            await Timer(self._bit * 3 // 2, unit="ps")
            value = 0
            for i in range(8):
                value |= int(tx.value) << i
                await Timer(self._bit, unit="ps")
            if int(tx.value):
                self.received.append(value)
            else:
                self.framing_errors += 1

    async def read(self, n, timeout_s):
        deadline = _now_s() + timeout_s
        step = self._bit * 10
        while len(self.received) < n:
            left = deadline - _now_s()
            if left <= 0:
                break
            await Timer(max(1, min(step, int(left * 1e12))), unit="ps")
        out = bytes(self.received[:n])
        del self.received[:n]
        return out


class BridgedTransport:
    """A :class:`BoardClient` transport whose calls block on the simulation (bridge thread)."""

    def __init__(self, uart):
        self._uart = uart

    def write(self, data):
        resume(self._uart.write)(bytes(data))

    def read(self, n, timeout):
        return resume(self._uart.read)(n, timeout)

    def reset_input_buffer(self):
        self._uart.received.clear()


class FaultyTransport:
    """Wraps a transport and spoils chosen request frames (counted from 0 on this transport):
    ``flip`` one payload bit, ``truncate`` to half, ``garbage`` bytes before the frame."""

    def __init__(self, inner, faults, rng):
        self._inner = inner
        self._faults = dict(faults)
        self._rng = rng
        self.frames = 0
        self.injected = []

    def write(self, data):
        data = bytearray(data)
        fault = self._faults.pop(self.frames, None)
        self.frames += 1
        if fault == "flip":
            i = self._rng.randrange(1, len(data))
            data[i] ^= 1 << self._rng.randrange(8)
        elif fault == "truncate":
            data = data[:max(1, len(data) // 2)]
        elif fault == "garbage":
            data = bytearray(self._rng.choice([0x00, 0xFF, 0x13, 0x5A])
                             for _ in range(7)) + data
        if fault:
            self.injected.append(fault)
        self._inner.write(bytes(data))

    def read(self, n, timeout):
        return self._inner.read(n, timeout)

    def reset_input_buffer(self):
        self._inner.reset_input_buffer()


class Checks:
    def __init__(self, log):
        self.failures = []
        self._log = log

    def expect(self, cond, what):
        if not cond:
            self.failures.append(what)
            self._log.error("FAILED: %s", what)
        return cond


async def serve_pty(uart, job, bit_ps, checks):
    """Bridge a pseudo-terminal to the simulated UART until ``job["stop_file"]`` exists, so a
    separate process (e.g. ``systolix board run --port <pty>``) talks to the simulated board.
    The pty's path is written to ``job["pty_file"]``."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    Path(job["pty_file"]).write_text(os.ttyname(slave))
    stop = Path(job["stop_file"])
    deadline = time.monotonic() + job.get("wall_limit", 300)
    idle = 0
    try:
        while not stop.exists():
            if time.monotonic() > deadline:
                checks.expect(False, "pty bridge: no stop file within the wall-time limit")
                break
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                data = b""
            if data:
                idle = 0
                await uart.write(data)
            if uart.received:
                os.write(master, bytes(uart.received))
                uart.received.clear()
            if not data:
                idle += 1
                if idle > 100:       # the host is thinking: let it have the CPU
                    time.sleep(0.002)
                await Timer(bit_ps * 10, unit="ps")
    finally:
        os.close(master)
        os.close(slave)


@cocotb.test()
async def board_scenario(dut):
    job_path = Path(os.environ[JOB_ENV])
    board_job = read_job(job_path)
    job = dict(board_job.scenario, seed=board_job.seed)
    config, seed = board_job.config, board_job.seed
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    period_ps = 2 * round(1e12 / config.clk_hz / 2)
    bit_ps = config.divisor * period_ps
    dut._log.info("scenario %s on %s, seed %d, %d ps/bit", job["name"], config.name, seed, bit_ps)

    cocotb.start_soon(Clock(dut.clk, period_ps, unit="ps").start())
    dut.rst.value = 1
    uart = SimUart(dut, bit_ps)
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await Timer(2 * bit_ps, unit="ps")

    checks = Checks(dut._log)
    outcome = {"measurements": []}
    transport = BridgedTransport(uart)
    margin = 40 * 10 / config.baud
    client = BoardClient(transport, config.baud, margin=margin, retries=3,
                         log=lambda msg: dut._log.info("client: %s", msg))
    run = lambda f: bridge(f)()  # noqa: E731
    num = config.engine.numerics

    def operands(m, k, n):
        return (nrng.integers(num.in_min, num.in_max + 1, (m, k)),
                nrng.integers(num.in_min, num.in_max + 1, (k, n)))

    async def gemm_checked(c_client, a, b, label):
        t0, w0 = _now_s(), time.perf_counter()
        before = (c_client.stats.bytes_out, c_client.stats.bytes_in)
        try:
            c = await run(lambda: c_client.gemm(a, b))
        except BoardError as e:
            checks.expect(False, f"{label}: {e}")
            return None
        want = golden.gemm(a, b, num, config.engine.accumulation_chunk)
        ok = checks.expect(np.array_equal(c, want), f"{label}: result differs from numpy")
        sim_s = _now_s() - t0
        meas = {"label": label, "shape": [a.shape[0], a.shape[1], b.shape[1]], "exact": ok,
                "sim_seconds": sim_s, "wall_seconds": time.perf_counter() - w0,
                "bytes_out": c_client.stats.bytes_out - before[0],
                "bytes_in": c_client.stats.bytes_in - before[1],
                "macs": a.shape[0] * a.shape[1] * b.shape[1]}
        meas["macs_per_second"] = meas["macs"] / sim_s
        cfg = config.engine
        if (a.shape[0] <= cfg.max_m and a.shape[1] <= cfg.max_k and b.shape[1] <= cfg.max_n
                and c_client.stats.retries == 0):
            # one job: what crossed the line must be exactly the framing model's bytes
            want = job_link_bytes(cfg, a.shape[0], a.shape[1], b.shape[1])
            got = (meas["bytes_out"], meas["bytes_in"])
            checks.expect(got == want, f"{label}: {got} bytes (out, in), model {want}")
            meas["line_seconds"] = sum(want) * 10 / config.baud
        outcome["measurements"].append(meas)
        dut._log.info("%s: %s exact=%s, %.4f s simulated, %d+%d bytes", label,
                      meas["shape"], ok, sim_s, meas["bytes_out"], meas["bytes_in"])
        return c

    info = await run(client.info)
    checks.expect(info.config == config.engine, f"INFO reports {info.config}, "
                                                f"expected {config.engine}")
    checks.expect((info.clk_hz, info.baud) == (config.clk_hz, config.baud),
                  f"INFO clock/baud {info.clk_hz}/{info.baud}")

    if job["name"] == "gemm":
        for i, (m, k, n) in enumerate(job["shapes"]):
            await gemm_checked(client, *operands(m, k, n), f"gemm {i}")

    elif job["name"] == "errors":
        req = lambda op, payload=b"", rb=0: run(lambda: client.request(op, payload, rb))  # noqa

        async def expect_status(op, payload, status, what):
            reply = await req(op, payload)
            checks.expect(reply.status == status and reply.op == int(op) & 0xFF,
                          f"{what}: got {reply.status_name} for op 0x{reply.op:02x}, "
                          f"expected {status.name}")
            return reply

        async def raw(frame, status, what, wait_s=None):
            uart.received.clear()
            await uart.write(frame)
            parser, replies = P.ReplyParser(), []
            while not replies:
                want = parser.needed()
                got = await uart.read(want, wait_s or 100 * 10 / config.baud)
                try:
                    replies = parser.feed(got)
                except P.ProtocolError as e:
                    checks.expect(False, f"{what}: {e}")
                    break
                if len(got) < want:
                    break
            checks.expect(len(replies) == 1 and replies[0].status == status,
                          f"{what}: replies {replies}, expected {status.name}")

        cfg = config.engine
        good = P.encode_request(P.Op.INFO)
        bad_crc = bytearray(P.encode_request(P.Op.JOB, P.job_payload(1, 1, 1)))
        bad_crc[-1] ^= 0x40
        await raw(bytes(bad_crc), P.Status.ERR_CRC, "corrupted CRC")
        flipped = bytearray(P.encode_request(P.Op.JOB, P.job_payload(1, 1, 1)))
        flipped[5] ^= 0x01
        await raw(bytes(flipped), P.Status.ERR_CRC, "corrupted payload")
        await raw(P.encode_request(0x55, b"xyz"), P.Status.ERR_OPCODE, "unknown opcode")
        await raw(P.encode_request(P.Op.INFO, b"\0"), P.Status.ERR_LENGTH, "INFO with payload")
        await raw(P.encode_request(P.Op.JOB, b"\1\0\1\0"), P.Status.ERR_LENGTH, "short JOB")
        await raw(bytes([0x00, 0x13, 0xFF, 0x5A, 0x42]) + good, P.Status.OK,
                  "garbage before a frame")
        # a glitch (one clock: too short for a start bit), a byte cut off after 3 bits, then
        # a frame
        dut.uart_rx.value = 0
        await Timer(period_ps, unit="ps")
        await uart.write_bits([1, 1, 0, 1, 0, 0] + [1] * 12)
        await raw(good, P.Status.OK, "after a glitch and a cut-off byte")
        for dims, what in (((cfg.max_m + 1, 1, 1), "M too large"),
                           ((1, cfg.max_k + 1, 1), "K too large"),
                           ((1, 1, cfg.max_n + 1), "N too large"), ((0, 1, 1), "M = 0"),
                           # a high bit alone beyond the buffers (the low bits are in range)
                           (((1 << 15) | 1, 1, 1), "M = 2^15 + 1"),
                           ((1, (1 << 12) | 2, 1), "K = 2^12 + 2")):
            await expect_status(P.Op.JOB, P.job_payload(*dims), P.Status.ERR_DIMS, what)
        aw = info.a_word_bytes
        await expect_status(P.Op.ABORT, b"", P.Status.OK, "ABORT")
        await expect_status(P.Op.WRITE_A, bytes(aw), P.Status.ERR_STATE, "WRITE_A, no job")
        await expect_status(P.Op.READ_C, P.read_c_payload(1), P.Status.ERR_STATE,
                            "READ_C, no job")
        # overrun: one word more than a 1x1x1 job takes
        await expect_status(P.Op.JOB, P.job_payload(1, 1, 1), P.Status.OK, "JOB 1x1x1")
        await expect_status(P.Op.READ_C, P.read_c_payload(1), P.Status.ERR_NOT_READY,
                            "READ_C before loading")
        await expect_status(P.Op.WRITE_A, bytes(2 * aw), P.Status.ERR_OVERRUN, "A overrun")
        st = P.parse_status((await expect_status(P.Op.STATUS, b"", P.Status.OK,
                                                 "STATUS")).payload)
        checks.expect(st.job_failed and not st.job_open, f"after an overrun: {st}")
        await expect_status(P.Op.WRITE_B, bytes(info.b_word_bytes), P.Status.ERR_STATE,
                            "WRITE_B after a failed job")
        # partial word
        await expect_status(P.Op.JOB, P.job_payload(1, 1, 1), P.Status.OK, "JOB 1x1x1")
        if aw > 1:
            await expect_status(P.Op.WRITE_A, bytes(aw - 1), P.Status.ERR_LENGTH,
                                "partial A word")
        # a job read beyond its words
        await expect_status(P.Op.JOB, P.job_payload(1, 1, 1), P.Status.OK, "JOB 1x1x1")
        await expect_status(P.Op.WRITE_A, bytes(aw), P.Status.OK, "WRITE_A")
        await expect_status(P.Op.WRITE_B, bytes(info.b_word_bytes), P.Status.OK, "WRITE_B")
        await expect_status(P.Op.READ_C, P.read_c_payload(2), P.Status.ERR_RANGE,
                            "READ_C beyond the job")
        reply = await expect_status(P.Op.READ_C, P.read_c_payload(1), P.Status.OK, "READ_C")
        checks.expect(reply.payload == bytes(info.c_word_bytes), "0 x 0 must read 0")
        # truncated frame: the device abandons it after its timeout and answers ERR_TIMEOUT
        trunc = P.encode_request(P.Op.JOB, P.job_payload(1, 1, 1))[:5]
        t0 = _now_s()
        await raw(trunc, P.Status.ERR_TIMEOUT, "truncated frame",
                  wait_s=config.timeout_ms * 1e-3 * 1.5 + 40 * 10 / config.baud)
        outcome["timeout_reply_seconds"] = _now_s() - t0
        a, b = operands(3, 5, 4)
        await gemm_checked(client, a, b, "gemm after malformed frames")
        # garbage between frames of a GEMM, corrupted and truncated frames: the client
        # retries the job and the result is exact
        faults = {1: "flip", 4: "truncate", 6: "garbage", 9: "flip"}
        faulty = FaultyTransport(transport, faults, rng)
        fclient = BoardClient(faulty, config.baud, margin=margin, retries=6,
                              log=lambda msg: dut._log.info("faulty client: %s", msg))
        fclient._info = info
        a, b = operands(*job.get("fault_shape", (3, 5, 4)))
        await gemm_checked(fclient, a, b, "gemm through a faulty link")
        checks.expect(fclient.stats.retries >= 1 and len(faulty.injected) >= 3,
                      f"faults injected {faulty.injected}, retries {fclient.stats.retries}")
        outcome["fault_retries"] = fclient.stats.retries
        # reset in the middle of a frame: the next GEMM is exact
        frame = P.encode_request(P.Op.WRITE_A, bytes(4 * aw))
        task = cocotb.start_soon(uart.write(frame))
        await Timer(int(bit_ps * 10 * 4.5), unit="ps")
        dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await task
        a, b = operands(3, 5, 4)
        await gemm_checked(client, a, b, "gemm after a reset mid-frame")
        checks.expect(uart.framing_errors == 0, f"{uart.framing_errors} framing errors on TX")
    elif job["name"] == "pty":
        await serve_pty(uart, job, bit_ps, checks)
    else:
        checks.expect(False, f"unknown scenario {job['name']!r}")

    outcome["client"] = {"bytes_out": client.stats.bytes_out, "bytes_in": client.stats.bytes_in,
                         "frames": client.stats.frames, "retries": client.stats.retries}
    outcome["sim_seconds"] = _now_s()
    write_outcome(BoardOutcome(failures=checks.failures, details=outcome), job_path.parent)
    assert not checks.failures, "; ".join(checks.failures)
