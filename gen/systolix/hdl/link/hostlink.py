"""The board's host link: frame parser, command dispatcher into a matrix engine, reply framer.

Byte-level: bytes in from a UART receiver, bytes out to a UART transmitter. The frame format,
opcodes and status codes are defined once, in :mod:`systolix.board.protocol`.
"""

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Module, Mux,
                          ResetSignal, Shape, Signal)
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...board import protocol as P
from ...config import EngineConfig
from ..engine import MatrixEngine

__all__ = ["HostLink", "crc16_step"]


def crc16_step(m, crc, byte):
    """CRC-16/CCITT-FALSE of ``crc`` advanced by one ``byte``: a combinational signal of ``m``.

    Every output bit is the XOR of a fixed set of input bits (computed here, in Python), so the
    netlist is one flat XOR per bit.
    """
    # symbolic bit-serial CRC: each bit is a set of input-bit names (crc 0..15, byte 16..23)
    c = [{i} for i in range(16)]
    for i in range(8):
        fb = c[15] ^ {16 + 7 - i}
        c = [fb if j == 0 else c[j - 1] ^ (fb if (0x1021 >> j) & 1 else set()) for j in range(16)]
    inputs = Cat(crc, byte)
    out = Signal(16)
    for j, terms in enumerate(c):
        bit = Const(0, 1)
        for t in sorted(terms):
            bit = bit ^ inputs[t]
        m.d.comb += out[j].eq(bit)
    return out


class HostLink(wiring.Component):
    """A :class:`~systolix.hdl.engine.MatrixEngine` behind the framed byte protocol.

    One request is handled at a time: the parser hunts for the sync byte (anything else is
    dropped), reads opcode, length, payload and CRC, then the dispatcher answers with exactly one
    reply frame. WRITE_A / WRITE_B payload bytes are packed into words and handed to the
    engine's ``a`` / ``b`` streams as they arrive; if such a frame then turns out bad (CRC,
    length, timeout, overrun), the job is marked failed and must be reopened with JOB (a failed
    job never yields C). Every other request acts only after its CRC has been checked. Bytes that
    arrive while a reply is being sent are dropped (the host waits for each reply).

    If a request stops arriving for ``timeout_cycles`` cycles between two bytes, it is abandoned
    with an ``ERR_TIMEOUT`` reply, so a truncated frame never hangs the link.

    Parameters
    ----------
    config : EngineConfig
        The engine (systolic or tensor-core, without requantization). A and B words are the
        engine's ``a`` and ``b`` stream payloads (:func:`systolix.board.protocol.a_word_bits`).
    info : bytes
        The INFO reply's payload (:func:`systolix.board.protocol.info_payload`).
    timeout_cycles : int
        Inter-byte timeout of a request, at least 16.

    Attributes
    ----------
    rx_data : In(8)
    rx_valid : In(1)
        One-cycle pulse per received byte (no backpressure).
    tx : Out(stream.Signature(8))
        Reply bytes.
    idle : Out(1)
        No request being received or answered, and the engine is not busy.
    busy : Out(1)
        A job is open or the engine is busy.
    error : Out(1)
        The last reply carried an error status (cleared by the next OK reply).
    """

    def __init__(self, config, info, timeout_cycles):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        if config.requant is not None:
            raise ValueError("the board link does not support requantized engines yet")
        if not isinstance(info, (bytes, bytearray)):
            raise TypeError(f"info must be bytes, not {info!r}")
        if not info:
            raise ValueError("info must not be empty")
        if not isinstance(timeout_cycles, int) or isinstance(timeout_cycles, bool):
            raise TypeError(f"timeout_cycles must be an integer, not {timeout_cycles!r}")
        if timeout_cycles < 16:
            raise ValueError(f"timeout_cycles must be at least 16, not {timeout_cycles}")
        self._config = config
        self._info = bytes(info)
        self._timeout = timeout_cycles
        super().__init__({
            "rx_data": In(8), "rx_valid": In(1),
            "tx": Out(stream.Signature(8)),
            "idle": Out(1), "busy": Out(1), "error": Out(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def timeout_cycles(self):
        """Cycles without a byte after which a request in progress is abandoned."""
        return self._timeout

    @property
    def a_word_bytes(self):
        """Bytes per A word: ``rows`` operands, or an m x k fragment of a tensor-core engine."""
        return P.word_bytes(P.a_word_bits(self._config))

    @property
    def b_word_bytes(self):
        """Bytes per B word: ``cols`` operands, or a k x cols fragment of a tensor-core engine."""
        return P.word_bytes(P.b_word_bits(self._config))

    @property
    def c_word_bytes(self):
        return P.word_bytes(P.c_word_bits(self._config))

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        C = cfg.cols
        # The engine's reset is one flip-flop: high while this domain is reset (its initial
        # value) and for one cycle after, and for a cycle when a request resets the engine. The
        # engine runs in a domain of its own with that flip-flop as its only reset, so that
        # neither the request decoding nor an OR with the board's reset sits in front of every
        # engine flip-flop's reset (an iCE40 SB_DFFESR resets only when enabled; a big ECP5
        # design spends the clock period routing the reset net alone).
        eng_rst = Signal(init=1)
        m.d.sync += eng_rst.eq(0)
        m.domains.engine = ClockDomain("engine", local=True)
        m.d.comb += [ClockSignal("engine").eq(ClockSignal("sync")),
                     ResetSignal("engine").eq(eng_rst)]
        engine = MatrixEngine(cfg)
        m.submodules.engine = DomainRenamer("engine")(engine)

        # ---- request parser state
        op = Signal(8)
        length = Signal(16)
        left = Signal(16)            # payload bytes still to come
        crc = Signal(16)
        rx_crc = Signal(16)
        param = Signal(48)           # first 6 payload bytes (fixed-length requests)
        pidx = Signal(range(8))
        timer = Signal(range(self._timeout + 1))
        byte = self.rx_data
        crc_next = crc16_step(m, crc, byte)

        # ---- WRITE_A / WRITE_B word assembly
        wbytes_max = max(self.a_word_bytes, self.b_word_bytes)
        word = Signal(8 * wbytes_max)
        widx = Signal(range(wbytes_max + 1))
        push = Signal()              # a word is offered to the engine this cycle
        is_a = Signal()
        streaming = Signal()         # this WRITE frame feeds the engine
        overrun = Signal()

        # ---- job state
        job_open = Signal()
        job_failed = Signal()
        job_m = Signal(16)
        job_n = Signal(16)
        tile_acc = Signal(17)
        c_left = Signal(32)

        # ---- reply state
        status = Signal(8)
        rlen = Signal(16)
        ridx = Signal(16)
        tx_crc = Signal(16)
        error = Signal()
        m.d.comb += self.error.eq(error)

        info_mem = Memory(shape=8, depth=len(self._info), init=list(self._info))
        m.submodules.info_mem = info_mem
        info_rd = info_mem.read_port(domain="comb")
        status_bytes = Signal(8 * P.STATUS_PAYLOAD_BYTES)
        cword = Signal(8 * self.c_word_bytes)
        cidx = Signal(range(self.c_word_bytes + 1))

        # engine streams
        a_bits, b_bits = P.a_word_bits(cfg), P.b_word_bits(cfg)
        assert (a_bits, b_bits) == (Shape.cast(engine.a.payload.shape()).width,
                                    Shape.cast(engine.b.payload.shape()).width)
        m.d.comb += [
            engine.a.payload.eq(word[:a_bits]), engine.b.payload.eq(word[:b_bits]),
            engine.a.valid.eq(push & is_a), engine.b.valid.eq(push & ~is_a),
            engine.cmd.payload.m.eq(param[0:16]), engine.cmd.payload.k.eq(param[16:32]),
            engine.cmd.payload.n.eq(param[32:48]),
        ]
        taken = (engine.a.ready & is_a) | (engine.b.ready & ~is_a)
        m.d.sync += push.eq(0)
        with m.If(push & ~taken):
            m.d.sync += overrun.eq(1)

        m.d.comb += [
            self.busy.eq(job_open | engine.busy),
        ]

        def reply(st, n=0):
            m.d.sync += [status.eq(st), rlen.eq(n), ridx.eq(0)]
            m.next = "REPLY_SYNC"

        def fail_stream():
            with m.If(streaming):
                m.d.sync += job_failed.eq(1)

        def timeout():
            # inter-byte timeout of a request in progress (called in every receiving state)
            with m.If(self.rx_valid):
                m.d.sync += timer.eq(0)
            with m.Elif(timer == self._timeout - 1):
                fail_stream()
                reply(P.Status.ERR_TIMEOUT)
            with m.Else():
                m.d.sync += timer.eq(timer + 1)

        with m.FSM(name="link"):
            # ---- receive
            with m.State("HUNT"):
                m.d.comb += self.idle.eq(~engine.busy)
                m.d.sync += [timer.eq(0), streaming.eq(0), overrun.eq(0), widx.eq(0),
                             pidx.eq(0), param.eq(0)]
                with m.If(self.rx_valid & (byte == P.REQUEST_SYNC)):
                    m.d.sync += [crc.eq(0xFFFF), op.eq(0xFF)]
                    m.next = "OP"
            with m.State("OP"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [op.eq(byte), crc.eq(crc_next)]
                    m.next = "LEN0"
            with m.State("LEN0"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [length[:8].eq(byte), crc.eq(crc_next)]
                    m.next = "LEN1"
            with m.State("LEN1"):
                timeout()
                with m.If(self.rx_valid):
                    full = Cat(length[:8], byte)
                    m.d.sync += [length[8:].eq(byte), left.eq(full),
                                 crc.eq(crc_next),
                                 is_a.eq(op == P.Op.WRITE_A),
                                 streaming.eq(((op == P.Op.WRITE_A) | (op == P.Op.WRITE_B))
                                              & job_open & ~job_failed)]
                    with m.If(full == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [crc.eq(crc_next), left.eq(left - 1)]
                    with m.If(pidx < 6):
                        m.d.sync += [param.word_select(pidx, 8).eq(byte), pidx.eq(pidx + 1)]
                    with m.If(streaming):
                        m.d.sync += word.word_select(widx, 8).eq(byte)
                        wlimit = Mux(is_a, self.a_word_bytes, self.b_word_bytes)
                        with m.If(widx == wlimit - 1):
                            m.d.sync += [widx.eq(0), push.eq(1)]
                        with m.Else():
                            m.d.sync += widx.eq(widx + 1)
                    with m.If(left == 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += rx_crc[:8].eq(byte)
                    m.next = "CRC1"
            with m.State("CRC1"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += rx_crc[8:].eq(byte)
                    m.next = "EXEC"

            # ---- dispatch
            fixed = {op_: n for op_, n in P.FIXED_LENGTH.items()}
            with m.State("EXEC"):
                known = Signal()
                len_ok = Signal()
                m.d.comb += known.eq(0)
                for op_ in P.Op:
                    with m.If(op == op_):
                        m.d.comb += known.eq(1)
                        if op_ in fixed:
                            m.d.comb += len_ok.eq(length == fixed[op_])
                        else:
                            m.d.comb += len_ok.eq(widx == 0)
                with m.If(rx_crc != crc):
                    fail_stream()
                    reply(P.Status.ERR_CRC)
                with m.Elif(~known):
                    reply(P.Status.ERR_OPCODE)
                with m.Elif(~len_ok):
                    fail_stream()
                    reply(P.Status.ERR_LENGTH)
                with m.Elif(op == P.Op.INFO):
                    reply(P.Status.OK, len(self._info))
                with m.Elif(op == P.Op.STATUS):
                    flags = Cat(engine.busy, engine.c.valid & job_open & ~job_failed,
                                job_open & ~job_failed, job_failed, engine.error)
                    m.d.sync += status_bytes.eq(Cat(flags, Const(0, 3), engine.cycles,
                                                    c_left))
                    reply(P.Status.OK, P.STATUS_PAYLOAD_BYTES)
                with m.Elif((op == P.Op.JOB) | (op == P.Op.ABORT)):
                    m.d.sync += [eng_rst.eq(1), job_open.eq(0), job_failed.eq(0),
                                 c_left.eq(0)]
                    with m.If(op == P.Op.JOB):
                        m.next = "JOB_RESET"
                    with m.Else():
                        reply(P.Status.OK)
                with m.Elif((op == P.Op.WRITE_A) | (op == P.Op.WRITE_B)):
                    with m.If(~job_open | job_failed):
                        reply(P.Status.ERR_STATE)
                    with m.Elif(overrun):
                        m.d.sync += job_failed.eq(1)
                        reply(P.Status.ERR_OVERRUN)
                    with m.Else():
                        reply(P.Status.OK)
                with m.Else():  # READ_C
                    count = param[:16]
                    nbytes = _times_constant(count, self.c_word_bytes)
                    with m.If(~job_open | job_failed):
                        reply(P.Status.ERR_STATE)
                    with m.Elif((count == 0) | (count > c_left)
                                | (count > P.MAX_PAYLOAD // self.c_word_bytes)):
                        reply(P.Status.ERR_RANGE)
                    with m.Elif(~engine.c.valid):
                        reply(P.Status.ERR_NOT_READY)
                    with m.Else():
                        m.d.sync += [c_left.eq(c_left - count), cidx.eq(0)]
                        reply(P.Status.OK, nbytes[:16])

            with m.State("JOB_RESET"):   # the engine is in reset
                m.next = "JOB_CMD"
            with m.State("JOB_CMD"):     # the engine is out of reset: offer the command
                m.d.comb += engine.cmd.valid.eq(1)
                with m.If(engine.cmd.ready):
                    m.d.sync += [job_m.eq(param[0:16]), job_n.eq(param[32:48]), c_left.eq(0),
                                 tile_acc.eq(0)]
                    m.next = "JOB_CHECK"
            with m.State("JOB_CHECK"):   # error is valid one cycle after the handshake
                with m.If(engine.error):
                    reply(P.Status.ERR_DIMS)
                with m.Else():
                    m.next = "JOB_TILES"
            # C words = M x ceil(N / C), by repeated addition: no multiplier, so that every
            # DSP block of the device is left to the array
            with m.State("JOB_TILES"):
                with m.If(tile_acc < job_n):
                    m.d.sync += [tile_acc.eq(tile_acc + C), c_left.eq(c_left + job_m)]
                with m.Else():
                    m.d.sync += job_open.eq(1)
                    reply(P.Status.OK)

            # ---- reply: 5A op status len_lo len_hi payload crc_lo crc_hi
            def send(value, nxt, crc_it=True):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
                with m.If(self.tx.ready):
                    if crc_it:
                        m.d.sync += tx_crc.eq(crc16_step(m, tx_crc, value))
                    m.next = nxt

            with m.State("REPLY_SYNC"):
                m.d.sync += error.eq(status != P.Status.OK)
                m.d.sync += tx_crc.eq(0xFFFF)
                send(P.REPLY_SYNC, "REPLY_OP", crc_it=False)
            with m.State("REPLY_OP"):
                send(op, "REPLY_STATUS")
            with m.State("REPLY_STATUS"):
                send(status, "REPLY_LEN0")
            with m.State("REPLY_LEN0"):
                send(rlen[:8], "REPLY_LEN1")
            with m.State("REPLY_LEN1"):
                with m.If(rlen == 0):
                    send(rlen[8:], "REPLY_CRC0")
                with m.Elif(op == P.Op.READ_C):
                    send(rlen[8:], "REPLY_CWORD")
                with m.Else():
                    send(rlen[8:], "REPLY_PAYLOAD")
            with m.State("REPLY_CWORD"):  # take the next C word from the engine
                m.d.comb += engine.c.ready.eq(1)
                with m.If(engine.c.valid):
                    m.d.sync += [cword.eq(engine.c.payload.data.as_value()), cidx.eq(0)]
                    m.next = "REPLY_PAYLOAD"
            with m.State("REPLY_PAYLOAD"):
                m.d.comb += info_rd.addr.eq(ridx)
                value = Signal(8)
                with m.If(op == P.Op.INFO):
                    m.d.comb += value.eq(info_rd.data)
                with m.Elif(op == P.Op.STATUS):
                    m.d.comb += value.eq(status_bytes.word_select(ridx[:4], 8))
                with m.Else():
                    m.d.comb += value.eq(cword.word_select(cidx, 8))
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
                with m.If(self.tx.ready):
                    m.d.sync += [tx_crc.eq(crc16_step(m, tx_crc, value)), ridx.eq(ridx + 1),
                                 cidx.eq(cidx + 1)]
                    with m.If(ridx == rlen - 1):
                        m.next = "REPLY_CRC0"
                    with m.Elif((op == P.Op.READ_C) & (cidx == self.c_word_bytes - 1)):
                        m.next = "REPLY_CWORD"
            with m.State("REPLY_CRC0"):
                send(tx_crc[:8], "REPLY_CRC1", crc_it=False)
            with m.State("REPLY_CRC1"):
                send(tx_crc[8:], "HUNT", crc_it=False)

        return m


def _times_constant(value, k):
    """``value * k`` for a constant ``k`` as a sum of shifted copies of ``value``: yosys maps
    a ``*`` to a DSP block (``synth_ice40 -dsp``), which the array needs."""
    terms = [value << i for i in range(k.bit_length()) if k >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0)
