"""Configuration of the requantization unit (int32 accumulators -> 8-bit outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_bool, check_int
from .array import MAX_ARRAY_DIM

__all__ = ["RequantConfig", "REQUANT_PARAM_BITS"]


@dataclass(frozen=True)
class RequantConfig:
    """A requantization unit: ``lanes`` int32 accumulators -> 8-bit outputs per beat.

    Implements :func:`systolix.model.quant.requantize` (gemmlowp's integer-only scheme) per lane, with
    per-lane parameters travelling beside the data.

    Parameters
    ----------
    lanes : int
        Values per beat, 1..:data:`MAX_ARRAY_DIM`.
    out_signed : bool
        int8 (default) or uint8 outputs.
    """

    lanes: int
    out_signed: bool = True

    def __post_init__(self):
        check_int("lanes", self.lanes, 1, MAX_ARRAY_DIM)
        check_bool("out_signed", self.out_signed)

    @property
    def out_type(self):
        return "int8" if self.out_signed else "uint8"

    @property
    def latency(self):
        """Pipeline stages of the unit: bias add, multiply, doubling high part, shift + clamp."""
        return 4

    @property
    def name(self):
        return f"requant_{self.lanes}x_{self.out_type}"

    def to_dict(self):
        return {"kind": "requant", "name": self.name, "lanes": self.lanes,
                "out_signed": self.out_signed, "out_type": self.out_type}

    @classmethod
    def from_dict(cls, d):
        return cls(lanes=d["lanes"], out_signed=d["out_signed"])


#: Bits of one lane's requantization parameters: bias 32, multiplier 32, shift 5, and the
#: output zero point and clamp bounds, 8 each.
REQUANT_PARAM_BITS = 32 + 32 + 5 + 3 * 8
