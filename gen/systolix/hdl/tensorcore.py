# amaranth: UnusedElaboratable=no
"""Tensor-core-style MMA unit: m x n pipelined k-element dot-product units, D = A x B + C.

Each :class:`DotProductUnit` is k multipliers, an exact pairwise adder tree and one accumulate
adder, the building block of an NVIDIA tensor core (D = A x B + C on small matrices: "NVIDIA
Tesla V100 GPU Architecture" white paper, 2017; as four-element dot-product units: Raihan et al.,
"Modeling Deep Learning Accelerator Enabled GPUs", ISPASS 2019); :class:`MMAUnit` puts m x n of
them side by side. Both accept a new beat every cycle and deliver its result a fixed
:attr:`~MMAUnit.latency` later: they are pipelines, with no backpressure and no state besides the
pipeline registers.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import TensorCoreConfig
from .arith import acc_shape, accumulate, operand_shape
from .skew import DelayLanes
from . import dsp
from .pe import NOMERGE
from .units import add_unit

__all__ = ["DotProductUnit", "MMAUnit", "dot_input_layout", "dot_output_layout",
           "mma_input_layout", "mma_output_layout"]


def _check_config(config):
    if not isinstance(config, TensorCoreConfig):
        raise TypeError(f"config must be a TensorCoreConfig, not {config!r}")


def dot_input_layout(config: TensorCoreConfig):
    """Input beat of one dot-product unit: ``a`` (k operands), ``b`` (k operands), ``c``."""
    op = operand_shape(config.numerics)
    return data.StructLayout({
        "a": data.ArrayLayout(op, config.k),
        "b": data.ArrayLayout(op, config.k),
        "c": acc_shape(config.numerics),
    })


def dot_output_layout(config: TensorCoreConfig):
    """Output beat of one dot-product unit: ``d``."""
    return data.StructLayout({"d": acc_shape(config.numerics)})


def _matrix(shape, rows, cols):
    """Row-major matrix layout: element (r, c) is ``view[r][c]``, at flat index r * cols + c."""
    return data.ArrayLayout(data.ArrayLayout(shape, cols), rows)


def mma_input_layout(config: TensorCoreConfig):
    """Input beat of the MMA unit: ``a`` (m x k), ``b`` (k x n), ``c`` (m x n), all row-major."""
    op, acc = operand_shape(config.numerics), acc_shape(config.numerics)
    return data.StructLayout({
        "a": _matrix(op, config.m, config.k),
        "b": _matrix(op, config.k, config.n),
        "c": _matrix(acc, config.m, config.n),
    })


def mma_output_layout(config: TensorCoreConfig):
    """Output beat of the MMA unit: ``d`` (m x n, row-major)."""
    return data.StructLayout({"d": _matrix(acc_shape(config.numerics), config.m, config.n)})


class DotProductUnit(wiring.Component):
    """``d = accumulate(c, a[0]*b[0] + ... + a[k-1]*b[k-1])``, pipelined, one beat per cycle.

    The k products are exact; they are summed pairwise in ``config.tree_levels`` levels (a level
    adds neighbours 0+1, 2+3, ...; an odd last value passes through), every sum exact (the tree
    result is ``config.sum_width`` bits). The tree sum is added to ``c`` with the shared rule
    :func:`systolix.hdl.arith.accumulate` (wrap or saturate, once), and the result is registered.
    ``config.pipeline`` further registers sit at ``config.register_cuts`` (see
    :class:`~systolix.config.TensorCoreConfig`); ``c`` and ``valid`` travel along in step.

    **Input** ``i``: an always-ready stream; a beat is taken in every cycle in which ``i.valid``
    is high (``i.ready`` is the constant 1). **Output** ``o``: an always-ready stream; ``o.valid``
    is high exactly :attr:`latency` cycles after ``i.valid`` was, with that beat's ``d``.
    ``o.payload`` is meaningless while ``o.valid`` is low. Reset clears the valid pipeline only.

    Parameters
    ----------
    config : TensorCoreConfig
        Only ``k``, ``pipeline`` and ``numerics`` matter here.

    Attributes
    ----------
    i : In(stream.Signature(dot_input_layout(config), always_ready=True))
    o : Out(stream.Signature(dot_output_layout(config), always_ready=True))
    """

    def __init__(self, config: TensorCoreConfig):
        _check_config(config)
        self._config = config
        super().__init__({
            "i": In(stream.Signature(dot_input_layout(config), always_ready=True)),
            "o": Out(stream.Signature(dot_output_layout(config), always_ready=True)),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a beat on ``i`` (``i.valid`` high) to its result on ``o``:
        ``config.pipeline + 1`` (the pipeline registers plus the output register)."""
        return self._config.latency

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        cuts = set(cfg.register_cuts)

        def stage(values, cut, name=None):
            """Register ``values`` if ``cut`` holds a pipeline register."""
            if cut not in cuts:
                return values
            regs = []
            for i, v in enumerate(values):
                reg = Signal(v.shape(), name=f"{name or f'cut{cut}'}_{i}", reset_less=True)
                m.d.sync += reg.eq(v)
                regs.append(reg)
            return regs

        # level 0: the k exact products; registered ones come from the platform's registered
        # multipliers when it has them (on ECP5 a MULT18X18D's own output register is cut 0,
        # which yosys would leave in the fabric), else generic RTL, the same cycle for cycle
        # (and cut -1, the deepest option's operand registers, its input registers)
        a, b = self.i.payload.a, self.i.payload.b
        mults = ([dsp.multiplier(platform, a[j], b[j], input_register=-1 in cuts)
                  for j in range(cfg.k)] if 0 in cuts else [None] * cfg.k)
        if all(mult is not None for mult in mults):
            values = []
            for j, (cell, value) in enumerate(mults):
                m.submodules[f"mult_{j}"] = cell
                product = Signal((a[j] * b[j]).shape(), name=f"cut0_{j}")
                m.d.comb += product.eq(value)
                values.append(product)
        else:
            a = stage([a[j] for j in range(cfg.k)], -1, "a_reg")
            b = stage([b[j] for j in range(cfg.k)], -1, "b_reg")
            values = stage([a[j] * b[j] for j in range(cfg.k)], 0)
        # levels 1 .. T: exact pairwise sums (Amaranth widens every sum by one bit)
        for level in range(1, cfg.tree_levels + 1):
            values = [values[j] + values[j + 1] if j + 1 < len(values) else values[j]
                      for j in range(0, len(values), 2)]
            values = stage(values, level)
        assert len(values) == 1
        total = values[0]

        # c and valid wait for the tree's pipeline registers
        m.submodules.c_delay = c_delay = DelayLanes(acc_shape(cfg.numerics), [cfg.pipeline])
        m.submodules.valid_delay = valid_delay = DelayLanes(1, [cfg.pipeline], reset_less=False)
        m.d.comb += [
            c_delay.i[0].eq(self.i.payload.c),
            valid_delay.i[0].eq(self.i.valid),
        ]

        # the accumulate adder and the output register
        d = Signal(acc_shape(cfg.numerics), reset_less=True)
        m.d.sync += [
            d.eq(accumulate(c_delay.o[0], total, cfg.numerics)),
            self.o.valid.eq(valid_delay.o[0]),
        ]
        m.d.comb += self.o.payload.d.eq(d)
        return m


class MMAUnit(wiring.Component):
    """``D = A x B + C`` per beat: m x n :class:`DotProductUnit` s, one per element of D.

    Unit (r, c) takes row r of A, column c of B and ``C[r][c]``. Every unit computes its dot
    product exactly and adds it to its C element once (wrap or saturate: the accumulation chunk
    is k), so a GEMM over K run as a chain of MMAs (D of one step is C of the next) equals
    ``golden.gemm(A, B, numerics, chunk=k)``.

    **Input** ``i``: an always-ready stream of beats {``a`` (m x k), ``b`` (k x n), ``c``
    (m x n)}, all matrices row-major (element (r, c) is ``payload.a[r][c]``, flat index
    ``r * cols + c``, element 0 at the least significant bits). A beat is taken in every cycle in
    which ``i.valid`` is high, back to back or with gaps; ``i.ready`` is the constant 1 and is not
    a port. **Output** ``o``: an always-ready stream of beats {``d`` (m x n)}; ``o.valid`` is high
    exactly :attr:`latency` cycles after the beat's ``i.valid``. There is no ``o.ready``: the
    consumer must take every result. Reset clears the valid pipeline; beats offered while reset
    is high are dropped.

    With ``operand_register``, ``a`` and ``b`` are taken one cycle ahead of the beat (its
    ``valid`` and ``c``): they pass a register on entry, one copy per dot-product unit, so that
    each unit's multipliers are fed from flip-flops of their own, which placement can put next
    to them (an operand shared by n or m units otherwise reaches multipliers far apart). The
    copies are marked :data:`~systolix.hdl.pe.NOMERGE`: the synthesis flows keep them apart.

    Parameters
    ----------
    config : TensorCoreConfig
    operand_register : bool
        Register ``a`` and ``b`` on entry, per dot-product unit (default ``False``).

    Attributes
    ----------
    i : In(stream.Signature(mma_input_layout(config), always_ready=True))
    o : Out(stream.Signature(mma_output_layout(config), always_ready=True))
    """

    def __init__(self, config: TensorCoreConfig, *, operand_register=False):
        _check_config(config)
        if not isinstance(operand_register, bool):
            raise TypeError(f"operand_register must be a bool, not {operand_register!r}")
        self._config = config
        self._operand_register = operand_register
        super().__init__({
            "i": In(stream.Signature(mma_input_layout(config), always_ready=True)),
            "o": Out(stream.Signature(mma_output_layout(config), always_ready=True)),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from a beat on ``i`` (``i.valid`` high) to its D on ``o``:
        ``config.pipeline + 1``, independent of m, n and k."""
        return self._config.latency

    @property
    def operand_register(self):
        """``a`` and ``b`` are taken one cycle ahead of ``valid`` and ``c``."""
        return self._operand_register

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        a, b, c = self.i.payload.a, self.i.payload.b, self.i.payload.c

        def operand(value, name):
            if not self._operand_register:
                return value
            # (marked so that synthesis keeps the copies of one operand apart: NOMERGE)
            reg = Signal(value.shape(), name=name, reset_less=True, attrs=NOMERGE)
            m.d.sync += reg.eq(value)
            return reg

        for r in range(cfg.m):
            for col in range(cfg.n):
                dp = DotProductUnit(cfg)
                add_unit(m, f"dp_{r}_{col}", dp, ("dp", cfg), platform)
                m.d.comb += [
                    dp.i.valid.eq(self.i.valid),
                    dp.i.payload.c.eq(c[r][col]),
                    self.o.payload.d[r][col].eq(dp.o.payload.d),
                ]
                for j in range(cfg.k):
                    m.d.comb += [
                        dp.i.payload.a[j].eq(operand(a[r][j], f"a_{r}_{col}_{j}")),
                        dp.i.payload.b[j].eq(operand(b[j][col], f"b_{r}_{col}_{j}")),
                    ]
                if r == 0 and col == 0:
                    # every unit's valid pipeline is identical; one drives the output
                    m.d.comb += self.o.valid.eq(dp.o.valid)
        return m
