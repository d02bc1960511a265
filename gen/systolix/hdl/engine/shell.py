"""The engine's shell: ports, buffers, the phase FSM (IDLE -> LOAD -> COMPUTE -> FLUSH ->
DRAIN) and the drain; the compute phase belongs to the core's sequencer (:data:`SEQUENCERS`).
"""

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...config import DIM_WIDTH, EngineConfig
from ...config.core import OutputStationaryCore, TensorCore, WeightStationaryCore
from ..arith import acc_shape, operand_shape
from ..buffer import BufferMemory
from ..requant import Requantizer, param_layout, requant_output_layout
from .os_sequencer import OutputStationarySequencer
from .sequencer import Loader, above, at_least, c_addr
from .tc_sequencer import TensorCoreSequencer
from .ws_sequencer import WeightStationarySequencer

__all__ = ["MatrixEngine", "command_layout", "a_word_layout", "b_word_layout", "result_layout",
           "CYCLES_WIDTH", "SEQUENCERS"]

#: Compute core type (:mod:`systolix.config.core`) -> the sequencer that drives it during the
#: compute phase. A new compute core plugs in here.
SEQUENCERS = {
    OutputStationaryCore: OutputStationarySequencer,
    WeightStationaryCore: WeightStationarySequencer,
    TensorCore: TensorCoreSequencer,
}

#: Width of the ``cycles`` status output.
CYCLES_WIDTH = 32


def command_layout():
    """Payload of the command stream: the GEMM's dimensions and the keep-weights flag (reuse
    the B and parameter words of the last job that loaded them)."""
    return data.StructLayout({"m": DIM_WIDTH, "k": DIM_WIDTH, "n": DIM_WIDTH, "keep": 1})


def _word_layout(shape, lanes):
    """Layout of a buffer word of ``lanes`` elements of ``shape``: ``(n,)`` is a vector,
    ``(rows, cols)`` a row-major matrix (as the MMA unit's: element (r, c) is ``view[r][c]``)."""
    layout = shape
    for length in reversed(lanes):
        layout = data.ArrayLayout(layout, length)
    return layout


def a_word_layout(config: EngineConfig):
    """One word of the ``a`` stream / A buffer: ``rows`` operands, or for a tensor-core engine
    an m x k fragment (row-major): the core's ``a_word``."""
    return _word_layout(operand_shape(config.numerics), config.compute.a_word)


def b_word_layout(config: EngineConfig):
    """One word of the ``b`` stream / B buffer: ``cols`` operands, or for a tensor-core engine
    a k x cols fragment (row-major; unit u takes columns u*n .. u*n + n - 1): the core's
    ``b_word``."""
    return _word_layout(operand_shape(config.numerics), config.compute.b_word)


def result_layout(config: EngineConfig):
    """Payload of the C stream: ``cols`` accumulators of one row of C (or, with requantization,
    ``cols`` 8-bit outputs), and ``last``."""
    if config.requant is not None:
        return requant_output_layout(config.requant)
    return data.StructLayout({
        "data": data.ArrayLayout(acc_shape(config.numerics), config.cols),
        "last": 1,
    })


class MatrixEngine(wiring.Component):
    """C = A x B for any M x K x N within the buffers, folded over an R x C systolic array or
    over ``cores`` m x n x k tensor-core MMA units (then R = m and C = n * cores below).

    **Command** (stream ``cmd``): ``{m, k, n}``, accepted only when idle. A command with a zero
    dimension or one beyond ``max_m``/``max_k``/``max_n`` is rejected: ``error`` rises, ``done``
    pulses one cycle later, no data is accepted and the buffers are untouched. Otherwise the job
    runs three phases and ``done`` pulses after the last C word has been taken.

    **Load** (streams ``a`` and ``b``, concurrently, each at most one word per cycle). Each stream
    carries its buffer's words in address order; ``ready`` stays high until the job's word count
    is reached. Word layouts (lane 0 at the least significant bits; lanes past the matrix edge are
    padding, any value):

    * ``b`` (both dataflows): for each column tile n0 = 0, C, 2C, ..: for k in 0..K-1:
      ``lane c = B[k, n0 + c]``. ``ceil(N/C) * K`` words.
    * ``a``, output-stationary: for each row tile m0 = 0, R, ..: for k in 0..K-1:
      ``lane r = A[m0 + r, k]``. ``ceil(M/R) * K`` words.
    * ``a``, weight-stationary: for each k-tile k0 = 0, R, ..: for m in 0..M-1:
      ``lane r = A[m, k0 + r]``. ``ceil(K/R) * M`` words.
    * ``a``, tensor core: one m x k fragment per word (row-major, element (r, j) =
      ``A[m0 + r, k0 + j]``): for each row tile m0 = 0, m, ..: for each k-step k0 = 0, k, ...
      ``ceil(M/m) * ceil(K/k)`` words.
    * ``b``, tensor core: one k x C fragment per word (row-major, element (j, c) =
      ``B[k0 + j, n0 + c]``; unit u takes columns u*n .. u*n + n - 1): for each column tile
      n0 = 0, C, ..: for each k-step k0. ``ceil(N/C) * ceil(K/k)`` words.

    **Compute** (no port activity; ``busy`` high). Output-stationary: each R x C output tile
    streams its K beats through the array, tiles back to back (at least R cycles apart).
    Weight-stationary: each (column tile, k-tile) pair loads its R x C weights into the PEs'
    shadow registers while the previous pair computes, then streams the M rows of A; partial
    sums are accumulated into the C buffer (read-modify-write, the accumulation chunk is R).
    Tensor core: the m x C output tiles go in groups of L (the MMA latency); a group issues
    k-step 0 of its L tiles on consecutive cycles, then k-step 1, and so on, one MMA per cycle
    on all units (the units share the A fragment, each takes its n columns of the B fragment).
    Each tile's D leaves the pipeline exactly when its next k-step enters, and is fed straight
    back as C: the accumulators live in the units' pipelines, with no read-modify-write. A
    tile's final D (an m x C fragment, one C buffer word) is written to C. Lanes of A past K are
    masked to zero (the accumulation chunk is k).
    ``cycles`` counts the cycles of this phase (and the flush of the last results into C); it
    is cleared when a command is accepted, so it reads 0 after a rejected command, and holds the
    job's count from ``done`` until the next command is accepted.

    **Drain** (stream ``c``, backpressure honoured): for m in 0..M-1: for each column tile:
    ``data[c] = C[m, n0 + c]``, ``last`` on the final word. ``ceil(N/C) * M`` words.

    Parameters
    ----------
    config : EngineConfig

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout()))
    a : In(stream.Signature(ArrayLayout(operand, rows)))
    b : In(stream.Signature(ArrayLayout(operand, cols)))
    q : In(stream.Signature(ArrayLayout(param_layout, cols))), only with requantization
        Per column tile n0 = 0, C, ..: lane c holds the parameters of output column n0 + c
        (``ceil(N/C)`` words, loaded with A and B).
    c : Out(stream.Signature(result_layout(config)))
    busy : Out(1)
        A job is in progress (high from the cycle after its command is accepted until ``done``).
    done : Out(1)
        One-cycle pulse: the job finished (or was rejected).
    error : Out(1)
        The last command was rejected. Cleared when a command is accepted.
    cycles : Out(32)
        Compute-phase cycles of the last job; 0 after a rejected command.
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        members = {
            "cmd": In(stream.Signature(command_layout())),
            "a": In(stream.Signature(a_word_layout(config))),
            "b": In(stream.Signature(b_word_layout(config))),
        }
        if config.requant is not None:
            members["q"] = In(stream.Signature(
                data.ArrayLayout(param_layout(config.requant), config.cols)))
        super().__init__({
            **members,
            "c": Out(stream.Signature(result_layout(config))),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "cycles": Out(CYCLES_WIDTH),
        })

    @property
    def config(self):
        return self._config

    @property
    def output_latency(self):
        """Register stages between the C buffer and the ``c`` stream
        (:attr:`EngineConfig.output_latency <systolix.config.EngineConfig.output_latency>`)."""
        return self._config.output_latency

    @property
    def buffer_read_latency(self):
        """Cycles from an A or B buffer address to its word at the core: the synchronous block
        RAM's read, and a register on the read data with a pipelined core
        (:attr:`ComputeCore.buffer_read_latency <systolix.config.core.ComputeCore>`)."""
        return self._config.compute.buffer_read_latency

    def elaborate(self, platform):
        if self._config.buffering == "double":
            return _elaborate_double(self)
        m = Module()
        cfg = self._config
        R, C, num = cfg.rows, cfg.cols, cfg.numerics
        # a C word is one row, or a fragment of rows (tensor core: m x cols, one write per MMA)
        frag = len(cfg.compute.c_word) == 2
        c_word = _word_layout(acc_shape(num), cfg.compute.c_word)

        # ---- buffers (block RAM): one write and one read port each
        # (at least 2 words: a 1-word memory would have a 0-bit address, invalid Verilog)
        a_wr, a_rd = _buffer(m, "a_mem", a_word_layout(cfg), max(2, cfg.a_depth),
                             _memory_latency(cfg))
        b_wr, b_rd = _buffer(m, "b_mem", b_word_layout(cfg), max(2, cfg.b_depth),
                             _memory_latency(cfg))
        c_mem = Memory(shape=c_word, depth=max(2, cfg.c_depth), init=[])
        m.submodules.c_mem = c_mem
        bufs = _Buffers(a_wr=a_wr, a_rd=a_rd, b_wr=b_wr, b_rd=b_rd,
                        c_wr=c_mem.write_port(), c_rd=c_mem.read_port())

        # ---- the compute core's sequencer (SEQUENCERS): job registers, loaders, compute phase
        seq = SEQUENCERS[type(cfg.compute)](cfg, self.buffer_read_latency)

        # ---- job registers
        job = _Job(cfg, seq.job_registers())
        weights = _Weights(cfg)
        cycles = Signal(CYCLES_WIDTH)
        error = Signal()
        done = Signal()
        m.d.comb += [self.cycles.eq(cycles), self.error.eq(error), self.done.eq(done)]
        m.d.sync += done.eq(0)
        in_reset = ResetSignal()

        a_load, b_load = seq.loaders()
        a_limits, b_limits = seq.load_limits(job)
        a_limits0, b_limits0 = seq.load_limits(_command_view(seq, self.cmd.payload))

        # ---- the sequencer issues buffer reads, drives the array / MMA units, writes C
        m.d.comb += [bufs.c_rd.en.eq(1), bufs.c_rd.addr.eq(seq.c_rd_addr)]  # DRAIN overrides
        seq.elaborate(m, job, bufs)

        # ---- drain counters (m outer, column tile inner)
        dc = _DrainCounters(cfg, frag)
        c_valid = Signal()  # the C buffer's read register holds a word of this job
        c_last = Signal()
        if frag:
            # the row select is registered with the read
            c_sel = Signal(range(max(R, 2)))
            c_row = bufs.c_rd.data[c_sel] if R > 1 else bufs.c_rd.data[0]
        else:
            c_row = bufs.c_rd.data
        drain_addr = dc.addr
        credits = None
        if cfg.requant is None:
            drain_ready = _drain_output(m, cfg, c_valid, c_row, c_last, self.c)
        else:
            # The requantizer is a stalling pipeline behind the buffers' read registers (with a
            # pipelined core, the drain reads on credits instead).
            q_mem = Memory(shape=data.ArrayLayout(param_layout(cfg.requant), C),
                           depth=max(2, cfg.q_depth), init=[])
            m.submodules.q_mem = q_mem
            q_wr, q_rd = q_mem.write_port(), q_mem.read_port()
            q_load = Loader("q_load", cfg.q_depth, cfg.max_n, C, 1)
            credits = _drain_credits(m, cfg, self.c)
            m.submodules.requant = rq = Requantizer(
                cfg.requant, slack=_DrainCredits.slack if credits is not None else 0)
            m.d.comb += q_rd.addr.eq(dc.tile)
            drain_ready = _drain_output(m, cfg, c_valid, c_row, c_last, rq.i, q_rd,
                                        credits=credits and credits.of(rq))
            wiring.connect(m, rq.o, wiring.flipped(self.c))
        c_out_last = self.c.valid & self.c.ready & self.c.payload.last

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(~in_reset)
                cmd = self.cmd.payload
                bad = _bad_command(cfg, cmd, weights)
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += [error.eq(bad), cycles.eq(0)]
                    with m.If(bad):
                        m.d.sync += done.eq(1)
                    with m.Else():
                        m.d.sync += [job.m.eq(cmd.m), job.k.eq(cmd.k), job.n.eq(cmd.n)]
                        seq.accept(m, cmd, job)
                        a_load.start(m, *a_limits0)
                        b_load.start(m, *b_limits0)
                        if cfg.requant is not None:
                            q_load.start(m, cmd.n, 1)
                        with m.If(cmd.keep):  # B (and q) stay: their loads are done
                            m.d.sync += b_load.done.eq(1)
                            if cfg.requant is not None:
                                m.d.sync += q_load.done.eq(1)
                        with m.Else():
                            weights.take(m, cmd)
                        m.next = "LOAD"

            with m.State("LOAD"):
                m.d.comb += [
                    self.busy.eq(1),
                    self.a.ready.eq(~a_load.done & ~in_reset),
                    self.b.ready.eq(~b_load.done & ~in_reset),
                    bufs.a_wr.addr.eq(a_load.addr), bufs.a_wr.data.eq(self.a.payload),
                    bufs.a_wr.en.eq(self.a.valid & self.a.ready),
                    bufs.b_wr.addr.eq(b_load.addr), bufs.b_wr.data.eq(self.b.payload),
                    bufs.b_wr.en.eq(self.b.valid & self.b.ready),
                ]
                with m.If(bufs.a_wr.en):
                    a_load.take(m, *a_limits)
                with m.If(bufs.b_wr.en):
                    b_load.take(m, *b_limits)
                loaded = a_load.done & b_load.done
                if cfg.requant is not None:
                    m.d.comb += [
                        self.q.ready.eq(~q_load.done & ~in_reset),
                        q_wr.addr.eq(q_load.addr), q_wr.data.eq(self.q.payload),
                        q_wr.en.eq(self.q.valid & self.q.ready),
                    ]
                    with m.If(q_wr.en):
                        q_load.take(m, job.n, 1)
                    loaded &= q_load.done
                with m.If(loaded):
                    m.next = "COMPUTE"

            with m.State("COMPUTE"):
                m.d.comb += [self.busy.eq(1), seq.run.eq(1)]
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(seq.end):
                    m.next = "FLUSH"

            with m.State("FLUSH"):  # the array still holds results on their way to C
                m.d.comb += self.busy.eq(1)
                m.d.sync += cycles.eq(cycles + 1)
                with m.If(seq.final_write):
                    dc.start(m, job.m, job.n)
                    m.d.sync += c_valid.eq(0)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                # The read port's data register is the output register: it only advances
                # when the current word is taken (or there is none), so a stall holds it.
                advance = drain_ready
                m.d.comb += [bufs.c_rd.en.eq(advance),
                             bufs.c_rd.addr.eq(drain_addr)]
                with m.If(advance):
                    m.d.sync += c_valid.eq(dc.more)
                    if frag:
                        m.d.sync += c_sel.eq(dc.r)
                    with m.If(dc.more):
                        dc.step(m, job.m, job.n, c_last)
                        if credits is not None:
                            m.d.comb += credits.issue.eq(1)
                if credits is not None:  # the word moves on whether or not one follows
                    with m.Else():
                        m.d.sync += c_valid.eq(0)
                with m.If(c_out_last):
                    m.d.sync += [done.eq(1), c_valid.eq(0)]
                    m.next = "IDLE"
        return m


class _DrainCredits:
    """Flow control of a pipelined engine's drain into the requantizer, by credits: the
    drain's read register, the stage after it and the requantizer's pipe never stall, and a
    word is read (``issue``) only while fewer than the requantizer's capacity are on their way
    to or in it (``ready``, a register: it reaches the drain's enables from a flip-flop)."""

    #: Register stages from the drain's read to the requantizer's input (the C buffer's read
    #: register and the stage after it) less one (``ready`` is set a cycle ahead): the words
    #: more than the requantizer alone holds at full rate.
    slack = 2

    def __init__(self, m, out):
        self._m, self._out = m, out
        self.issue = Signal(name="drain_issue")  # a word is read now

    def of(self, rq):
        """Count the words against requantizer ``rq``'s capacity; returns ``self``."""
        m, limit = self._m, rq.capacity
        self.ready = Signal(init=1, name="drain_credit")
        self.one = Signal(name="drain_one_word")  # count == 1
        count = Signal(range(limit + 1), name="drain_words")  # read and not yet on the c port
        self.ready_next = Signal(name="drain_credit_next")  # ready in the next cycle
        self.give = give = self._out.valid & self._out.ready
        m.d.comb += self.ready_next.eq(self.ready)
        with m.If(self.issue & ~give):
            m.d.comb += self.ready_next.eq(count < limit - 1)
            m.d.sync += [count.eq(count + 1), self.one.eq(count == 0)]
        with m.Elif(give & ~self.issue):
            m.d.comb += self.ready_next.eq(1)
            m.d.sync += [count.eq(count - 1), self.one.eq(count == 2)]
        m.d.sync += self.ready.eq(self.ready_next)
        return self


def _drain_credits(m, cfg, out):
    """The drain's credits (:class:`_DrainCredits`) with a pipelined core, else ``None``."""
    return _DrainCredits(m, out) if cfg.compute.buffer_read_latency >= 2 else None


def _drain_output(m, cfg, c_valid, c_row, c_last, out, q_rd=None, c_out=None, q_out=None,
                  credits=None, ahead=None):
    """Connect the drain's C word (in the C buffer's read register: ``c_valid``, ``c_row``,
    ``c_last``) to stream ``out``: the ``c`` port, or the requantizer's input, which also takes
    the parameter word read alongside from ``q_rd``. With a pipelined core
    (``config.compute.buffer_read_latency`` 2) the word goes through one more register stage
    first, so that nothing but a register follows the block RAM: the block RAM's own output
    register when the buffer is a :class:`~systolix.hdl.buffer.BufferMemory` (``c_out`` /
    ``q_out``: called with the stage's enable, they return the word after that register).
    With ``credits`` (:class:`_DrainCredits`) that stage never stalls: the drain's ready is
    the credits', and the caller clears ``c_valid`` in a cycle that reads no word.
    ``ahead`` (a dict, with the skid register only) receives ``stage_ready_next``: the stage's
    ready of the next cycle, from this cycle's values.
    Returns the drain's ready: the C buffer's read register may take the next word."""
    rq = q_rd is not None
    if cfg.compute.buffer_read_latency == 1:
        m.d.comb += [out.valid.eq(c_valid), out.payload.last.eq(c_last)]
        if rq:
            m.d.comb += [out.payload.acc.eq(c_row), out.payload.params.eq(q_rd.data),
                         q_rd.en.eq(out.ready)]
            return out.ready
        m.d.comb += out.payload.data.eq(c_row)
        return ~c_valid | out.ready
    o_valid, o_last = Signal(name="c_out_valid"), Signal(name="c_out_last")
    row_layout = data.ArrayLayout(acc_shape(cfg.numerics), cfg.cols)
    # The c port's ready reaches a skid register only (the requantizer takes words on
    # credits): the drain and the block RAMs' enables follow a flag.
    skid = not rq
    if skid:
        s_valid, s_last = Signal(name="c_skid_valid"), Signal(name="c_skid_last")
        s_row = Signal(row_layout, name="c_skid_row", reset_less=True)
        o_ready = ~s_valid
    else:
        o_ready = out.ready
    stage_ready = Signal(name="c_out_stage_ready")
    m.d.comb += stage_ready.eq(1 if credits is not None else ~o_valid | o_ready)
    with m.If(stage_ready):
        m.d.sync += [o_valid.eq(c_valid), o_last.eq(c_last)]
    if c_out is None:
        o_row = Signal(row_layout, name="c_out_row", reset_less=True)
        with m.If(stage_ready):
            m.d.sync += o_row.eq(c_row)
    else:
        o_row = c_out(stage_ready)
    drain_ready = credits.ready if credits is not None else ~c_valid | stage_ready
    if rq:
        if q_out is None:
            o_params = Signal(data.ArrayLayout(param_layout(cfg.requant), cfg.cols),
                              name="c_out_params", reset_less=True)
            with m.If(stage_ready):
                m.d.sync += o_params.eq(q_rd.data)
        else:
            o_params = q_out(stage_ready)
        m.d.comb += [out.valid.eq(o_valid), out.payload.last.eq(o_last),
                     out.payload.acc.eq(o_row), out.payload.params.eq(o_params),
                     q_rd.en.eq(1 if credits is not None else drain_ready)]
    else:
        # unstalled the skid register stays empty: the stage's word goes on (to the port, or
        # with the core's output register into that register, which then drives the port)
        x_valid = o_valid | s_valid
        x_last = Mux(s_valid, s_last, o_last)
        x_row = Mux(s_valid, Value.cast(s_row), Value.cast(o_row))
        if cfg.compute.output_register:
            p_valid, p_last = Signal(name="c_port_valid"), Signal(name="c_port_last")
            p_row = Signal(row_layout, name="c_port_row", reset_less=True)
            x_ready = ~p_valid | out.ready
            with m.If(x_ready):
                m.d.sync += [p_valid.eq(x_valid), p_last.eq(x_last), p_row.eq(x_row)]
            m.d.comb += [out.valid.eq(p_valid), out.payload.last.eq(p_last),
                         out.payload.data.eq(p_row)]
        else:
            x_ready = out.ready
            m.d.comb += [out.valid.eq(x_valid), out.payload.last.eq(x_last),
                         out.payload.data.eq(x_row)]
        # (an empty skid register takes the stage's word in every cycle, so that its enable
        # is its own valid flag alone, not the port's ready: only ``s_valid`` follows that)
        with m.If(s_valid):
            with m.If(x_ready):
                m.d.sync += s_valid.eq(0)
        with m.Else():
            m.d.sync += [s_valid.eq(o_valid & ~x_ready), s_last.eq(o_last), s_row.eq(o_row)]
        if ahead is not None:
            o_valid_next = Mux(stage_ready, c_valid, o_valid)
            s_valid_next = ~x_ready & (s_valid | o_valid)
            ahead["stage_ready_next"] = ~o_valid_next | ~s_valid_next
    return drain_ready


def _bad_command(cfg, cmd, weights, parts=False):
    """A command the engine rejects: a zero dimension, one beyond the buffers, or keep-weights
    without weights of this K and N (``parts``: the two apart)."""
    dims = ((cmd.m == 0) | (cmd.k == 0) | (cmd.n == 0) | above(cmd.m, cfg.max_m)
            | above(cmd.k, cfg.max_k) | above(cmd.n, cfg.max_n))
    # (the dimensions' bits above the weights' are checked with the range already)
    keep = cmd.keep & (~weights.valid | (cmd.k[:len(weights.k)] != weights.k)
                       | (cmd.n[:len(weights.n)] != weights.n))
    return (dims, keep) if parts else dims | keep


class _Weights:
    """K and N of the weights (B and parameters) in the engine, ``valid`` once a job loads
    them (cleared by reset: a keep-weights job after a reset is rejected)."""

    def __init__(self, cfg):
        self.valid = Signal(name="weights_valid")
        self.k = Signal(range(cfg.max_k + 1), name="weights_k")
        self.n = Signal(range(cfg.max_n + 1), name="weights_n")

    def take(self, m, cmd):
        m.d.sync += [self.valid.eq(1), self.k.eq(cmd.k), self.n.eq(cmd.n)]


class _DrainCounters:
    """The drain's position: row ``m`` of C (fragment row ``r`` of ``mt`` in a tensor-core
    engine), column tile ``tile``, m outer. The comparisons that end a row or the job are
    flags registered one step ahead (``more``: m < M, ``last_m``: m + 1 == M, ``last_n``: the
    row's last column tile), so that the counters' and ``last``'s inputs follow flip-flops, not
    comparisons; the rows and columns that remain are counted down, so that the flags'
    look-ahead compares with constants."""

    def __init__(self, cfg, frag):
        R, C = cfg.rows, cfg.cols
        self._R, self._C, self._frag, self._max_n = R, C, frag, cfg.max_n
        self.m = Signal(range(cfg.max_m + 1), name="d_m")
        self.m_rem = Signal(range(cfg.max_m + 1), name="d_m_rem")  # M - m
        self.n_rem = Signal(range(cfg.max_n + 1), name="d_n_rem")  # N - n0
        self.tile = Signal(range(cfg.c_depth // cfg.m_stride + 1), name="d_tile")
        self.more = Signal(name="d_more")
        self.last_m = Signal(name="d_last_m")
        self.last_n = Signal(name="d_last_n")
        self.first_ln = Signal(name="d_first_last_n")  # C >= N: last_n of a row's first tile
        if frag:
            self.r = Signal(range(max(R, 2)), name="d_r")
            self.mt = Signal(range(cfg.m_stride + 1), name="d_mt")
            self.addr = c_addr(cfg, self.mt, self.tile)
        else:
            self.addr = c_addr(cfg, self.m, self.tile)

    def first_flags(self, jm, jn):
        """``Cat(more, last_m, last_n)`` at the first word of a job of ``jm`` x ``jn``."""
        return Cat(jm != 0, jm == 1, Value.cast(at_least(self._C, jn, self._max_n)))

    def start(self, m, jm, jn, flags=None):
        """To the first word of a job of ``jm`` rows and ``jn`` columns (``flags``: its
        :meth:`first_flags`, if registered already)."""
        more, last_m, ln = self.first_flags(jm, jn) if flags is None else flags
        m.d.sync += [self.m.eq(0), self.m_rem.eq(jm), self.n_rem.eq(jn), self.tile.eq(0),
                     self.more.eq(more), self.last_m.eq(last_m), self.last_n.eq(ln),
                     self.first_ln.eq(ln)]
        if self._frag:
            m.d.sync += [self.r.eq(0), self.mt.eq(0)]

    def step(self, m, jm, jn, c_last):
        """To the next word (while ``more``); ``c_last`` := the word read now is the job's
        last."""
        R, C = self._R, self._C
        with m.If(self.last_n):
            m.d.sync += [self.n_rem.eq(jn), self.tile.eq(0), self.m.eq(self.m + 1),
                         self.m_rem.eq(self.m_rem - 1),
                         c_last.eq(self.last_m), self.more.eq(~self.last_m),
                         self.last_m.eq(self.m_rem == 2), self.last_n.eq(self.first_ln)]
            if self._frag:
                with m.If(self.r == R - 1):
                    m.d.sync += [self.r.eq(0), self.mt.eq(self.mt + 1)]
                with m.Else():
                    m.d.sync += self.r.eq(self.r + 1)
        with m.Else():
            # the next tile is the row's last: n_rem - C <= C
            m.d.sync += [self.n_rem.eq(self.n_rem - C), self.tile.eq(self.tile + 1),
                         c_last.eq(0), self.last_n.eq(~above(self.n_rem, 2 * C))]


class _Buffers:
    def __init__(self, **ports):
        self.__dict__.update(ports)


def _command_view(seq, cmd):
    """The job that command ``cmd`` makes (m, k, n and the sequencer's registers) as
    expressions of the command: what the job registers will hold once it is accepted."""
    return _Buffers(m=cmd.m, k=cmd.k, n=cmd.n, **seq.job_values(cmd))


class _Job:
    """The accepted command's dimensions (and any registers the core's sequencer adds)."""

    def __init__(self, cfg, extra):
        self.m = Signal(range(cfg.max_m + 1), name="job_m")
        self.k = Signal(range(cfg.max_k + 1), name="job_k")
        self.n = Signal(range(cfg.max_n + 1), name="job_n")
        self.__dict__.update(extra)


class _ReadProxy:
    """A bank's view of a read port for a sequencer or the drain: its own ``addr`` (one bank's
    address), ``en`` and ``data``."""

    def __init__(self, name, depth, shape):
        self.addr = Signal(range(max(2, depth)), name=f"{name}_addr")
        self.en = Signal(init=1, name=f"{name}_en")
        self.data = Signal(shape, name=f"{name}_data")


class _WriteProxy:
    def __init__(self, name, depth, shape):
        self.addr = Signal(range(max(2, depth)), name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(shape, name=f"{name}_data")


def _memory_latency(cfg):
    """The buffers' read latency: 1 (the block RAM's read), or 2 with a pipelined core (and
    its output register); a core's further buffer read latency is registers of its
    sequencer."""
    return min(cfg.compute.buffer_read_latency, 2)


def _buffer(m, name, shape, depth, latency):
    """A buffer's ``(write, read)`` ports, its read data ``latency`` cycles behind the address:
    a block RAM's synchronous read (1), or a :class:`~systolix.hdl.buffer.BufferMemory` (2: the
    block RAM's output register where the platform offers it)."""
    if latency == 1:
        mem = Memory(shape=shape, depth=depth, init=[])
        m.submodules[name] = mem
        return mem.write_port(), mem.read_port()
    assert latency == 2, latency
    mem = BufferMemory(shape, depth)
    m.submodules[name] = mem
    return _write_view(mem), _read_view(mem)


def _write_view(mem):
    """A :class:`~systolix.hdl.buffer.BufferMemory`'s write port as ``addr``, ``data``,
    ``en``."""
    return _Buffers(addr=mem.w_addr, data=mem.w_data, en=mem.w_en)


def _read_view(mem):
    """A :class:`~systolix.hdl.buffer.BufferMemory`'s read port as ``addr``, ``en`` (the read
    register's enable; the output register follows ``r_oe``), ``data``."""
    return _Buffers(addr=mem.r_addr, en=mem.r_en, data=mem.r_data, oe=mem.r_oe)


def _banked(m, mem_port, proxy, bank, read):
    """Connect a proxy to a two-bank memory's port: the bank is the address's low bit, so two
    banks of any depth take exactly twice the words."""
    m.d.comb += [mem_port.addr.eq(Cat(bank, proxy.addr)), mem_port.en.eq(proxy.en)]
    if read:
        m.d.comb += proxy.data.eq(mem_port.data)
    else:
        m.d.comb += mem_port.data.eq(proxy.data)


def _elaborate_double(engine):
    """The double-buffered engine: three stages that run at the same time on different jobs.

    * load: a command is taken when the load stage is free; its A words go to A bank ``la``
      (alternating per job), its B and parameter words to the bank after the last loaded one
      (a keep-weights job uses that bank as it is);
    * compute: takes the loaded job when the array is free and its C bank (alternating per
      job) has been drained; the sequencer sees the job's registers, the banks are invisible
      to it;
    * drain: C banks in order; ``done`` pulses after each job's last C word, ``cycles`` and
      ``error`` then describe that job.

    A rejected command waits until every earlier job is done, then gets its ``done`` with
    ``error``."""
    m = Module()
    cfg = engine.config
    R, C = cfg.rows, cfg.cols
    frag = len(cfg.compute.c_word) == 2
    c_word = _word_layout(acc_shape(cfg.numerics), cfg.compute.c_word)
    ws = isinstance(cfg.compute, WeightStationaryCore)

    # With a pipelined core (buffer read latency 2) every read that feeds the array or the c
    # stream comes from a BufferMemory (the block RAM's output register); the C buffer's
    # read-modify-write port (weight-stationary) reads a plain block RAM, which the drain's
    # copy then shares the writes of.
    lat = _memory_latency(cfg)
    seq = SEQUENCERS[type(cfg.compute)](cfg, engine.buffer_read_latency)
    a_wr_port, a_rd_port = _buffer(m, "a_mem", a_word_layout(cfg), 2 * max(2, cfg.a_depth), lat)
    b_wr_port, b_rd_port = _buffer(m, "b_mem", b_word_layout(cfg), 2 * max(2, cfg.b_depth), lat)
    c_mem = (Memory(shape=c_word, depth=2 * max(2, cfg.c_depth), init=[])
             if lat == 1 else None)
    if ws and lat == 2:  # the read-modify-write's copy of C
        c_wr_port, c_rd_port = _buffer(m, "c_mem", c_word, 2 * max(2, cfg.c_depth),
                                       seq.c_read_latency)
    # (a fragment's rows are stored bit-interleaved: the R bits that the drain's row select
    # chooses between sit side by side, in one block RAM)
    d_mem = (BufferMemory(Value.cast(Signal(c_word)).shape() if frag else c_word,
                          2 * max(2, cfg.c_depth)) if lat == 2 else None)
    if c_mem is not None:
        m.submodules.c_mem = c_mem
        c_wr_port = c_mem.write_port()
        if ws:
            c_rd_port = c_mem.read_port()
    if d_mem is not None:
        m.submodules.d_mem = d_mem
    a_wr = _WriteProxy("a_wr", cfg.a_depth, a_word_layout(cfg))
    b_wr = _WriteProxy("b_wr", cfg.b_depth, b_word_layout(cfg))
    bufs = _Buffers(a_rd=_ReadProxy("a_rd", cfg.a_depth, a_word_layout(cfg)),
                    b_rd=_ReadProxy("b_rd", cfg.b_depth, b_word_layout(cfg)),
                    c_wr=_WriteProxy("c_wr", cfg.c_depth, c_word),
                    c_rd=_ReadProxy("c_rd", cfg.c_depth, c_word))
    d_rd = _ReadProxy("d_rd", cfg.c_depth, c_word)  # the drain's C read port

    in_reset = ResetSignal()
    weights = _Weights(cfg)

    # ---- load stage: the accepted job, its banks and word counters
    ljob = _Job(cfg, seq.job_registers())
    l_busy = Signal()
    la = Signal()            # A bank of the next job
    lb = Signal()            # B / parameter bank of the last job that loaded weights
    ljob_a, ljob_b = Signal(), Signal()
    a_load, b_load = seq.loaders()
    a_limits, b_limits = seq.load_limits(ljob)
    cmd_view = _command_view(seq, engine.cmd.payload)
    a_limits0, b_limits0 = seq.load_limits(cmd_view)
    # (with each inner limit's "== 1" from the command's fields, for the loaders' start)
    a_one0, b_one0 = seq.load_inner_ones(cmd_view)
    a_limits0, b_limits0 = (*a_limits0, a_one0), (*b_limits0, b_one0)
    rq = cfg.requant is not None

    # ---- compute stage: the running job (the sequencer reads ``xreg``; in the start cycle
    # they are still being copied, and the sequencer takes what it needs then from ``ljob``)
    xreg = _Job(cfg, {f"{k}": Signal.like(v, name=f"x_{v.name}")
                      for k, v in seq.job_registers().items()})
    xa, xb, xc = Signal(), Signal(), Signal()   # its A, B banks and C bank
    c_next = Signal()                           # C bank of the next compute
    x_run, x_flush = Signal(), Signal()
    x_tail = Signal(range(_tail(cfg) + 2))      # C writes still to come after final_write
    x_count = Signal(CYCLES_WIDTH)
    # x_run | x_flush | (x_tail != 0) as one flip-flop (it gates the command checks, the
    # start and the stage's registers)
    x_busy = Signal(name="x_busy")
    names = ["m", "k", "n", *seq.job_registers()]

    # ---- per C bank: owned by a job (computing or not yet drained), computed, its dims
    c_owned = Signal(2)
    c_done = Signal(2)
    c_m = [Signal(range(cfg.max_m + 1), name=f"c{i}_m") for i in range(2)]
    c_n = [Signal(range(cfg.max_n + 1), name=f"c{i}_n") for i in range(2)]
    # the drain counters' first flags for the bank's job (registered with its dims, so that
    # the drain's start is a choice between flip-flops)
    c_flags = [Signal(3, name=f"c{i}_drain_flags") for i in range(2)]
    c_q = [Signal(name=f"c{i}_q") for i in range(2)]  # the job's parameter bank
    c_cyc = [Signal(CYCLES_WIDTH, name=f"c{i}_cycles") for i in range(2)]

    # ---- status
    cycles, error, done = Signal(CYCLES_WIDTH), Signal(), Signal()
    # the last done was a reject: cycles reads 0 (a flag, so that the command checks do not
    # reach the enables of all of cycles' bits)
    cycles_zero = Signal()
    rej = Signal()  # a rejected command waits for the earlier jobs
    # A reject's done apart from a job's (never in the same cycle: a reject's waits for no
    # job), in three flip-flops (the dimension checks, the keep-weights checks, a waiting
    # reject), so that none takes much of the command checks or the c port's hand-shake.
    # ``error`` and the zero cycles are set from them a cycle later, so that the command
    # checks reach no further enable; in that cycle the status outputs read ``rej_status``, a
    # copy of the three's OR in a flip-flop of its own (placed by the outputs).
    done_rej = [Signal(name=f"done_reject_{i}") for i in ("dims", "keep", "wait")]
    rejected = Cat(done_rej).any()
    rej_status = Signal(name="reject_status")
    m.d.comb += [engine.cycles.eq(Mux(cycles_zero | rej_status, 0, cycles)),
                 engine.error.eq(error | rej_status), engine.done.eq(done | rejected)]
    m.d.sync += [done.eq(0), *(d.eq(0) for d in done_rej)]
    with m.If(rejected):
        m.d.sync += [error.eq(1), cycles_zero.eq(1)]

    # ---- buffer ports: loads write the load stage's banks, the sequencer reads the compute
    # stage's, writes and (read-modify-write) reads its C bank; the drain reads its own
    _banked(m, a_wr_port, a_wr, ljob_a, read=False)
    _banked(m, b_wr_port, b_wr, ljob_b, read=False)
    # (the sequencer uses no read issued in the start cycle, while xa and xb are being set)
    _banked(m, a_rd_port, bufs.a_rd, xa, read=True)
    _banked(m, b_rd_port, bufs.b_rd, xb, read=True)
    if c_mem is not None or ws:
        _banked(m, c_wr_port, bufs.c_wr, xc, read=False)
    if d_mem is not None:
        d_wr_view, d_rd_view = _write_view(d_mem), _read_view(d_mem)
        if frag:
            d_wr_view.data, d_rd_view.data = Signal(c_word), Signal(c_word)
            m.d.comb += [d_mem.w_data.eq(_interleave(d_wr_view.data, R)),
                         d_rd_view.data.eq(_interleave(d_mem.r_data, len(d_mem.r_data) // R))]
        _banked(m, d_wr_view, bufs.c_wr, xc, read=False)
    if ws:
        _banked(m, c_rd_port, bufs.c_rd, xc, read=True)
        m.d.comb += bufs.c_rd.addr.eq(seq.c_rd_addr)
    d_bank = Signal()
    _banked(m, c_mem.read_port() if d_mem is None else d_rd_view, d_rd, d_bank, read=True)

    seq.elaborate(m, xreg, bufs, start_job=ljob)

    # ---- drain stage
    d_busy = Signal()
    d_jm = Signal(range(cfg.max_m + 1))
    d_jn = Signal(range(cfg.max_n + 1))
    dc = _DrainCounters(cfg, frag)
    c_valid = Signal()
    c_last = Signal()
    if frag:
        c_sel = Signal(range(max(R, 2)))
        c_row = d_rd.data[c_sel] if R > 1 else d_rd.data[0]
    else:
        c_row = d_rd.data
    drain_addr = dc.addr
    c_out = q_out = credits = None
    if d_mem is not None:
        def c_out(stage_ready):
            m.d.comb += d_mem.r_oe.eq(stage_ready)
            if not frag:
                return d_rd.data
            if R == 1:
                return d_rd.data[0]
            # The row select, one stage on: a copy per column, as it reaches a multiplexer
            # per bit of the whole fragment (their different reset values keep synthesis
            # from merging them; a select is only read with a word in the stage).
            lanes = []
            for c in range(C):
                o_sel = Signal.like(c_sel, name=f"c_out_sel{c}", init=c % R)
                with m.If(stage_ready):
                    m.d.sync += o_sel.eq(c_sel)
                lanes.append(d_rd.data[o_sel][c])
            return Cat(lanes)
    ahead = {}
    if not rq:
        drain_ready = _drain_output(m, cfg, c_valid, c_row, c_last, engine.c, c_out=c_out,
                                    ahead=ahead)
    else:
        q_shape = data.ArrayLayout(param_layout(cfg.requant), C)
        q_wr_port, q_rd_port = _buffer(m, "q_mem", q_shape, 2 * max(2, cfg.q_depth), lat)
        q_wr = _WriteProxy("q_wr", cfg.q_depth, q_shape)
        q_rd = _ReadProxy("q_rd", cfg.q_depth, q_shape)
        _banked(m, q_wr_port, q_wr, ljob_b, read=False)
        d_q = Signal()
        _banked(m, q_rd_port, q_rd, d_q, read=True)
        if lat == 2:
            def q_out(stage_ready):
                m.d.comb += q_rd_port.oe.eq(stage_ready)
                return q_rd.data
        q_load = Loader("q_load", cfg.q_depth, cfg.max_n, C, 1)
        credits = _drain_credits(m, cfg, engine.c)
        m.submodules.requant = rqu = Requantizer(
            cfg.requant, slack=_DrainCredits.slack if credits is not None else 0)
        m.d.comb += q_rd.addr.eq(dc.tile)
        drain_ready = _drain_output(m, cfg, c_valid, c_row, c_last, rqu.i, q_rd, c_out=c_out,
                                    q_out=q_out, credits=credits and credits.of(rqu))
        wiring.connect(m, rqu.o, wiring.flipped(engine.c))
    if credits is None:
        c_out_last = engine.c.valid & engine.c.ready & engine.c.payload.last
    else:  # the job's words are all read, and the one left leaves: from flip-flops only
        c_out_last = credits.give & credits.one & ~dc.more

    # ---- command
    cmd = engine.cmd.payload
    empty = ~l_busy & ~x_busy & (c_owned == 0)
    m.d.comb += [engine.cmd.ready.eq(~l_busy & ~rej & ~in_reset),
                 engine.busy.eq(l_busy | x_busy | (c_owned != 0) | rej)]
    bad_dims, bad_keep = _bad_command(cfg, cmd, weights, parts=True)
    w_take = Signal(name="weights_take")
    m.d.sync += w_take.eq(0)
    bad = bad_dims | bad_keep
    # While the load stage is free its registers follow the command port, whatever is offered:
    # they are read only once a command is accepted (l_busy), and so their enables do not
    # depend on the command checks.
    with m.If(~l_busy):
        m.d.sync += [ljob.m.eq(cmd.m), ljob.k.eq(cmd.k), ljob.n.eq(cmd.n), ljob_a.eq(la),
                     ljob_b.eq(Mux(cmd.keep, lb, ~lb))]
        seq.accept(m, cmd, ljob)
        a_load.start(m, *a_limits0)
        b_load.start(m, *b_limits0)
        m.d.sync += b_load.done.eq(cmd.keep)  # B (and q) of a keep-weights job are there
        if rq:
            q_load.start(m, cmd.n, 1)
    # (a command taken, as the registers see it: without the reset, which resets them all
    # anyway, so that the reset's wide fan-out does not lead their logic)
    with m.If(engine.cmd.valid & ~l_busy & ~rej):
        with m.If(~bad):
            m.d.sync += [l_busy.eq(1), la.eq(~la), w_take.eq(~cmd.keep)]
            with m.If(~cmd.keep):
                m.d.sync += lb.eq(~lb)
        with m.Elif(~empty):
            m.d.sync += rej.eq(1)
    # A reject taken with no job in the engine: its done pulses next (a reject implies an idle
    # load stage, so ``empty`` says all of it). The flip-flops take each check's value, so that
    # a check is one gate from them (not a reset or an enable term after it).
    reject_now = engine.cmd.valid & ~rej & empty
    m.d.sync += [done_rej[0].eq(reject_now & bad_dims), done_rej[1].eq(reject_now & bad_keep),
                 rej_status.eq((reject_now & bad) | (rej & empty))]
    # The weights' dims are taken a cycle after the command, from the load stage's copy of it
    # (so that one flip-flop, not all of theirs, follows the command checks): the next command
    # is taken only after this job's load.
    with m.If(w_take):
        weights.take(m, ljob)
    with m.If(rej & empty):
        m.d.sync += [rej.eq(0), done_rej[2].eq(1)]

    # ---- load: a word taken from the a / b stream is registered, then counted and written
    # (so that the streams' valid reaches a few flip-flops, not the loaders and the block
    # RAMs); ``a_fin`` / ``b_fin``: the last word has been taken, so that ``ready`` and the
    # load's end are as early as if it were counted when taken. A twin of each loader counts
    # the words as they are taken: its flags (registered a word ahead) say whether the word
    # taken now is the last, so that the end is one gate after the stream's hand-shake.
    a_tw, b_tw = a_load.twin("a_take"), b_load.twin("b_take")
    a_got, b_got = Signal(name="a_load_got"), Signal(name="b_load_got")
    a_word = Signal(a_word_layout(cfg), name="a_load_word", reset_less=True)
    b_word = Signal(b_word_layout(cfg), name="b_load_word", reset_less=True)
    a_done, b_done = Signal(name="a_load_fin"), Signal(name="b_load_fin")
    a_take = engine.a.valid & l_busy & ~a_done  # engine.a.ready without the reset, as above
    b_take = engine.b.valid & l_busy & ~b_done
    m.d.sync += [a_got.eq(a_take), a_word.eq(engine.a.payload),
                 b_got.eq(b_take), b_word.eq(engine.b.payload)]
    with m.If(~l_busy):
        m.d.sync += [a_done.eq(0), b_done.eq(cmd.keep)]
        a_tw.start(m, *a_limits0)
        b_tw.start(m, *b_limits0)
    with m.If(a_take):
        a_tw.take(m, *a_limits)
        with m.If(a_tw.inner_last & a_tw.outer_last):
            m.d.sync += a_done.eq(1)
    with m.If(b_take):
        b_tw.take(m, *b_limits)
        with m.If(b_tw.inner_last & b_tw.outer_last):
            m.d.sync += b_done.eq(1)
    with m.If(l_busy):
        m.d.comb += [
            engine.a.ready.eq(~a_done & ~in_reset),
            engine.b.ready.eq(~b_done & ~in_reset),
        ]
    m.d.comb += [
        a_wr.addr.eq(a_load.addr), a_wr.data.eq(a_word), a_wr.en.eq(a_got),
        b_wr.addr.eq(b_load.addr), b_wr.data.eq(b_word), b_wr.en.eq(b_got),
    ]
    with m.If(a_got):
        a_load.take(m, *a_limits)
    with m.If(b_got):
        b_load.take(m, *b_limits)
    loaded = l_busy & a_done & b_done
    if rq:
        # The parameter bank may still feed the drain of the job before the computing one.
        # ``q_free`` matters only while the load stage is busy, and a compute start (which
        # frees the load stage) never precedes such a cycle: so it is registered from the next
        # cycle's bank owners (a drain ending now releases its bank) and load bank, and
        # ``q.ready`` follows flip-flops only.
        q_free = Signal(init=1, name="q_free")
        ljob_b_next = Mux(l_busy, ljob_b, Mux(cmd.keep, lb, ~lb))
        m.d.sync += q_free.eq(~Cat(
            c_owned[i] & ~(c_out_last & (d_bank == i)) & (c_q[i] == ljob_b_next)
            for i in range(2)).any())
        # as A and B: a parameter word taken is registered, then counted and written
        q_got, q_done = Signal(name="q_load_got"), Signal(name="q_load_fin")
        q_word = Signal(q_shape, name="q_load_word", reset_less=True)
        q_take = engine.q.valid & l_busy & ~q_done & q_free
        m.d.sync += [q_got.eq(q_take), q_word.eq(engine.q.payload)]
        q_tw = q_load.twin("q_take")
        with m.If(~l_busy):
            m.d.sync += q_done.eq(cmd.keep)  # the parameters of a keep-weights job are there
            q_tw.start(m, cmd.n, 1)
        with m.If(q_take):
            q_tw.take(m, ljob.n, 1)
            with m.If(q_tw.inner_last & q_tw.outer_last):
                m.d.sync += q_done.eq(1)
        with m.If(l_busy):
            m.d.comb += engine.q.ready.eq(~q_done & q_free & ~in_reset)
        m.d.comb += [q_wr.addr.eq(q_load.addr), q_wr.data.eq(q_word), q_wr.en.eq(q_got)]
        with m.If(q_got):
            q_load.take(m, ljob.n, 1)
        loaded &= q_done

    # ---- compute
    c_free = ~Mux(c_next, c_owned[1], c_owned[0])
    # While the compute stage is free its registers follow the load stage's (and x_count
    # stays 0): only the few registers that change state take the start as their enable.
    with m.If(~x_busy):
        m.d.sync += [xa.eq(ljob_a), xb.eq(ljob_b), xc.eq(c_next), x_count.eq(0)]
        m.d.sync += [getattr(xreg, k).eq(getattr(ljob, k)) for k in names]
    with m.Else():
        m.d.sync += x_count.eq(x_count + 1)
    with m.If(loaded & ~x_busy & c_free):
        m.d.sync += [l_busy.eq(0), x_run.eq(1), x_busy.eq(1), c_next.eq(~c_next)]
        for i in range(2):
            with m.If(c_next == i):
                m.d.sync += [c_owned[i].eq(1), c_m[i].eq(ljob.m), c_n[i].eq(ljob.n),
                             c_flags[i].eq(dc.first_flags(ljob.m, ljob.n)),
                             c_q[i].eq(ljob_b)]
    with m.If(x_run):
        m.d.comb += seq.run.eq(1)
        with m.If(seq.end):
            m.d.sync += [x_run.eq(0), x_flush.eq(1)]
    with m.If(x_flush):
        with m.If(seq.final_write):
            m.d.sync += [x_flush.eq(0), x_tail.eq(_tail(cfg))]
            if _tail(cfg) == 0:
                m.d.sync += x_busy.eq(0)
            for i in range(2):
                with m.If(xc == i):
                    m.d.sync += [c_done[i].eq(1), c_cyc[i].eq(x_count + 1)]
    with m.If(x_tail != 0):
        m.d.sync += x_tail.eq(x_tail - 1)
        with m.If(x_tail == 1):
            m.d.sync += x_busy.eq(0)

    # ---- drain: bank d_bank once computed (from the final write on: the rows still being
    # written are read later)
    computed = Mux(d_bank, c_done[1], c_done[0]) | (seq.final_write & x_flush & (xc == d_bank))
    # While the drain is free its registers follow bank d_bank's job (they are read only once
    # it starts): the start is the enable of d_busy alone.
    with m.If(~d_busy):
        jm, jn = Mux(d_bank, c_m[1], c_m[0]), Mux(d_bank, c_n[1], c_n[0])
        m.d.sync += [c_valid.eq(0), d_jm.eq(jm), d_jn.eq(jn)]
        dc.start(m, jm, jn, flags=Mux(d_bank, c_flags[1], c_flags[0]))
        if rq:
            m.d.sync += d_q.eq(Mux(d_bank, c_q[1], c_q[0]))
    with m.If(~d_busy & computed):
        m.d.sync += d_busy.eq(1)
    if credits is None and cfg.compute.output_register and "stage_ready_next" in ahead:
        # A word is read (``go``: busy, ready and more to come) from a flip-flop set from the
        # three's next values, so that the c port's hand-shake reaches the drain's counters
        # through one flip-flop (the read register's enable follows ``drain_ready``: a word
        # read while not busy is never valid).
        go = Signal(name="drain_go")
        flags = Mux(d_bank, c_flags[1], c_flags[0])
        more_next = Mux(d_busy, Mux(go & dc.last_n, ~dc.last_m, dc.more), flags[0])
        busy_next = ~c_out_last & (d_busy | computed)
        c_valid_next = ~c_out_last & Mux(drain_ready, go, c_valid)
        ready_next = ~c_valid_next | ahead["stage_ready_next"]
        m.d.sync += go.eq(busy_next & more_next & ready_next)
        m.d.comb += [d_rd.addr.eq(drain_addr), d_rd.en.eq(drain_ready)]
        with m.If(drain_ready):
            m.d.sync += c_valid.eq(go)
        with m.If(go):
            if frag:
                m.d.sync += c_sel.eq(dc.r)
            dc.step(m, d_jm, d_jn, c_last)
    elif credits is None:
        m.d.comb += [d_rd.addr.eq(drain_addr), d_rd.en.eq(d_busy & drain_ready)]
        with m.If(d_busy & drain_ready):
            m.d.sync += c_valid.eq(dc.more)
            if frag:
                m.d.sync += c_sel.eq(dc.r)
            with m.If(dc.more):
                dc.step(m, d_jm, d_jn, c_last)
    else:
        # the read registers load every cycle (a word read but not issued is never valid, and
        # the address moves only with an issue); a word is issued with the credit, while busy
        # and more to come
        # ``issue`` (credit & d_busy & more) is a flip-flop set from the three's next values
        go = Signal(name="drain_go")
        flags = Mux(d_bank, c_flags[1], c_flags[0])
        more_next = Mux(d_busy, Mux(go & dc.last_n, ~dc.last_m, dc.more), flags[0])
        busy_next = ~c_out_last & (d_busy | computed)
        m.d.sync += go.eq(credits.ready_next & busy_next & more_next)
        m.d.comb += [d_rd.addr.eq(drain_addr), d_rd.en.eq(1), credits.issue.eq(go)]
        m.d.sync += c_valid.eq(credits.issue)  # the word moves on whether or not one follows
        with m.If(credits.issue):
            if frag:
                m.d.sync += c_sel.eq(dc.r)
            dc.step(m, d_jm, d_jn, c_last)
    with m.If(c_out_last):
        m.d.sync += [done.eq(1), error.eq(0), c_valid.eq(0), d_busy.eq(0), d_bank.eq(~d_bank),
                     cycles.eq(Mux(d_bank, c_cyc[1], c_cyc[0])), cycles_zero.eq(0)]
        for i in range(2):
            with m.If(d_bank == i):
                m.d.sync += [c_owned[i].eq(0), c_done[i].eq(0)]
    return m


def _interleave(value, lanes):
    """``value``'s ``lanes`` equal parts bit-interleaved: bit i of part p goes to bit
    ``i * lanes + p`` (with ``len(value) // lanes`` lanes, the inverse)."""
    value = Value.cast(value)
    width = len(value) // lanes
    return Cat(value[p * width + i] for i in range(width) for p in range(lanes))


def _tail(cfg):
    """Cycles in which a sequencer still writes C after ``final_write``: the output-stationary
    array's last tile writes its rows 1 .. R-1 after row 0."""
    return cfg.rows - 1 if isinstance(cfg.compute, OutputStationaryCore) else 0
