"""Bit packing must agree with the Amaranth layouts the manifest documents."""

import numpy as np

from systolix.config import Numerics, SystolicConfig
from systolix.emit import manifest
from systolix.hdl.systolic import input_layout, output_layout
from systolix import tiling


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
