"""The output-stationary array's sequencer: each R x C output tile takes its K beats; tiles
are at least R cycles apart (the array's drain spacing), so its ``ready`` is never needed."""

from amaranth.hdl import Cat, Mux, Signal
from amaranth.lib import data

from ..os_array import OutputStationaryArray
from ..skew import DelayLanes
from .sequencer import Sequencer, above, at_least, c_addr

__all__ = ["OutputStationarySequencer"]


class OutputStationarySequencer(Sequencer):
    """Slots of ``max(K, R)`` cycles per output tile, row tiles inner; buffer reads one cycle
    ahead of the array; each tile's rows written to C from a tag delayed by the array's result
    latency."""

    def elaborate(self, m, job, bufs, start_job=None):
        cfg, seq = self.config, self
        start_job = job if start_job is None else start_job
        R, C = cfg.rows, cfg.cols
        m.submodules.array = array = OutputStationaryArray(cfg.array)

        span = Signal(range(max(cfg.max_k, R) + 1))  # slots per tile: max(K, R)
        s = Signal.like(span)
        m0 = Signal(range(cfg.max_m + R + 1))
        # what remains, counted down so that the flags' look-ahead compares with constants:
        # slots of the tile (span - s), rows of the column tile (M - m0), columns (N - n0)
        s_rem = Signal.like(span, name="slot_rem")
        m_rem = Signal(range(cfg.max_m + 1), name="m_rem")
        n_rem = Signal(range(cfg.max_n + 1), name="n_rem")
        ntile = Signal(range(cfg.c_depth // cfg.m_stride + 1))
        a_base = Signal(range(cfg.a_depth + cfg.max_k + 1))
        b_base = Signal(range(cfg.b_depth + cfg.max_k + 1))
        # Flags registered with the counters they describe (set one step ahead), so that the
        # tile step's multiplexers follow a flip-flop, not a comparison:
        last_m = Signal(name="last_m")      # m_rem <= R: the column tile's last row tile
        last_n = Signal(name="last_n")      # n_rem <= C: the last column tile
        first_lm = Signal(name="first_last_m")  # R >= M: last_m of a column tile's first tile
        s_end = Signal(name="slot_end")     # s == span - 1: the tile's last slot

        with m.If(~seq.run):  # held at the start until the compute phase
            # (a constant when K can never exceed R: no always-false comparison in the RTL)
            start_span = Mux(start_job.k > R, start_job.k, R) if cfg.max_k > R else R
            m.d.sync += [span.eq(start_span), s_rem.eq(start_span),
                         s.eq(0), m0.eq(0), m_rem.eq(start_job.m), n_rem.eq(start_job.n),
                         ntile.eq(0), a_base.eq(0), b_base.eq(0),
                         s_end.eq(start_span == 1),
                         first_lm.eq(at_least(R, start_job.m, cfg.max_m)),
                         last_m.eq(at_least(R, start_job.m, cfg.max_m)),
                         last_n.eq(at_least(C, start_job.n, cfg.max_n))]
        beat = Signal()
        last = Signal()
        m.d.comb += [
            beat.eq(seq.run & (s < job.k)),
            last.eq(beat & (s == job.k - 1)),
            bufs.a_rd.addr.eq(a_base + s),
            bufs.b_rd.addr.eq(b_base + s),
        ]
        with m.If(seq.run):
            with m.If(s_end):
                m.d.sync += [s.eq(0), s_rem.eq(span), s_end.eq(span == 1)]
                with m.If(last_m):
                    m.d.sync += [m0.eq(0), m_rem.eq(job.m), a_base.eq(0),
                                 n_rem.eq(n_rem - C), ntile.eq(ntile + 1),
                                 b_base.eq(b_base + job.k), last_m.eq(first_lm),
                                 # the next column tile is the last: n_rem - C <= C
                                 last_n.eq(~above(n_rem, 2 * C))]
                with m.Else():
                    m.d.sync += [m0.eq(m0 + R), m_rem.eq(m_rem - R), a_base.eq(a_base + job.k),
                                 last_m.eq(~above(m_rem, 2 * R))]
                m.d.comb += seq.end.eq(last_m & last_n)
            with m.Else():
                m.d.sync += [s.eq(s + 1), s_rem.eq(s_rem - 1), s_end.eq(s_rem == 2)]

        # The buffers answer buffer_read_latency cycles later: the beat enters the array then.
        # The schedule spaces `last` beats >= R cycles apart, so the array's `ready` is always
        # high here.
        m.submodules.beat_delay = beat_delay = DelayLanes(
            data.StructLayout({"beat": 1, "last": 1}), [self.buffer_read_latency],
            reset_less=False)
        m.d.comb += [beat_delay.i[0].beat.eq(beat), beat_delay.i[0].last.eq(last)]
        beat_d, last_d = beat_delay.o[0].beat, beat_delay.o[0].last
        m.d.comb += [
            array.i.valid.eq(beat_d),
            array.i.payload.a.eq(bufs.a_rd.data),
            array.i.payload.b.eq(bufs.b_rd.data),
            array.i.payload.last.eq(last_d),
        ]

        # A tile's rows leave the array result_latency cycles after its last beat went in:
        # carry the tile's coordinates alongside, then write each row to C.
        tag = data.StructLayout({"valid": 1, "final": 1, "m0": len(m0), "ntile": len(ntile),
                                 "rows": range(R + 1)})
        m.submodules.tag_delay = tag_delay = DelayLanes(
            tag, [self.buffer_read_latency - 1 + array.result_latency], reset_less=False)
        m.d.comb += [
            tag_delay.i[0].valid.eq(last),
            tag_delay.i[0].final.eq(last_m & last_n),
            tag_delay.i[0].m0.eq(m0),
            tag_delay.i[0].ntile.eq(ntile),
            # the tile's rows inside M: M - m0 <= R exactly in the last row tile
            tag_delay.i[0].rows.eq(Mux(last_m, m_rem, R)),
        ]
        # Per tile, registered with its coordinates: the rows inside M (rows past M are
        # padding, the count travels with the tag), so that the write enable is a small
        # comparison.
        out_m0 = Signal.like(m0)
        out_ntile = Signal.like(ntile)
        out_rows = Signal(range(R + 1))
        with m.If(tag_delay.o[0].valid):
            m.d.sync += [out_m0.eq(tag_delay.o[0].m0), out_ntile.eq(tag_delay.o[0].ntile),
                         out_rows.eq(tag_delay.o[0].rows)]
        row_m = Signal(range(cfg.max_m + R + 1))
        shift = R.bit_length() - 1
        if R == 1 << shift:  # m0 is a multiple of R: the row is its low bits
            m.d.comb += row_m.eq(Cat(array.o.payload.row[:shift], out_m0[shift:]))
        else:
            m.d.comb += row_m.eq(out_m0 + array.o.payload.row)
        m.d.comb += [
            bufs.c_wr.addr.eq(c_addr(cfg, row_m, out_ntile)),
            bufs.c_wr.data.eq(array.o.payload.data),
            bufs.c_wr.en.eq(array.o.valid & (array.o.payload.row < out_rows)),
        ]
        # The final tile's last row out (row 0, or R - 1 with a drain tree) leaves the array
        # R cycles after its tag: final_write from the tag through R registers, not from the
        # array's output (far from the shell's control).
        m.submodules.final_delay = final_delay = DelayLanes(1, [R], reset_less=False)
        m.d.comb += [final_delay.i[0].eq(tag_delay.o[0].valid & tag_delay.o[0].final),
                     seq.final_write.eq(final_delay.o[0])]
