"""The tensor-core sequencer: the MMA units take one (A fragment, B fragment) per cycle;
L = latency output tiles are interleaved so that each tile's D comes back as its C just in
time."""

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.lib import data

from ..skew import DelayLanes
from ..tensorcore import MMAUnit
from .sequencer import Sequencer, above, at_least, c_addr

__all__ = ["TensorCoreSequencer"]


class TensorCoreSequencer(Sequencer):
    """Groups of L output tiles, k-step outer inside a group; fragments of A and B are loaded
    k-step by k-step (``job.ks = ceil(K/k)``, computed when the command is accepted)."""

    def job_registers(self):
        cfg = self.config
        return {
            "ks": Signal(range(cfg.k_steps_max + 1), name="job_ks"),  # ceil(K / k)
            # lane j is inside K in the last k-step: j <= (K - 1) mod k
            "kmask": Signal(cfg.core.k, name="job_kmask"),
            # the row / column tiles after the first: ceil(M / m) - 1, ceil(N / C) - 1
            "mtl": Signal(range(max(2, cfg.m_stride)), name="job_mtl"),
            "ntl": Signal(range(max(2, _ceil_div(cfg.max_n, cfg.cols))), name="job_ntl"),
        }

    def job_values(self, cmd):
        cfg = self.config
        kk = cfg.core.k
        k_rem = (cmd.k - 1).as_unsigned()
        k_rem = k_rem[:kk.bit_length() - 1] if kk & (kk - 1) == 0 else k_rem % kk
        return {"ks": _div(cmd.k + (kk - 1), kk),
                "kmask": Cat(Const(1, 1), *(k_rem >= j for j in range(1, kk))),
                # (a rejected command's zero dimension wraps: its values are never used)
                "mtl": _div((cmd.m - 1).as_unsigned(), cfg.core.m),
                "ntl": _div((cmd.n - 1).as_unsigned(), cfg.cols)}

    def k_steps(self, job):
        return job.ks

    def k_steps_one(self, job):
        # ceil(K / k) == 1 exactly when 1 <= K <= k
        return (job.k != 0) & ~above(job.k, self.config.core.k)

    def elaborate(self, m, job, bufs, start_job=None):
        cfg, seq = self.config, self
        core = cfg.core
        R, C, K, n_u = core.m, cfg.cols, core.k, core.n
        W = core.latency  # slots per k-step = tiles in flight
        # With a buffer read latency of 3 the block RAM's word (latency 2) is masked, then
        # registered once more, so that neither the route from the block RAM nor the one to the
        # units' multipliers shares a cycle with the mask: that register is the units' own
        # operand register (a copy per dot-product unit, placed by its multipliers).
        frag_reg = self.buffer_read_latency - 2 if self.buffer_read_latency > 2 else 0
        units = []
        for u in range(cfg.cores):
            units.append(MMAUnit(core, operand_register=frag_reg > 0))
            m.submodules[f"mma_{u}"] = units[-1]

        ntile_w = Signal(range(cfg.c_depth // cfg.m_stride + 1)).shape()

        def tile(prefix):
            return {
                # row tiles after this one in its column tile / column tiles after its own:
                # counted down, so that the flags' look-ahead compares with a constant
                "mr": Signal(range(max(2, cfg.m_stride)), name=f"{prefix}_mrem"),
                "mt": Signal(range(cfg.m_stride + 1), name=f"{prefix}_mt"),
                "nr": Signal(range(max(2, _ceil_div(cfg.max_n, C))), name=f"{prefix}_nrem"),
                "ntile": Signal(ntile_w, name=f"{prefix}_ntile"),
                "abase": Signal(range(cfg.a_depth + cfg.k_steps_max + 1), name=f"{prefix}_abase"),
                "bbase": Signal(range(cfg.b_depth + cfg.k_steps_max + 1), name=f"{prefix}_bbase"),
                # the tile is the last of its column tile (mr == 0) / in the last column
                # tile (nr == 0): flags registered with the tile, so that the tile step's
                # many multiplexers follow a flip-flop, not a comparison
                "lm": Signal(name=f"{prefix}_last_m"),
                "ln": Signal(name=f"{prefix}_last_n"),
            }

        grp = tile("grp")   # the group's first tile (a group = W consecutive output tiles)
        cur = tile("cur")   # the tile of this slot
        cur_valid = Signal(name="cur_valid")  # else a bubble: the group ran past the last tile
        slot = Signal(range(max(W, 2)), name="slot")  # (never 0 bits: invalid Verilog)
        # slot == W - 1, registered one slot ahead (the branch below that every register of the
        # tile step takes follows a flip-flop, not a comparison)
        slot_last = Signal(name="slot_last")
        ks = Signal(range(max(cfg.k_steps_max, 2)), name="kstep")
        start_job = job if start_job is None else start_job
        last_m, last_n = cur["lm"], cur["ln"]
        last_tile = last_m & last_n
        last_k = Signal(name="last_kstep")  # ks == job.ks - 1, registered with ks
        first_lm = Signal(name="first_last_m")  # R >= M: the flag of a column tile's first tile

        def goto(dst, src):
            return [dst[key].eq(src[key]) for key in dst]

        def step(dst):
            """dst := the tile after cur (m inner, column tile outer)."""
            with m.If(last_m):
                m.d.sync += [dst["mr"].eq(job.mtl), dst["mt"].eq(0), dst["abase"].eq(0),
                             dst["nr"].eq(cur["nr"] - 1), dst["ntile"].eq(cur["ntile"] + 1),
                             dst["bbase"].eq(cur["bbase"] + job.ks),
                             dst["lm"].eq(first_lm), dst["ln"].eq(cur["nr"] == 1)]
            with m.Else():
                m.d.sync += [dst["mr"].eq(cur["mr"] - 1), dst["mt"].eq(cur["mt"] + 1),
                             dst["abase"].eq(cur["abase"] + job.ks),
                             dst["nr"].eq(cur["nr"]), dst["ntile"].eq(cur["ntile"]),
                             dst["bbase"].eq(cur["bbase"]),
                             dst["lm"].eq(cur["mr"] == 1), dst["ln"].eq(cur["ln"])]

        # The read addresses cur.abase + ks and cur.bbase + ks, kept in registers (each step
        # below updates them with the tile and k-step), so that the block RAMs' address pins
        # follow flip-flops, not adders.
        a_addr = Signal.like(cur["abase"], name="a_rd_addr")
        b_addr = Signal.like(cur["bbase"], name="b_rd_addr")

        with m.If(~seq.run):  # held at the start until the compute phase
            m.d.sync += [sig.eq(0) for sig in (*grp.values(), *cur.values(), slot, ks,
                                                a_addr, b_addr)]
            m.d.sync += slot_last.eq(W == 1)
            lm0 = at_least(R, start_job.m, cfg.max_m)
            ln0 = at_least(C, start_job.n, cfg.max_n)
            m.d.sync += [cur_valid.eq(1), first_lm.eq(lm0), last_k.eq(start_job.ks == 1),
                         *(t[key].eq(v) for t in (grp, cur) for key, v in
                           (("lm", lm0), ("ln", ln0), ("mr", start_job.mtl),
                            ("nr", start_job.ntl)))]

        issue = Signal()
        m.d.comb += [
            issue.eq(seq.run & cur_valid),
            bufs.a_rd.addr.eq(a_addr),
            bufs.b_rd.addr.eq(b_addr),
        ]
        with m.If(seq.run):
            with m.If(slot_last):
                m.d.sync += [slot.eq(0), slot_last.eq(W == 1)]
                with m.If(last_k):  # the group is done: the next group starts after cur
                    m.d.sync += [ks.eq(0), cur_valid.eq(1),
                                 last_k.eq(job.ks == 1)]
                    step(grp)
                    step(cur)
                    # (k-step 0 of the tile after cur)
                    m.d.sync += [a_addr.eq(Mux(last_m, 0, cur["abase"] + job.ks)),
                                 b_addr.eq(Mux(last_m, cur["bbase"] + job.ks, cur["bbase"]))]
                    m.d.comb += seq.end.eq(~cur_valid | last_tile)
                with m.Else():  # the group's next k-step: back to its first tile
                    m.d.sync += [ks.eq(ks + 1), cur_valid.eq(1),
                                 last_k.eq(ks + 2 == job.ks), *goto(cur, grp),
                                 a_addr.eq(grp["abase"] + ks + 1),
                                 b_addr.eq(grp["bbase"] + ks + 1)]
            with m.Else():
                m.d.sync += [slot.eq(slot + 1), slot_last.eq(slot == W - 2)]
                with m.If(last_tile):
                    m.d.sync += cur_valid.eq(0)
                with m.Else():
                    step(cur)
                    # (the same k-step of the tile after cur)
                    m.d.sync += [a_addr.eq(Mux(last_m, ks, a_addr + job.ks)),
                                 b_addr.eq(Mux(last_m, b_addr + job.ks, b_addr))]

        # The buffers answer buffer_read_latency cycles later: the units take the fragments
        # then. Lanes of A past K are zeroed (padding may hold any value); the first k-step adds
        # to 0, every later one to the unit's own D of the same tile, which leaves the pipeline
        # exactly now (the read latency shifts every k-step alike, so they stay L apart).
        valid_d, first_d = Signal(), Signal()
        kmask_d = Signal(K)
        # (lane j of k-step ks is inside K: all lanes but in the last k-step, the job's kmask)
        valid_i, first_i = issue, ks == 0
        kmask_i = Mux(last_k, job.kmask, (1 << K) - 1)
        for i in range(self.buffer_read_latency - 1):
            v, f, k_ = (Signal(name=f"valid_r{i}"), Signal(name=f"first_r{i}"),
                        Signal(K, name=f"kmask_r{i}"))
            m.d.sync += [v.eq(valid_i), f.eq(first_i), k_.eq(kmask_i)]
            valid_i, first_i, kmask_i = v, f, k_
            if i == self.buffer_read_latency - frag_reg - 1:
                kmask_mem = kmask_i  # aligned with the block RAM's word
        m.d.sync += [valid_d.eq(valid_i), first_d.eq(first_i), kmask_d.eq(kmask_i)]
        a_frag, b_frag = bufs.a_rd.data, bufs.b_rd.data
        if frag_reg:
            a_masked = Signal(a_frag.shape(), name="a_frag_masked")
            for r in range(R):
                for j in range(K):
                    m.d.comb += a_masked[r][j].eq(Mux(kmask_mem[j], a_frag[r][j], 0))
            # (the last register: the units' operand register)
            a_frag, b_frag = (_delayed(m, a_masked, frag_reg - 1, "a_frag"),
                              _delayed(m, b_frag, frag_reg - 1, "b_frag"))
        for u, unit in enumerate(units):
            m.d.comb += unit.i.valid.eq(valid_d)
            for r in range(R):
                for j in range(K):
                    m.d.comb += unit.i.payload.a[r][j].eq(
                        a_frag[r][j] if frag_reg else Mux(kmask_d[j], a_frag[r][j], 0))
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
            bufs.c_wr.addr.eq(c_addr(cfg, out.mt, out.ntile)),
            bufs.c_wr.en.eq(out.valid),
            seq.final_write.eq(out.valid & out.final),
        ]
        for u, unit in enumerate(units):
            for r in range(R):
                for c in range(n_u):
                    m.d.comb += bufs.c_wr.data[r][u * n_u + c].eq(unit.o.payload.d[r][c])


def _delayed(m, value, stages, name):
    """``value`` (a view) through ``stages`` reset-less registers."""
    for i in range(stages):
        reg = Signal(value.shape(), name=f"{name}_r{i}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _ceil_div(a, b):
    return -(-a // b)


def _div(value, d):
    """``value // d`` for a constant ``d`` (a shift when ``d`` is a power of two)."""
    return value >> (d.bit_length() - 1) if d & (d - 1) == 0 else value // d
