"""What the engine's shell and a compute core's sequencer share: the hand-shake, the buffer
loaders, and C buffer addressing."""

from amaranth.hdl import Cat, Signal

__all__ = ["Sequencer", "Loader", "c_addr", "at_least"]


class Loader:
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


def at_least(const, value, value_max):
    """``const >= value`` for a ``value`` of at most ``value_max``: a plain 1 when that always
    holds (no constant comparison in the RTL)."""
    return 1 if const >= value_max else const >= value


def c_addr(cfg, row, ntile):
    """C buffer address of row ``row`` (a tensor-core engine: fragment row) of column tile
    ``ntile``: the two side by side."""
    m_bits = (cfg.m_stride - 1).bit_length()
    return Cat(row[:m_bits], ntile)


class Sequencer:
    """A compute core's part of the engine (abstract): counts the buffers' words in while
    loading, then issues buffer reads slot by slot during the compute phase, drives the core
    and writes its results to C.

    It talks to the engine's phase FSM through hand-shake signals: ``run`` (issue one slot
    this cycle; while it is low the counters are held at their start, so a compute phase
    begins in the cycle after its job's registers are set, with no start pulse to fan out),
    ``end`` (this is the last slot), ``final_write`` (the last result is written to C now)
    and ``c_rd_addr`` (the C read address for a read-modify-write, overridden by the drain).

    Parameters
    ----------
    config : EngineConfig
    buffer_read_latency : int
        Cycles from a buffer address to its word.
    """

    def __init__(self, config, buffer_read_latency):
        self.config = config
        self.buffer_read_latency = buffer_read_latency
        self.run = Signal(name="seq_run")
        self.end = Signal(name="seq_end")
        self.final_write = Signal(name="seq_final_write")
        self.c_rd_addr = Signal(32, name="seq_c_rd_addr")

    def job_registers(self):
        """Registers the core adds to the accepted job (``{name: Signal}``), set by
        :meth:`accept`."""
        return {}

    def accept(self, m, cmd, job):
        """Statements when command ``cmd`` is accepted (``job`` already holds m, k, n)."""

    def k_steps(self, job):
        """The job's B words per column tile (K for a systolic array)."""
        return job.k

    def loaders(self, job):
        """``(a_loader, a_limits), (b_loader, b_limits)``: the load phase's word counters and
        the (outer, inner) limits of their loops. The default: A row tile by row tile, each
        tile's k-steps in order; B column tile by column tile, each tile's k-steps in order."""
        cfg = self.config
        a_load = Loader("a_load", cfg.a_depth, cfg.max_m, cfg.rows, cfg.k_steps_max)
        b_load = Loader("b_load", cfg.b_depth, cfg.max_n, cfg.cols, cfg.k_steps_max)
        return (a_load, (job.m, self.k_steps(job))), (b_load, (job.n, self.k_steps(job)))

    def elaborate(self, m, job, bufs, start_job=None):
        """The compute phase: buffer reads, the core, C writes and the hand-shake.

        ``job`` holds the running job's registers while ``run`` is high; ``start_job``
        (default ``job``) holds them in the cycle before the compute phase, where they may
        still be on their way into ``job``."""
        raise NotImplementedError
