"""The emitted Verilog under cocotb, on Icarus and Verilator: bit-exact and cycle-exact.

Each test builds one configuration once per simulator (cached under sim_out/tests) and runs a
batch of GEMMs in one simulation, so the suite pays the simulator start-up once per config.
"""

import numpy as np
import pytest

from helpers import check_rtl, rand_operands
from systolix.model import golden
from systolix.config import Numerics, SystolicConfig

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]


def edge_cases(numerics, rows, cols, rng):
    """Named operand pairs every configuration must get exactly right."""
    lo, hi = numerics.in_min, numerics.in_max
    full = lambda m, k, n, va, vb: (np.full((m, k), va, np.int64), np.full((k, n), vb, np.int64))
    eye = np.eye(2 * rows + 1, dtype=np.int64)
    return [
        full(rows, 300, cols, lo, lo),                    # min x min over a long K
        full(rows + 1, 40, cols + 2, hi, hi),             # max x max
        full(rows, 7, cols, lo, hi),                      # min x max
        full(2 * rows, 5, 2 * cols, 0, 0),                # zeros
        (eye, rand_operands(rng, numerics, 2 * rows + 1, 2 * rows + 1, cols + 1)[1]),  # identity
        rand_operands(rng, numerics, 2 * rows + 1, 1, 2 * cols + 1),   # K = 1, ragged tiles
        rand_operands(rng, numerics, 1, 9, 1),                         # 1 x K x 1
        rand_operands(rng, numerics, 3 * rows - 1, 2 * rows + 3, 2 * cols - 1),
    ]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("rows,cols", [(4, 4), (1, 1), (1, 8), (8, 1), (3, 5)])
def test_signed_int8_shapes(simulator, rows, cols, seed):
    config = SystolicConfig(rows, cols)
    rng = np.random.default_rng(seed)
    operands = edge_cases(config.numerics, rows, cols, rng)
    check_rtl(config, operands, simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("saturate", [False, True], ids=["wrap", "saturate"])
def test_accumulator_overflow(simulator, saturate, seed):
    """A 20-bit accumulator overflows after 32 min x min products: both policies, both signs."""
    numerics = Numerics(acc_width=20, saturate=saturate)
    config = SystolicConfig(3, 4, numerics=numerics)
    rng = np.random.default_rng(seed)
    k = 80
    a = np.full((3, k), -128, np.int64)
    b = np.full((k, 4), -128, np.int64)
    b[:, 1] = 127                                     # column 1 overflows negative
    b[k // 2:, 2] = 127                               # column 2 goes up, clamps, comes down
    a_rand, b_rand = rand_operands(rng, numerics, 5, 200, 6)
    exact = a.astype(object) @ b.astype(object)
    want = golden.gemm(a, b, numerics)
    # the test is only meaningful if the exact sums really leave the 20-bit range
    assert (exact > numerics.acc_max).any() and (exact < numerics.acc_min).any()
    if saturate:
        assert want[0, 0] == numerics.acc_max and want[0, 1] == numerics.acc_min
        # saturation is order-dependent: up to +max, then down by 40 * 16256
        assert want[0, 2] == numerics.acc_max - 40 * 128 * 127
    else:
        assert want[0, 0] == golden.wrap(exact[0, 0], 20)
    check_rtl(config, [(a, b), (a_rand, b_rand)], simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_unsigned_uint8(simulator, seed):
    numerics = Numerics(signed=False)
    config = SystolicConfig(4, 3, numerics=numerics)
    rng = np.random.default_rng(seed)
    check_rtl(config, edge_cases(numerics, 4, 3, rng), simulator, seed=seed)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("numerics", [
    Numerics(in_width=4, acc_width=8),                              # narrowest legal int4
    Numerics(in_width=16, acc_width=64, signed=False, saturate=True),  # widest: uint16, acc64
    Numerics(acc_width=17, signed=False),                           # unsigned, wrapping
], ids=lambda n: f"{n.operand_type}_acc{n.acc_width}_{n.overflow}")
def test_numerics_extremes(simulator, numerics, seed):
    config = SystolicConfig(3, 2, numerics=numerics)
    rng = np.random.default_rng(seed)
    operands = edge_cases(numerics, 3, 2, rng)
    operands.append((np.full((3, 500), numerics.in_max, np.int64),
                     np.full((500, 2), numerics.in_max, np.int64)))
    runs = check_rtl(config, operands, simulator, seed=seed)
    exact = 500 * numerics.in_max ** 2
    if numerics.acc_width < 64:
        assert exact > numerics.acc_max  # the last GEMM really overflowed
        assert runs[-1].c[0, 0] == (numerics.acc_max if numerics.saturate
                                    else golden.wrap(exact, numerics.acc_width))


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_wide_operands_int64_results(simulator, seed):
    """int16 operands into a 40-bit saturating accumulator: results come back as int64."""
    numerics = Numerics(in_width=16, acc_width=40, saturate=True)
    config = SystolicConfig(2, 3, numerics=numerics)
    rng = np.random.default_rng(seed)
    operands = edge_cases(numerics, 2, 3, rng)
    operands.append((np.full((2, 600), -32768, np.int64), np.full((600, 3), -32768, np.int64)))
    runs = check_rtl(config, operands, simulator, seed=seed)
    assert runs[-1].c[0, 0] == numerics.acc_max  # 600 * 2**30 > 2**39


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_back_to_back_no_idle_cycles(simulator, seed):
    """GEMMs streamed with no gap between them; totals must equal the stream cycle model,
    i.e. the array never inserted a bubble it did not have to (K < R tiles must wait)."""
    config = SystolicConfig(4, 4)
    rng = np.random.default_rng(seed)
    shapes = [(8, 6, 8), (5, 2, 7), (4, 4, 4), (9, 1, 3), (12, 17, 5)]
    operands = [rand_operands(rng, config.numerics, *s) for s in shapes]
    check_rtl(config, operands, simulator, seed=seed, back_to_back=True)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_random_input_stalls(simulator, seed):
    """An irregular source (valid low 40% of cycles) must not change any result."""
    config = SystolicConfig(3, 4, numerics=Numerics(acc_width=24, saturate=True))
    rng = np.random.default_rng(seed)
    operands = [rand_operands(rng, config.numerics, *s) for s in [(7, 40, 9), (3, 1, 4), (6, 3, 2)]]
    operands.append((np.full((3, 700), -128, np.int64), np.full((700, 4), -128, np.int64)))
    check_rtl(config, operands, simulator, seed=seed, back_to_back=True, stall_prob=0.4)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_int32_wraps_after_131072_products(simulator, seed):
    """The default int32 accumulator, overflowed for real: K = 2**17 + 3 of (-128)^2."""
    config = SystolicConfig(2, 2)
    k = 2**17 + 3
    a = np.full((2, k), -128, np.int64)
    b = np.full((k, 2), -128, np.int64)
    b[-1, 0] = 5
    runs = check_rtl(config, [(a, b)], simulator, seed=seed)
    assert runs[0].c[0, 1] == golden.wrap(k * 16384, 32) < 0


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_16x16_array_128_cubed(simulator, seed):
    """A TPU-like tile size on a GEMM of real size: 64 tiles, 8,192 beats."""
    config = SystolicConfig(16, 16)
    rng = np.random.default_rng(seed)
    runs = check_rtl(config, [rand_operands(rng, config.numerics, 128, 128, 128)], simulator,
                     seed=seed)
    assert runs[0].utilization > 0.99


@pytest.mark.parametrize("simulator,pipeline", [
    ("icarus", "product"), ("icarus", "full"), ("icarus", "deep"),
    pytest.param("verilator", "deep", marks=pytest.mark.verilator),
])
def test_pipelined_array(simulator, pipeline, seed):
    """The pipelined PEs: bit-exact and cycle-exact (cycle model includes the stages), also
    streamed back to back, with saturating narrow accumulators."""
    config = SystolicConfig(3, 4, numerics=Numerics(acc_width=20, saturate=True),
                            pipeline=pipeline)
    rng = np.random.default_rng(seed)
    check_rtl(config, edge_cases(config.numerics, 3, 4, rng), simulator, seed=seed)
    plain = SystolicConfig(4, 4, pipeline=pipeline)
    operands = [rand_operands(rng, plain.numerics, 9, k, 6) for k in (1, 3, 4, 17)]
    check_rtl(plain, operands, simulator, seed=seed, back_to_back=True)


def test_lut_multiplier_array_drains_top_row_first(seed):
    """LUT multipliers (``mult="lut"``): the columns drain through OR trees, rows leave top
    row first; bit-exact and cycle-exact, back to back too (Icarus)."""
    config = SystolicConfig(3, 2, numerics=Numerics(acc_width=20, saturate=True),
                            pipeline="full", mult="lut")
    assert config.drain_tree
    rng = np.random.default_rng(seed)
    operands = edge_cases(config.numerics, 3, 2, rng)[:3] + [
        rand_operands(rng, config.numerics, 7, k, 4) for k in (1, 3, 4, 9)]
    check_rtl(config, operands, "icarus", seed=seed, back_to_back=True)
