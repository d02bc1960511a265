"""Configuration of the requantization unit (int32 accumulators -> 8-bit outputs)."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import check_bool, check_int
from .array import MAX_ARRAY_DIM

__all__ = ["RequantConfig", "REQUANT_MODES", "requant_fields", "REQUANT_FIELDS",
           "REQUANT_PARAM_BITS"]

#: The requantization rules: ``"gemmlowp"`` (TFLite's integer-only fixed-point rule,
#: :func:`systolix.model.quant.requantize`) and ``"float32"`` (onnxruntime's CPU rule: float32
#: product, round half to even, :func:`systolix.model.quant.requantize_float32`).
REQUANT_MODES = ("gemmlowp", "float32")

_FIELDS = {
    "gemmlowp": (("bias", 32, True), ("multiplier", 32, True), ("shift", 5, False),
                 ("zero_point", 8, "out"), ("clamp_min", 8, "out"), ("clamp_max", 8, "out")),
    # scale_bits: the IEEE 754 binary32 pattern of the scale (sign 0, 8-bit exponent, 23-bit
    # fraction: the hardware takes the 24-bit mantissa and the exponent from it)
    "float32": (("bias", 32, True), ("scale_bits", 32, False),
                ("zero_point", 8, "out"), ("clamp_min", 8, "out"), ("clamp_max", 8, "out")),
}


def requant_fields(mode="gemmlowp"):
    """One lane's requantization parameters in ``mode``, least significant first:
    ``(name, width, signedness)``, where the signedness is ``True``/``False``, or ``"out"`` for
    the output type's (the zero point and clamp bounds are output values).

    The hardware layout (:func:`systolix.hdl.requant.param_layout`), the host's packer
    (:func:`systolix.model.tiling.engine_q_words`) and the buffer size all follow it.

    Raises
    ------
    ValueError
        ``mode`` is not one of :data:`REQUANT_MODES`.
    """
    if mode not in _FIELDS:
        raise ValueError(f"requantization mode must be one of {', '.join(REQUANT_MODES)}, "
                         f"not {mode!r}")
    return _FIELDS[mode]


@dataclass(frozen=True)
class RequantConfig:
    """A requantization unit: ``lanes`` int32 accumulators -> 8-bit outputs per beat.

    Implements, per lane and with per-lane parameters travelling beside the data, either
    :func:`systolix.model.quant.requantize` (``mode="gemmlowp"``, gemmlowp's integer-only scheme)
    or :func:`systolix.model.quant.requantize_float32` (``mode="float32"``, onnxruntime's float32
    rule, computed exactly with integers).

    Parameters
    ----------
    lanes : int
        Values per beat, 1..:data:`MAX_ARRAY_DIM`.
    out_signed : bool
        int8 (default) or uint8 outputs.
    mode : str
        One of :data:`REQUANT_MODES`; default ``"gemmlowp"``.
    """

    lanes: int
    out_signed: bool = True
    mode: str = "gemmlowp"

    def __post_init__(self):
        check_int("lanes", self.lanes, 1, MAX_ARRAY_DIM)
        check_bool("out_signed", self.out_signed)
        if not isinstance(self.mode, str) or self.mode not in REQUANT_MODES:
            raise ValueError(f"mode must be one of {', '.join(REQUANT_MODES)}, "
                             f"not {self.mode!r}")

    @property
    def out_type(self):
        return "int8" if self.out_signed else "uint8"

    @property
    def tag(self):
        """Output type and mode for design names: ``int8``, ``uint8``, ``int8f32``, ..."""
        return self.out_type + ("f32" if self.mode == "float32" else "")

    @property
    def fields(self):
        """This mode's parameter fields (:func:`requant_fields`)."""
        return requant_fields(self.mode)

    @property
    def param_bits(self):
        """Bits of one lane's parameters."""
        return sum(width for _, width, _ in self.fields)

    @property
    def latency(self):
        """Cycles from an accepted input beat to its output beat (with no stall): the
        requantizer's pipeline stages plus its output FIFO's one.

        gemmlowp: 13 stages (the input; bias add; the 32 x 32-bit product as four DSP partial
        products, two stages, and two adder stages; the doubling high part (beside it the mask
        of the bits the shift drops); the shift by its multiple of 4, with the rounding and
        sticky bits; the rest of the shift and the rounding up; the rounded value's low 12
        bits, whether it fits them and its sign;
        the clamp's comparisons in 3-bit pieces; their combination, with + zero point; its
        choice). float32: 20 stages (the input; bias add; absolute
        value; leading zeros; normalising shift; rounding bit; 24-bit mantissa; the 24 x 24-bit
        product, four stages; its top bits; the rounded product and the shift; the shift's
        range; the integer rounding shift; its rounding bits; the rounded value; its sign;
        + zero point with the clamp's comparisons; its choice).
        """
        return 14 if self.mode == "gemmlowp" else 21

    @property
    def macs(self):
        """Multiply-accumulates of a GEMM per cycle: none (for the synthesis reports)."""
        return 0

    @property
    def name(self):
        return f"requant_{self.lanes}x_{self.tag}"

    def to_dict(self):
        return {"kind": "requant", "name": self.name, "lanes": self.lanes,
                "out_signed": self.out_signed, "out_type": self.out_type, "mode": self.mode}

    @classmethod
    def from_dict(cls, d):
        return cls(lanes=d["lanes"], out_signed=d["out_signed"], mode=d.get("mode", "gemmlowp"))


#: gemmlowp's parameter fields (``requant_fields("gemmlowp")``).
REQUANT_FIELDS = requant_fields("gemmlowp")

#: Bits of one lane's gemmlowp parameters.
REQUANT_PARAM_BITS = sum(width for _, width, _ in REQUANT_FIELDS)
