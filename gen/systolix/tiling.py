"""How a GEMM is cut into array tiles and turned into port-level bit vectors, and back.

The bit layouts here follow :func:`systolix.hdl.systolic.input_layout` / ``output_layout``
(Amaranth puts the first struct field and array element 0 at the least significant bit); the
tests check them against the emitted manifest. Everything is vectorised so that a testbench
does no per-element Python work while the simulator runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SystolicConfig
from .cycle_model import tile_grid

__all__ = ["Tile", "plan_tiles", "pack_input_beats", "unpack_output_rows", "assemble"]


@dataclass(frozen=True)
class Tile:
    """One R x C output tile: rows ``row0 ..`` and columns ``col0 ..`` of C (clipped at the edge)."""

    row0: int
    col0: int


def plan_tiles(config: SystolicConfig, m, n):
    """Output tiles in the order they are streamed: row-major over the tile grid."""
    tm, tn = tile_grid(config, m, n)
    return [Tile(ti * config.rows, tj * config.cols) for ti in range(tm) for tj in range(tn)]


def _to_bits(values, width):
    """(..., L) integers -> (..., L * width) bits, element 0 / bit 0 first (two's complement)."""
    v = np.asarray(values, dtype=np.int64).astype(np.uint64) & np.uint64((1 << width) - 1)
    bits = (v[..., None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)
    return bits.reshape(*v.shape[:-1], v.shape[-1] * width).astype(np.uint8)


def _bits_to_ints(bits):
    packed = np.packbits(bits, axis=-1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def pack_input_beats(config: SystolicConfig, a, b):
    """All input beats of C = A x B, tiles in :func:`plan_tiles` order, as payload integers.

    Returns
    -------
    payloads : list of int
        One per beat: ``a`` (R operands), ``b`` (C operands), ``last``, packed LSB first.
    tiles : list of Tile
    """
    R, C, w = config.rows, config.cols, config.numerics.in_width
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    tiles = plan_tiles(config, m, n)
    a_pad = np.zeros((len(range(0, m, R)) * R, k), dtype=np.int64)
    a_pad[:m] = a
    b_pad = np.zeros((k, len(range(0, n, C)) * C), dtype=np.int64)
    b_pad[:, :n] = b
    # beats[t, k] = (A column slice, B row slice) of tile t
    a_beats = np.stack([a_pad[t.row0:t.row0 + R, :].T for t in tiles])  # (T, K, R)
    b_beats = np.stack([b_pad[:, t.col0:t.col0 + C] for t in tiles])      # (T, K, C)
    last = np.zeros((len(tiles), k, 1), dtype=np.uint8)
    last[:, -1, 0] = 1
    bits = np.concatenate([_to_bits(a_beats, w), _to_bits(b_beats, w), last], axis=-1)
    return _bits_to_ints(bits.reshape(len(tiles) * k, -1)), tiles


def unpack_output_rows(config: SystolicConfig, payloads):
    """Output payload integers -> (row indices, (N, C) int64 data)."""
    C, acc = config.cols, config.numerics.acc_width
    row_bits = max(1, (config.rows - 1).bit_length())
    nbytes = (C * acc + row_bits + 7) // 8
    raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in payloads),
                        dtype=np.uint8).reshape(len(payloads), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    weights = np.left_shift(np.uint64(1), np.arange(acc, dtype=np.uint64))
    data = (bits[:, :C * acc].reshape(-1, C, acc).astype(np.uint64) * weights).sum(axis=-1)
    data = data.astype(np.int64)  # reinterpret: values >= 2**63 become negative, as wanted at 64
    if acc < 64:
        sign = np.int64(1 << (acc - 1))
        data = (data ^ sign) - sign
    row_weights = 1 << np.arange(row_bits)
    rows = (bits[:, C * acc:C * acc + row_bits] * row_weights).sum(axis=-1)
    return rows.astype(np.int64), data


def assemble(config: SystolicConfig, m, n, tiles, rows, data):
    """Place output rows (``rows`` per tile, bottom row first) into the M x N result."""
    R, C = config.rows, config.cols
    if len(rows) != R * len(tiles):
        raise ValueError(f"expected {R * len(tiles)} output rows, got {len(rows)}")
    expected_rows = np.tile(np.arange(R - 1, -1, -1), len(tiles))
    if not np.array_equal(rows, expected_rows):
        bad = int(np.flatnonzero(rows != expected_rows)[0])
        raise ValueError(f"output beat {bad} carries row {rows[bad]}, "
                         f"expected row {expected_rows[bad]}")
    out = np.zeros((m, n), dtype=config.numerics.output_dtype)
    for t, tile in enumerate(tiles):
        block = data[t * R:(t + 1) * R][::-1]  # rows R-1..0 -> 0..R-1
        h, w = min(R, m - tile.row0), min(C, n - tile.col0)
        out[tile.row0:tile.row0 + h, tile.col0:tile.col0 + w] = block[:h, :w]
    return out
