"""The engine's shell: ports, buffers, the phase FSM (IDLE -> LOAD -> COMPUTE -> FLUSH ->
DRAIN) and the drain; the compute phase belongs to the core's sequencer (:data:`SEQUENCERS`).
"""

from amaranth.hdl import Module, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...config import DIM_WIDTH, EngineConfig
from ...config.core import OutputStationaryCore, TensorCore, WeightStationaryCore
from ..arith import acc_shape, operand_shape
from ..requant import Requantizer, param_layout, requant_output_layout
from .os_sequencer import OutputStationarySequencer
from .sequencer import Loader, c_addr
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
    """Payload of the command stream: the GEMM's dimensions."""
    return data.StructLayout({"m": DIM_WIDTH, "k": DIM_WIDTH, "n": DIM_WIDTH})


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
        """Register stages between the C buffer and the ``c`` stream: the requantizer's."""
        return self._config.requant.latency if self._config.requant is not None else 0

    @property
    def buffer_read_latency(self):
        """Cycles from a buffer address to its word (synchronous block RAM)."""
        return 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C, num = cfg.rows, cfg.cols, cfg.numerics
        # a C word is one row, or a fragment of rows (tensor core: m x cols, one write per MMA)
        frag = len(cfg.compute.c_word) == 2
        c_word = _word_layout(acc_shape(num), cfg.compute.c_word)

        # ---- buffers (block RAM): one write and one read port each
        # (at least 2 words: a 1-word memory would have a 0-bit address, invalid Verilog)
        a_mem = Memory(shape=a_word_layout(cfg), depth=max(2, cfg.a_depth), init=[])
        b_mem = Memory(shape=b_word_layout(cfg), depth=max(2, cfg.b_depth), init=[])
        c_mem = Memory(shape=c_word, depth=max(2, cfg.c_depth), init=[])
        m.submodules.a_mem, m.submodules.b_mem, m.submodules.c_mem = a_mem, b_mem, c_mem
        bufs = _Buffers(a_wr=a_mem.write_port(), a_rd=a_mem.read_port(),
                        b_wr=b_mem.write_port(), b_rd=b_mem.read_port(),
                        c_wr=c_mem.write_port(), c_rd=c_mem.read_port())

        # ---- the compute core's sequencer (SEQUENCERS): job registers, loaders, compute phase
        seq = SEQUENCERS[type(cfg.compute)](cfg, self.buffer_read_latency)

        # ---- job registers
        job = _Job(cfg, seq.job_registers())
        cycles = Signal(CYCLES_WIDTH)
        error = Signal()
        done = Signal()
        m.d.comb += [self.cycles.eq(cycles), self.error.eq(error), self.done.eq(done)]
        m.d.sync += done.eq(0)
        in_reset = ResetSignal()

        (a_load, a_limits), (b_load, b_limits) = seq.loaders(job)

        # ---- the sequencer issues buffer reads, drives the array / MMA units, writes C
        m.d.comb += [bufs.c_rd.en.eq(1), bufs.c_rd.addr.eq(seq.c_rd_addr)]  # DRAIN overrides
        seq.elaborate(m, job, bufs)

        # ---- drain counters (m outer, column tile inner)
        d_m = Signal(range(cfg.max_m + 1))
        d_n0 = Signal(range(cfg.max_n + C + 1))
        d_tile = Signal(range(cfg.c_depth // cfg.m_stride + 1))
        c_valid = Signal()  # the C buffer's read register holds a word of this job
        c_last = Signal()
        if frag:
            # row d_r of fragment row d_mt; the row select is registered with the read
            d_r = Signal(range(max(R, 2)))
            d_mt = Signal(range(cfg.m_stride + 1))
            c_sel = Signal(range(max(R, 2)))
            c_row = bufs.c_rd.data[c_sel] if R > 1 else bufs.c_rd.data[0]
            drain_addr = c_addr(cfg, d_mt, d_tile)
        else:
            c_row = bufs.c_rd.data
            drain_addr = c_addr(cfg, d_m, d_tile)
        if cfg.requant is None:
            m.d.comb += [self.c.valid.eq(c_valid), self.c.payload.data.eq(c_row),
                         self.c.payload.last.eq(c_last)]
            drain_ready = ~c_valid | self.c.ready
        else:
            # The requantizer is a stalling pipeline behind the buffers' read registers.
            q_mem = Memory(shape=data.ArrayLayout(param_layout(cfg.requant), C),
                           depth=max(2, cfg.q_depth), init=[])
            m.submodules.q_mem = q_mem
            q_wr, q_rd = q_mem.write_port(), q_mem.read_port()
            q_load = Loader("q_load", cfg.q_depth, cfg.max_n, C, 1)
            m.submodules.requant = rq = Requantizer(cfg.requant)
            m.d.comb += [
                rq.i.valid.eq(c_valid), rq.i.payload.acc.eq(c_row),
                rq.i.payload.params.eq(q_rd.data), rq.i.payload.last.eq(c_last),
                q_rd.addr.eq(d_tile), q_rd.en.eq(rq.i.ready),
            ]
            wiring.connect(m, rq.o, wiring.flipped(self.c))
            drain_ready = rq.i.ready
        c_out_last = self.c.valid & self.c.ready & self.c.payload.last

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(~in_reset)
                cmd = self.cmd.payload
                bad = ((cmd.m == 0) | (cmd.k == 0) | (cmd.n == 0) | (cmd.m > cfg.max_m)
                       | (cmd.k > cfg.max_k) | (cmd.n > cfg.max_n))
                with m.If(self.cmd.valid & self.cmd.ready):
                    m.d.sync += [error.eq(bad), cycles.eq(0)]
                    with m.If(bad):
                        m.d.sync += done.eq(1)
                    with m.Else():
                        m.d.sync += [job.m.eq(cmd.m), job.k.eq(cmd.k), job.n.eq(cmd.n)]
                        seq.accept(m, cmd, job)
                        a_load.start(m)
                        b_load.start(m)
                        if cfg.requant is not None:
                            q_load.start(m)
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
                    m.d.comb += seq.start.eq(1)
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
                    m.d.sync += [d_m.eq(0), d_n0.eq(0), d_tile.eq(0), c_valid.eq(0)]
                    if frag:
                        m.d.sync += [d_r.eq(0), d_mt.eq(0)]
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                # The read port's data register is the output register: it only advances
                # when the current word is taken (or there is none), so a stall holds it.
                advance = drain_ready
                more = d_m < job.m
                m.d.comb += [bufs.c_rd.en.eq(advance),
                             bufs.c_rd.addr.eq(drain_addr)]
                with m.If(advance):
                    m.d.sync += c_valid.eq(more)
                    if frag:
                        m.d.sync += c_sel.eq(d_r)
                    with m.If(more):
                        with m.If(d_n0 + C >= job.n):
                            m.d.sync += [d_n0.eq(0), d_tile.eq(0), d_m.eq(d_m + 1),
                                         c_last.eq(d_m + 1 == job.m)]
                            if frag:
                                with m.If(d_r == R - 1):
                                    m.d.sync += [d_r.eq(0), d_mt.eq(d_mt + 1)]
                                with m.Else():
                                    m.d.sync += d_r.eq(d_r + 1)
                        with m.Else():
                            m.d.sync += [d_n0.eq(d_n0 + C), d_tile.eq(d_tile + 1),
                                         c_last.eq(0)]
                with m.If(c_out_last):
                    m.d.sync += [done.eq(1), c_valid.eq(0)]
                    m.next = "IDLE"
        return m


class _Buffers:
    def __init__(self, **ports):
        self.__dict__.update(ports)


class _Job:
    """The accepted command's dimensions (and any registers the core's sequencer adds)."""

    def __init__(self, cfg, extra):
        self.m = Signal(range(cfg.max_m + 1), name="job_m")
        self.k = Signal(range(cfg.max_k + 1), name="job_k")
        self.n = Signal(range(cfg.max_n + 1), name="job_n")
        self.__dict__.update(extra)
