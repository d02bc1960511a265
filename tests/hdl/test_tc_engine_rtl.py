"""The tensor-core engine's Verilog under cocotb on Icarus and Verilator: awkward shapes up to
the buffer limits, extreme operands, accumulator overflow (wrap and saturate), stalls on every
stream, back-to-back and rejected jobs, several MMA units and pipeline depths."""

import numpy as np
import pytest

from helpers import (check_engine, engine_shapes_and_edges, rand_operands,
                     requant_entries)
from systolix.config import EngineConfig, Numerics, RequantConfig, TensorCoreConfig

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]
#: Verilator builds take ~30 s each: the default suite builds two tensor-core engines on it
#: (the two-unit engine and the saturating one); the other configurations run there under slow.
SIMULATORS_SLOW_VERILATOR = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=[pytest.mark.verilator, pytest.mark.slow]),
]


def tc_engine(m, n, k, *, pipeline=1, cores=1, numerics=None, limits=(9, 11, 10)):
    return EngineConfig(max_m=limits[0], max_k=limits[1], max_n=limits[2], cores=cores,
                        core=TensorCoreConfig(m, n, k, pipeline, numerics or Numerics()))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_awkward_shapes_two_units(simulator, seed):
    config = tc_engine(2, 2, 2, cores=2)
    check_engine(config, engine_shapes_and_edges(config, np.random.default_rng(seed)), simulator,
                 seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS_SLOW_VERILATOR)
@pytest.mark.parametrize("pipeline,cores", [(0, 1), (2, 1), (0, 3)], ids=["p0", "p2", "p0x3"])
def test_awkward_shapes_back_to_back_with_rejects(simulator, pipeline, cores, seed):
    config = tc_engine(2, 2, 2, pipeline=pipeline, cores=cores)
    check_engine(config, engine_shapes_and_edges(config, np.random.default_rng(seed)), simulator,
                 seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_random_stalls_on_every_stream(simulator, seed):
    """35 % idle source cycles on A and B and 35 % backpressure on C: same results, same
    compute cycles; nothing dropped, duplicated or taken beyond the job."""
    config = tc_engine(2, 2, 2, cores=2)
    rng = np.random.default_rng(seed)
    entries = [rand_operands(rng, config.numerics, 9, 11, 10),
               rand_operands(rng, config.numerics, 5, 7, 3), (10, 1, 1),
               rand_operands(rng, config.numerics, 1, 11, 3)]
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.35)


@pytest.mark.parametrize("simulator,saturate", [
    pytest.param("icarus", False, id="wrap-icarus"),
    pytest.param("icarus", True, id="saturate-icarus"),
    pytest.param("verilator", False, id="wrap-verilator",
                 marks=[pytest.mark.verilator, pytest.mark.slow]),
    pytest.param("verilator", True, id="saturate-verilator", marks=pytest.mark.verilator),
])
def test_accumulator_overflow(simulator, saturate, seed):
    """A 20-bit accumulator over K = 24 (8 k-steps of 3): each MMA's dot product is exact, the
    accumulator wraps or clamps once per k-step, exactly as golden.gemm(..., chunk=3) says."""
    numerics = Numerics(acc_width=20, saturate=saturate)
    config = tc_engine(2, 2, 3, numerics=numerics, limits=(3, 24, 4))
    rng = np.random.default_rng(seed)
    a = np.full((3, 24), -128, np.int64)
    b = np.full((24, 4), -128, np.int64)
    b[:, 1] = 127                                     # column 1 overflows negative
    b[12:, 2] = 127                                   # column 2 goes up, clamps, comes down
    check_engine(config, [(a, b), rand_operands(rng, numerics, 3, 24, 4)], simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS_SLOW_VERILATOR)
def test_requantized_tensorcore_engine(simulator, seed):
    """C leaves through the requantizer (lanes = n x cores), with stalls on all four streams."""
    config = EngineConfig(max_m=5, max_k=7, max_n=6, core=TensorCoreConfig(2, 2, 2), cores=2,
                          requant=RequantConfig(4))
    rng = np.random.default_rng(seed)
    entries = requant_entries(rng, config, [(5, 7, 6), (4, 7, 5), (1, 1, 1), (3, 4, 5),
                                            (5, 7, 6)], out_signed=True)
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.3)
