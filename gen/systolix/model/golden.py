"""Bit-exact numpy reference of the engines' arithmetic (see :class:`~systolix.config.Numerics`)."""

from __future__ import annotations

import numpy as np

from ..config import Numerics

__all__ = ["gemm", "wrap"]


def wrap(x, acc_width):
    """Reduce int64 values modulo ``2**acc_width`` into the signed range."""
    x = np.asarray(x, dtype=np.int64)
    if acc_width >= 64:
        return x
    mask = np.int64((1 << acc_width) - 1)
    sign = np.int64(1 << (acc_width - 1))
    return ((x & mask) ^ sign) - sign


def _saturating_add(acc, p, numerics):
    s = acc + p  # int64 arithmetic wraps silently, which only matters at acc_width = 64
    if numerics.acc_width >= 64:
        s = np.where((p > 0) & (s < acc), np.int64(numerics.acc_max), s)
        return np.where((p < 0) & (s > acc), np.int64(numerics.acc_min), s)
    return np.clip(s, numerics.acc_min, numerics.acc_max)


def gemm(a, b, numerics: Numerics, chunk=1):
    """C = A x B exactly as the hardware computes it.

    Parameters
    ----------
    a : array_like, shape (M, K)
    b : array_like, shape (K, N)
        Integer operands inside ``numerics``' operand range (not checked here; see
        :func:`systolix.model.matrices.check_operand`).
    numerics : Numerics
    chunk : int
        The architecture's accumulation chunk (``config.accumulation_chunk``): products of
        ``chunk`` consecutive k are summed exactly before each accumulator addition. Only
        matters with saturation.

    Returns
    -------
    numpy.ndarray, shape (M, N), dtype ``numerics.output_dtype``
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if numerics.saturate:
        # Saturation depends on the order of additions: replay them chunk by chunk in k order,
        # as the hardware does. A chunk sum is exact in int64 (in_width <= 16, chunk <= 256).
        acc = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
        for k0 in range(0, a.shape[1], chunk):
            acc = _saturating_add(acc, a[:, k0:k0 + chunk] @ b[k0:k0 + chunk, :], numerics)
    else:
        # Wrapping is order-independent; numpy's integer matmul is exact modulo 2**64.
        acc = wrap(a @ b, numerics.acc_width)
    return acc.astype(numerics.output_dtype)


def mma(a, b, c, numerics: Numerics):
    """D = A x B + C as a tensor-core MMA unit computes it (chunk = k, one rounding step).

    The k products of each dot product are summed exactly and the sum is added to C with one
    accumulator step: wrap modulo ``2**acc_width`` or clamp to the accumulator range.

    Parameters
    ----------
    a : array_like, shape (..., m, k)
    b : array_like, shape (..., k, n)
        Operands inside ``numerics``' operand range (not checked).
    c : array_like, shape (..., m, n)
        Accumulator values inside the signed ``acc_width``-bit range (not checked).
    numerics : Numerics

    Returns
    -------
    numpy.ndarray, shape (..., m, n), dtype ``numerics.output_dtype``
        Leading (batch) dimensions broadcast like :func:`numpy.matmul`.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    s = a @ b  # exact: |s| <= 64 * 2**32 for k <= 64 and 16-bit operands
    if numerics.saturate:
        d = _saturating_add(c, s, numerics)
    else:
        d = wrap(c + s, numerics.acc_width)  # int64 addition wraps modulo 2**64: exact at 64
    return d.astype(numerics.output_dtype)


def chained_mma_gemm(a, b, numerics: Numerics, k):
    """C = A x B as a chain of k-deep MMAs over K (D of step i is C of step i + 1, C_0 = 0).

    K is zero-padded to a multiple of ``k``. Equals ``gemm(a, b, numerics, chunk=k)``; kept as
    the executable statement of how a tensor core computes a GEMM.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    d = np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    for k0 in range(0, a.shape[1], k):
        a_s, b_s = a[:, k0:k0 + k], b[k0:k0 + k, :]
        pad = k - a_s.shape[1]
        if pad:
            a_s = np.pad(a_s, ((0, 0), (0, pad)))
            b_s = np.pad(b_s, ((0, pad), (0, 0)))
        d = mma(a_s, b_s, d, numerics).astype(np.int64)
    return d.astype(numerics.output_dtype)


__all__ += ["mma", "chained_mma_gemm"]
