"""Tensor-core gateware in Amaranth's simulator: dot-product unit and MMA unit, every pipeline
depth, bit-exact against golden.mma, latency exactly as documented, chained MMAs = GEMM."""

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Const

from systolix.model import golden
from systolix.config import Numerics, TensorCoreConfig
from systolix.hdl.tensorcore import DotProductUnit, MMAUnit, mma_input_layout
from systolix.sim.mma import pack_input_beats, unpack_output_beats
from helpers import run_amaranth as run

pytestmark = pytest.mark.amaranth


def edge_beats(config, rng, count):
    """Stacks A, B, C: named edge cases first, then random beats up to ``count``."""
    nm, m, n, k = config.numerics, config.m, config.n, config.k
    lo, hi, amin, amax = nm.in_min, nm.in_max, nm.acc_min, nm.acc_max
    full = lambda va, vb, vc: (np.full((m, k), va), np.full((k, n), vb), np.full((m, n), vc))
    beats = [
        full(lo, lo, 0), full(lo, lo, amax), full(lo, lo, amin),   # all min (+ C at the bounds)
        full(hi, hi, amax), full(hi, hi, 0), full(hi, hi, amin),   # all max: overflow upwards
        full(lo, hi, amin), full(hi, lo, amax),                    # min x max: overflow down
        full(0, 0, 0), full(0, lo, amin), full(hi, 0, amax),       # zeros keep C
    ]
    while len(beats) < count:
        beats.append((rng.integers(lo, hi + 1, (m, k)), rng.integers(lo, hi + 1, (k, n)),
                      rng.integers(amin, amax + 1, (m, n))))
    return tuple(np.stack(x).astype(np.int64) for x in zip(*beats))


def simulate_mma(config, a, b, c, valid, operand_register=False):
    """Issue beat i in the i-th cycle whose ``valid`` entry is true (with ``operand_register``
    its A and B a cycle earlier); returns D in output order, the issue cycles and the output
    cycles (watching ``latency + 3`` cycles past the end)."""
    dut = MMAUnit(config, operand_register=operand_register)
    payloads = pack_input_beats(config, a, b, c)
    lead = int(operand_register)
    issue, cycle = [], 0
    while len(issue) < len(payloads):
        if valid[cycle % len(valid)]:
            issue.append(cycle + lead)
        cycle += 1
    at = dict(zip(issue, payloads))  # issue cycle -> packed beat
    field = mma_input_layout(config)["c"]
    c_mask = ((1 << field.width) - 1) << field.offset
    out_cycles, out = [], []

    async def tb(ctx):
        for cycle in range(issue[-1] + dut.latency + 4):
            ctx.set(dut.i.valid, int(cycle in at))
            ctx.set(dut.i.payload.as_value(), (at.get(cycle, 0) & c_mask)
                    | (at.get(cycle + lead, 0) & ~c_mask))
            if ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload.as_value()))
                out_cycles.append(cycle)
            await ctx.tick()

    run(dut, tb)
    return unpack_output_beats(config, out), issue, out_cycles


def check_mma(config, a, b, c, valid, operand_register=False):
    d, issue, out_cycles = simulate_mma(config, a, b, c, valid, operand_register)
    assert len(out_cycles) == len(issue), "results must match beats one to one"
    assert [o - s for s, o in zip(issue, out_cycles)] == [config.latency] * len(issue)
    want = golden.mma(a, b, c, config.numerics)
    np.testing.assert_array_equal(d, want)
    return d


# (m, n, k) shapes x every pipeline depth, with numerics chosen to overflow: acc_width equal to
# one product's width means even C = 0 plus a k-element sum can leave the accumulator's range.
NARROW_WRAP = Numerics(acc_width=16)
NARROW_SAT = Numerics(acc_width=16, saturate=True)
CASES = [
    ((1, 1, 1), NARROW_WRAP), ((1, 1, 1), NARROW_SAT),
    ((4, 4, 4), NARROW_WRAP), ((4, 4, 4), NARROW_SAT),
    ((2, 3, 5), Numerics(acc_width=18, saturate=True)),
    ((3, 1, 2), Numerics(in_width=4, acc_width=8)),
    ((1, 2, 7), Numerics(signed=False, acc_width=17, saturate=True)),
    ((2, 2, 3), Numerics(in_width=16, acc_width=64, saturate=True)),
]
PARAMS = [pytest.param(TensorCoreConfig(*shape, pipeline=p, numerics=nm),
                       id=f"{shape[0]}x{shape[1]}x{shape[2]}_{nm.operand_type}_acc{nm.acc_width}"
                          f"_{nm.overflow}_p{p}")
          for shape, nm in CASES
          for p in range(TensorCoreConfig(*shape).max_pipeline + 1)]


@pytest.mark.parametrize("config", PARAMS)
def test_mma_unit_every_pipeline_depth(config, seed):
    """Edge cases and random beats: back to back first, then with random valid gaps."""
    rng = np.random.default_rng(seed)
    a, b, c = edge_beats(config, rng, 24)
    valid = [1] * 30 + list(rng.random(40) < 0.6)
    d = check_mma(config, a, b, c, valid)
    nm = config.numerics
    if nm.acc_width < 64:  # beat 3 (all max, C = acc_max) overflowed: clamp or wrap
        exact = nm.acc_max + config.k * nm.in_max ** 2
        assert d[3, 0, 0] == (nm.acc_max if nm.saturate else golden.wrap(exact, nm.acc_width))


@pytest.mark.parametrize("pipeline", range(4))
def test_mma_unit_8x8x4(pipeline, seed):
    config = TensorCoreConfig(8, 8, 4, pipeline=pipeline, numerics=Numerics(saturate=True))
    rng = np.random.default_rng(seed)
    check_mma(config, *edge_beats(config, rng, 40), [1, 1, 0, 1])


@pytest.mark.parametrize("pipeline", [0, 4])
def test_mma_unit_operand_register(pipeline, seed):
    """A and B taken a cycle ahead of valid and C (a copy per dot-product unit): the same D at
    the same latency, back to back and with gaps."""
    config = TensorCoreConfig(3, 4, 4, pipeline=pipeline, numerics=Numerics(acc_width=18))
    rng = np.random.default_rng(seed)
    check_mma(config, *edge_beats(config, rng, 30), [1] * 12 + [1, 0, 0, 1, 0, 1, 1],
              operand_register=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match="operand_register must be a bool, not 1"):
            MMAUnit(config, operand_register=1)
        gc.collect()


def test_valid_gaps_and_reset():
    """A lone beat after idle cycles comes out alone; nothing comes out of an idle unit."""
    config = TensorCoreConfig(2, 2, 2, pipeline=2)
    a, b, c = (np.ones((1, 2, 2), np.int64),) * 3
    d, issue, out_cycles = simulate_mma(config, a, b, c, [0] * 9 + [1])
    assert issue == [9] and out_cycles == [9 + 3]
    assert d[0].tolist() == [[3, 3], [3, 3]]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8, 13])
def test_dot_product_unit(k, seed):
    rng = np.random.default_rng(seed)
    for p in range(TensorCoreConfig(k=k).max_pipeline + 1):
        config = TensorCoreConfig(1, 1, k, pipeline=p, numerics=Numerics(acc_width=17,
                                                                          saturate=p % 2 == 1))
        nm = config.numerics
        dut = DotProductUnit(config)
        n_beats = 12
        a = rng.integers(nm.in_min, nm.in_max + 1, (n_beats, k))
        b = rng.integers(nm.in_min, nm.in_max + 1, (n_beats, k))
        c = rng.integers(nm.acc_min, nm.acc_max + 1, n_beats)
        a[0], b[0], c[0] = nm.in_min, nm.in_min, nm.acc_max
        got = {}

        async def tb(ctx):
            for t in range(n_beats + dut.latency + 2):
                if t < n_beats:
                    ctx.set(dut.i.valid, 1)
                    ctx.set(dut.i.payload, {"a": a[t].tolist(), "b": b[t].tolist(),
                                            "c": int(c[t])})
                else:
                    ctx.set(dut.i.valid, 0)
                if ctx.get(dut.o.valid):
                    got[t] = ctx.get(dut.o.payload.d)
                await ctx.tick()

        run(dut, tb)
        want = golden.mma(a[:, None, :], b[:, :, None], c[:, None, None], nm)[:, 0, 0]
        assert got == {t + config.latency: int(w) for t, w in enumerate(want)}, f"pipeline {p}"
        assert dut.latency == p + 1


@pytest.mark.parametrize("config", [
    TensorCoreConfig(2, 3, 4, pipeline=0, numerics=Numerics(acc_width=17, saturate=True)),
    TensorCoreConfig(2, 3, 4, pipeline=3, numerics=Numerics(acc_width=17, saturate=True)),
    TensorCoreConfig(3, 2, 5, pipeline=2, numerics=Numerics(acc_width=20)),
    TensorCoreConfig(1, 1, 1, pipeline=1, numerics=Numerics(acc_width=17, saturate=True)),
], ids=lambda c: c.name)
def test_chained_mmas_equal_gemm_with_chunk_k(config, seed):
    """A GEMM over K as a chain of MMAs with D fed back as C, in hardware.

    ``latency`` independent GEMMs are interleaved so the unit takes a beat every cycle: the
    result appearing in a cycle is exactly the C the same chain needs next.
    """
    rng = np.random.default_rng(seed)
    nm, m, n, k, lat = config.numerics, config.m, config.n, config.k, config.latency
    K = 12 * k + (k - 1 if k > 1 else 0)  # ragged: the last step is zero-padded
    steps = -(-K // k)
    gemms = []
    for j in range(lat):
        a = rng.integers(nm.in_min, nm.in_max + 1, (m, K))
        b = rng.integers(nm.in_min, nm.in_max + 1, (K, n))
        if j == 0:  # climb past acc_max, then come back down: saturation order is visible
            a[:] = nm.in_max
            b[:K // 2] = nm.in_max
            b[K // 2:] = nm.in_min
        gemms.append((a, b))
    pad = steps * k - K
    padded = [(np.pad(a, ((0, 0), (0, pad))), np.pad(b, ((0, pad), (0, 0)))) for a, b in gemms]
    dut = MMAUnit(config)
    results = {}

    async def tb(ctx):
        for t in range(steps * lat + lat):
            s, j = divmod(t, lat)
            d = None
            if ctx.get(dut.o.valid):
                d = unpack_output_beats(config, [ctx.get(dut.o.payload.as_value())])[0]
            if s >= 1:
                assert d is not None, f"cycle {t}: chain {j} step {s - 1} result missing"
                results[j] = d
            if s < steps:
                a, b = padded[j]
                c = np.zeros((m, n), np.int64) if s == 0 else d
                ctx.set(dut.i.payload.as_value(), pack_input_beats(
                    config, a[None, :, s * k:(s + 1) * k], b[None, s * k:(s + 1) * k], c[None])[0])
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()

    run(dut, tb)
    for j, (a, b) in enumerate(gemms):
        want = golden.gemm(a, b, nm, chunk=k)
        np.testing.assert_array_equal(results[j], want, err_msg=f"chain {j}")
        np.testing.assert_array_equal(want, golden.chained_mma_gemm(a, b, nm, k))
    if nm.saturate:
        exact = gemms[0][0].astype(object) @ gemms[0][1].astype(object)
        assert results[0][0, 0] != exact[0, 0]  # the climbing chain really saturated


def test_packing_matches_amaranth_layout(seed):
    """pack_input_beats puts every element where the Amaranth layout has it."""
    config = TensorCoreConfig(2, 3, 2, numerics=Numerics(acc_width=20))
    rng = np.random.default_rng(seed)
    a, b, c = edge_beats(config, rng, 13)
    packed = pack_input_beats(config, a, b, c)
    layout = mma_input_layout(config)
    for t in (0, 7, 12):
        const = Const.cast(layout.const({"a": a[t].tolist(), "b": b[t].tolist(),
                                         "c": c[t].tolist()}))
        assert const.value % (1 << len(const)) == packed[t]


@pytest.mark.parametrize("cls", [DotProductUnit, MMAUnit])
def test_components_reject_other_configs(cls):
    from systolix.config import SystolicConfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TypeError, match="config must be a TensorCoreConfig"):
            cls(SystolicConfig(2, 2))
        gc.collect()
