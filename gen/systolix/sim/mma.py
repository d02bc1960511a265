"""Host side of the tensor-core MMA unit: beat packing.

The bit layouts follow :func:`systolix.hdl.tensorcore.mma_input_layout` / ``mma_output_layout``:
fields ``a``, ``b``, ``c`` (then ``d`` on the output) in that order from bit 0, each a row-major
matrix with element 0 at the least significant bits. Packing is vectorised so a testbench does
no per-element Python work while the simulator runs.

A simulation is an :class:`~systolix.sim.job.MMAJob` (A, B, C stacked over the beats) run by
:func:`systolix.sim.runner.run` on :mod:`systolix_tb.mma_test`, and checked by
:func:`systolix.sim.verify.verify`.
"""

from __future__ import annotations

import numpy as np

from ..config import TensorCoreConfig
from ..model.tiling import _bits_to_ints, _to_bits

__all__ = ["pack_input_beats", "unpack_output_beats"]


def _check_shapes(config, a, b, c):
    m, n, k = config.m, config.n, config.k
    if a.ndim != 3 or b.ndim != 3 or c.ndim != 3:
        raise ValueError("a, b, c must be stacks of matrices: (beats, rows, cols)")
    want = {"a": (m, k), "b": (k, n), "c": (m, n)}
    for name, arr in (("a", a), ("b", b), ("c", c)):
        if arr.shape[1:] != want[name] or arr.shape[0] != a.shape[0]:
            raise ValueError(f"{name} has shape {arr.shape}, expected ({a.shape[0]}, "
                             f"{want[name][0]}, {want[name][1]})")


def pack_input_beats(config: TensorCoreConfig, a, b, c):
    """Stacks A (N, m, k), B (N, k, n), C (N, m, n) -> N ``i__payload`` integers."""
    a, b, c = (np.asarray(x, dtype=np.int64) for x in (a, b, c))
    _check_shapes(config, a, b, c)
    nb, w, acc = a.shape[0], config.numerics.in_width, config.numerics.acc_width
    bits = np.concatenate([_to_bits(a.reshape(nb, -1), w), _to_bits(b.reshape(nb, -1), w),
                           _to_bits(c.reshape(nb, -1), acc)], axis=-1)
    return _bits_to_ints(bits)


def unpack_output_beats(config: TensorCoreConfig, payloads):
    """``o__payload`` integers -> D stack (N, m, n), int64."""
    m, n, acc = config.m, config.n, config.numerics.acc_width
    count = m * n
    nbytes = (count * acc + 7) // 8
    raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in payloads),
                        dtype=np.uint8).reshape(len(payloads), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")[:, :count * acc]
    weights = np.left_shift(np.uint64(1), np.arange(acc, dtype=np.uint64))
    d = (bits.reshape(-1, count, acc).astype(np.uint64) * weights).sum(axis=-1).astype(np.int64)
    if acc < 64:
        sign = np.int64(1 << (acc - 1))
        d = (d ^ sign) - sign
    return d.reshape(len(payloads), m, n)
