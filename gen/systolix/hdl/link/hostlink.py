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
        left_one = Signal()          # left == 1 (registered with it)
        left_zero = Signal()         # the request has no payload
        crc = Signal(16)
        rx_crc = Signal(16)
        param = Signal(48)           # first 6 payload bytes (fixed-length requests)
        pidx = Signal(range(8))
        timer = Signal(range(self._timeout + 1))
        timer_end = Signal()         # timer == timeout - 1 (registered with it)
        # timer == timeout - 2 as one flag per 4 bits of the timer, set with the timer: on a
        # step, each from its 4 bits of timer == timeout - 3. timer_end is then an AND of
        # flip-flops, not a chain of LUTs from the timer (the iCE40 UP5K's critical path).
        near_at = self._timeout - 2
        nibbles = [(lo, min(lo + 4, len(timer))) for lo in range(0, len(timer), 4)]

        def near_flags(value):
            return sum(1 << i for i, (lo, hi) in enumerate(nibbles)
                       if ((value ^ near_at) >> lo) % (1 << (hi - lo)) == 0)
        timer_near = Signal(len(nibbles), init=near_flags(0))
        step_near = Cat(timer[lo:hi] == ((near_at - 1) >> lo) % (1 << (hi - lo))
                        for lo, hi in nibbles)

        def set_timer(value):
            return [timer.eq(value), timer_end.eq(0), timer_near.eq(near_flags(value))]
        byte = self.rx_data
        # The request's CRC takes each byte a cycle after it arrived (``rx_crc_go``; the byte
        # stays in ``rx_data``, the next is a UART frame away), so that the byte's arrival and
        # the CRC's XORs are not one path.
        rx_crc_go = Signal()
        m.d.sync += rx_crc_go.eq(0)
        with m.If(rx_crc_go):
            m.d.sync += crc.eq(crc16_step(m, crc, byte))
        byte_sync = Signal()         # the last byte received is the sync byte
        m.d.sync += byte_sync.eq(byte == P.REQUEST_SYNC)

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
        # (sized for a command the engine accepts: a JOB's M and N are checked by the engine
        # before they are used, so its C words are at most max_m x ceil(max_n / C); narrow
        # counters keep READ_C's checks and arithmetic short)
        tiles_max = -(-cfg.max_n // C)
        job_m = Signal(range(cfg.max_m + 1))
        job_n = Signal(range(cfg.max_n + 1))
        tile_acc = Signal(range(tiles_max * C + 1))
        c_left = Signal(range(cfg.max_m * tiles_max + 1))

        # ---- reply state
        status = Signal(8)
        rlen = Signal(16)
        ridx = Signal(16)
        tx_crc = Signal(16)
        rlen_m1 = Signal(16)         # rlen - 1, registered while the reply's header goes out
        rlen_zero = Signal()         # rlen == 0, registered with it
        ridx_last = Signal()         # ridx == rlen_m1 (registered; see REPLY_PAYLOAD)
        cidx_last = Signal()         # cidx == c_word_bytes - 1 (registered with cidx)
        # The reply's CRC takes each byte a cycle after it is sent (the next byte follows a
        # whole UART frame later), so that the byte's selection and the CRC are not one path.
        crc_byte = Signal(8)
        crc_go = Signal()
        error = Signal()
        m.d.comb += self.error.eq(error)

        info_mem = Memory(shape=8, depth=len(self._info), init=list(self._info))
        m.submodules.info_mem = info_mem
        # (registered reads of ridx: a payload byte is sent a UART frame after ridx moves)
        info_rd = info_mem.read_port()
        status_bytes = Signal(8 * P.STATUS_PAYLOAD_BYTES)
        cword = Signal(8 * self.c_word_bytes)
        c_in = Signal(len(engine.c.payload.data.as_value()), reset_less=True)
        m.d.sync += c_in.eq(engine.c.payload.data.as_value())
        cidx = Signal(range(self.c_word_bytes + 1))
        # cword's (and status_bytes') load and shift are flip-flops set a cycle ahead, so that
        # the enables of its 8 x c_word_bytes flip-flops are not decoded from the state: a C
        # word is loaded in REPLY_CLOAD, a cycle after the engine's hand-shake, and shifted in
        # the cycle after a byte is sent (the next byte is a UART frame away)
        cw_load, cw_shift = Signal(), Signal()
        m.d.sync += [cw_load.eq(0), cw_shift.eq(0)]
        with m.If(cw_load):
            m.d.sync += cword.eq(c_in)
        with m.Elif(cw_shift):
            m.d.sync += [cword.eq(cword >> 8), status_bytes.eq(status_bytes >> 8)]

        # engine streams
        a_bits, b_bits = P.a_word_bits(cfg), P.b_word_bits(cfg)
        assert (a_bits, b_bits) == (Shape.cast(engine.a.payload.shape()).width,
                                    Shape.cast(engine.b.payload.shape()).width)
        m.d.comb += [
            engine.a.payload.eq(word[:a_bits]), engine.b.payload.eq(word[:b_bits]),
            engine.a.valid.eq(push & is_a), engine.b.valid.eq(push & ~is_a),
        ]
        # The command's dimensions as the engine sees them: each dimension's bits up to its
        # buffers' limit, and one flag (registered in DECODE) for any bit above, which makes
        # the value exceed the limit exactly when the request's does; zero stays zero. So the
        # engine's command checks see a few bits, not 16.
        big = {}
        for i, (dim, limit) in enumerate((("m", cfg.max_m), ("k", cfg.max_k), ("n", cfg.max_n))):
            w = limit.bit_length()
            field = param[16 * i:16 * i + 16]
            if w < 16:
                big[dim] = (Signal(name=f"cmd_{dim}_big"), field[w:].any())
                m.d.comb += getattr(engine.cmd.payload, dim).eq(Cat(field[:w], big[dim][0]))
            else:
                m.d.comb += getattr(engine.cmd.payload, dim).eq(field)
        taken = (engine.a.ready & is_a) | (engine.b.ready & ~is_a)
        m.d.sync += push.eq(0)
        with m.If(push & ~taken):
            m.d.sync += overrun.eq(1)

        m.d.comb += [
            self.busy.eq(job_open | engine.busy),
        ]

        def reply(st, n=0):
            m.d.sync += [status.eq(st), rlen.eq(n)]
            m.next = "REPLY_SYNC"

        def fail_stream():
            with m.If(streaming):
                m.d.sync += job_failed.eq(1)

        def timeout():
            # inter-byte timeout of a request in progress (called in every receiving state)
            with m.If(self.rx_valid):
                m.d.sync += set_timer(0)
            with m.Elif(timer_end):
                fail_stream()
                reply(P.Status.ERR_TIMEOUT)
            with m.Else():
                m.d.sync += [timer.eq(timer + 1), timer_end.eq(timer_near.all()),
                             timer_near.eq(step_near)]

        m.d.comb += info_rd.addr.eq(ridx)
        # The engine's command valid and C ready are flip-flops, high exactly in JOB_CMD and
        # REPLY_CWORD: they reach the engine's control, not the link's state decoding.
        cmd_valid, c_take = Signal(), Signal()
        m.d.comb += [engine.cmd.valid.eq(cmd_valid), engine.c.ready.eq(c_take)]
        # (c_take is high only in REPLY_CWORD: it falls with the hand-shake, which is then one
        # gate from its flip-flop, not the state's decoding)
        with m.If(c_take & engine.c.valid):
            m.d.sync += c_take.eq(0)
        m.d.sync += crc_go.eq(0)
        # ridx moves only when a reply byte is sent, and no byte is sent in the cycle after
        # one (``crc_go``): so a flag registered every cycle is current whenever it is read
        m.d.sync += ridx_last.eq(ridx == rlen_m1)
        with m.If(crc_go):
            m.d.sync += tx_crc.eq(crc16_step(m, tx_crc, crc_byte))

        # ---- dispatch. The opcode's, the length's and READ_C's count's checks are
        # registered in every cycle (op, length, the payload, the job's state and c_left
        # are set UART frames before DECODE and hold until the reply is sent); DECODE
        # registers the CRC's check and the reply the request gets if its CRC is right
        # (``x_*``), so that EXEC acts on flip-flops: on the CRC's check and, for READ_C,
        # on the engine's C valid.
        fixed = {op_: n for op_, n in P.FIXED_LENGTH.items()}
        count = param[:16]  # READ_C: the words asked for
        bad_crc = Signal()
        known, len_ok, bad_count = (Signal(reset_less=True) for _ in range(3))
        is_op = {op_: Signal(name=f"is_{op_.name.lower()}", reset_less=True) for op_ in P.Op}
        nbytes = Signal(16, reset_less=True)
        m.d.sync += [is_op[op_].eq(op == op_) for op_ in P.Op]
        len_is = {n: Signal(name=f"len_is_{n}", reset_less=True)
                  for n in sorted(set(fixed.values()))}
        m.d.sync += [flag.eq(length == n) for n, flag in len_is.items()]
        m.d.sync += [known.eq(Cat(is_op.values()).any()),
                     len_ok.eq(Cat(is_op[op_] & (len_is[fixed[op_]] if op_ in fixed
                                                 else widx == 0)
                                   for op_ in P.Op).any()),
                     bad_count.eq((count == 0) | (count > c_left)
                                  | (count > P.MAX_PAYLOAD // self.c_word_bytes)),
                     nbytes.eq(_times_constant(count, self.c_word_bytes)[:16])]
        x_status = Signal(8, reset_less=True)
        x_rlen = Signal(16, reset_less=True)
        x_len_fail = Signal(reset_less=True)  # a length error: a WRITE frame's stream fails
        x_reset = Signal(reset_less=True)     # JOB or ABORT: the engine reset, the job closed
        x_job = Signal(reset_less=True)
        x_overrun = Signal(reset_less=True)   # a WRITE whose words overran: the job fails
        x_read = Signal(reset_less=True)      # a right READ_C: OK if a C word is ready
        # (the reply a request gets if its CRC is right, also registered in every cycle, in
        # two stages: four flip-flops from op, length and the payload at most)
        hdr_ok, job_ok = Signal(reset_less=True), Signal(reset_less=True)
        m.d.sync += [hdr_ok.eq(known & len_ok), job_ok.eq(job_open & ~job_failed)]
        is_write = is_op[P.Op.WRITE_A] | is_op[P.Op.WRITE_B]
        read_ok = is_op[P.Op.READ_C] & job_ok & ~bad_count
        m.d.sync += [
            x_len_fail.eq(known & ~len_ok),
            x_reset.eq(hdr_ok & (is_op[P.Op.JOB] | is_op[P.Op.ABORT])),
            x_job.eq(hdr_ok & is_op[P.Op.JOB]),
            x_overrun.eq(hdr_ok & is_write & job_ok & overrun),
            x_read.eq(hdr_ok & read_ok),
            x_rlen.eq(Mux(~hdr_ok, 0,
                          Mux(is_op[P.Op.INFO], len(self._info),
                              Mux(is_op[P.Op.STATUS], P.STATUS_PAYLOAD_BYTES,
                                  Mux(read_ok, nbytes, 0))))),
            x_status.eq(Mux(~known, P.Status.ERR_OPCODE,
                            Mux(~len_ok, P.Status.ERR_LENGTH,
                                Mux((is_write | is_op[P.Op.READ_C]) & ~job_ok,
                                    P.Status.ERR_STATE,
                                    Mux(is_write & overrun, P.Status.ERR_OVERRUN,
                                        Mux(is_op[P.Op.READ_C] & bad_count,
                                            P.Status.ERR_RANGE, P.Status.OK)))))),
        ]
        with m.FSM(name="link"):
            # ---- receive
            with m.State("HUNT"):
                m.d.comb += self.idle.eq(~engine.busy)
                m.d.sync += [*set_timer(0), streaming.eq(0), overrun.eq(0), widx.eq(0),
                             pidx.eq(0), param.eq(0)]
                with m.If(self.rx_valid):
                    m.next = "SYNC"
            # Whether the byte is the sync byte is decided a cycle after it arrived, from a
            # flip-flop (the next byte is a UART frame away); the timer takes its first step
            # here, so a request's timeout is counted from the sync byte, as in every state.
            with m.State("SYNC"):
                m.d.comb += self.idle.eq(~engine.busy & ~byte_sync)
                with m.If(byte_sync):
                    m.d.sync += [crc.eq(0xFFFF), op.eq(0xFF), *set_timer(1)]
                    m.next = "OP"
                with m.Else():
                    m.next = "HUNT"
            with m.State("OP"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [op.eq(byte), rx_crc_go.eq(1)]
                    m.next = "LEN0"
            with m.State("LEN0"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [length[:8].eq(byte), rx_crc_go.eq(1)]
                    m.next = "LEN1"
            with m.State("LEN1"):
                timeout()
                with m.If(self.rx_valid):
                    full = Cat(length[:8], byte)
                    m.d.sync += [length[8:].eq(byte), left.eq(full), left_one.eq(full == 1),
                                 rx_crc_go.eq(1),
                                 is_a.eq(op == P.Op.WRITE_A),
                                 streaming.eq(((op == P.Op.WRITE_A) | (op == P.Op.WRITE_B))
                                              & job_open & ~job_failed)]
                    m.d.sync += left_zero.eq(full == 0)
                    m.next = "LEN_CHECK"
            with m.State("LEN_CHECK"):  # (the next byte is a UART frame away)
                with m.If(left_zero):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                timeout()
                with m.If(self.rx_valid):
                    m.d.sync += [rx_crc_go.eq(1), left.eq(left - 1), left_one.eq(left == 2)]
                    with m.If(pidx < 6):
                        m.d.sync += [param.word_select(pidx, 8).eq(byte), pidx.eq(pidx + 1)]
                    with m.If(streaming):
                        m.d.sync += word.word_select(widx, 8).eq(byte)
                        wlimit = Mux(is_a, self.a_word_bytes, self.b_word_bytes)
                        with m.If(widx == wlimit - 1):
                            m.d.sync += [widx.eq(0), push.eq(1)]
                        with m.Else():
                            m.d.sync += widx.eq(widx + 1)
                    with m.If(left_one):
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
                    m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += [flag.eq(value) for flag, value in big.values()]
                m.d.sync += bad_crc.eq(rx_crc != crc)
                m.next = "EXEC"
            with m.State("EXEC"):
                with m.If(is_op[P.Op.STATUS]):  # (read only by a STATUS reply)
                    flags = Cat(engine.busy, engine.c.valid & job_open & ~job_failed,
                                job_open & ~job_failed, job_failed, engine.error)
                    m.d.sync += status_bytes.eq(Cat(flags, Const(0, 3), engine.cycles,
                                                    c_left, Const(0, 32 - len(c_left))))
                with m.If(bad_crc):
                    fail_stream()
                    reply(P.Status.ERR_CRC)
                with m.Else():
                    with m.If(x_len_fail):
                        fail_stream()
                    with m.If(x_reset):  # (JOB and ABORT)
                        m.d.sync += [eng_rst.eq(1), job_open.eq(0), job_failed.eq(0),
                                     c_left.eq(0)]
                    with m.If(x_overrun):
                        m.d.sync += job_failed.eq(1)
                    # (the C word's valid reaches only a READ_C's registers)
                    not_ready = x_read & ~engine.c.valid
                    with m.If(x_read & engine.c.valid):
                        m.d.sync += [c_left.eq(c_left - count), cidx.eq(0),
                                     cidx_last.eq(self.c_word_bytes == 1)]
                    m.d.sync += [status.eq(Mux(not_ready, P.Status.ERR_NOT_READY, x_status)),
                                 rlen.eq(Mux(not_ready, 0, x_rlen))]
                    with m.If(x_job):
                        m.next = "JOB_RESET"
                    with m.Else():
                        m.next = "REPLY_SYNC"

            with m.State("JOB_RESET"):   # the engine is in reset
                m.d.sync += cmd_valid.eq(1)
                m.next = "JOB_CMD"
            with m.State("JOB_CMD"):     # the engine is out of reset: offer the command
                with m.If(engine.cmd.ready):
                    m.d.sync += cmd_valid.eq(0)
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
            # (two states per tile: the comparison is registered before the state acts on it)
            tiles_more = Signal()
            with m.State("JOB_TILES"):
                m.d.sync += tiles_more.eq(tile_acc < job_n)
                m.next = "JOB_TILE"
            with m.State("JOB_TILE"):
                with m.If(tiles_more):
                    m.d.sync += [tile_acc.eq(tile_acc + C), c_left.eq(c_left + job_m)]
                    m.next = "JOB_TILES"
                with m.Else():
                    m.d.sync += job_open.eq(1)
                    reply(P.Status.OK)

            # ---- reply: 5A op status len_lo len_hi payload crc_lo crc_hi
            def send(value, nxt, crc_it=True):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
                with m.If(self.tx.ready):
                    if crc_it:
                        m.d.sync += [crc_byte.eq(value), crc_go.eq(1)]
                    m.next = nxt

            with m.State("REPLY_SYNC"):
                m.d.sync += error.eq(status != P.Status.OK)
                m.d.sync += [tx_crc.eq(0xFFFF), rlen_m1.eq(rlen - 1), rlen_zero.eq(rlen == 0),
                             ridx.eq(0)]
                send(P.REPLY_SYNC, "REPLY_OP", crc_it=False)
            with m.State("REPLY_OP"):
                send(op, "REPLY_STATUS")
            with m.State("REPLY_STATUS"):
                send(status, "REPLY_LEN0")
            with m.State("REPLY_LEN0"):
                send(rlen[:8], "REPLY_LEN1")
            with m.State("REPLY_LEN1"):
                with m.If(rlen_zero):
                    send(rlen[8:], "REPLY_CRC0")
                with m.Elif(is_op[P.Op.READ_C]):
                    send(rlen[8:], "REPLY_CWORD")
                    with m.If(self.tx.ready):
                        m.d.sync += c_take.eq(1)
                with m.Else():
                    send(rlen[8:], "REPLY_PAYLOAD")
            with m.State("REPLY_CWORD"):  # take the next C word from the engine
                with m.If(engine.c.valid):
                    m.d.sync += cw_load.eq(1)
                    m.next = "REPLY_CLOAD"
            # The word taken reaches ``cword`` through ``c_in``, a register without an enable
            # that follows the port in every cycle: the word crosses from the engine's output
            # to the link in two register stages (the next byte is a UART frame away).
            with m.State("REPLY_CLOAD"):  # (cword <- c_in, by cw_load)
                m.d.sync += [cidx.eq(0), cidx_last.eq(self.c_word_bytes == 1)]
                m.next = "REPLY_PAYLOAD"
            with m.State("REPLY_PAYLOAD"):
                value = Signal(8)
                cidx_next_last = ((cidx == self.c_word_bytes - 2) if self.c_word_bytes > 1
                                  else 0)
                with m.If(is_op[P.Op.INFO]):
                    m.d.comb += value.eq(info_rd.data)
                with m.Elif(is_op[P.Op.STATUS]):
                    m.d.comb += value.eq(status_bytes[:8])
                with m.Else():
                    m.d.comb += value.eq(cword[:8])
                # (not in the cycle after a byte: the INFO byte of the new ridx is read then)
                with m.If(~crc_go):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
                    with m.If(self.tx.ready):
                        m.d.sync += [crc_byte.eq(value), crc_go.eq(1), ridx.eq(ridx + 1),
                                     cidx.eq(cidx + 1), cidx_last.eq(cidx_next_last),
                                     # the next byte of STATUS and of the C word to the front
                                     cw_shift.eq(1)]
                        with m.If(ridx_last):
                            m.next = "REPLY_CRC0"
                        with m.Elif(is_op[P.Op.READ_C] & cidx_last):
                            m.d.sync += c_take.eq(1)
                            m.next = "REPLY_CWORD"
            with m.State("REPLY_CRC0"):
                with m.If(~crc_go):  # the last byte is in tx_crc
                    send(tx_crc[:8], "REPLY_CRC1", crc_it=False)
            with m.State("REPLY_CRC1"):
                send(tx_crc[8:], "HUNT", crc_it=False)

        return m


def _times_constant(value, k):
    """``value * k`` for a constant ``k`` as a sum of shifted copies of ``value``: yosys maps
    a ``*`` to a DSP block (``synth_ice40 -dsp``), which the array needs."""
    terms = [value << i for i in range(k.bit_length()) if k >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0)
