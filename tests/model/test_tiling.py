"""Bit packing must agree with the Amaranth layouts the manifest documents."""

import numpy as np
import pytest

from systolix.config import Numerics, SystolicConfig
from systolix.emit import manifest
from systolix.hdl.os_array import input_layout, output_layout
from systolix.model import tiling

pytestmark = [pytest.mark.model, pytest.mark.amaranth]


def test_input_packing_matches_layout(seed):
    cfg = SystolicConfig(3, 2, numerics=Numerics(in_width=5))
    rng = np.random.default_rng(seed)
    a = rng.integers(-16, 16, (4, 3))
    b = rng.integers(-16, 16, (3, 3))
    beats, tiles = tiling.pack_input_beats(cfg, a, b)
    assert [(t.row0, t.col0) for t in tiles] == [(0, 0), (0, 2), (3, 0), (3, 2)]
    assert len(beats) == 4 * 3
    layout = input_layout(cfg)
    # beat (tile 3, k=2): rows 3..5 of A (row 3 real, rows 4-5 zero padding), column 2 of B
    view = layout.from_bits(beats[3 * 3 + 2])
    assert [view.a[r] for r in range(3)] == [a[3, 2], 0, 0]
    assert [view.b[c] for c in range(2)] == [b[2, 2], 0]
    assert view.last == 1
    assert layout.from_bits(beats[0]).last == 0


def test_output_unpacking_round_trip(seed):
    for acc in (17, 32, 64):
        cfg = SystolicConfig(5, 3, numerics=Numerics(acc_width=acc))
        layout = output_layout(cfg)
        rng = np.random.default_rng(seed)
        data = rng.integers(-2**(acc - 1), 2**(acc - 1) - 1, (4, 3), dtype=np.int64,
                            endpoint=True)
        payloads = [layout.const({"data": [int(x) for x in row], "row": i}).as_bits()
                    for i, row in enumerate(data)]
        rows, got = tiling.unpack_output_rows(cfg, payloads)
        assert rows.tolist() == [0, 1, 2, 3]
        np.testing.assert_array_equal(got, data)


def test_manifest_documents_the_same_offsets():
    cfg = SystolicConfig(4, 6)
    ports = {p["name"]: p for p in manifest(cfg)["ports"]}
    fields = {f["name"]: f for f in ports["i__payload"]["fields"]}
    assert (fields["a"]["offset"], fields["b"]["offset"], fields["last"]["offset"]) == \
        (0, 32, 80)
    assert ports["i__payload"]["width"] == 81
    assert ports["o__payload"]["width"] == 6 * 32 + 2


def test_engine_words_layout():
    """Lane order of the engine's load words, decoded by hand (lane 0 in the low bits)."""
    from systolix.config import Dataflow, EngineConfig
    from systolix.model.tiling import engine_a_words, engine_b_words, engine_c_matrix

    a = np.arange(1, 16).reshape(3, 5)           # M=3, K=5
    b = np.arange(1, 16).reshape(5, 3) - 8       # K=5, N=3
    lane = lambda word, i: ((word >> (8 * i)) & 0xFF) - (256 if (word >> (8 * i)) & 0x80 else 0)
    os_cfg = EngineConfig(SystolicConfig(2, 2), 3, 5, 3)
    ws_cfg = EngineConfig(SystolicConfig(2, 2, Dataflow.WEIGHT_STATIONARY), 3, 5, 3)
    words = engine_a_words(os_cfg, a)            # row tiles of 2, then k
    assert len(words) == 2 * 5
    assert [lane(words[1], 0), lane(words[1], 1)] == [a[0, 1], a[1, 1]]
    assert [lane(words[5 + 4], 0), lane(words[5 + 4], 1)] == [a[2, 4], 0]  # padding row
    words = engine_a_words(ws_cfg, a)            # k-tiles of 2, then m
    assert len(words) == 3 * 3
    assert [lane(words[3 + 2], 0), lane(words[3 + 2], 1)] == [a[2, 2], a[2, 3]]
    assert [lane(words[6], 0), lane(words[6], 1)] == [a[0, 4], 0]           # padding column
    words = engine_b_words(ws_cfg, b)            # column tiles of 2, then k
    assert len(words) == 2 * 5
    assert [lane(words[5 + 3], 0), lane(words[5 + 3], 1)] == [b[3, 2], 0]

    c = np.arange(12).reshape(3, 4) - 5          # 6 words of 2 lanes for M=3, N=3
    payloads = []
    for i, row in enumerate(c.reshape(-1, 2)):
        p = sum((int(v) & 0xFFFFFFFF) << (32 * j) for j, v in enumerate(row))
        payloads.append(p | (int(i == 5) << 64))
    got, last = engine_c_matrix(os_cfg, payloads, 3, 3)
    np.testing.assert_array_equal(got, c.reshape(3, 4)[:, :3])
    assert last.tolist() == [False] * 5 + [True]
    with pytest.raises(ValueError, match="expected 6 C words, got 5"):
        engine_c_matrix(os_cfg, payloads[:5], 3, 3)
