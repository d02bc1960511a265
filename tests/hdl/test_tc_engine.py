"""The tensor-core engine: config, word layouts and cycle model in Python, and the engine in
Amaranth's simulator (shapes, pipeline depths, several units, padding garbage, stalls, rejects,
exact cycles)."""

import numpy as np
import pytest

from systolix.model import golden, tiling
from systolix.config import (EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.kinds import config_from_dict
from systolix.model.cycles import engine_cycles

from test_engine import rand, simulate

pytestmark = pytest.mark.amaranth


def tc(m=2, n=2, k=2, pipeline=1, cores=1, numerics=None, **limits):
    return EngineConfig(core=TensorCoreConfig(m, n, k, pipeline, numerics or Numerics()),
                        cores=cores, **limits)


# -- config

def test_config_derived_values_and_round_trip():
    c = tc(4, 4, 4, cores=4, max_m=64, max_k=30, max_n=64)
    assert (c.arch, c.rows, c.cols, c.macs, c.accumulation_chunk) == ("tensorcore", 4, 16, 256, 4)
    assert c.dataflow is None
    assert (c.a_depth, c.b_depth, c.m_stride, c.c_depth) == (16 * 8, 4 * 8, 16, 4 * 16)
    assert c.name == "engine_tc_4x4x4_int8_acc32_wrap_64x30x64_4cores"
    assert config_from_dict(c.to_dict()) == c
    assert tc(pipeline=0).name == "engine_tc_2x2x2_int8_acc32_wrap_p0_64x64x64"


def test_systolic_engine_config_has_no_core_fields():
    e = EngineConfig(SystolicConfig(8, 8), 64, 64, 64)
    assert e.name == "engine_os_8x8_int8_acc32_wrap_64x64x64" and e.arch == "systolic"
    assert "core" not in e.to_dict() and "arch" not in e.to_dict()
    assert config_from_dict(e.to_dict()) == e


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({}, TypeError, "needs a compute core"),
    ({"array": SystolicConfig(2, 2), "core": TensorCoreConfig()}, ValueError, "not both"),
    ({"core": SystolicConfig(2, 2)}, TypeError, "core must be a TensorCoreConfig"),
    ({"array": TensorCoreConfig()}, TypeError, "array must be a SystolicConfig"),
    ({"core": TensorCoreConfig(), "cores": 0}, ValueError, "cores must be in range 1..64"),
    ({"core": TensorCoreConfig(), "cores": 2.0}, TypeError, "cores must be an integer"),
    ({"array": SystolicConfig(2, 2), "cores": 2}, ValueError, "must be 1 with a systolic"),
    ({"core": TensorCoreConfig(), "cores": 2, "requant": RequantConfig(4)}, ValueError,
     r"requant lanes must equal the engine's cols \(8\)"),
])
def test_config_rejects(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        EngineConfig(**kwargs)


# -- word layouts and cycle model

def test_word_layouts():
    """A word = one m x k fragment (row-major), fragments row tile outer, k-step inner;
    B word = one k x (n*cores) fragment, column tile outer, k-step inner; padding = fill."""
    c = tc(2, 1, 3, cores=2, numerics=Numerics(in_width=8, signed=False))
    a = np.arange(3 * 4).reshape(3, 4)                  # M = 3, K = 4: 2 row tiles, 2 k-steps
    words = tiling.engine_a_words(c, a, fill=255)
    lanes = [[(w >> (8 * i)) & 255 for i in range(6)] for w in words]
    assert lanes == [[0, 1, 2, 4, 5, 6], [3, 255, 255, 7, 255, 255],
                     [8, 9, 10, 255, 255, 255], [11, 255, 255, 255, 255, 255]]
    b = np.arange(4 * 3).reshape(4, 3)                  # K = 4, N = 3: 2 column tiles of 2
    words = tiling.engine_b_words(c, b, fill=255)
    lanes = [[(w >> (8 * i)) & 255 for i in range(6)] for w in words]
    assert lanes == [[0, 1, 3, 4, 6, 7], [9, 10, 255, 255, 255, 255],
                     [2, 255, 5, 255, 8, 255], [11, 255, 255, 255, 255, 255]]


def test_cycle_model_formula():
    c = tc(4, 4, 4, cores=1, max_m=128, max_k=128, max_n=128)   # latency 2
    e = engine_cycles(c, 64, 64, 64)                    # 256 tiles, 16 k-steps, 128 groups
    assert (e.tiles, e.span, e.a_words, e.b_words, e.c_words) == (256, 32, 256, 256, 1024)
    assert e.compute == 127 * 32 + 15 * 2 + 1 + 2 + 2
    assert e.utilization > 0.998
    one = engine_cycles(c, 1, 1, 1)                     # one tile: half the slots are bubbles
    assert one.compute == 0 + 0 + 0 + 2 + 2
    # pipelined beyond the default: two more cycles of buffer read latency (the block RAM's
    # output register and the masked fragments' register), two more of output (the block
    # RAM's output register and the c port's register after the row select)
    deep = tc(4, 4, 4, pipeline=4, cores=1, max_m=128, max_k=128, max_n=128)  # latency 5
    assert (c.compute.buffer_read_latency, c.output_latency) == (1, 0)
    assert (deep.compute.buffer_read_latency, deep.output_latency) == (3, 2)
    d = engine_cycles(deep, 64, 64, 64)                 # 256 tiles, 16 k-steps, 52 groups
    assert d.compute == 51 * 80 + 15 * 5 + 0 + 5 + 3 + 1
    assert d.total == d.load + d.compute + d.drain + 3 + 2
    # with the requantizer the row select feeds the requantizer's input register instead
    rq = EngineConfig(core=TensorCoreConfig(4, 4, 4, 4), max_m=8, max_k=8, max_n=8,
                      requant=RequantConfig(4))
    assert rq.output_latency == 1 + rq.requant.latency


# -- the engine in Amaranth's simulator

@pytest.mark.parametrize("m,n,k,pipeline,cores", [
    (2, 2, 2, 1, 1), (2, 2, 2, 0, 1), (2, 3, 3, 3, 1), (3, 1, 2, 2, 2), (1, 1, 1, 0, 1),
    (2, 2, 4, 2, 3),
])
def test_awkward_shapes_exact_results_and_cycles(m, n, k, pipeline, cores, seed):
    config = tc(m, n, k, pipeline, cores, max_m=7, max_k=9, max_n=8)
    rng = np.random.default_rng(seed)
    num = config.numerics
    shapes = [(7, 9, 8), (1, 1, 1), (4, 3, 2), (5, 1, 3), (1, 9, 1), (2, 6, 5), (7, 2, 8)]
    jobs = [(rand(rng, num, (a, b)), rand(rng, num, (b, c))) for a, b, c in shapes]
    # padding lanes carry garbage: the engine must mask K and ignore rows / columns past M / N
    for (a, b), (c, err, cycles, total) in zip(jobs, simulate(config, jobs, fill=-99)):
        where = f"{config.name} {a.shape}x{b.shape} seed {seed}"
        assert not err
        np.testing.assert_array_equal(c, golden.gemm(a, b, num, k), err_msg=where)
        model = engine_cycles(config, a.shape[0], a.shape[1], b.shape[1])
        assert (cycles, total) == (model.compute, model.total), where


def test_stalls_change_nothing_but_time(seed):
    config = tc(2, 2, 3, 1, 2, Numerics(acc_width=18, saturate=True), max_m=5, max_k=9,
                max_n=7)
    rng = np.random.default_rng(seed)
    num = config.numerics
    jobs = [(np.full((5, 9), -128), np.full((9, 7), -128)),
            (rand(rng, num, (5, 8)), rand(rng, num, (8, 7)))]
    results = simulate(config, jobs, stall=0.4, seed=seed, fill=77)
    for (a, b), (c, err, cycles, total) in zip(jobs, results):
        np.testing.assert_array_equal(c, golden.gemm(a, b, num, 3), err_msg=f"seed {seed}")
        model = engine_cycles(config, a.shape[0], a.shape[1], b.shape[1])
        assert cycles == model.compute and total > model.total
    assert results[0][0][0, 0] == num.acc_max


def test_unsigned_saturating_narrow_accumulator(seed):
    """uint8 operands, a 17-bit saturating accumulator: all-max operands clamp after the first
    k-step (one 3-deep MMA of 255 * 255 already exceeds 2^16 - 1)."""
    num = Numerics(signed=False, acc_width=17, saturate=True)
    config = tc(2, 2, 3, 2, 1, num, max_m=5, max_k=7, max_n=4)
    rng = np.random.default_rng(seed)
    jobs = [(np.full((5, 7), 255), np.full((7, 4), 255)), (rand(rng, num, (5, 7)),
                                                           rand(rng, num, (7, 4)))]
    results = simulate(config, jobs, fill=255)
    for (a, b), (c, err, cycles, total) in zip(jobs, results):
        np.testing.assert_array_equal(c, golden.gemm(a, b, num, 3), err_msg=f"seed {seed}")
        assert (cycles, total) == (engine_cycles(config, 5, 7, 4).compute,
                                   engine_cycles(config, 5, 7, 4).total)
    assert (results[0][0] == num.acc_max).all()


def test_rejected_command_leaves_the_next_job_intact(seed):
    config = tc(2, 2, 2, max_m=4, max_k=4, max_n=4)
    rng = np.random.default_rng(seed)
    num = config.numerics
    good = (rand(rng, num, (4, 4)), rand(rng, num, (4, 4)))
    jobs = [good, (5, 4, 4), (0, 1, 1), (4, 4, 65535), good]
    results = simulate(config, jobs)
    assert [r[1] for r in results] == [0, 1, 1, 1, 0]
    assert [r[3] for r in results[1:4]] == [1, 1, 1]
    assert [r[2] for r in results[1:4]] == [0, 0, 0]
    want = golden.gemm(*good, num)
    np.testing.assert_array_equal(results[0][0], want)
    np.testing.assert_array_equal(results[4][0], want)
