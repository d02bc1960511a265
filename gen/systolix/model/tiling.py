"""How a GEMM is cut into array tiles and turned into port-level bit vectors, and back.

The bit layouts here follow :func:`systolix.hdl.os_array.input_layout` / ``output_layout``
(Amaranth puts the first struct field and array element 0 at the least significant bit); the
tests check them against the emitted manifest. Everything is vectorised so that a testbench
does no per-element Python work while the simulator runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import EngineConfig, SystolicConfig
from .cycles import tile_grid

__all__ = ["Tile", "plan_tiles", "pack_input_beats", "unpack_output_rows", "assemble",
           "engine_a_words", "engine_b_words", "engine_c_matrix", "engine_q_words",
           "requant_input_words", "requant_output_words"]


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


def _unpack(payloads, lanes, width, extra_bits, signed=True):
    """Payload integers -> ((N, lanes) int64 data, (N, extra_bits) bits after it)."""
    nbytes = (lanes * width + extra_bits + 7) // 8
    raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in payloads),
                        dtype=np.uint8).reshape(len(payloads), nbytes)
    bits = np.unpackbits(raw, axis=1, bitorder="little")
    weights = np.left_shift(np.uint64(1), np.arange(width, dtype=np.uint64))
    data = (bits[:, :lanes * width].reshape(-1, lanes, width).astype(np.uint64)
            * weights).sum(axis=-1)
    data = data.astype(np.int64)  # reinterpret: values >= 2**63 become negative, as wanted at 64
    if signed and width < 64:
        sign = np.int64(1 << (width - 1))
        data = (data ^ sign) - sign
    return data, bits[:, lanes * width:lanes * width + extra_bits]


def unpack_output_rows(config: SystolicConfig, payloads):
    """Output payload integers -> (row indices, (N, C) int64 data)."""
    row_bits = max(1, (config.rows - 1).bit_length())
    data, extra = _unpack(payloads, config.cols, config.numerics.acc_width, row_bits)
    rows = (extra * (1 << np.arange(row_bits))).sum(axis=-1)
    return rows.astype(np.int64), data


def assemble(config: SystolicConfig, m, n, tiles, rows, data):
    """Place output rows (``rows`` per tile, bottom row first, or top row first when the
    array drains through OR trees: ``config.drain_tree``) into the M x N result."""
    R, C = config.rows, config.cols
    if len(rows) != R * len(tiles):
        raise ValueError(f"expected {R * len(tiles)} output rows, got {len(rows)}")
    order = np.arange(R) if config.drain_tree else np.arange(R - 1, -1, -1)
    expected_rows = np.tile(order, len(tiles))
    if not np.array_equal(rows, expected_rows):
        bad = int(np.flatnonzero(rows != expected_rows)[0])
        raise ValueError(f"output beat {bad} carries row {rows[bad]}, "
                         f"expected row {expected_rows[bad]}")
    out = np.zeros((m, n), dtype=config.numerics.output_dtype)
    for t, tile in enumerate(tiles):
        block = data[t * R:(t + 1) * R][np.argsort(order)]  # rows 0..R-1
        h, w = min(R, m - tile.row0), min(C, n - tile.col0)
        out[tile.row0:tile.row0 + h, tile.col0:tile.col0 + w] = block[:h, :w]
    return out


# -- the matrix engine's load and drain streams (see systolix.hdl.engine.MatrixEngine)

def _padded(x, rows, cols, fill=0):
    out = np.full((rows, cols), fill, dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def _block_words(x, block, order, fill):
    """Words of matrix ``x`` cut into ``block``-shaped pieces (padded with ``fill``), each
    row-major; pieces in ``order``: ``"rc"`` = each block row's blocks left to right, ``"cr"``
    = each block column's blocks top to bottom."""
    (br, bc), (rows, cols) = block, x.shape
    tr, tc = -(-rows // br), -(-cols // bc)
    blocks = _padded(x, tr * br, tc * bc, fill).reshape(tr, br, tc, bc).transpose(0, 2, 1, 3)
    if order == "cr":
        blocks = blocks.transpose(1, 0, 2, 3)
    return blocks.reshape(tr * tc, br * bc)


def engine_a_words(config: EngineConfig, a, fill=0):
    """The ``a`` stream's words for operand A, in order, as payload integers.

    Each word is one :attr:`~systolix.config.core.ComputeCore.a_block` of A, row-major (a
    tensor-core engine's m x k fragment: element (r, j) is lane ``r * k + j``), in the core's
    ``a_order`` (see :class:`systolix.hdl.engine.MatrixEngine`). ``fill`` goes into the
    padding lanes past the matrix edge (the engine ignores them; tests use a nonzero fill to
    prove it).
    """
    cc = config.compute
    words = _block_words(np.asarray(a, dtype=np.int64), cc.a_block,
                         "rc" if cc.a_order == "mk" else "cr", fill)
    return _bits_to_ints(_to_bits(words, config.numerics.in_width))


def engine_b_words(config: EngineConfig, b, fill=0):
    """The ``b`` stream's words for operand B, in order, as payload integers.

    Each word is one :attr:`~systolix.config.core.ComputeCore.b_block` of B, row-major (a
    tensor-core engine's k x cols fragment, cols = n x cores: element (j, c) is lane
    ``j * cols + c``; unit u takes columns u*n .. u*n + n - 1): for each column tile, its
    k-blocks in order. ``fill`` as for :func:`engine_a_words`.
    """
    words = _block_words(np.asarray(b, dtype=np.int64), config.compute.b_block, "cr", fill)
    return _bits_to_ints(_to_bits(words, config.numerics.in_width))


def engine_c_matrix(config: EngineConfig, payloads, m, n):
    """The ``c`` stream's words -> (C as an M x N matrix, the ``last`` flags).

    With requantization C is int8 or uint8, else ``numerics.output_dtype``. Raises ValueError
    when the number of words is not the job's ``M * ceil(N / cols)``.
    """
    C = config.cols
    tiles = -(-n // C)
    if len(payloads) != m * tiles:
        raise ValueError(f"expected {m * tiles} C words, got {len(payloads)}")
    if config.requant is not None:
        signed = config.requant.out_signed
        data, extra = _unpack(payloads, C, 8, 1, signed=signed)
        dtype = "int8" if signed else "uint8"
    else:
        data, extra = _unpack(payloads, C, config.numerics.acc_width, 1)
        dtype = config.numerics.output_dtype
    matrix = data.reshape(m, tiles * C)[:, :n].astype(dtype)
    return matrix, extra[:, 0].astype(bool)


def engine_q_words(config: EngineConfig, params, n):
    """The ``q`` stream's words for an N-column job: per column tile, lane c holds the
    parameters of column n0 + c (padding lanes are zero).

    ``params`` has the fields of the engine's requantizer mode
    (:func:`systolix.config.requant_fields`): per-column ``bias``, ``multiplier``, ``shift``
    (gemmlowp) or ``bias``, ``scale_bits`` (float32), and per-layer (or per-column)
    ``zero_point``, ``clamp_min``, ``clamp_max`` (e.g. :class:`systolix.model.quant.RequantParams`
    or :class:`~systolix.model.quant.Float32RequantParams`).
    """
    C = config.cols
    tiles = -(-n // C)

    def lanes(value):  # per column, zero past N, as (tiles, C)
        col = np.zeros(tiles * C, dtype=np.int64)
        col[:n] = np.broadcast_to(value, (n,))
        return col.reshape(tiles, C)

    return _bits_to_ints(_param_bits(config.requant, params, lanes).reshape(tiles, -1))


def _param_bits(rq, params, lanes):
    """(..., lanes, rq.param_bits) bits of requantization parameters, fields in
    ``rq.fields`` order (:func:`systolix.config.requant_fields`); ``lanes(value)`` places one
    field's values on the lanes."""
    mode = getattr(params, "mode", rq.mode)
    if mode != rq.mode:
        raise ValueError(f"parameters for the {mode} rule given to a {rq.mode} requantizer")
    return np.concatenate([_to_bits(lanes(np.asarray(getattr(params, name), dtype=np.int64))
                                    [..., None], width)
                           for name, width, _ in rq.fields], axis=-1)


# -- the standalone requantizer (systolix.hdl.requant.Requantizer)

def requant_input_words(config, acc, params):
    """Beats for a :class:`~systolix.hdl.requant.Requantizer`: ``acc`` is (beats, lanes) int32;
    each parameter is a scalar, a per-lane (lanes,) or a per-beat (beats, lanes) array;
    ``last`` on the final beat."""
    acc = np.asarray(acc, dtype=np.int64)
    beats, lanes = acc.shape
    if lanes != config.lanes:
        raise ValueError(f"expected {config.lanes} lanes, got {lanes}")
    param_bits = _param_bits(config, params, lambda v: np.broadcast_to(v, (beats, lanes)))
    param_bits = param_bits.reshape(beats, -1)
    last = np.zeros((beats, 1), dtype=np.uint8)
    last[-1, 0] = 1
    bits = np.concatenate([_to_bits(acc, 32), param_bits, last], axis=-1)
    return _bits_to_ints(bits)


def requant_output_words(config, out):
    """The output beats a Requantizer must produce for results ``out`` (beats, lanes)."""
    out = np.asarray(out, dtype=np.int64)
    last = np.zeros((out.shape[0], 1), dtype=np.uint8)
    last[-1, 0] = 1
    return _bits_to_ints(np.concatenate([_to_bits(out, 8), last], axis=-1))
