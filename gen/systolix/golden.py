"""Bit-exact numpy reference of the engines' arithmetic (see :class:`~systolix.config.Numerics`)."""

from __future__ import annotations

import numpy as np

from .config import Numerics

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
        :func:`systolix.matrices.check_operand`).
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
