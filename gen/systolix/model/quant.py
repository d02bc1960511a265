"""Integer requantization: the numpy reference (the spec) of the engine's output path.

An int32 accumulator ``acc[m, n]`` (one output channel per column ``n``) becomes an int8 or uint8
activation by gemmlowp's / TFLite's integer-only scheme. Everything here is **the spec**: the
hardware requantizer must match :func:`requantize` bit for bit. With ``INT32_MIN = -2**31`` and
``INT32_MAX = 2**31 - 1``, per channel ``n`` (``bias[n]``, ``M0 = multiplier[n]``,
``s = shift[n]``) and per layer (``zero_point``, ``clamp_min``, ``clamp_max``):

1. ``x = sat32(acc + bias[n])``: the bias add is computed exactly and then **saturated** to
   ``[INT32_MIN, INT32_MAX]``. (gemmlowp/TFLite add in C ``int32_t``, where overflow is undefined
   behaviour; we define it as saturation, which is what a hardware adder with a clamp gives and
   what a correct int32 model can never notice.)
2. ``h = srdhm(x, M0)``: SaturatingRoundingDoublingHighMul, i.e. ``x * M0 / 2**31`` rounded to
   nearest, ties towards **+infinity** (see :func:`srdhm`).
3. ``y = rdbpot(h, s)``: RoundingDivideByPOT, ``h / 2**s`` rounded to nearest, ties **away from
   zero** (see :func:`rdbpot`).
4. ``out = clamp(y + zero_point, clamp_min, clamp_max)``: the zero-point add is exact (no wrap;
   ``|y| <= 2**31`` and ``|zero_point| <= 255``), then clamped; ``clamp_min``/``clamp_max`` lie in
   the output type's range, so the clamp also saturates to int8 ``[-128, 127]`` or uint8
   ``[0, 255]``. ReLU is ``clamp_min = zero_point``; ReLU6 also lowers ``clamp_max``.

Together the per-channel ``M0 * 2**-31 * 2**-s`` approximates the real multiplier
``scale_in * scale_w[n] / scale_out`` (see :func:`quantize_multiplier`).

Parameter ranges (checked by :class:`RequantParams`): ``M0`` is 0 or in ``[2**30, 2**31)``
(a normalised Q31 mantissa; 0 means "every output is ``clamp(zero_point)``", which is what
TFLite uses for multipliers below ``2**-32`` and what the formulas above give without any
special case), ``s`` in ``0..31`` (right shifts only: real multipliers are below 1),
``bias`` any int32. Since ``M0 >= 0``, the one saturating case of SRDHM
(``INT32_MIN * INT32_MIN``) cannot occur inside :func:`requantize`; :func:`srdhm` implements it
anyway, as defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["INT32_MIN", "INT32_MAX", "M0_MIN", "M0_MAX", "MAX_SHIFT", "sat32", "srdhm", "rdbpot",
           "quantize_multiplier", "RequantParams", "relu_clamp", "relu6_clamp", "requantize",
           "output_range", "random_accumulators", "random_params", "spanning_params",
           "unclamped_fraction", "edge_case_accumulators", "edge_case_params", "edge_cases",
           "wrap32", "float32_scale", "Float32RequantParams", "requantize_float32",
           "requantize_float32_int", "params_from_dict", "PARAM_TYPES",
           "float32_edge_accumulators", "float32_edge_scales", "float32_params_like"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
#: Smallest and largest non-zero fixed-point mantissa ``M0`` (a Q31 value in [0.5, 1)).
M0_MIN = 1 << 30
M0_MAX = (1 << 31) - 1
#: Largest right shift.
MAX_SHIFT = 31


def _int64(name, x):
    """``x`` as an int64 array; TypeError unless it holds integers (bools are not integers)."""
    a = np.asarray(x)
    if a.size == 0:
        return a.astype(np.int64)
    if a.dtype == object:  # Python ints too large for int64, or mixed types
        flat = a.ravel().tolist()
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                   for v in flat):
            raise TypeError(f"{name} must hold integers")
        if min(flat) < -(1 << 63) or max(flat) >= 1 << 63:
            raise ValueError(f"{name} holds values beyond int64 (and int32)")
        return a.astype(np.int64)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    if a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds values beyond int64 (and int32)")
    return a.astype(np.int64)


def _is_real(x):
    return (isinstance(x, (int, float, np.integer, np.floating))
            and not isinstance(x, (bool, np.bool_)))


def _check_int32(name, a):
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        raise ValueError(f"{name} must lie in the int32 range [{INT32_MIN}, {INT32_MAX}], "
                         f"found [{a.min()}, {a.max()}]")


def sat32(x):
    """Saturate int64 values to the int32 range.

    Parameters
    ----------
    x : array_like of int

    Returns
    -------
    numpy.ndarray of int64
        ``min(max(x, INT32_MIN), INT32_MAX)``.
    """
    return np.clip(_int64("x", x), INT32_MIN, INT32_MAX)


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of int32 values (gemmlowp), vectorised.

    Exactly gemmlowp's definition (``fixedpoint/fixedpoint.h``): if ``a == b == INT32_MIN`` the result is ``INT32_MAX``
    (the one product whose doubled high half overflows); otherwise, with the exact 64-bit product
    ``p = a * b`` and ``nudge = 2**30`` if ``p >= 0`` else ``1 - 2**30``, the result is
    ``(p + nudge) / 2**31`` with C's **truncating** division (towards zero).

    That is ``round(p / 2**31)`` to nearest, and the ties resolve **towards +infinity**, not away
    from zero: a positive tie ``p = (j + 1/2) * 2**31`` gives ``j + 1``, but a negative tie
    ``p = -(j + 1/2) * 2**31`` gives ``(-j*2**31 - 2**31 + 1) / 2**31``, truncated to ``-j``
    (e.g. ``srdhm(-1, 2**30) == 0`` while ``srdhm(1, 2**30) == 1``, and ``srdhm(-3, 2**30) == -1``).
    The asymmetric nudge only moves negative non-ties correctly to nearest; it leaves the exact
    negative ties one short of "away from zero". ``tests/model/test_quant.py`` pins this down.

    Parameters
    ----------
    a, b : array_like of int
        int32 values (broadcast together).

    Returns
    -------
    numpy.ndarray of int64
        int32 values.

    Raises
    ------
    TypeError
        Non-integer input.
    ValueError
        A value outside the int32 range.
    """
    a = _int64("a", a)
    b = _int64("b", b)
    _check_int32("a", a)
    _check_int32("b", b)
    p = a * b  # |p| <= 2**62: exact in int64
    v = p + np.where(p >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division by 2**31, truncating
    return np.where((a == INT32_MIN) & (b == INT32_MIN), np.int64(INT32_MAX), q)


def rdbpot(x, n):
    """RoundingDivideByPOT (gemmlowp): ``x / 2**n`` rounded to nearest, ties away from zero.

    Exactly gemmlowp's definition (``fixedpoint/fixedpoint.h``): ``mask = 2**n - 1``, ``rem = x & mask`` (two's
    complement), ``threshold = (mask >> 1) + (1 if x < 0 else 0)``, result
    ``(x >> n) + (1 if rem > threshold else 0)`` with an arithmetic (flooring) shift. For a tie
    (``rem == 2**(n-1)``) a positive ``x`` rounds up and a negative one stays at the floor, so
    both go away from zero; ``n = 0`` returns ``x``.

    Parameters
    ----------
    x : array_like of int
        int32 values.
    n : array_like of int
        Right shifts in ``0..31`` (broadcast against ``x``, e.g. one per column).

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    TypeError
        Non-integer input.
    ValueError
        ``x`` outside int32 or ``n`` outside ``0..31``.
    """
    x = _int64("x", x)
    n = _int64("n", n)
    _check_int32("x", x)
    if n.size and (n.min() < 0 or n.max() > MAX_SHIFT):
        raise ValueError(f"n must be in range 0..{MAX_SHIFT}, found [{n.min()}, {n.max()}]")
    mask = (np.int64(1) << n) - 1
    rem = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> n) + (rem > threshold)


def quantize_multiplier(real):
    """Express a real multiplier in ``(0, 1)`` as ``M0 * 2**-31 * 2**-shift`` (TFLite).

    TFLite's ``QuantizeMultiplier`` restricted to right shifts: ``real = q * 2**e`` with
    ``q`` in ``[0.5, 1)`` (``math.frexp``, exact), ``M0 = round(q * 2**31)`` with ties rounded
    up (C's ``std::round``; a tie needs a ``real`` with more than 31 significant bits), and
    ``shift = -e``.

    Carries: when ``q`` rounds up to ``2**31`` (``q > 1 - 2**-32``), ``M0`` becomes ``2**30`` and
    ``shift`` drops by one, which is exact. If that would make ``shift`` negative
    (``real > 1 - 2**-32``, i.e. the nearest value is 1.0, which needs a left shift), the result is
    instead the nearest value with a right shift, ``(2**31 - 1, 0)``. If ``shift`` would exceed 31
    (``real`` below about ``2**-32``), the result is ``(0, 0)``: the multiplier then rounds every
    int32 to 0 anyway (TFLite does the same).

    Except in the ``(0, 0)`` case, ``|real - M0 * 2**-(31 + shift)| <= 2**-31 * real``.

    Parameters
    ----------
    real : float
        ``0 < real < 1``, typically ``scale_in * scale_w / scale_out``.

    Returns
    -------
    (int, int)
        ``(M0, shift)``: ``M0`` in ``[2**30, 2**31)`` (or 0, see above), ``shift`` in ``0..31``.

    Raises
    ------
    TypeError
        ``real`` is not a real number.
    ValueError
        ``real`` is not finite or not in ``(0, 1)``.
    """
    if not _is_real(real):
        raise TypeError(f"real must be a real number, not {real!r}")
    real = float(real)
    if not math.isfinite(real) or not 0.0 < real < 1.0:
        raise ValueError(f"real multiplier must be in (0, 1), not {real!r}")
    q, e = math.frexp(real)  # real = q * 2**e, 0.5 <= q < 1, exact
    m0 = math.floor(q * 2.0**31 + 0.5)  # q * 2**31 has ulp 2**-22: the + 0.5 is exact
    shift = -e
    if m0 == 1 << 31:
        m0, shift = 1 << 30, shift - 1
    if shift < 0:
        return M0_MAX, 0
    if shift > MAX_SHIFT:
        return 0, 0
    return m0, shift


def output_range(out_signed):
    """``(min, max)`` of the output type: int8 ``(-128, 127)`` or uint8 ``(0, 255)``."""
    return (-128, 127) if out_signed else (0, 255)


def _int_tuple(name, values, lo, hi):
    if isinstance(values, (str, bytes)) or np.ndim(values) != 1:
        raise TypeError(f"{name} must be a 1-D sequence of integers, not {values!r}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name}[{i}] must be an integer, not {v!r}")
        v = int(v)
        if not lo <= v <= hi:
            raise ValueError(f"{name}[{i}] must be in range {lo}..{hi}, not {v}")
        out.append(v)
    return tuple(out)


def _check_scalar(name, value, lo, hi):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in range {lo}..{hi}, not {value}")
    return value


def _check_output_range(params, lo, hi):
    """Validate and normalize a frozen parameter set's ``zero_point`` and clamp bounds (absent
    bounds become the output type's ``lo``/``hi``), shared by both requantization rules."""
    kind = "int8" if params.out_signed else "uint8"
    zp = _check_scalar(f"zero_point ({kind})", params.zero_point, lo, hi)
    object.__setattr__(params, "zero_point", zp)
    cmin, cmax = params.clamp_min, params.clamp_max
    cmin = lo if cmin is None else _check_scalar(f"clamp_min ({kind})", cmin, lo, hi)
    cmax = hi if cmax is None else _check_scalar(f"clamp_max ({kind})", cmax, lo, hi)
    if cmin > cmax:
        raise ValueError(f"clamp_min ({cmin}) must not exceed clamp_max ({cmax})")
    object.__setattr__(params, "clamp_min", cmin)
    object.__setattr__(params, "clamp_max", cmax)


@dataclass(frozen=True)
class RequantParams:
    """Requantization parameters of one layer: per output channel and per layer.

    Parameters
    ----------
    bias : sequence of int, length N
        Per-channel int32 bias added (saturating) to the accumulator; for a layer with an input
        zero point it has the ``- zp_in * sum_k W[k, n]`` term folded in.
    multiplier : sequence of int, length N
        Per-channel mantissa ``M0``: 0 or in ``[2**30, 2**31)`` (0 makes every output of the
        channel ``clamp(zero_point)``).
    shift : sequence of int, length N
        Per-channel right shift, ``0..31``.
    zero_point : int
        Output zero point, inside the output type's range.
    clamp_min, clamp_max : int
        Output clamp, inside the output type's range, ``clamp_min <= clamp_max``. Default: the
        whole range (``None``). ReLU: ``clamp_min = zero_point`` (see :func:`relu_clamp`).
    out_signed : bool
        int8 output (default) or uint8.

    The sequences are stored as tuples of Python ints (so the object is hashable and comparable);
    :func:`requantize` converts them to int64 arrays.

    Raises
    ------
    TypeError
        A field of the wrong type (a non-integer element, a bool for an integer, ...).
    ValueError
        A value out of range, sequences of different lengths or empty, ``clamp_min > clamp_max``.
    """

    #: The requantizer mode these parameters are for (:data:`systolix.config.REQUANT_MODES`).
    mode = "gemmlowp"

    bias: tuple
    multiplier: tuple
    shift: tuple
    zero_point: int = 0
    clamp_min: int = None
    clamp_max: int = None
    out_signed: bool = True

    def __post_init__(self):
        if not isinstance(self.out_signed, (bool, np.bool_)):
            raise TypeError(f"out_signed must be a bool, not {self.out_signed!r}")
        object.__setattr__(self, "out_signed", bool(self.out_signed))
        lo, hi = output_range(self.out_signed)
        bias = _int_tuple("bias", self.bias, INT32_MIN, INT32_MAX)
        multiplier = _int_tuple("multiplier", self.multiplier, 0, M0_MAX)
        for i, m in enumerate(multiplier):
            if 0 < m < M0_MIN:
                raise ValueError(f"multiplier[{i}] must be 0 or in range {M0_MIN}..{M0_MAX} "
                                 f"(a normalised Q31 mantissa), not {m}")
        shift = _int_tuple("shift", self.shift, 0, MAX_SHIFT)
        if not bias:
            raise ValueError("bias, multiplier and shift must have at least one channel")
        if not len(bias) == len(multiplier) == len(shift):
            raise ValueError(f"bias, multiplier and shift must have the same length, not "
                             f"{len(bias)}, {len(multiplier)}, {len(shift)}")
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "multiplier", multiplier)
        object.__setattr__(self, "shift", shift)
        _check_output_range(self, lo, hi)

    @property
    def channels(self):
        """Number of output channels N."""
        return len(self.bias)

    def to_dict(self):
        """A JSON-ready dict of every field (e.g. for a simulation job file)."""
        return {"bias": list(self.bias), "multiplier": list(self.multiplier),
                "shift": list(self.shift), "zero_point": self.zero_point,
                "clamp_min": self.clamp_min, "clamp_max": self.clamp_max,
                "out_signed": self.out_signed}

    @classmethod
    def from_dict(cls, d):
        """Rebuild (and re-validate) from :meth:`to_dict`'s output.

        Raises
        ------
        TypeError
            ``d`` is not a dict.
        ValueError
            ``d`` lacks a field or has an unknown one (and as the constructor).
        """
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict, not {type(d).__name__}")
        fields = {"bias", "multiplier", "shift", "zero_point", "clamp_min", "clamp_max",
                  "out_signed"}
        if set(d) != fields:
            raise ValueError(f"RequantParams fields: missing {sorted(fields - set(d))}, "
                             f"unknown {sorted(set(d) - fields)}")
        return cls(**d)

    @property
    def out_dtype(self):
        """``numpy.int8`` or ``numpy.uint8``."""
        return np.dtype(np.int8 if self.out_signed else np.uint8)

    @property
    def out_min(self):
        return output_range(self.out_signed)[0]

    @property
    def out_max(self):
        return output_range(self.out_signed)[1]


def relu_clamp(zero_point, out_signed=True):
    """``(clamp_min, clamp_max)`` for a fused ReLU: ``(zero_point, type max)``.

    The real value 0 is ``zero_point``, so ReLU clamps there; the upper end is the type's.
    """
    lo, hi = output_range(out_signed)
    zero_point = _check_scalar("zero_point", zero_point, lo, hi)
    return zero_point, hi


def relu6_clamp(zero_point, scale_out, out_signed=True):
    """``(clamp_min, clamp_max)`` for a fused ReLU6.

    ``clamp_min = zero_point`` and ``clamp_max = min(zero_point + round(6 / scale_out), type
    max)`` (``round`` half away from zero, as TFLite's ``TfLiteRound``).

    Raises
    ------
    ValueError
        ``scale_out`` not finite and positive, or ``zero_point`` outside the type's range.
    """
    lo, hi = output_range(out_signed)
    zero_point = _check_scalar("zero_point", zero_point, lo, hi)
    if not _is_real(scale_out):
        raise TypeError(f"scale_out must be a real number, not {scale_out!r}")
    if not math.isfinite(scale_out) or scale_out <= 0:
        raise ValueError(f"scale_out must be finite and positive, not {scale_out!r}")
    six = math.floor(6.0 / scale_out + 0.5)
    return zero_point, min(hi, zero_point + six)


def requantize(acc, params: RequantParams):
    """Requantize int32 accumulators to int8/uint8 (the spec; see the module docstring).

    ``out[m, n] = clamp(rdbpot(srdhm(sat32(acc[m, n] + bias[n]), M0[n]), shift[n]) + zero_point,
    clamp_min, clamp_max)``, with exact (non-wrapping) additions before the saturation and the
    clamp.

    Parameters
    ----------
    acc : array_like of int, shape (M, N)
        int32 accumulator values (e.g. ``golden.gemm`` with the default ``Numerics``), column
        ``n`` being output channel ``n``.
    params : RequantParams or Float32RequantParams
        With ``params.channels == N``; a :class:`Float32RequantParams` selects
        :func:`requantize_float32` (onnxruntime's rule).

    Returns
    -------
    numpy.ndarray, shape (M, N), dtype int8 or uint8 (``params.out_dtype``)

    Raises
    ------
    TypeError
        ``params`` is not a RequantParams, or ``acc`` does not hold integers.
    ValueError
        ``acc`` is not 2-D, has the wrong number of columns, or holds a value outside int32.
    """
    if isinstance(params, Float32RequantParams):
        return requantize_float32(acc, params.bias, params.scale, params.zero_point,
                                  params.clamp_min, params.clamp_max, params.out_signed)
    if not isinstance(params, RequantParams):
        raise TypeError(f"params must be a RequantParams or Float32RequantParams, not "
                        f"{type(params).__name__}")
    acc = _int64("acc", acc)
    if acc.ndim != 2:
        raise ValueError(f"acc must be 2-D (M, N), not of shape {acc.shape}")
    if acc.shape[1] != params.channels:
        raise ValueError(f"acc has {acc.shape[1]} columns but params has {params.channels} "
                         f"channels")
    _check_int32("acc", acc)
    bias = np.asarray(params.bias, dtype=np.int64)
    m0 = np.asarray(params.multiplier, dtype=np.int64)
    shift = np.asarray(params.shift, dtype=np.int64)
    x = np.clip(acc + bias, INT32_MIN, INT32_MAX)
    y = rdbpot(srdhm(x, m0), shift)
    out = np.clip(y + params.zero_point, params.clamp_min, params.clamp_max)
    return out.astype(params.out_dtype)


# ----------------------------------------------------------------------------------------------
# onnxruntime's float32 rule (mode "float32")

#: Smallest normal float32 (a scale is 0 or at least this).
FLOAT32_MIN_NORMAL = float(np.finfo(np.float32).tiny)


def wrap32(x):
    """Wrap integers to int32 (two's complement, arithmetic modulo ``2**32``).

    Parameters
    ----------
    x : array_like of int
        Values inside int64.

    Returns
    -------
    numpy.ndarray of int64
    """
    x = _int64("x", x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _float32_array(name, x):
    a = np.asarray(x)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, not {a.dtype}")
    return a.astype(np.float32)


def float32_scale(x_scale, w_scale, y_scale, alpha=None):
    """The float32 requantization scale exactly as onnxruntime's CPU kernels compute it.

    ``QLinearConv``, ``QLinearMatMul`` (and the QDQ ``Conv``/``MatMul``/``Gemm`` it fuses into
    them) compute ``(x_scale * w_scale) / y_scale`` in float32, each operation rounded to nearest
    even: ``x_scale * w_scale`` first, then the division. ``QGemm`` (com.microsoft) computes
    ``((alpha * x_scale) * w_scale) / y_scale`` (pass ``alpha``; with ``alpha = 1`` it is the same).
    The order matters: ``x_scale * (w_scale / y_scale)`` can differ in the last bit.

    Parameters
    ----------
    x_scale, y_scale : float
        The input's and the output's scale (rounded to float32, as a model stores them).
    w_scale : float or array_like of float
        The weights' scale: one (per tensor) or one per output channel.
    alpha : float, optional
        ``QGemm``'s ``alpha``.

    Returns
    -------
    numpy.ndarray of float32, 1-D
        One scale per entry of ``w_scale``.
    """
    x = _float32_array("x_scale", x_scale)
    y = _float32_array("y_scale", y_scale)
    if x.ndim or y.ndim:
        raise ValueError("x_scale and y_scale must be scalars")
    w = np.atleast_1d(_float32_array("w_scale", w_scale))
    if w.ndim != 1:
        raise ValueError(f"w_scale must be a scalar or 1-D, not of shape {w.shape}")
    with np.errstate(all="ignore"):
        if alpha is not None:
            x = _float32_array("alpha", alpha) * x
        return ((x * w) / y).astype(np.float32)


def _check_scale(scale):
    """float32 scales: finite, 0 or positive normal; TypeError/ValueError otherwise."""
    a = np.asarray(scale)
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise TypeError(f"scale must hold float32 values, not {a.dtype}")
    s = a.astype(np.float32)
    if a.dtype.kind == "f" and a.dtype.itemsize > 4 and not np.array_equal(s, a):
        raise ValueError("scale must hold float32 values (round with numpy.float32, as "
                         "float32_scale does)")
    bad = ~np.isfinite(s) | (s < 0) | ((s != 0) & (s < FLOAT32_MIN_NORMAL))
    if bad.any():
        raise ValueError(f"scale must be 0 or a positive normal float32, not "
                         f"{s[bad].ravel()[0]!r}")
    return s


@dataclass(frozen=True)
class Float32RequantParams:
    """Requantization parameters of one layer for onnxruntime's float32 rule
    (:func:`requantize_float32`, the requantizer's ``"float32"`` mode).

    Parameters
    ----------
    bias : sequence of int, length N
        Per-channel int32 bias added (wrapping, as onnxruntime) to the accumulator.
    scale : sequence of float, length N
        Per-channel float32 scale (e.g. :func:`float32_scale`): 0 or a positive normal float32;
        values that are not exactly float32 are refused (the rule rounds nothing here).
    zero_point, clamp_min, clamp_max, out_signed
        As :class:`RequantParams`. ReLU: ``clamp_min = zero_point`` (:func:`relu_clamp`).

    The sequences are stored as tuples (ints; floats that are exactly float32).
    """

    #: The requantizer mode these parameters are for (:data:`systolix.config.REQUANT_MODES`).
    mode = "float32"

    bias: tuple
    scale: tuple
    zero_point: int = 0
    clamp_min: int = None
    clamp_max: int = None
    out_signed: bool = True

    def __post_init__(self):
        if not isinstance(self.out_signed, (bool, np.bool_)):
            raise TypeError(f"out_signed must be a bool, not {self.out_signed!r}")
        object.__setattr__(self, "out_signed", bool(self.out_signed))
        lo, hi = output_range(self.out_signed)
        bias = _int_tuple("bias", self.bias, INT32_MIN, INT32_MAX)
        if isinstance(self.scale, (str, bytes)) or np.ndim(self.scale) != 1:
            raise TypeError(f"scale must be a 1-D sequence of float32 values, not "
                            f"{self.scale!r}")
        scale = tuple(float(v) for v in _check_scale(self.scale))
        if not bias:
            raise ValueError("bias and scale must not be empty")
        if len(scale) != len(bias):
            raise ValueError(f"bias and scale must have the same length, not {len(bias)} and "
                             f"{len(scale)}")
        object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "scale", scale)
        _check_output_range(self, lo, hi)

    @property
    def channels(self):
        """Number of output channels N."""
        return len(self.bias)

    @property
    def scale_bits(self):
        """The scales' IEEE 754 binary32 bit patterns (the hardware's ``scale_bits`` field)."""
        return tuple(int(v) for v in np.asarray(self.scale, dtype=np.float32).view(np.uint32))

    @property
    def out_dtype(self):
        """``numpy.int8`` or ``numpy.uint8``."""
        return np.dtype(np.int8 if self.out_signed else np.uint8)

    def to_dict(self):
        """A JSON-ready dict of every field (with ``"mode": "float32"``)."""
        return {"mode": "float32", "bias": list(self.bias), "scale": list(self.scale),
                "zero_point": self.zero_point, "clamp_min": self.clamp_min,
                "clamp_max": self.clamp_max, "out_signed": self.out_signed}

    @classmethod
    def from_dict(cls, d):
        """Rebuild (and re-validate) from :meth:`to_dict`'s output."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a dict, not {type(d).__name__}")
        fields = {"mode", "bias", "scale", "zero_point", "clamp_min", "clamp_max", "out_signed"}
        if set(d) != fields or d["mode"] != "float32":
            raise ValueError(f"Float32RequantParams fields: missing {sorted(fields - set(d))}, "
                             f"unknown {sorted(set(d) - fields)}")
        return cls(**{k: v for k, v in d.items() if k != "mode"})


#: The parameter classes, one per requantizer mode.
PARAM_TYPES = (RequantParams, Float32RequantParams)


def params_from_dict(d):
    """:class:`RequantParams` or :class:`Float32RequantParams` from either's ``to_dict()``."""
    if isinstance(d, dict) and d.get("mode") == "float32":
        return Float32RequantParams.from_dict(d)
    return RequantParams.from_dict(d)


def _out_args(zero_point, clamp_min, clamp_max, out_signed):
    lo, hi = output_range(bool(out_signed))
    zp = _int64("zero_point", zero_point)
    cmin = np.int64(lo) if clamp_min is None else _int64("clamp_min", clamp_min)
    cmax = np.int64(hi) if clamp_max is None else _int64("clamp_max", clamp_max)
    for name, v in (("zero_point", zp), ("clamp_min", cmin), ("clamp_max", cmax)):
        if v.size and (v.min() < lo or v.max() > hi):
            raise ValueError(f"{name} must lie in the output range [{lo}, {hi}]")
    if np.any(cmin > cmax):
        raise ValueError("clamp_min must not exceed clamp_max")
    return zp, cmin, cmax


def requantize_float32(acc, bias, scale, zero_point=0, clamp_min=None, clamp_max=None,
                       out_signed=True):
    """onnxruntime's CPU requantization, exactly (the spec of the ``"float32"`` mode).

    What ``MlasRequantizeOutput`` (``QLinearConv``, ``QLinearMatMul``, ``QGemm``) does with an
    int32 accumulator, per element:

    1. ``x = wrap32(acc + bias)``: int32 addition that **wraps** (onnxruntime adds with
       ``_mm_add_epi32`` / C ``int32_t``);
    2. ``f = float32(x)``: exact below ``2**24`` in magnitude, above rounded to 24 significant
       bits, to nearest, ties to even;
    3. ``p = f * scale``: the float32 product, one rounding to nearest even (overflow to
       infinity only saturates below);
    4. ``r = round_half_even(p)`` (what ``cvtps2dq`` / the ``1.5 * 2**23`` magic-number add give
       for the clamped value), then ``out = clamp(r + zero_point, clamp_min, clamp_max)``;
       onnxruntime clamps ``p`` to ``[clamp_min - zero_point, clamp_max - zero_point]`` before
       rounding, which is the same since the bounds are integers. ReLU folds in as
       ``clamp_min = zero_point``.

    Parameters
    ----------
    acc : array_like of int, shape (..., N)
        int32 accumulators, the last axis the output channel.
    bias : array_like of int
        int32 biases, broadcast against ``acc`` (one per channel, or per element).
    scale : array_like of float32
        Scales (0 or positive normal float32), broadcast like ``bias``.
    zero_point, clamp_min, clamp_max : int or array_like of int
        Output zero point and clamp (inside the output type; clamps default to its range).
    out_signed : bool
        int8 or uint8 output.

    Returns
    -------
    numpy.ndarray, int8 or uint8, of the broadcast shape
    """
    acc = _int64("acc", acc)
    bias = _int64("bias", bias)
    _check_int32("acc", acc)
    _check_int32("bias", bias)
    s = _check_scale(scale)
    zp, cmin, cmax = _out_args(zero_point, clamp_min, clamp_max, out_signed)
    f = wrap32(acc + bias).astype(np.int32).astype(np.float32)
    with np.errstate(over="ignore"):
        p = f * s
    r = np.clip(np.rint(p), (cmin - zp).astype(np.float32), (cmax - zp).astype(np.float32))
    out = r.astype(np.int64) + zp
    return out.astype(np.int8 if out_signed else np.uint8)


def _bit_length(a):
    """Position of the leading one of non-negative int64 values below 2**40 (0 for 0)."""
    n = np.zeros(a.shape, dtype=np.int64)
    for b in range(40):
        n = np.where((a >> b) != 0, b, n)
    return n


def _round_shift(v, k):
    """``v / 2**k`` rounded to nearest, ties to even (``v >= 0``, ``k >= 1``), int64."""
    keep = v >> k
    rem = v & ((np.int64(1) << k) - 1)
    half = np.int64(1) << (k - 1)
    return keep + ((rem > half) | ((rem == half) & ((keep & 1) == 1)))


def requantize_float32_int(acc, bias, scale_bits, zero_point=0, clamp_min=None, clamp_max=None,
                           out_signed=True):
    """:func:`requantize_float32` computed with integers only, as the hardware does.

    With ``x = wrap32(acc + bias)``, ``a = |x|`` whose leading one is bit ``L``, and the scale
    ``ms * 2**(E - 150)`` (``ms`` the 24-bit mantissa with its hidden bit, ``E`` the biased
    exponent; ``E = 0`` is the scale 0):

    1. int -> float32: ``mf``, ``a`` normalised to 24 bits (shifted left by ``23 - L``, or right
       by ``L - 23`` rounding to nearest even; a carry to ``2**24`` halves it and increments
       ``L``), so ``float32(x) = +-mf * 2**(L - 23)``;
    2. ``P = mf * ms`` lies in ``[2**46, 2**48)``: the product rounded to float32 keeps
       its top 24 bits, ``Mq = round_half_even(P / 2**d)`` with ``d = 23 + P[47]``
       (``Mq`` may carry to ``2**24``, exactly), value ``Mq * 2**-k``, ``k = 173 - d - L - E``;
    3. integer rounding: ``round_half_even(Mq / 2**k)`` for ``k >= 1``; ``k <= 0`` means
       ``|p| >= 2**23``, beyond any clamp (float32 overflow to infinity, and results that
       float32 would make subnormal, land on the same side);
    4. the sign, the zero point and the clamp.

    ``scale_bits`` are the scales' binary32 patterns; the other arguments as
    :func:`requantize_float32`, whose results this equals for every input.
    """
    acc = _int64("acc", acc)
    bias = _int64("bias", bias)
    bits = _int64("scale_bits", scale_bits)
    zp, cmin, cmax = _out_args(zero_point, clamp_min, clamp_max, out_signed)
    x = wrap32(acc + bias)
    x, bits = np.broadcast_arrays(x, bits)
    neg, a = x < 0, np.abs(x)
    e = (bits >> 23) & 0xFF
    ms = (bits & 0x7FFFFF) | (1 << 23)
    lead = _bit_length(a)
    left, right = np.maximum(23 - lead, 0), np.maximum(lead - 23, 0)
    mf = np.where(right > 0, _round_shift(a, np.maximum(right, 1)), a << left)
    carry = mf >> 24
    mf, lead = mf >> carry, lead + carry
    p = mf * ms
    d = 23 + (p >> 47)
    mq = _round_shift(p, d)
    k = 173 - d - lead - e
    r = np.where(k <= 0, np.int64(1 << 24), _round_shift(mq, np.clip(k, 1, 40)))
    y = np.where((a == 0) | (e == 0), 0, np.where(neg, -r, r))
    out = np.clip(y + zp, cmin, cmax)
    return out.astype(np.int8 if out_signed else np.uint8)


def float32_edge_accumulators():
    """int32 values that reach every corner of the float32 rule's int -> float32 conversion.

    Sorted, unique int64: 0, +-1, the int32 extremes and neighbours, and around every power of
    two from ``2**20`` to ``2**31`` the values ``+-(2**j + i * 2**(j - 23) + h)`` for small ``i``
    and ``h`` in ``{-1, 0, 1}`` offsets of the half step (ties to even both ways, values just
    inside and outside ``2**24``), plus small odd values (with the scale 0.5 every one is a
    rounding tie).
    """
    v = {0, 1, -1, INT32_MIN, INT32_MIN + 1, INT32_MAX, INT32_MAX - 1}
    for j in range(20, 32):
        step = 1 << max(j - 23, 0)
        half = step >> 1
        for i in range(4):
            base = (1 << j) + i * step
            for h in (-1, 0, 1):
                for t in (base + half + h, base + h):
                    v.update((t, -t))
    v.update(range(-41, 42, 2))
    return np.array(sorted(x for x in v if INT32_MIN <= x <= INT32_MAX), dtype=np.int64)


def float32_edge_scales():
    """float32 scales (as a float32 array) for the corners: 0.5 and ``2**-j`` (integer ties),
    the smallest and largest mantissas at several exponents, 1.0 and above (saturation), the
    smallest normal and 0, and a few ordinary values."""
    f = np.float32
    one_minus = np.nextafter(f(1), f(0))
    vals = [0.0, 0.5, 0.25, 2.0 ** -8, 2.0 ** -20, 2.0 ** -24, 2.0 ** -30, 1.0, 3.0, 300.0,
            FLOAT32_MIN_NORMAL, float(one_minus), float(one_minus) * 2.0 ** -10,
            float(np.nextafter(f(2.0 ** -12), f(1))), 0.1, 1 / 3, 7.4505806e-09, 0.0123]
    return np.array(vals, dtype=np.float32)


# ----------------------------------------------------------------------------------------------
# Test stimulus, shared with the RTL tests.

def random_accumulators(rng, shape):
    """Random int32 accumulators spread over all magnitudes, with some int32 extremes.

    Magnitudes are log-uniform in ``[1, 2**31]`` with random signs, so every shift sees values
    that neither vanish nor saturate; about 2 % each are ``INT32_MIN`` and ``INT32_MAX``.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : int or tuple of int

    Returns
    -------
    numpy.ndarray of int64
    """
    mag = np.floor(2.0 ** rng.uniform(0, 31, shape)).astype(np.int64)
    v = np.where(rng.random(shape) < 0.5, -mag, mag - 1)
    v[rng.random(shape) < 0.02] = INT32_MIN
    v[rng.random(shape) < 0.02] = INT32_MAX
    return np.clip(v, INT32_MIN, INT32_MAX)


def random_params(rng, channels):
    """Random valid :class:`RequantParams` with ``channels`` channels.

    int8 or uint8 output, any zero point, a random clamp interval, ``M0`` uniform in
    ``[2**30, 2**31)``, shifts uniform in ``0..31``, biases from :func:`random_accumulators`
    scaled down by a random ``2**0 .. 2**19``.
    """
    channels = _check_scalar("channels", channels, 1, 1 << 16)
    signed = bool(rng.random() < 0.5)
    lo, hi = output_range(signed)
    zp = int(rng.integers(lo, hi + 1))
    a, b = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
    bias = random_accumulators(rng, channels) >> int(rng.integers(0, 20))
    return RequantParams(bias=bias, multiplier=rng.integers(M0_MIN, M0_MAX + 1, channels),
                         shift=rng.integers(0, MAX_SHIFT + 1, channels), zero_point=zp,
                         clamp_min=a, clamp_max=b, out_signed=signed)


def spanning_params(rng, acc, out_signed=None):
    """Random valid :class:`RequantParams` fitted to the accumulators ``acc``, so that most
    outputs land strictly inside the clamp interval and span much of it.

    :func:`random_params` knows nothing of the values it will meet, so on GEMM accumulators most
    of its outputs sit on a clamp bound, where a rounding error cannot show. Here the layer's
    clamp and zero point come first (the full range or a band of at least 64 values, with the
    zero point in its middle half, so negative values show too; or a ReLU with the zero point
    in the lower quarter of the type's range); then per channel the real
    multiplier maps the column's spread onto between 0.5 and 1.2 times the clamp interval (so
    a few outputs still clamp), and the bias puts the column's middle on the zero point (or as
    near as keeps it inside). A third of the channels take ``M0 = 2**30`` (every odd
    value is an SRDHM tie) and a third ``M0 = 2**31 - 1`` with one more shift (SRDHM is then
    the identity for ``|x| < 2**30``, so RoundingDivideByPOT's ties come straight from the
    accumulators' low bits); both only lower the multiplier, so the outputs stay inside.

    Parameters
    ----------
    rng : numpy.random.Generator
    acc : array_like of int, shape (M, N)
        The int32 accumulators the parameters will be applied to.
    out_signed : bool, optional
        int8 or uint8 output; random if None.

    Returns
    -------
    RequantParams
        With N channels; :func:`unclamped_fraction` measures how well it fits.
    """
    acc = _int64("acc", acc)
    if acc.ndim != 2 or acc.size == 0:
        raise ValueError(f"acc must be a non-empty 2-D (M, N) array, not of shape {acc.shape}")
    _check_int32("acc", acc)
    signed = bool(rng.random() < 0.5) if out_signed is None else bool(out_signed)
    lo, hi = output_range(signed)
    kind = rng.random()
    if kind < 0.8:
        if kind < 0.6:                  # the whole output range
            cmin, cmax = lo, hi
        else:                           # a band of at least 64 values
            cmin = int(rng.integers(lo, hi - 62))
            cmax = int(rng.integers(cmin + 63, hi + 1))
        quarter = (cmax - cmin) // 4    # zero point in the middle half: negative values show
        zp = int(rng.integers(cmin + quarter, cmax - quarter + 1))
    else:                               # ReLU
        zp = int(rng.integers(lo, lo + 64))
        cmin, cmax = zp, hi
    t_lo, t_hi = cmin - zp, cmax - zp   # the clamp interval as values of rdbpot(srdhm(...))
    bias, m0s, shifts = [], [], []
    first = int(rng.integers(3))
    for n, col in enumerate(acc.T):
        c_lo, c_hi = int(col.min()), int(col.max())
        # a column of fewer than 4 values spreads over at most the interval: a wider spread
        # would clamp every one of them
        stretch = 2.0 ** -rng.uniform(0 if col.size < 4 else -0.25, 1)
        real = min((t_hi - t_lo + 1) / (c_hi - c_lo + 1) * stretch, 1 - 2.0 ** -20)
        m0, s = quantize_multiplier(real)
        pick = (first + n) % 3
        if pick == 0:
            m0 = M0_MIN
        elif pick == 1 and s < MAX_SHIFT:
            m0, s = M0_MAX, s + 1
        real = m0 * 2.0 ** -(31 + s)
        # the column's middle goes to 0 (negative values too, where ties differ) or as near
        # it as keeps the column inside [t_lo, t_hi]
        half = real * (c_hi - c_lo) / 2
        centre = (t_lo + t_hi) / 2 if 2 * half >= t_hi - t_lo else \
            min(max(0.0, t_lo + half), t_hi - half)
        b = round(centre / real - (c_lo + c_hi) / 2)
        bias.append(min(max(b, INT32_MIN), INT32_MAX))
        m0s.append(m0)
        shifts.append(s)
    return RequantParams(bias=bias, multiplier=m0s, shift=shifts, zero_point=zp,
                         clamp_min=cmin, clamp_max=cmax, out_signed=signed)


def unclamped_fraction(acc, params: RequantParams):
    """Fraction of :func:`requantize`'s outputs that the final clamp leaves unchanged
    (``clamp_min <= y + zero_point <= clamp_max``): the outputs that show every bit of the
    rounding. A test whose outputs mostly sit on a clamp bound cannot see rounding errors."""
    acc = _int64("acc", acc)
    x = np.clip(acc + np.asarray(params.bias, dtype=np.int64), INT32_MIN, INT32_MAX)
    y = rdbpot(srdhm(x, np.asarray(params.multiplier, dtype=np.int64)),
               np.asarray(params.shift, dtype=np.int64)) + params.zero_point
    return float(((y >= params.clamp_min) & (y <= params.clamp_max)).mean())


def edge_case_accumulators():
    """int32 accumulator values that exercise every corner of :func:`requantize`.

    Sorted and unique (int64 array, about 1,000 values): 0, +-1, +-2, the int32 extremes and
    their neighbours, +-2**30 (+-1); for every shift ``s`` in ``0..31`` the values
    ``+-(k * 2**s + 2**(s-1) + d)`` with ``d`` in ``{-1, 0, 1}`` and a few ``k`` (with
    ``M0 = 2**31 - 1`` and bias 0 SRDHM is the identity for ``|x| < 2**30``, so these hit
    RoundingDivideByPOT's ``rem == threshold`` and ``threshold + 1`` on both signs); small odd
    values of both signs (with ``M0 = 2**30`` every odd ``x`` is an SRDHM tie); and values that
    land just inside and outside int8/uint8 after the shift.

    Use it as a column: give every channel of an :func:`edge_case_params` set the whole vector,
    so each value meets each channel's (bias, M0, shift).
    """
    v = {0, 1, -1, 2, -2, 3, -3, INT32_MIN, INT32_MIN + 1, INT32_MIN + 2, INT32_MAX, INT32_MAX - 1,
         INT32_MAX - 2, 1 << 30, (1 << 30) - 1, (1 << 30) + 1, -(1 << 30), -(1 << 30) - 1,
         -(1 << 30) + 1}
    for s in range(MAX_SHIFT + 1):
        half = (1 << (s - 1)) if s else 0
        for k in (0, 1, 2, 3, 127, 128):
            for d in (-1, 0, 1):
                x = k * (1 << s) + half + d
                if x <= INT32_MAX:
                    v.update((x, -x))
    v.update(range(-9, 10, 2))
    for t in (127, 128, 255, 256, -128, -129):  # output-range boundaries at shift 0 and 8
        v.update((t, t << 8, (t << 8) + 128, (t << 8) - 128))
    return np.array(sorted(x for x in v if INT32_MIN <= x <= INT32_MAX), dtype=np.int64)


def edge_case_params(channels=8):
    """Requantization parameter sets covering the extremes of every field.

    Returns a list of :class:`RequantParams`, each with ``channels`` channels. Across the list,
    the channels take every shift ``0..31`` with the identity-like ``M0 = 2**31 - 1`` and with
    ``M0 = 2**30`` (SRDHM ties), also ``M0 = 2**30 + 1``, 0 and a mid value; biases 0,
    ``INT32_MIN``, ``INT32_MAX`` (the bias add saturates against the extreme accumulators of
    :func:`edge_case_accumulators`) and +-1; int8 and uint8 outputs with zero points at the
    type's extremes and in the middle; clamps at the full range, ReLU, a narrow band and a
    single value (``clamp_min == clamp_max``).

    Parameters
    ----------
    channels : int
        Output channels per parameter set (the engine's N for these jobs), at least 1.
    """
    channels = _check_scalar("channels", channels, 1, 1 << 16)
    m0s = [M0_MAX, M0_MIN, M0_MIN + 1, 0, 1518500250]  # 1518500250 ~ 2**31 / sqrt(2)
    biases = [0, INT32_MAX, INT32_MIN, 1, -1, 0, 123456789, -98765432]
    # (out_signed, zero_point, clamp_min, clamp_max)
    layers = [(True, 0, None, None), (True, -128, None, None), (True, 127, None, None),
              (False, 0, None, None), (False, 255, None, None), (False, 128, None, None),
              (True, -5, -5, None), (True, 3, -7, 9), (False, 100, 100, 100), (True, 0, 0, 6)]
    # Enough (M0, shift) channel slots to cover every shift with each M0 at least once.
    slots = [(m, s) for m in m0s for s in range(MAX_SHIFT + 1)]
    # Two passes over the slots: first with bias 0 (so the ties of edge_case_accumulators stay
    # ties), then with the non-zero biases.
    n_sets = max(len(layers), -(-2 * len(slots) // channels))
    out = []
    for i in range(n_sets):
        signed, zp, cmin, cmax = layers[i % len(layers)]
        index = [i * channels + c for c in range(channels)]
        chans = [slots[j % len(slots)] for j in index]
        bias = [0 if (j // len(slots)) % 2 == 0 else biases[j % len(biases)] for j in index]
        out.append(RequantParams(bias=bias, multiplier=[m for m, _ in chans],
                                 shift=[s for _, s in chans], zero_point=zp, clamp_min=cmin,
                                 clamp_max=cmax, out_signed=signed))
    return out


def edge_cases(channels=8, max_rows=256):
    """``(acc, params)`` jobs: every :func:`edge_case_params` set against every edge value.

    Each job's ``acc`` is an (M, N) int64 matrix (``M <= max_rows``) whose columns are all the
    same slice of :func:`edge_case_accumulators`, so every value meets every channel. Feed
    ``acc`` to the requantizer and compare with ``requantize(acc, params)``.

    Parameters
    ----------
    channels : int
        N, at least 1.
    max_rows : int
        Largest M per job (the engine's ``max_m``), at least 1.

    Returns
    -------
    list of (numpy.ndarray, RequantParams)
    """
    max_rows = _check_scalar("max_rows", max_rows, 1, 1 << 16)
    values = edge_case_accumulators()
    jobs = []
    for params in edge_case_params(channels):
        for r0 in range(0, len(values), max_rows):
            col = values[r0:r0 + max_rows]
            jobs.append((np.repeat(col[:, None], params.channels, axis=1), params))
    return jobs


def float32_params_like(params: RequantParams):
    """The :class:`Float32RequantParams` nearest to gemmlowp ``params``: the same bias, zero
    point and clamps, and per channel the float32 scale nearest ``M0 * 2**-(31 + shift)``.

    With :func:`spanning_params` this fits float32 parameters to a job's accumulators; its
    ``M0 = 2**30`` channels become power-of-two scales, where small sums give exact ties.
    """
    if not isinstance(params, RequantParams):
        raise TypeError(f"params must be a RequantParams, not {type(params).__name__}")
    scale = np.float32([m * 2.0 ** -(31 + s) for m, s in zip(params.multiplier, params.shift)])
    scale = np.where(scale < FLOAT32_MIN_NORMAL, np.float32(0), scale)
    return Float32RequantParams(bias=params.bias, scale=scale, zero_point=params.zero_point,
                                clamp_min=params.clamp_min, clamp_max=params.clamp_max,
                                out_signed=params.out_signed)
