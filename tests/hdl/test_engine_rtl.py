"""The matrix engine's Verilog under cocotb on Icarus and Verilator: both dataflows, awkward
shapes up to the buffer limits, stalls on every stream, back-to-back and rejected jobs."""

import numpy as np
import pytest

from helpers import (check_engine, engine_shapes_and_edges, rand_operands,
                     requant_entries)
from systolix.config import Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]
DATAFLOWS = [pytest.param(d, id=d.value) for d in Dataflow]


def engine(rows, cols, dataflow, numerics=None, limits=(13, 11, 10)):
    return EngineConfig(SystolicConfig(rows, cols, dataflow, numerics or Numerics()), *limits)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_awkward_shapes_back_to_back_with_rejects(simulator, dataflow, seed):
    config = engine(3, 4, dataflow)
    check_engine(config, engine_shapes_and_edges(config, np.random.default_rng(seed)), simulator,
                 seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_random_stalls_on_every_stream(simulator, dataflow, seed):
    """40 % idle source cycles on A and B and 40 % backpressure on C: same results, same
    compute cycles; nothing dropped, duplicated or taken beyond the job."""
    config = engine(3, 4, dataflow)
    rng = np.random.default_rng(seed)
    entries = [rand_operands(rng, config.numerics, 13, 11, 10),
               rand_operands(rng, config.numerics, 5, 7, 9), (14, 1, 1),
               rand_operands(rng, config.numerics, 1, 11, 3)]
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.4)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
def test_weight_stationary_accumulator_overflow(simulator, saturate, seed):
    """A 20-bit accumulator over K = 40 (10 k-tiles of 4): column sums are exact, the C buffer
    wraps or clamps after each k-tile, exactly as golden.gemm(..., chunk=4) says."""
    numerics = Numerics(acc_width=20, saturate=saturate)
    config = engine(4, 2, Dataflow.WEIGHT_STATIONARY, numerics, limits=(6, 40, 4))
    rng = np.random.default_rng(seed)
    a = np.full((6, 40), -128, np.int64)
    b = np.full((40, 4), -128, np.int64)
    b[:, 1] = 127                                     # column 1 overflows negative
    b[20:, 2] = 127                                   # column 2 goes up, clamps, comes down
    check_engine(config, [(a, b), rand_operands(rng, numerics, 6, 40, 4)], simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("dataflow", DATAFLOWS)
def test_unsigned_narrow_accumulator(simulator, dataflow, seed):
    numerics = Numerics(signed=False, acc_width=17, saturate=True)
    config = engine(2, 3, dataflow, numerics, limits=(7, 9, 8))
    rng = np.random.default_rng(seed)
    entries = [(np.full((7, 9), 255, np.int64), np.full((9, 8), 255, np.int64)),
               rand_operands(rng, numerics, 7, 9, 8), rand_operands(rng, numerics, 3, 2, 5)]
    check_engine(config, entries, simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("dataflow", DATAFLOWS)
@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_requantized_engine_with_stalls(simulator, dataflow, out_signed, seed):
    """C leaves through the requantizer: per-column parameters fitted to each job's
    accumulators (most outputs unclamped, ties included), awkward shapes, stalls on all four
    streams, back to back; compared with quant.requantize."""
    config = EngineConfig(SystolicConfig(3, 4, dataflow), 9, 11, 10,
                          requant=RequantConfig(4, out_signed))
    rng = np.random.default_rng(seed)
    entries = requant_entries(rng, config, [(9, 11, 10), (8, 11, 9), (1, 1, 1), (7, 11, 6),
                                            (9, 11, 10), (4, 7, 8), (2, 5, 3)], out_signed)
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.3)
    check_engine(config, entries[:2], simulator, seed=seed)  # and exact job cycles unstalled


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("dataflow", [pytest.param(Dataflow.OUTPUT_STATIONARY, id="os"),
                                      pytest.param(Dataflow.WEIGHT_STATIONARY, id="ws",
                                                   marks=pytest.mark.slow)])
def test_pipelined_double_buffered_engine(simulator, dataflow, seed):
    """``--pipeline deep``: the A and B words are registered between the buffers and the
    array; results and compute cycles exact, with stalls on every stream."""
    config = EngineConfig(SystolicConfig(3, 4, dataflow, pipeline="deep"), 13, 11, 10,
                          buffering="double")
    rng = np.random.default_rng(seed)
    entries = [rand_operands(rng, config.numerics, 13, 11, 10), (14, 1, 1),
               rand_operands(rng, config.numerics, 5, 7, 9),
               rand_operands(rng, config.numerics, 1, 11, 3)]
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.3)
