"""Configuration of the requantization unit (int32 accumulators -> 8-bit outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_bool, check_int
from .array import MAX_ARRAY_DIM

__all__ = ["RequantConfig", "REQUANT_FIELDS", "REQUANT_PARAM_BITS"]


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


#: One lane's requantization parameters (:func:`systolix.model.quant.requantize`), least
#: significant first: ``(name, width, signedness)``, where the signedness is ``True``/``False``,
#: or ``"out"`` for the output type's (the zero point and clamp bounds are output values).
#: The hardware layout (:func:`systolix.hdl.requant.param_layout`), the host's packer
#: (:func:`systolix.model.tiling.engine_q_words`) and the buffer size all follow it.
REQUANT_FIELDS = (("bias", 32, True), ("multiplier", 32, True), ("shift", 5, False),
                  ("zero_point", 8, "out"), ("clamp_min", 8, "out"), ("clamp_max", 8, "out"))

#: Bits of one lane's requantization parameters.
REQUANT_PARAM_BITS = sum(width for _, width, _ in REQUANT_FIELDS)
