"""The weight-stationary array's sequencer: per (column tile, k-tile), R x C weights go into
the shadow registers while the previous pair computes; the M rows of A stream through; C
accumulates (read-modify-write)."""

from amaranth.hdl import Mux, Signal
from amaranth.lib import data

from ..arith import acc_shape, accumulate
from ..skew import DelayLanes
from ..ws_array import WeightStationaryArray
from .sequencer import Loader, Sequencer, at_least, c_addr

__all__ = ["WeightStationarySequencer"]


class WeightStationarySequencer(Sequencer):
    """Slots of ``max(M, R + 1)`` cycles per weight tile (the shadow-weight rule); A is loaded
    k-tile by k-tile, each tile's M rows in order."""

    @property
    def c_read_latency(self):
        """Cycles from the read-modify-write's C read address to its word: 2 (through the block
        RAM's output register, :class:`~systolix.hdl.buffer.BufferMemory`) in a pipelined,
        double-buffered engine of at least 2 rows, where a C row's next read-modify-write comes
        at least R + 1 >= 3 cycles after this one, so the earlier read never meets this write;
        1 otherwise. The read is issued that much before the write, so no cycle count
        depends on it."""
        cfg = self.config
        return (2 if self.buffer_read_latency == 2 and cfg.rows >= 2
                and cfg.buffering == "double" else 1)

    def loaders(self):
        cfg = self.config
        return (Loader("a_load", cfg.a_depth, cfg.max_k, cfg.rows, cfg.max_m),
                Loader("b_load", cfg.b_depth, cfg.max_n, cfg.cols, cfg.k_steps_max))

    def load_limits(self, job):
        return (job.k, job.m), (job.n, self.k_steps(job))

    def load_inner_ones(self, job):
        return job.m == 1, self.k_steps_one(job)

    def elaborate(self, m, job, bufs, start_job=None):
        cfg, seq = self.config, self
        start_job = job if start_job is None else start_job
        R, C, num = cfg.rows, cfg.cols, cfg.numerics
        acc = cfg.compute.accumulate_latency
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
        # Registered one step ahead with the counters they describe, so that the slot and
        # tile steps' multiplexers and the B read address follow flip-flops, not comparisons
        # and adders:
        nxt_bk = Signal(range(cfg.b_depth + cfg.max_k + 1))  # nxt_bbase + nxt_k0
        nxt_lk = Signal(name="nxt_last_k")      # nxt_k0 + R >= K: the column tile's last k-tile
        nxt_ln = Signal(name="nxt_last_n")      # nxt_n0 + C >= N: the last column tile
        first_lk = Signal(name="first_last_k")  # R >= K: nxt_lk of a column tile's first k-tile
        # The next column tile's B base and first read address, a column tile ahead (the tile
        # step loads them, no adder chain behind b_rd_addr); nxt_k0 + 2R - K and nxt_n0 + 2C -
        # N, whose signs are the next step's nxt_lk and nxt_ln (no comparison with K or N)
        col_bbase = Signal.like(nxt_bbase, name="col_bbase")  # nxt_bbase + K
        col_baddr = Signal.like(nxt_bk, name="col_b_rd_addr")  # nxt_bbase + K + R - 1
        lk_gap = Signal(range(-(cfg.max_k + 1), cfg.max_k + 3 * R + 1), name="nxt_lk_gap")
        ln_gap = Signal(range(-(cfg.max_n + 1), cfg.max_n + 3 * C + 1), name="nxt_ln_gap")
        s_end = Signal(name="slot_end")         # s is the tile's last slot (R in the prologue,
        #                                         else span - 1)
        # the slot comparisons' right-hand sides, so that they compare s with registers (no
        # adder before them): the last slot - 1, M - 1, M - 2
        end_m1 = Signal(range(-1, max(cfg.max_m, R + 1) + 1), name="end_slot_m1")
        m_m1 = Signal(range(-1, cfg.max_m + 1), name="job_m_m1")
        m_m2 = Signal(range(-2, cfg.max_m + 1), name="job_m_m2")
        # ... and the slot's comparisons, so that the array's controls and the buffers' read
        # addresses leave flip-flops
        s_lt_m = Signal(name="slot_below_m")    # s < M
        s_lt_r = Signal(name="slot_below_r")    # s < R
        s_cap = Signal(name="slot_last_row")    # s == R - 1
        s_last = Signal(name="slot_last_beat")  # s == M - 1
        # nxt_k0 + R - 1 - s - K: the pushed row lies in K (w_real) while this is negative,
        # counted down by the slot, and nxt_k0 - K beside nxt_k0 (no comparison with K)
        w_gap = Signal(range(-(cfg.max_k + cfg.max_m + 2 * R + 2), cfg.max_k + 2 * R + 2),
                       name="w_gap")
        k0_gap = Signal(range(-(cfg.max_k + 1), cfg.max_k + R + 1), name="nxt_k0_gap")
        w_real = w_gap[-1]
        a_addr = Signal.like(cur_abase, name="a_rd_addr")  # cur_abase + s
        b_addr = Signal.like(nxt_bk, name="b_rd_addr")     # nxt_bk + R - 1 - s (while s < R)
        nxt_is_last = nxt_ln & nxt_lk

        with m.If(~seq.run):  # held at the start until the compute phase
            lk0 = at_least(R, start_job.k, cfg.max_k)
            # (s_end: the prologue's R + 1 slots are at least 2)
            m.d.sync += [span.eq(Mux(start_job.m > R, start_job.m, R + 1)
                                 if cfg.max_m > R else R + 1),
                         s.eq(0), prologue.eq(1), s_end.eq(0),
                         nxt_n0.eq(0), nxt_ntile.eq(0), nxt_k0.eq(0), nxt_abase.eq(0),
                         nxt_bbase.eq(0), nxt_bk.eq(0), nxt_exists.eq(1),
                         nxt_lk.eq(lk0), first_lk.eq(lk0),
                         nxt_ln.eq(at_least(C, start_job.n, cfg.max_n)),
                         col_bbase.eq(start_job.k), col_baddr.eq(start_job.k + (R - 1)),
                         lk_gap.eq(2 * R - start_job.k), ln_gap.eq(2 * C - start_job.n),
                         s_lt_m.eq(1), s_lt_r.eq(1), s_cap.eq(R == 1),
                         s_last.eq(start_job.m == 1), k0_gap.eq(-start_job.k),
                         w_gap.eq(R - 1 - start_job.k),
                         a_addr.eq(0), b_addr.eq(R - 1),
                         end_m1.eq(R - 1), m_m1.eq(start_job.m - 1),
                         m_m2.eq(start_job.m - 2)]
        beat = Signal()
        swap = Signal()
        push = Signal()
        m.d.comb += [
            beat.eq(seq.run & ~prologue & s_lt_m),
            swap.eq(seq.run & s_end),
            push.eq(seq.run & nxt_exists & s_lt_r),
            bufs.a_rd.addr.eq(a_addr),
            bufs.b_rd.addr.eq(b_addr),
        ]
        with m.If(seq.run):
            with m.If(s_end):
                # the next end slot is span - 1 >= R >= 1 (no prologue after this): not s = 0
                m.d.sync += [
                    s.eq(0), prologue.eq(0), s_end.eq(0),
                    cur_ntile.eq(nxt_ntile), cur_abase.eq(nxt_abase), cur_first.eq(nxt_k0 == 0),
                    cur_last.eq(nxt_is_last), nxt_exists.eq(nxt_exists & ~nxt_is_last),
                    s_lt_m.eq(1), s_lt_r.eq(1), s_cap.eq(R == 1), s_last.eq(job.m == 1),
                    a_addr.eq(nxt_abase), end_m1.eq(span - 2),
                ]
                with m.If(nxt_lk):
                    m.d.sync += [nxt_k0.eq(0), nxt_abase.eq(0), nxt_n0.eq(nxt_n0 + C),
                                 nxt_ntile.eq(nxt_ntile + 1), nxt_bbase.eq(col_bbase),
                                 nxt_bk.eq(col_bbase), b_addr.eq(col_baddr),
                                 col_bbase.eq(col_bbase + job.k),
                                 col_baddr.eq(col_baddr + job.k),
                                 k0_gap.eq(-job.k), w_gap.eq(R - 1 - job.k),
                                 lk_gap.eq(2 * R - job.k), ln_gap.eq(ln_gap + C),
                                 nxt_lk.eq(first_lk), nxt_ln.eq(~ln_gap[-1])]
                with m.Else():
                    m.d.sync += [nxt_k0.eq(nxt_k0 + R), nxt_abase.eq(nxt_abase + job.m),
                                 nxt_bk.eq(nxt_bk + R), b_addr.eq(nxt_bk + (2 * R - 1)),
                                 k0_gap.eq(k0_gap + R), w_gap.eq(k0_gap + (2 * R - 1)),
                                 lk_gap.eq(lk_gap + R), nxt_lk.eq(~lk_gap[-1])]
                m.d.comb += seq.end.eq(~prologue & cur_last)
            with m.Else():
                m.d.sync += [s.eq(s + 1), s_end.eq(s == end_m1),
                             s_lt_m.eq(s < m_m1), s_lt_r.eq(s + 1 < R),
                             s_cap.eq(s + 1 == R - 1), s_last.eq(s == m_m2),
                             w_gap.eq(w_gap - 1),
                             a_addr.eq(a_addr + 1), b_addr.eq(b_addr - 1)]

        # Buffers answer buffer_read_latency cycles later; the array sees beat, swap and
        # weights then.
        m.submodules.ctl_delay = ctl_delay = DelayLanes(
            data.StructLayout({"beat": 1, "swap": 1, "cap": 1, "w_real": 1}),
            [self.buffer_read_latency], reset_less=False)
        m.d.comb += [ctl_delay.i[0].beat.eq(beat), ctl_delay.i[0].swap.eq(swap),
                     ctl_delay.i[0].cap.eq(push & s_cap),
                     ctl_delay.i[0].w_real.eq(push & w_real)]
        ctl_d = ctl_delay.o[0]
        beat_d, swap_d, cap_d, w_real_d = ctl_d.beat, ctl_d.swap, ctl_d.cap, ctl_d.w_real
        m.d.comb += [
            array.a.eq(bufs.a_rd.data),
            array.a_valid.eq(beat_d),
            array.swap.eq(swap_d),
            array.w.eq(Mux(w_real_d, bufs.b_rd.data.as_value(), 0)),
            array.w_capture.eq(cap_d),
        ]

        # Each beat's column sums reach the bottom R + C cycles after issue: read the C row
        # c_read_latency (+ accumulate_latency: the old row's register) cycles before, add
        # (wrap/saturate), write it back (accumulate_latency: through the sum's register). The
        # same row of the next k-tile comes >= R + 1 cycles later, after this write.
        tag = data.StructLayout({"valid": 1, "final": 1, "first": 1,
                                 "m": len(s), "ntile": len(cur_ntile)})
        m.submodules.tag_delay = tag_delay = DelayLanes(
            tag, [self.buffer_read_latency + array.result_latency - self.c_read_latency - acc],
            reset_less=False)
        m.d.comb += [
            tag_delay.i[0].valid.eq(beat),
            tag_delay.i[0].final.eq(beat & cur_last & s_last),
            tag_delay.i[0].first.eq(cur_first),
            tag_delay.i[0].m.eq(s),
            tag_delay.i[0].ntile.eq(cur_ntile),
        ]
        # The tag at the read (rd_tag), when the column sums arrive (sum_tag) and at the write.
        taps = [tag_delay.o[0]]
        for i in range(self.c_read_latency + 2 * acc):
            reg = Signal(tag, name=f"wr_tag{i}")
            m.d.sync += reg.eq(taps[-1])
            taps.append(reg)
        rd_tag, sum_tag, wr_tag = taps[0], taps[self.c_read_latency + acc], taps[-1]
        m.d.comb += seq.c_rd_addr.eq(c_addr(cfg, rd_tag.m, rd_tag.ntile))
        m.d.comb += [
            bufs.c_wr.addr.eq(c_addr(cfg, wr_tag.m, wr_tag.ntile)),
            bufs.c_wr.en.eq(wr_tag.valid),
            seq.final_write.eq(wr_tag.valid & wr_tag.final),
        ]
        if acc:
            row = data.ArrayLayout(acc_shape(num), C)
            old_r = Signal(row, name="c_old", reset_less=True)
            sum_r = Signal(row, name="c_sum", reset_less=True)
            # a first k-tile's row starts from 0: the old row's register is cleared (a
            # synchronous reset, no multiplexer in front of the adders)
            m.d.sync += old_r.eq(Mux(taps[self.c_read_latency].first, 0, bufs.c_rd.data))
            for c in range(C):
                m.d.sync += sum_r[c].eq(accumulate(old_r[c], array.psum[c], num))
            m.d.comb += bufs.c_wr.data.eq(sum_r)
        else:
            for c in range(C):
                old = Mux(sum_tag.first, 0, bufs.c_rd.data[c])
                m.d.comb += bufs.c_wr.data[c].eq(accumulate(old, array.psum[c], num))
