"""A TPU-style matrix engine: on-chip A/B/C buffers, a tiling controller, and a compute core
(a systolic array, or tensor-core MMA units).

The engine has three phases per job, each with its own stream: load A and B (concurrently),
compute (the controller folds the GEMM over the array; no port activity), drain C. See
:class:`MatrixEngine` for the protocol and ``systolix.model.cycles.engine_cycles`` for the exact
cycle count of each phase.
"""

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import DIM_WIDTH, Dataflow, EngineConfig
from .arith import acc_shape, accumulate, operand_shape
from .requant import Requantizer, param_layout, requant_output_layout
from .skew import DelayLanes
from .os_array import OutputStationaryArray
from .tensorcore import MMAUnit
from .ws_array import WeightStationaryArray

__all__ = ["MatrixEngine", "command_layout", "a_word_layout", "b_word_layout", "result_layout",
           "CYCLES_WIDTH"]

#: Width of the ``cycles`` status output.
CYCLES_WIDTH = 32


def command_layout():
    """Payload of the command stream: the GEMM's dimensions."""
    return data.StructLayout({"m": DIM_WIDTH, "k": DIM_WIDTH, "n": DIM_WIDTH})


def _matrix(shape, rows, cols):
    """Row-major matrix layout (as the MMA unit's): element (r, c) is ``view[r][c]``."""
    return data.ArrayLayout(data.ArrayLayout(shape, cols), rows)


def a_word_layout(config: EngineConfig):
    """One word of the ``a`` stream / A buffer: ``rows`` operands, or for a tensor-core engine
    an m x k fragment (row-major)."""
    op = operand_shape(config.numerics)
    if config.core is not None:
        return _matrix(op, config.core.m, config.core.k)
    return data.ArrayLayout(op, config.rows)


def b_word_layout(config: EngineConfig):
    """One word of the ``b`` stream / B buffer: ``cols`` operands, or for a tensor-core engine
    a k x cols fragment (row-major; unit u takes columns u*n .. u*n + n - 1)."""
    op = operand_shape(config.numerics)
    if config.core is not None:
        return _matrix(op, config.core.k, config.cols)
    return data.ArrayLayout(op, config.cols)


def result_layout(config: EngineConfig):
    """Payload of the C stream: ``cols`` accumulators of one row of C (or, with requantization,
    ``cols`` 8-bit outputs), and ``last``."""
    if config.requant is not None:
        return requant_output_layout(config.requant)
    return data.StructLayout({
        "data": data.ArrayLayout(acc_shape(config.numerics), config.cols),
        "last": 1,
    })


class _Loader:
    """Counts words of a two-level loop (outer index steps by ``step`` below ``outer_limit``,
    inner index runs below ``inner_limit``) into consecutive buffer addresses."""

    def __init__(self, name, depth, outer_max, step, inner_max):
        self.addr = Signal(range(depth + 1), name=f"{name}_addr")
        self.outer = Signal(range(outer_max + step + 1), name=f"{name}_outer")
        self.inner = Signal(range(inner_max + 1), name=f"{name}_inner")
        self.done = Signal(name=f"{name}_done")
        self._step = step

    def start(self, m):
        m.d.sync += [self.addr.eq(0), self.outer.eq(0), self.inner.eq(0), self.done.eq(0)]

    def take(self, m, outer_limit, inner_limit):
        m.d.sync += self.addr.eq(self.addr + 1)
        with m.If(self.inner == inner_limit - 1):
            m.d.sync += [self.inner.eq(0), self.outer.eq(self.outer + self._step)]
            with m.If(self.outer + self._step >= outer_limit):
                m.d.sync += self.done.eq(1)
        with m.Else():
            m.d.sync += self.inner.eq(self.inner + 1)


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
    ``cycles`` reports the length of this phase.

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
        Compute-phase cycles of the last job (0 for a rejected one).
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
        tc = cfg.core is not None
        os_flow = cfg.dataflow is Dataflow.OUTPUT_STATIONARY
        acc = acc_shape(num)
        # a tensor-core engine's C word is a whole m x cols fragment (one write per MMA)
        c_word = _matrix(acc, R, C) if tc else data.ArrayLayout(acc, C)

        # ---- buffers (block RAM): one write and one read port each
        # (at least 2 words: a 1-word memory would have a 0-bit address, invalid Verilog)
        a_mem = Memory(shape=a_word_layout(cfg), depth=max(2, cfg.a_depth), init=[])
        b_mem = Memory(shape=b_word_layout(cfg), depth=max(2, cfg.b_depth), init=[])
        c_mem = Memory(shape=c_word, depth=max(2, cfg.c_depth), init=[])
        m.submodules.a_mem, m.submodules.b_mem, m.submodules.c_mem = a_mem, b_mem, c_mem
        bufs = _Buffers(a_wr=a_mem.write_port(), a_rd=a_mem.read_port(),
                        b_wr=b_mem.write_port(), b_rd=b_mem.read_port(),
                        c_wr=c_mem.write_port(), c_rd=c_mem.read_port())

        # ---- job registers
        job = _Job(cfg)
        cycles = Signal(CYCLES_WIDTH)
        error = Signal()
        done = Signal()
        m.d.comb += [self.cycles.eq(cycles), self.error.eq(error), self.done.eq(done)]
        m.d.sync += done.eq(0)
        in_reset = ResetSignal()

        if tc:  # fragments: m rows x k-steps of A, cols columns x k-steps of B
            a_load = _Loader("a_load", cfg.a_depth, cfg.max_m, R, cfg.k_steps_max)
            a_limits = (job.m, job.ks)
            b_limits = (job.n, job.ks)
        elif os_flow:
            a_load = _Loader("a_load", cfg.a_depth, cfg.max_m, R, cfg.max_k)
            a_limits = (job.m, job.k)
        else:
            a_load = _Loader("a_load", cfg.a_depth, cfg.max_k, R, cfg.max_m)
            a_limits = (job.k, job.m)
        if not tc:
            b_limits = (job.n, job.k)
        b_load = _Loader("b_load", cfg.b_depth, cfg.max_n, C,
                         cfg.k_steps_max if tc else cfg.max_k)

        # ---- the core's sequencer: issues buffer reads, drives the array / MMA units, writes C
        seq = _Sequencer()
        m.d.comb += [bufs.c_rd.en.eq(1), bufs.c_rd.addr.eq(seq.c_rd_addr)]  # DRAIN overrides
        (self._tc_sequencer if tc else self._os_sequencer if os_flow else self._ws_sequencer)(
            m, job, bufs, seq)

        # ---- drain counters (m outer, column tile inner)
        d_m = Signal(range(cfg.max_m + 1))
        d_n0 = Signal(range(cfg.max_n + C + 1))
        d_tile = Signal(range(cfg.c_depth // cfg.m_stride + 1))
        c_valid = Signal()  # the C buffer's read register holds a word of this job
        c_last = Signal()
        if tc:
            # row d_r of fragment row d_mt; the row select is registered with the read
            d_r = Signal(range(max(R, 2)))
            d_mt = Signal(range(cfg.m_stride + 1))
            c_sel = Signal(range(max(R, 2)))
            c_row = bufs.c_rd.data[c_sel] if R > 1 else bufs.c_rd.data[0]
            drain_addr = _c_addr(cfg, d_mt, d_tile)
        else:
            c_row = bufs.c_rd.data
            drain_addr = _c_addr(cfg, d_m, d_tile)
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
            q_load = _Loader("q_load", cfg.q_depth, cfg.max_n, C, 1)
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
                        if tc:  # k-steps: ceil(K / k)
                            kk = cfg.core.k
                            m.d.sync += job.ks.eq(
                                (cmd.k + kk - 1) >> (kk.bit_length() - 1)
                                if kk & (kk - 1) == 0 else (cmd.k + kk - 1) // kk)
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
                    if tc:
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
                    if tc:
                        m.d.sync += c_sel.eq(d_r)
                    with m.If(more):
                        with m.If(d_n0 + C >= job.n):
                            m.d.sync += [d_n0.eq(0), d_tile.eq(0), d_m.eq(d_m + 1),
                                         c_last.eq(d_m + 1 == job.m)]
                            if tc:
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

    # -- output-stationary: each R x C output tile takes its K beats; tiles >= R cycles apart

    def _os_sequencer(self, m, job, bufs, seq):
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        m.submodules.array = array = OutputStationaryArray(cfg.array)

        span = Signal(range(max(cfg.max_k, R) + 1))  # slots per tile: max(K, R)
        s = Signal.like(span)
        m0 = Signal(range(cfg.max_m + R + 1))
        n0 = Signal(range(cfg.max_n + C + 1))
        ntile = Signal(range(cfg.c_depth // cfg.m_stride + 1))
        a_base = Signal(range(cfg.a_depth + cfg.max_k + 1))
        b_base = Signal(range(cfg.b_depth + cfg.max_k + 1))
        last_m, last_n = m0 + R >= job.m, n0 + C >= job.n

        with m.If(seq.start):
            # (a constant when K can never exceed R: no always-false comparison in the RTL)
            m.d.sync += [span.eq(Mux(job.k > R, job.k, R) if cfg.max_k > R else R),
                         s.eq(0), m0.eq(0), n0.eq(0),
                         ntile.eq(0), a_base.eq(0), b_base.eq(0)]
        beat = Signal()
        last = Signal()
        m.d.comb += [
            beat.eq(seq.run & (s < job.k)),
            last.eq(beat & (s == job.k - 1)),
            bufs.a_rd.addr.eq(a_base + s),
            bufs.b_rd.addr.eq(b_base + s),
        ]
        with m.If(seq.run):
            with m.If(s == span - 1):
                m.d.sync += s.eq(0)
                with m.If(last_m):
                    m.d.sync += [m0.eq(0), a_base.eq(0), n0.eq(n0 + C), ntile.eq(ntile + 1),
                                 b_base.eq(b_base + job.k)]
                with m.Else():
                    m.d.sync += [m0.eq(m0 + R), a_base.eq(a_base + job.k)]
                m.d.comb += seq.end.eq(last_m & last_n)
            with m.Else():
                m.d.sync += s.eq(s + 1)

        # The buffers answer one cycle later: the beat enters the array then. The schedule
        # spaces `last` beats >= R cycles apart, so the array's `ready` is always high here.
        beat_d, last_d = Signal(), Signal()
        m.d.sync += [beat_d.eq(beat), last_d.eq(last)]
        m.d.comb += [
            array.i.valid.eq(beat_d),
            array.i.payload.a.eq(bufs.a_rd.data),
            array.i.payload.b.eq(bufs.b_rd.data),
            array.i.payload.last.eq(last_d),
        ]

        # A tile's rows leave the array result_latency cycles after its last beat went in:
        # carry the tile's coordinates alongside, then write each row to C.
        tag = data.StructLayout({"valid": 1, "final": 1, "m0": len(m0), "ntile": len(ntile)})
        m.submodules.tag_delay = tag_delay = DelayLanes(tag, [array.result_latency],
                                                        reset_less=False)
        m.d.comb += [
            tag_delay.i[0].valid.eq(last),
            tag_delay.i[0].final.eq(last_m & last_n),
            tag_delay.i[0].m0.eq(m0),
            tag_delay.i[0].ntile.eq(ntile),
        ]
        out_m0 = Signal.like(m0)
        out_ntile = Signal.like(ntile)
        out_final = Signal()
        with m.If(tag_delay.o[0].valid):
            m.d.sync += [out_m0.eq(tag_delay.o[0].m0), out_ntile.eq(tag_delay.o[0].ntile),
                         out_final.eq(tag_delay.o[0].final)]
        row_m = Signal(range(cfg.max_m + R + 1))
        m.d.comb += [
            row_m.eq(out_m0 + array.o.payload.row),
            bufs.c_wr.addr.eq(_c_addr(cfg, row_m, out_ntile)),
            bufs.c_wr.data.eq(array.o.payload.data),
            bufs.c_wr.en.eq(array.o.valid & (row_m < job.m)),  # rows past M are padding
            seq.final_write.eq(array.o.valid & (array.o.payload.row == 0) & out_final),
        ]

    # -- weight-stationary: per (column tile, k-tile), R x C weights go into the shadow registers
    #    while the previous pair computes; the M rows of A stream through; C accumulates.

    def _ws_sequencer(self, m, job, bufs, seq):
        cfg = self._config
        R, C, num = cfg.rows, cfg.cols, cfg.numerics
        m.submodules.array = array = WeightStationaryArray(cfg.array)

        # Slots per tile: the M beats, and at least R + 1 so that the next weights' R pushes fit
        # between two swaps (see WeightStationaryArray's schedule rule).
        span = Signal(range(max(cfg.max_m, R + 1) + 1))
        s = Signal.like(span)
        prologue = Signal()  # loading the first tile's weights; no beats yet
        ntile_w = Signal(range(cfg.c_depth // cfg.m_stride + 1)).shape()
        # the tile being computed ...
        cur_ntile = Signal(ntile_w)
        cur_abase = Signal(range(cfg.a_depth + cfg.max_m + 1))
        cur_first = Signal()
        cur_last = Signal()
        # ... and the one whose weights are being pushed
        nxt_n0 = Signal(range(cfg.max_n + C + 1))
        nxt_ntile = Signal(ntile_w)
        nxt_k0 = Signal(range(cfg.max_k + R + 1))
        nxt_abase = Signal.like(cur_abase)
        nxt_bbase = Signal(range(cfg.b_depth + cfg.max_k + 1))
        nxt_exists = Signal()
        nxt_is_last = (nxt_n0 + C >= job.n) & (nxt_k0 + R >= job.k)

        with m.If(seq.start):
            m.d.sync += [span.eq(Mux(job.m > R, job.m, R + 1) if cfg.max_m > R else R + 1),
                         s.eq(0), prologue.eq(1),
                         nxt_n0.eq(0), nxt_ntile.eq(0), nxt_k0.eq(0), nxt_abase.eq(0),
                         nxt_bbase.eq(0), nxt_exists.eq(1)]
        end_slot = Mux(prologue, R, span - 1)
        beat = Signal()
        swap = Signal()
        push = Signal()
        w_row = Signal(range(max(R, 2)))  # weight row pushed in this slot: last row first
        w_real = Signal()        # ... and it lies inside K (else it is pushed as 0)
        m.d.comb += [
            beat.eq(seq.run & ~prologue & (s < job.m)),
            swap.eq(seq.run & (s == end_slot)),
            push.eq(seq.run & nxt_exists & (s < R)),
            w_row.eq(R - 1 - s),
            w_real.eq(nxt_k0 + w_row < job.k),
            bufs.a_rd.addr.eq(cur_abase + s),
            bufs.b_rd.addr.eq(nxt_bbase + nxt_k0 + w_row),
        ]
        with m.If(seq.run):
            with m.If(s == end_slot):
                m.d.sync += [
                    s.eq(0), prologue.eq(0),
                    cur_ntile.eq(nxt_ntile), cur_abase.eq(nxt_abase), cur_first.eq(nxt_k0 == 0),
                    cur_last.eq(nxt_is_last), nxt_exists.eq(nxt_exists & ~nxt_is_last),
                ]
                with m.If(nxt_k0 + R >= job.k):
                    m.d.sync += [nxt_k0.eq(0), nxt_abase.eq(0), nxt_n0.eq(nxt_n0 + C),
                                 nxt_ntile.eq(nxt_ntile + 1), nxt_bbase.eq(nxt_bbase + job.k)]
                with m.Else():
                    m.d.sync += [nxt_k0.eq(nxt_k0 + R), nxt_abase.eq(nxt_abase + job.m)]
                m.d.comb += seq.end.eq(~prologue & cur_last)
            with m.Else():
                m.d.sync += s.eq(s + 1)

        # Buffers answer one cycle later; the array sees beat, swap and weights then.
        beat_d, swap_d, cap_d, w_real_d = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [beat_d.eq(beat), swap_d.eq(swap), cap_d.eq(push & (s == R - 1)),
                     w_real_d.eq(push & w_real)]
        m.d.comb += [
            array.a.eq(bufs.a_rd.data),
            array.a_valid.eq(beat_d),
            array.swap.eq(swap_d),
            array.w.eq(Mux(w_real_d, bufs.b_rd.data.as_value(), 0)),
            array.w_capture.eq(cap_d),
        ]

        # Each beat's column sums reach the bottom R + C cycles after issue: read the C row one
        # cycle before, add (wrap/saturate), write it back. The same row of the next k-tile comes
        # >= R + 1 cycles later, long after this write.
        tag = data.StructLayout({"valid": 1, "final": 1, "first": 1,
                                 "m": len(s), "ntile": len(cur_ntile)})
        m.submodules.tag_delay = tag_delay = DelayLanes(
            tag, [self.buffer_read_latency + array.result_latency - 1], reset_less=False)
        m.d.comb += [
            tag_delay.i[0].valid.eq(beat),
            tag_delay.i[0].final.eq(beat & cur_last & (s == job.m - 1)),
            tag_delay.i[0].first.eq(cur_first),
            tag_delay.i[0].m.eq(s),
            tag_delay.i[0].ntile.eq(cur_ntile),
        ]
        rd_tag = tag_delay.o[0]
        wr_tag = Signal(tag)
        m.d.sync += wr_tag.eq(rd_tag)
        m.d.comb += seq.c_rd_addr.eq(_c_addr(cfg, rd_tag.m, rd_tag.ntile))
        m.d.comb += [
            bufs.c_wr.addr.eq(_c_addr(cfg, wr_tag.m, wr_tag.ntile)),
            bufs.c_wr.en.eq(wr_tag.valid),
            seq.final_write.eq(wr_tag.valid & wr_tag.final),
        ]
        for c in range(C):
            old = Mux(wr_tag.first, 0, bufs.c_rd.data[c])
            m.d.comb += bufs.c_wr.data[c].eq(accumulate(old, array.psum[c], num))


    # -- tensor core: the MMA units take one (A fragment, B fragment) per cycle; L = latency
    #    output tiles are interleaved so that each tile's D comes back as its C just in time.

    def _tc_sequencer(self, m, job, bufs, seq):
        cfg = self._config
        core = cfg.core
        R, C, K, n_u = core.m, cfg.cols, core.k, core.n
        W = core.latency  # slots per k-step = tiles in flight
        units = []
        for u in range(cfg.cores):
            units.append(MMAUnit(core))
            m.submodules[f"mma_{u}"] = units[-1]

        ntile_w = Signal(range(cfg.c_depth // cfg.m_stride + 1)).shape()

        def tile(prefix):
            return {
                "m0": Signal(range(cfg.max_m + R + 1), name=f"{prefix}_m0"),
                "mt": Signal(range(cfg.m_stride + 1), name=f"{prefix}_mt"),
                "n0": Signal(range(cfg.max_n + C + 1), name=f"{prefix}_n0"),
                "ntile": Signal(ntile_w, name=f"{prefix}_ntile"),
                "abase": Signal(range(cfg.a_depth + cfg.k_steps_max + 1), name=f"{prefix}_abase"),
                "bbase": Signal(range(cfg.b_depth + cfg.k_steps_max + 1), name=f"{prefix}_bbase"),
            }

        grp = tile("grp")   # the group's first tile (a group = W consecutive output tiles)
        cur = tile("cur")   # the tile of this slot
        cur_valid = Signal(name="cur_valid")  # else a bubble: the group ran past the last tile
        slot = Signal(range(max(W, 2)), name="slot")  # (never 0 bits: invalid Verilog)
        ks = Signal(range(max(cfg.k_steps_max, 2)), name="kstep")
        k0 = Signal(range(cfg.max_k + K + 1), name="k0")
        last_m, last_n = cur["m0"] + R >= job.m, cur["n0"] + C >= job.n
        last_tile = last_m & last_n
        last_k = ks == job.ks - 1

        def goto(dst, src):
            return [dst[key].eq(src[key]) for key in dst]

        def step(dst):
            """dst := the tile after cur (m inner, column tile outer)."""
            with m.If(last_m):
                m.d.sync += [dst["m0"].eq(0), dst["mt"].eq(0), dst["abase"].eq(0),
                             dst["n0"].eq(cur["n0"] + C), dst["ntile"].eq(cur["ntile"] + 1),
                             dst["bbase"].eq(cur["bbase"] + job.ks)]
            with m.Else():
                m.d.sync += [dst["m0"].eq(cur["m0"] + R), dst["mt"].eq(cur["mt"] + 1),
                             dst["abase"].eq(cur["abase"] + job.ks),
                             dst["n0"].eq(cur["n0"]), dst["ntile"].eq(cur["ntile"]),
                             dst["bbase"].eq(cur["bbase"])]

        with m.If(seq.start):
            m.d.sync += [sig.eq(0) for sig in (*grp.values(), *cur.values(), slot, ks, k0)]
            m.d.sync += cur_valid.eq(1)

        issue = Signal()
        m.d.comb += [
            issue.eq(seq.run & cur_valid),
            bufs.a_rd.addr.eq(cur["abase"] + ks),
            bufs.b_rd.addr.eq(cur["bbase"] + ks),
        ]
        with m.If(seq.run):
            with m.If(slot == W - 1):
                m.d.sync += slot.eq(0)
                with m.If(last_k):  # the group is done: the next group starts after cur
                    m.d.sync += [ks.eq(0), k0.eq(0), cur_valid.eq(1)]
                    step(grp)
                    step(cur)
                    m.d.comb += seq.end.eq(~cur_valid | last_tile)
                with m.Else():  # the group's next k-step: back to its first tile
                    m.d.sync += [ks.eq(ks + 1), k0.eq(k0 + K), cur_valid.eq(1), *goto(cur, grp)]
            with m.Else():
                m.d.sync += slot.eq(slot + 1)
                with m.If(last_tile):
                    m.d.sync += cur_valid.eq(0)
                with m.Else():
                    step(cur)

        # The buffers answer one cycle later: the units take the fragments then. Lanes of A past
        # K are zeroed (padding may hold any value); the first k-step adds to 0, every later one
        # to the unit's own D of the same tile, which leaves the pipeline exactly now.
        valid_d, first_d = Signal(), Signal()
        kmask_d = Signal(K)
        m.d.sync += [valid_d.eq(issue), first_d.eq(ks == 0)]
        m.d.sync += [kmask_d[j].eq(k0 + j < job.k) for j in range(K)]
        a_frag, b_frag = bufs.a_rd.data, bufs.b_rd.data
        for u, unit in enumerate(units):
            m.d.comb += unit.i.valid.eq(valid_d)
            for r in range(R):
                for j in range(K):
                    m.d.comb += unit.i.payload.a[r][j].eq(Mux(kmask_d[j], a_frag[r][j], 0))
            for j in range(K):
                for c in range(n_u):
                    m.d.comb += unit.i.payload.b[j][c].eq(b_frag[j][u * n_u + c])
            for r in range(R):
                for c in range(n_u):
                    m.d.comb += unit.i.payload.c[r][c].eq(
                        Mux(first_d, 0, unit.o.payload.d[r][c]))

        # A tile's final k-step leaves the units 1 + latency cycles after issue: write its D
        # (the whole m x cols fragment, one word) to C.
        tag = data.StructLayout({"valid": 1, "final": 1, "mt": len(cur["mt"]),
                                 "ntile": len(cur["ntile"])})
        m.submodules.tag_delay = tag_delay = DelayLanes(
            tag, [self.buffer_read_latency + core.latency], reset_less=False)
        m.d.comb += [
            tag_delay.i[0].valid.eq(issue & last_k),
            tag_delay.i[0].final.eq(last_tile),
            tag_delay.i[0].mt.eq(cur["mt"]),
            tag_delay.i[0].ntile.eq(cur["ntile"]),
        ]
        out = tag_delay.o[0]
        m.d.comb += [
            bufs.c_wr.addr.eq(_c_addr(cfg, out.mt, out.ntile)),
            bufs.c_wr.en.eq(out.valid),
            seq.final_write.eq(out.valid & out.final),
        ]
        for u, unit in enumerate(units):
            for r in range(R):
                for c in range(n_u):
                    m.d.comb += bufs.c_wr.data[r][u * n_u + c].eq(unit.o.payload.d[r][c])


def _c_addr(cfg, row, ntile):
    """C buffer address of row ``row`` (a tensor-core engine: fragment row) of column tile
    ``ntile``: the two side by side."""
    m_bits = (cfg.m_stride - 1).bit_length()
    return Cat(row[:m_bits], ntile)


class _Buffers:
    def __init__(self, **ports):
        self.__dict__.update(ports)


class _Job:
    """The accepted command's dimensions."""

    def __init__(self, cfg):
        self.m = Signal(range(cfg.max_m + 1), name="job_m")
        self.k = Signal(range(cfg.max_k + 1), name="job_k")
        self.n = Signal(range(cfg.max_n + 1), name="job_n")
        if cfg.core is not None:
            self.ks = Signal(range(cfg.k_steps_max + 1), name="job_ks")  # ceil(K / k)


class _Sequencer:
    """Hand-shake between the engine's phase FSM and a dataflow's sequencer."""

    def __init__(self):
        self.start = Signal(name="seq_start")            # pulse: counters to their start
        self.run = Signal(name="seq_run")                # issue one slot this cycle
        self.end = Signal(name="seq_end")                # this is the last slot
        self.final_write = Signal(name="seq_final_write")  # last result written to C now
        self.c_rd_addr = Signal(32, name="seq_c_rd_addr")  # C read address (read-modify-write)
