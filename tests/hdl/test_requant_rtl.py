"""The requantizer's Verilog on Icarus and Verilator against an independent integer model:
edge cases (saturating bias, INT32 extremes, both-INT32_MIN, ties, shifts 0 and 31, clamps),
random values, and random stalls on both of its streams."""

import random
from types import SimpleNamespace

import numpy as np
import pytest

import slow_quant
from helpers import WORK_DIR, check_engine, requant_entries
from requant_cases import float32_pairs
from systolix.model import tiling
from systolix.config import Dataflow, EngineConfig, RequantConfig, SystolicConfig
from systolix.sim.job import StreamJob
from systolix.sim.runner import run

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]
I32MIN, I32MAX = slow_quant.INT32_MIN, slow_quant.INT32_MAX


def Params(**fields):
    """Per-beat, per-lane parameters (beats x lanes arrays): more than RequantParams holds,
    e.g. multipliers the hardware must handle but RequantParams refuses."""
    return SimpleNamespace(**fields)


def cases(rng, lanes, out_signed, beats):
    """(acc, params) per beat: each lane gets its own, drawn from edge values and random."""
    lo, hi = (-128, 127) if out_signed else (0, 255)
    accs, rows = [], []
    for _ in range(beats):
        acc, lane_params = [], []
        for _ in range(lanes):
            acc.append(rng.choice([I32MIN, I32MAX, 0, -1, 1, rng.randrange(-300, 300),
                                   rng.randrange(I32MIN, I32MAX + 1)]))
            zp = rng.randrange(lo, hi + 1)
            a, b = sorted(rng.randrange(lo, hi + 1) for _ in range(2))
            lane_params.append(dict(
                bias=rng.choice([I32MIN, I32MAX, 0, rng.randrange(-2**24, 2**24)]),
                multiplier=rng.choice([2**30, I32MAX, I32MIN, 0,
                                       rng.randrange(2**30, 2**31)]),
                shift=rng.choice([0, 1, 2, 31, rng.randrange(32)]),
                zero_point=zp, clamp_min=rng.choice([lo, a]), clamp_max=rng.choice([hi, b])))
        accs.append(acc)
        rows.append(lane_params)
    return accs, rows


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_requantizer_bit_exact_with_stalls(simulator, out_signed, seed):
    config = RequantConfig(3, out_signed)
    rng = random.Random(seed)
    accs, rows = cases(rng, config.lanes, out_signed, 300)
    names = ("bias", "multiplier", "shift", "zero_point", "clamp_min", "clamp_max")
    params = Params(**{k: np.array([[p[k] for p in lane] for lane in rows]) for k in names})
    want = np.array([[slow_quant.requantize_one(a, *(p[k] for k in names))
                      for a, p in zip(acc, lane)] for acc, lane in zip(accs, rows)])
    inputs = tiling.requant_input_words(config, np.array(accs), params)
    expected = tiling.requant_output_words(config, want)
    outcome = run(StreamJob(config, inputs, expected, stall_prob=0.3, seed=seed), simulator,
                  WORK_DIR)
    assert not outcome.failures, f"seed {seed}: {outcome.failures}"
    assert outcome.outputs == expected


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_requantizer_on_the_reference_edge_cases(simulator, out_signed, seed):
    """systolix.model.quant's edge cases (every edge accumulator against every edge parameter set)
    through the RTL, compared with systolix.model.quant.requantize, with stalls."""
    from systolix.model import quant
    config = RequantConfig(3, out_signed)
    jobs = [(acc, p) for acc, p in quant.edge_cases(channels=3, max_rows=128)
            if p.out_signed == out_signed]
    names = ("bias", "multiplier", "shift", "zero_point", "clamp_min", "clamp_max")
    accs = np.concatenate([acc for acc, _ in jobs])
    params = Params(**{k: np.concatenate([np.broadcast_to(np.asarray(getattr(p, k)),
                                                          acc.shape) for acc, p in jobs])
                       for k in names})
    want = np.concatenate([quant.requantize(acc, p) for acc, p in jobs])
    inputs = tiling.requant_input_words(config, accs, params)
    expected = tiling.requant_output_words(config, want)
    outcome = run(StreamJob(config, inputs, expected, stall_prob=0.2, seed=seed), simulator,
                  WORK_DIR)
    assert not outcome.failures, f"seed {seed}: {outcome.failures} ({len(inputs)} beats)"
    assert outcome.outputs == expected


#: the float32 cases beyond one Icarus run are under `make test-slow` (test-time budget)
SLOW_SIMULATORS = [pytest.param("icarus", id="icarus"),
                   pytest.param("verilator", id="verilator",
                                marks=[pytest.mark.verilator, pytest.mark.slow])]


@pytest.mark.parametrize("simulator", SLOW_SIMULATORS)
@pytest.mark.parametrize("out_signed", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["int8", "uint8"])
def test_float32_requantizer_on_edge_cases(simulator, out_signed, seed):
    """The float32 mode's Verilog against quant.requantize_float32 (numpy's float32
    arithmetic): edge accumulators x edge scales (ties, sums above 2**24, saturation, scale 0,
    the smallest normal scale), random values with wrapping biases, stalls on both streams."""
    from systolix.model import quant
    config = RequantConfig(3, out_signed, "float32")
    rng = np.random.default_rng(seed)
    acc, scale, f = float32_pairs(out_signed, rng, 200, n_scales=4)
    want = quant.requantize_float32(acc, f["bias"], scale, f["zero_point"], f["clamp_min"],
                                    f["clamp_max"], out_signed).astype(np.int64)
    L = config.lanes
    beats = -(-len(acc) // L)
    pad = beats * L - len(acc)
    shape = lambda v: np.concatenate([v, np.zeros(pad, np.int64)]).reshape(beats, L)
    params = Params(**{k: shape(v) for k, v in f.items()})
    inputs = tiling.requant_input_words(config, shape(acc), params)
    expected = tiling.requant_output_words(config, shape(want))
    outcome = run(StreamJob(config, inputs, expected, stall_prob=0.2, seed=seed), simulator,
                  WORK_DIR)
    assert not outcome.failures, f"seed {seed}: {outcome.failures} ({len(inputs)} beats)"
    assert outcome.outputs == expected


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_float32_requantizing_engine(simulator, seed):
    """An engine with a float32-mode requantizer through the ordinary engine path (packer, job
    file, testbench, verify against golden + quant.requantize): float32 parameters fitted to
    each job's accumulators, stalls on all four streams, then exact cycles unstalled."""
    from systolix.model import quant
    config = EngineConfig(SystolicConfig(2, 3, Dataflow("ws")), 5, 9, 7,
                          requant=RequantConfig(3, False, "float32"))
    rng = np.random.default_rng(seed)
    entries = [(a, b, quant.float32_params_like(q)) for a, b, q in
               requant_entries(rng, config, [(5, 9, 7), (3, 4, 2), (1, 1, 1), (5, 8, 6)],
                               False)]
    check_engine(config, entries, simulator, seed=seed, stall_prob=0.3)
    check_engine(config, entries[:2], simulator, seed=seed)
