"""What the engine's shell and a compute core's sequencer share: the hand-shake, the buffer
loaders, and C buffer addressing."""

from amaranth.hdl import Cat, Const, Signal

__all__ = ["Sequencer", "Loader", "c_addr", "at_least", "above"]


class Loader:
    """Counts words of a two-level loop (outer index steps by ``step`` below ``outer_limit``,
    inner index runs below ``inner_limit``) into consecutive buffer addresses.

    The loop-end comparisons are flags registered one word ahead (``inner_last``: this word
    ends the inner loop, ``outer_last``: ... and the outer one), so that a word taken from a
    stream reaches the counters through a flip-flop, not a comparison: :meth:`start` takes
    the limits the job will have (e.g. the command's), :meth:`take` the job's. The loops count
    what remains of them down, so that the flags' look-ahead compares with constants."""

    def __init__(self, name, depth, outer_max, step, inner_max):
        self._shape = (depth, outer_max, step, inner_max)
        self.addr = Signal(range(depth + 1), name=f"{name}_addr")
        # outer_limit - outer: what remains of the outer loop, this step's included
        self.outer_rem = Signal(range(outer_max + 1), name=f"{name}_outer_rem")
        # inner_limit - inner: what remains of the inner loop, this word included
        self.inner_rem = Signal(range(inner_max + 1), name=f"{name}_inner_rem")
        self.done = Signal(name=f"{name}_done")
        self.inner_last = Signal(name=f"{name}_inner_last")
        self.outer_last = Signal(name=f"{name}_outer_last")
        self._inner_last0 = Signal(name=f"{name}_inner_last0")  # inner_limit == 1
        self._step, self._outer_max = step, outer_max

    def start(self, m, outer_limit, inner_limit, inner_one=None):
        """To the first word of a loop with these limits (``inner_one``: an expression equal
        to ``inner_limit == 1``, e.g. a shallower one from the command's fields)."""
        inner_one = inner_limit == 1 if inner_one is None else inner_one
        m.d.sync += [self.addr.eq(0), self.outer_rem.eq(outer_limit),
                     self.inner_rem.eq(inner_limit), self.done.eq(0),
                     self.inner_last.eq(inner_one),
                     self._inner_last0.eq(inner_one),
                     self.outer_last.eq(at_least(self._step, outer_limit, self._outer_max))]

    def take(self, m, outer_limit, inner_limit):
        """Count the word taken now (the limits are the job's, as at :meth:`start`)."""
        m.d.sync += self.addr.eq(self.addr + 1)
        with m.If(self.inner_last):
            m.d.sync += [self.inner_rem.eq(inner_limit),
                         self.outer_rem.eq(self.outer_rem - self._step),
                         self.inner_last.eq(self._inner_last0),
                         # the next step is the last: outer_rem - step <= step
                         self.outer_last.eq(~above(self.outer_rem, 2 * self._step))]
            with m.If(self.outer_last):
                m.d.sync += self.done.eq(1)
        with m.Else():
            # (never reached with a constant inner limit of 1: no constant comparison)
            last = (0 if isinstance(inner_limit, int) and inner_limit == 1
                    else self.inner_rem == 2)
            m.d.sync += [self.inner_rem.eq(self.inner_rem - 1), self.inner_last.eq(last)]


    def twin(self, name):
        """A loader of the same loops, to be counted at another time (e.g. when a word is
        taken from its stream, while this one counts it a cycle later): its flags then say
        whether the word taken now is the loop's last."""
        return Loader(name, *self._shape)


def above(value, const):
    """``value > const`` (unsigned ``value``, constant ``const``) as a bitwise and/or chain: a
    shallow tree of LUTs, where a comparison would become a carry chain."""
    result = Const(0)
    if const >> len(value):  # beyond the value's range
        return result
    for i, bit in enumerate(value):
        result = bit & result if (const >> i) & 1 else bit | result
    return result


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
        :meth:`accept` to :meth:`job_values`."""
        return {}

    def job_values(self, cmd):
        """The values of :meth:`job_registers` for command ``cmd`` (``{name: value}``)."""
        return {}

    def accept(self, m, cmd, job):
        """Statements when command ``cmd`` is accepted (``job`` already holds m, k, n)."""
        m.d.sync += [getattr(job, k).eq(v) for k, v in self.job_values(cmd).items()]

    def k_steps(self, job):
        """The job's B words per column tile (K for a systolic array)."""
        return job.k

    def k_steps_one(self, job):
        """``k_steps(job) == 1`` from the job's K alone: a comparison with a constant, not one
        after :meth:`k_steps`' arithmetic (the loaders start from the command port)."""
        return job.k == 1

    def load_inner_ones(self, job):
        """``a_one, b_one``: the loaders' inner limits (:meth:`load_limits`) ``== 1``, as
        shallow expressions of ``job``'s fields (see :meth:`k_steps_one`)."""
        one = self.k_steps_one(job)
        return one, one

    def loaders(self):
        """``a_loader, b_loader``: the load phase's word counters. The default: A row tile by
        row tile, each tile's k-steps in order; B column tile by column tile, each tile's
        k-steps in order."""
        cfg = self.config
        return (Loader("a_load", cfg.a_depth, cfg.max_m, cfg.rows, cfg.k_steps_max),
                Loader("b_load", cfg.b_depth, cfg.max_n, cfg.cols, cfg.k_steps_max))

    def load_limits(self, job):
        """``a_limits, b_limits``: the (outer, inner) limits of the loaders' loops for
        ``job`` (anything with the job's fields, e.g. a command's view)."""
        return (job.m, self.k_steps(job)), (job.n, self.k_steps(job))

    def elaborate(self, m, job, bufs, start_job=None):
        """The compute phase: buffer reads, the core, C writes and the hand-shake.

        ``job`` holds the running job's registers while ``run`` is high; ``start_job``
        (default ``job``) holds them in the cycle before the compute phase, where they may
        still be on their way into ``job``."""
        raise NotImplementedError
