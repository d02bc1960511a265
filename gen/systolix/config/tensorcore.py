"""Configuration of a tensor-core-style MMA unit."""

from __future__ import annotations

from dataclasses import dataclass, field

from .checks import check_int
from .numerics import Numerics

__all__ = ["TensorCoreConfig", "MAX_MMA_DIM", "DEFAULT_MMA_PIPELINE"]

#: Largest m, n or k of a tensor-core MMA unit. A 64 x 64 x 64 unit already has 262,144
#: multipliers; the cap stops a typo from starting an hour-long elaboration.
MAX_MMA_DIM = 64

#: Default register stages inside each dot-product unit (see :class:`TensorCoreConfig`).
DEFAULT_MMA_PIPELINE = 1


@dataclass(frozen=True)
class TensorCoreConfig:
    """A tensor-core-style MMA unit: ``D = A x B + C`` for A (m x k), B (k x n), C (m x n).

    The unit is m x n dot-product units; each multiplies one row of A with one column of B
    (k multipliers), sums the k products in an exact pairwise adder tree of
    :attr:`tree_levels` = ceil(log2 k) levels, and adds the sum to its element of C with the
    accumulate rule of :class:`Numerics` (one wrap or saturation per MMA, so the accumulation
    chunk is ``k``). It accepts a new (A, B, C) every cycle and delivers D :attr:`latency`
    cycles later.

    Datapath levels, in order: the multipliers (level 0), adder-tree levels 1 .. T, and the final
    accumulate with C, whose result is always registered (the output register). Between these
    levels there are T + 1 *cut points*: cut 0 between the multipliers and tree level 1
    (registering the products), cut t between tree levels t and t + 1, and cut T between the last
    tree level and the accumulate. ``pipeline`` registers are placed at the cuts listed in
    :attr:`register_cuts`, spread evenly over the T + 2 levels: register j (j = 0 .. P - 1) sits at
    cut ``floor((j + 1) * (T + 2) / (P + 1)) - 1``. C is delayed by the same P cycles. The
    deepest option, P = T + 2, registers every cut and also the multipliers' operands
    (cut -1, which the same formula gives): on ECP5 the MULT18X18D's own input and output
    registers, so no path runs from the fabric through a multiplier.

    Parameters
    ----------
    m, n, k : int
        Unit shape, 1..:data:`MAX_MMA_DIM` each. Default 4 x 4 x 4 (one NVIDIA V100 tensor core).
    pipeline : int
        *Number* of register stages before the accumulate, 0 .. ceil(log2 k) + 2, placed at
        :attr:`register_cuts` (compare :class:`~systolix.config.PEPipeline`, a systolic PE's
        named register structure). Default :data:`DEFAULT_MMA_PIPELINE`. The latency is
        ``pipeline + 1`` cycles.
    numerics : Numerics
        Operand and accumulator arithmetic (the accumulator is C / D).
    """

    m: int = 4
    n: int = 4
    k: int = 4
    pipeline: int = DEFAULT_MMA_PIPELINE
    numerics: Numerics = field(default_factory=Numerics)

    def __post_init__(self):
        check_int("m", self.m, 1, MAX_MMA_DIM)
        check_int("n", self.n, 1, MAX_MMA_DIM)
        check_int("k", self.k, 1, MAX_MMA_DIM)
        check_int("pipeline", self.pipeline, -1 << 62)  # the type; the range depends on k
        if not 0 <= self.pipeline <= self.max_pipeline:
            raise ValueError(f"pipeline must be in range 0..{self.max_pipeline} for k = {self.k} "
                             f"(ceil(log2 k) + 2), not {self.pipeline}")
        if not isinstance(self.numerics, Numerics):
            raise TypeError(f"numerics must be a Numerics, not {self.numerics!r}")

    @property
    def tree_levels(self):
        """Levels of the pairwise adder tree, T = ceil(log2 k) (0 for k = 1)."""
        return (self.k - 1).bit_length()

    @property
    def max_pipeline(self):
        """Most register stages there are cut points for: T + 2 (cuts -1 .. T)."""
        return self.tree_levels + 2

    @property
    def register_cuts(self):
        """Cut points holding a pipeline register (see the class docstring), increasing."""
        levels, p = self.tree_levels + 2, self.pipeline
        return tuple((j + 1) * levels // (p + 1) - 1 for j in range(p))

    @property
    def latency(self):
        """Cycles from an accepted input beat to its D on the output: ``pipeline + 1``."""
        return self.pipeline + 1

    @property
    def macs(self):
        """Multipliers in the unit, m * n * k (all busy every cycle when fed every cycle)."""
        return self.m * self.n * self.k

    @property
    def accumulation_chunk(self):
        """Products summed exactly before the one accumulator addition of an MMA: ``k``."""
        return self.k

    @property
    def sum_width(self):
        """Bits of the exact adder-tree result: product width + ceil(log2 k)."""
        return self.numerics.product_width + self.tree_levels

    @property
    def name(self):
        """Module and file name, e.g. ``tensorcore_4x4x4_int8_acc32_wrap`` (``_p2`` appended when
        ``pipeline`` is not the default)."""
        nm = self.numerics
        p = "" if self.pipeline == DEFAULT_MMA_PIPELINE else f"_p{self.pipeline}"
        return (f"tensorcore_{self.m}x{self.n}x{self.k}_{nm.operand_type}_acc{nm.acc_width}_"
                f"{nm.overflow}{p}")

    def to_dict(self):
        return {
            "kind": "tensorcore",
            "name": self.name,
            "m": self.m,
            "n": self.n,
            "k": self.k,
            "pipeline": self.pipeline,
            "register_cuts": list(self.register_cuts),
            "tree_levels": self.tree_levels,
            "latency": self.latency,
            "macs": self.macs,
            "numerics": {**self.numerics.to_dict(self.accumulation_chunk), "spec": self._spec()},
        }

    def _spec(self):
        nm = self.numerics
        return (f"D = A x B + C: the {self.k} {nm.operand_type} x {nm.operand_type} products of "
                f"each element are exact and summed exactly; the sum is added once to C, a signed "
                f"{nm.acc_width}-bit accumulator value, and the result is "
                + ("clamped to the accumulator range." if nm.saturate else
                   f"wrapped modulo 2^{nm.acc_width} (two's complement).")
                + f" A GEMM over K as a chain of MMAs (D -> C) follows the accumulation rule with "
                  f"chunk {self.k}.")

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        n = d["numerics"]
        return cls(m=d["m"], n=d["n"], k=d["k"], pipeline=d["pipeline"],
                   numerics=Numerics(in_width=n["in_width"], acc_width=n["acc_width"],
                                     signed=n["signed"], saturate=n["saturate"]))
