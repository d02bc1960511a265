"""The emitted tensor-core MMA unit under cocotb, on Icarus and Verilator.

Each test builds one configuration per simulator (cached under sim_out/tests) and streams
hundreds of beats through it: every D must equal golden.mma bit for bit and appear exactly
``latency`` cycles after its beat (checked inside the simulation and again here).
"""

import numpy as np
import pytest

from helpers import WORK_DIR
from systolix.model import golden
from systolix.config import Numerics, TensorCoreConfig
from systolix.model.cycles import mma_stream_cycles
from systolix.sim.job import MMAJob
from systolix.sim.verify import check
from test_tensorcore import edge_beats

pytestmark = pytest.mark.rtl

ICARUS = pytest.param("icarus", id="icarus")
VERILATOR = pytest.param("verilator", id="verilator", marks=pytest.mark.verilator)


def check_rtl(config, a, b, c, simulator, *, seed, stall_prob=0.0):
    report = check(MMAJob(config, a, b, c, stall_prob=stall_prob, seed=seed), simulator,
                   WORK_DIR)
    where = f"[{config.name} on {simulator}, seed {seed}]"
    assert report.ok, f"{where} {report}"
    if stall_prob == 0:  # one beat every cycle, no bubble anywhere
        assert report.total_cycles == report.model_total_cycles == mma_stream_cycles(config, len(a))
    else:
        assert report.total_cycles > mma_stream_cycles(config, len(a)), \
            f"{where} no valid gap was exercised"
    return report.outcome


@pytest.mark.parametrize("simulator", [ICARUS, VERILATOR])
@pytest.mark.parametrize("config", [
    TensorCoreConfig(),                                                          # 4x4x4, p1
    TensorCoreConfig(2, 3, 5, pipeline=3, numerics=Numerics(acc_width=18, saturate=True)),
], ids=lambda c: c.name)
def test_mma_stream(simulator, config, seed):
    """Edge cases and random beats, back to back, then again with 30% valid gaps."""
    rng = np.random.default_rng(seed)
    a, b, c = edge_beats(config, rng, 300)
    check_rtl(config, a, b, c, simulator, seed=seed)
    check_rtl(config, a[::-1], b[::-1], c[::-1], simulator, seed=seed, stall_prob=0.3)


@pytest.mark.parametrize("config", [
    TensorCoreConfig(1, 1, 1, pipeline=0, numerics=Numerics(acc_width=16)),
    TensorCoreConfig(3, 1, 7, pipeline=4, numerics=Numerics(signed=False, acc_width=17,
                                                            saturate=True)),
    TensorCoreConfig(1, 4, 2, pipeline=2, numerics=Numerics(in_width=16, acc_width=64,
                                                            saturate=True)),
    TensorCoreConfig(2, 2, 3, pipeline=0, numerics=Numerics(in_width=4, acc_width=8)),
    pytest.param(TensorCoreConfig(2, 3, 2, pipeline=3),  # the deepest: operands registered
                 marks=pytest.mark.slow),
], ids=lambda c: c.name)
def test_mma_awkward_shapes_and_numerics_icarus(config, seed):
    rng = np.random.default_rng(seed)
    check_rtl(config, *edge_beats(config, rng, 120), "icarus", seed=seed, stall_prob=0.2)


def test_mma_overflow_wraps_and_saturates_icarus(seed):
    """The same all-max beat into a wrapping and a saturating 16-bit accumulator."""
    for saturate in (False, True):
        config = TensorCoreConfig(2, 2, 4, numerics=Numerics(acc_width=16, saturate=saturate))
        a = np.full((3, 2, 4), 127)
        b = np.full((3, 4, 2), 127)
        c = np.array([np.zeros((2, 2)), np.full((2, 2), 32767), np.full((2, 2), -32768)])
        b[2] = -128
        out = check_rtl(config, a, b, c.astype(np.int64), "icarus", seed=seed)
        if saturate:
            assert out.d[:, 0, 0].tolist() == [32767, 32767, -32768]
        else:
            assert out.d[:, 0, 0].tolist() == [golden.wrap(4 * 16129, 16),
                                               golden.wrap(32767 + 4 * 16129, 16),
                                               golden.wrap(-32768 - 4 * 16256, 16)]


@pytest.mark.slow
@pytest.mark.parametrize("simulator,config,beats", [
    # Icarus slows down sharply with the unit's width (~470 cycles/s at 4x4x4, ~30 at 8x8x4):
    # few beats there, thousands on Verilator (~10k cycles/s at 8x8x4, ~5k at 8x8x16).
    pytest.param("icarus", TensorCoreConfig(8, 8, 4, pipeline=3, numerics=Numerics(saturate=True)),
                 120, id="icarus-8x8x4_p3_saturate"),
    pytest.param("verilator", TensorCoreConfig(8, 8, 4, pipeline=3,
                                               numerics=Numerics(saturate=True)),
                 3000, id="verilator-8x8x4_p3_saturate", marks=pytest.mark.verilator),
    pytest.param("verilator", TensorCoreConfig(8, 8, 16, pipeline=5), 3000,
                 id="verilator-8x8x16_p5", marks=pytest.mark.verilator),
])
def test_mma_large_units(simulator, config, beats, seed):
    rng = np.random.default_rng(seed)
    a, b, c = edge_beats(config, rng, beats)
    check_rtl(config, a, b, c, simulator, seed=seed)
    check_rtl(config, a, b, c, simulator, seed=seed, stall_prob=0.5)


@pytest.mark.slow
def test_deepest_pipeline_in_engine(seed):
    """The engine's tensor-core schedule with the deepest MMA pipeline (operand registers
    included, latency T + 3): exact results and cycles, back to back with rejects."""
    from helpers import check_engine, engine_shapes_and_edges
    from systolix.config import EngineConfig
    config = EngineConfig(None, 9, 11, 10, core=TensorCoreConfig(2, 2, 4, pipeline=4))
    check_engine(config, engine_shapes_and_edges(config, np.random.default_rng(seed)), "icarus",
                 seed=seed)
