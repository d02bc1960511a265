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


# -- the engine formulas against independent counts

def test_engine_cycles_hand_counted():
    """Three jobs counted by hand from the engine's schedule (M = K = N = 2, 2 x 2 units)."""
    from systolix.config import Dataflow, EngineConfig, TensorCoreConfig
    from systolix.model.cycles import engine_cycles
    # OS 2x2, one output tile: buffer reads of the K = 2 beats in cycles 0, 1; the array takes
    # them in 1, 2 (buffer latency); the first result row is valid R + C - 1 = 3 cycles after
    # the last beat (cycle 5), the second row one later (cycle 6): cycles 0..6 = 7.
    os_ = EngineConfig(SystolicConfig(2, 2), 2, 2, 2)
    assert engine_cycles(os_, 2, 2, 2).compute == 7
    # WS 2x2, one weight tile: R = 2 weight rows pushed (cycles 0, 1), the swap (2); A's M = 2
    # rows read in 3, 4, enter the array in 4, 5; a row's column sums leave R + C - 1 = 3
    # cycles later, the last in 8, and are accumulated into C in that cycle: cycles 0..8 = 9.
    ws_ = EngineConfig(SystolicConfig(2, 2, Dataflow.WEIGHT_STATIONARY), 2, 2, 2)
    assert engine_cycles(ws_, 2, 2, 2).compute == 9
    # Tensor core 2x2x2 with one pipeline register (latency L = 2), one tile, one k-step: the
    # MMA issued in cycle 0, enters the unit in 1 (buffer latency), D valid L = 2 later (3) and
    # written to C in that cycle's edge: cycles 0..3 = 4.
    tc_ = EngineConfig(core=TensorCoreConfig(2, 2, 2, 1), max_m=2, max_k=2, max_n=2)
    assert engine_cycles(tc_, 2, 2, 2).compute == 4
    # Every job: the command handshake (0); A's and B's 2 words each, concurrently (1, 2);
    # one cycle leaving LOAD (3); compute; one drain read; the M * ceil(N/C) = 2 C words;
    # done one cycle after the last word: load + compute + 2 + drain + 1.
    for config, compute in ((os_, 7), (ws_, 9), (tc_, 4)):
        words = 2 if config.core is None else 1
        assert engine_cycles(config, 2, 2, 2).total == words + compute + 2 + 2 + 1


#: (compute, total) cycles of small jobs (:data:`MEASURED_SHAPES`) on the engines of
#: ``_measured_configs``, measured once in Amaranth's simulator on the real engines (compute at
#: the ports, equal to the engine's own ``cycles``; total from the command handshake to
#: ``done``) and printed by ``.venv/bin/python tests/model/test_cycles.py``.
MEASURED = {
    'engine_os_1x1_int8_acc32_wrap_5x7x5':
        [(3, 8), (10, 21), (62, 97), (32, 60), (142, 200), (27, 60)],
    'engine_ws_1x1_int8_acc32_wrap_5x7x5':
        [(5, 10), (12, 23), (64, 99), (34, 62), (144, 202), (29, 62)],
    'engine_os_2x2_int8_acc32_wrap_5x7x5':
        [(6, 11), (7, 14), (25, 44), (17, 36), (47, 83), (22, 43)],
    'engine_ws_2x2_int8_acc32_wrap_5x7x5':
        [(8, 13), (9, 16), (25, 44), (17, 35), (55, 91), (22, 45)],
    'engine_os_3x2_int8_acc32_wrap_5x7x5':
        [(8, 13), (9, 16), (17, 36), (18, 35), (49, 85), (23, 44)],
    'engine_ws_3x2_int8_acc32_wrap_5x7x5':
        [(10, 15), (11, 18), (24, 43), (19, 37), (45, 81), (24, 47)],
    'engine_os_2x3_int8_acc32_wrap_5x7x5':
        [(7, 12), (8, 15), (26, 45), (12, 26), (34, 59), (17, 33)],
    'engine_ws_2x3_int8_acc32_wrap_5x7x5':
        [(9, 14), (10, 17), (26, 45), (13, 26), (40, 67), (18, 36)],
    'engine_os_2x2_int8_acc32_wrap_pipe_full_5x7x5':
        [(9, 15), (10, 18), (28, 48), (20, 40), (50, 87), (25, 47)],
    'engine_ws_2x3_int8_acc32_wrap_pipe_deep_5x7x5':
        [(13, 19), (14, 22), (30, 50), (17, 31), (44, 72), (22, 41)],
    'engine_tc_2x2x2_int8_acc32_wrap_5x7x5':
        [(4, 9), (4, 10), (15, 30), (9, 25), (27, 54), (12, 33)],
    'engine_tc_2x2x2_int8_acc32_wrap_p0_5x7x5':
        [(3, 8), (3, 9), (14, 29), (8, 24), (26, 53), (11, 32)],
    'engine_tc_2x3x3_int8_acc32_wrap_p3_5x7x5':
        [(8, 15), (8, 16), (15, 30), (10, 23), (19, 38), (13, 31)],
    'engine_tc_3x1x2_int8_acc32_wrap_p2_5x7x5_2cores':
        [(7, 14), (7, 15), (14, 31), (10, 27), (30, 59), (12, 35)],
}


def _measured_configs():
    from systolix.config import Dataflow, EngineConfig, TensorCoreConfig
    limits = dict(max_m=5, max_k=7, max_n=5)
    out = []
    for rows, cols in [(1, 1), (2, 2), (3, 2), (2, 3)]:
        out.append(EngineConfig(SystolicConfig(rows, cols), **limits))
        out.append(EngineConfig(SystolicConfig(rows, cols, Dataflow.WEIGHT_STATIONARY),
                                **limits))
    out.append(EngineConfig(SystolicConfig(2, 2, pipeline="full"), **limits))
    out.append(EngineConfig(SystolicConfig(2, 3, Dataflow.WEIGHT_STATIONARY, pipeline="deep"),
                            **limits))
    for m, n, k, p, cores in [(2, 2, 2, 1, 1), (2, 2, 2, 0, 1), (2, 3, 3, 3, 1), (3, 1, 2, 2, 2)]:
        out.append(EngineConfig(core=TensorCoreConfig(m, n, k, p), cores=cores, **limits))
    return out


#: The (M, K, N) of each job, in the order of the rows of :data:`MEASURED`.
MEASURED_SHAPES = [(1, 1, 1), (2, 2, 2), (3, 5, 4), (5, 2, 3), (4, 7, 5), (5, 1, 5)]


def _measure():
    import sys
    from pathlib import Path

    import numpy as np
    tests = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(tests), str(tests / "hdl")]
    from test_engine import simulate
    rng = np.random.default_rng(0)
    table = {}
    for config in _measured_configs():
        jobs = [(rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n)))
                for m, k, n in MEASURED_SHAPES]
        table[config.name] = [r[2:] for r in simulate(config, jobs)]
    return table


def test_engine_cycles_match_cycles_measured_on_the_engines():
    from systolix.model.cycles import engine_cycles
    configs = _measured_configs()
    assert sorted(c.name for c in configs) == sorted(MEASURED)
    for config in configs:
        for shape, measured in zip(MEASURED_SHAPES, MEASURED[config.name], strict=True):
            model = engine_cycles(config, *shape)
            assert (model.compute, model.total) == measured, f"{config.name} {shape}"


if __name__ == "__main__":
    for name, rows in _measure().items():
        print(f"    {name!r}:\n        {rows!r},")


def test_stream_cycles_single_buffered_is_the_serial_sum():
    from systolix.config import Dataflow, EngineConfig
    from systolix.model.cycles import engine_cycles, stream_cycles
    config = EngineConfig(SystolicConfig(8, 8, Dataflow.WEIGHT_STATIONARY), 64, 64, 64)
    one = engine_cycles(config, 64, 64, 64)
    s = stream_cycles(config, [(64, 64, 64)])
    assert (s["total"], s["compute"], s["macs"]) == (one.total, one.compute, one.macs)
    assert s["end_to_end_utilization"] == pytest.approx(one.end_to_end_utilization)
    s = stream_cycles(config, [(64, 64, 64), (3, 64, 64, True), (5, 7, 9)])
    keep = engine_cycles(config, 3, 64, 64, keep_weights=True)
    assert keep.load == keep.a_words and keep.b_words == 0
    assert s["done"] == [one.total, one.total + keep.total,
                         one.total + keep.total + engine_cycles(config, 5, 7, 9).total]
    assert s["total"] == s["done"][-1]


def test_stream_cycles_rejects_bad_streams():
    from systolix.config import EngineConfig
    from systolix.model.cycles import stream_cycles
    config = EngineConfig(SystolicConfig(4, 4), 8, 8, 8)
    with pytest.raises(ValueError, match="no earlier job loaded any"):
        stream_cycles(config, [(2, 2, 2, True)])
    with pytest.raises(ValueError, match="K x N = 2 x 2, not 2 x 3"):
        stream_cycles(config, [(2, 2, 2), (2, 2, 3, True)])
    with pytest.raises(ValueError, match="at least one job"):
        stream_cycles(config, [])
    with pytest.raises(ValueError, match="must be in range"):
        stream_cycles(config, [(9, 2, 2)])


def test_stream_cycles_double_buffered():
    """The documented three-job stream (done cycles as simulated on the RTL, docs/engine.md),
    and the end-to-end goal: 8 back-to-back 64^3 jobs on 8 x 8 at >= 95 %."""
    from systolix.config import Dataflow, EngineConfig
    from systolix.model.cycles import stream_cycles
    jobs = [(4, 4, 4), (2, 4, 4, True), (4, 4, 2)]
    double = EngineConfig(SystolicConfig(2, 2), 4, 4, 4, buffering="double")
    assert stream_cycles(double, jobs)["done"] == [40, 51, 66]
    assert stream_cycles(EngineConfig(SystolicConfig(2, 2), 4, 4, 4), jobs)["done"] == \
        [40, 64, 92]
    for dataflow in Dataflow:
        config = EngineConfig(SystolicConfig(8, 8, dataflow), buffering="double")
        s = stream_cycles(config, [(64, 64, 64)] * 8)
        assert s["end_to_end_utilization"] >= 0.95
        # one job alone: the single-buffered job's cycles
        one = stream_cycles(config, [(64, 64, 64)])
        assert one["total"] == stream_cycles(EngineConfig(SystolicConfig(8, 8, dataflow)),
                                             [(64, 64, 64)])["total"]
