"""The weight-stationary array's pipeline options in Verilog under cocotb: inside the engine
(whose controller schedules the array's weights), bit-exact and cycle-exact against the
golden and cycle models for every option; the array's own latency and cycle model in
Amaranth's simulator are in test_ws_array.py."""

import numpy as np
import pytest

from helpers import check_engine, engine_shapes_and_edges, rand_operands
from systolix.config import Dataflow, EngineConfig, Numerics, SystolicConfig

pytestmark = pytest.mark.rtl

WS = Dataflow.WEIGHT_STATIONARY


@pytest.mark.parametrize("pipeline", [
    pytest.param("product", marks=pytest.mark.slow),
    "full",
    pytest.param("deep", marks=pytest.mark.slow),
])
def test_pipelined_ws_array_in_engine(pipeline, seed):
    """Awkward shapes, extreme operands and rejected commands back to back through a 3x4
    pipelined array: exact results, exact compute and job cycles (the models include the PE's
    stages)."""
    config = EngineConfig(SystolicConfig(3, 4, WS, pipeline=pipeline), 9, 8, 10)
    rng = np.random.default_rng(seed)
    check_engine(config, engine_shapes_and_edges(config, rng), "icarus", seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["product", "full", "deep"])
def test_pipelined_ws_array_saturating(pipeline, seed):
    """A 20-bit saturating accumulator over several k-tiles: the C buffer clamps after each."""
    rng = np.random.default_rng(seed)
    narrow = Numerics(acc_width=20, saturate=True)
    config = EngineConfig(SystolicConfig(4, 2, WS, narrow, pipeline=pipeline), 6, 40, 4)
    a = np.full((6, 40), -128, np.int64)
    b = np.full((40, 4), -128, np.int64)
    b[20:, 2] = 127
    check_engine(config, [(a, b), rand_operands(rng, narrow, 5, 33, 3)], "icarus", seed=seed)


@pytest.mark.slow
@pytest.mark.verilator
def test_pipelined_ws_array_in_engine_verilator(seed):
    config = EngineConfig(SystolicConfig(3, 4, WS, pipeline="deep"), 9, 8, 10)
    rng = np.random.default_rng(seed)
    check_engine(config, engine_shapes_and_edges(config, rng), "verilator", seed=seed)
