import pytest

from systolix.config import SystolicConfig
from systolix.model.cycles import gemm_cycles, scalesim_cycles, os_stream_cycles

pytestmark = pytest.mark.model


def test_single_tile_formula():
    # K beats, then R + C - 1 to the first row and R - 1 more rows: K + 2R + C - 2
    for r, c, k in [(1, 1, 1), (8, 8, 64), (3, 5, 2), (16, 4, 100)]:
        assert gemm_cycles(SystolicConfig(r, c), r, k, c).cycles == k + 2 * r + c - 2


def test_tiles_overlap_when_k_covers_the_drain():
    cfg = SystolicConfig(8, 8)
    g = gemm_cycles(cfg, 64, 64, 64)
    assert g.tiles == 64
    assert g.cycles == 64 * 64 + 2 * 8 + 8 - 2 == 4118
    assert g.utilization == pytest.approx(64**3 / (64 * 4118))
    assert scalesim_cycles(cfg, 64, 64, 64) == 64 * (8 + 8 + 64 - 2)


def test_short_k_is_limited_by_drain_spacing():
    cfg = SystolicConfig(8, 2)
    # K = 2 < R = 8: each further tile costs R cycles, not K
    assert os_stream_cycles(cfg, [2, 2, 2])[1] == [1, 9, 17]
    assert gemm_cycles(cfg, 16, 2, 2).cycles == 2 + 8 + 2 * 8 + 2 - 2


def test_validation():
    with pytest.raises(ValueError, match="K must be at least 1"):
        gemm_cycles(SystolicConfig(2, 2), 2, 0, 2)
    with pytest.raises(ValueError, match="at least one tile"):
        os_stream_cycles(SystolicConfig(2, 2), [])


def test_engine_model_meets_the_utilization_goal_and_beats_scalesim():
    """256^3 on 16x16: >= 95 % (it is 99.9 %) in both dataflows, and fewer cycles than
    SCALE-Sim's non-overlapped folds."""
    from systolix.config import Dataflow, EngineConfig
    from systolix.model.cycles import engine_cycles
    for dataflow in Dataflow:
        config = EngineConfig(SystolicConfig(16, 16, dataflow), 256, 256, 256)
        model = engine_cycles(config, 256, 256, 256)
        assert model.utilization >= 0.95
        assert model.compute < scalesim_cycles(config, 256, 256, 256)
        assert model.total == model.load + model.compute + model.drain + 3


def test_engine_model_rejects_what_the_engine_rejects():
    from systolix.config import EngineConfig
    from systolix.model.cycles import engine_cycles
    config = EngineConfig(SystolicConfig(4, 4), 8, 8, 8)
    for dims in [(0, 1, 1), (9, 1, 1), (1, 9, 1), (1, 1, 9)]:
        with pytest.raises(ValueError, match="must be in range"):
            engine_cycles(config, *dims)
