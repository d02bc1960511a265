"""The requantizer in Amaranth's simulator on the edge cases of systolix.model.quant: every pair
that sits on a rounding tie, and a random sample of the rest, with stalls on both streams."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.model import quant, tiling
from systolix.config import RequantConfig
from systolix.hdl.requant import Requantizer

FIELDS = ("bias", "multiplier", "shift", "zero_point", "clamp_min", "clamp_max")
LANES = 16

pytestmark = pytest.mark.amaranth


def edge_pairs(out_signed, rng, sample):
    """Every (accumulator, channel parameters) pair of ``quant.edge_cases()`` for one output
    type, flattened: the pairs on an SRDHM or RoundingDivideByPOT tie (where the two rounding
    rules bite) and ``sample`` of the others, in random order."""
    jobs = [(acc, p) for acc, p in quant.edge_cases(channels=8, max_rows=1024)
            if p.out_signed == out_signed]
    acc = np.concatenate([a.ravel() for a, _ in jobs])
    fields = {k: np.concatenate([np.broadcast_to(np.asarray(getattr(p, k)), a.shape).ravel()
                                 for a, p in jobs]) for k in FIELDS}
    x = np.clip(acc + fields["bias"], quant.INT32_MIN, quant.INT32_MAX)
    m0, s = fields["multiplier"], fields["shift"]
    h = quant.srdhm(x, m0)
    srdhm_tie = (x * m0) % (1 << 31) == 1 << 30
    rdbpot_tie = (s > 0) & ((h & ((1 << s) - 1)) == (1 << np.maximum(s, 1) - 1))
    ties = np.flatnonzero(srdhm_tie | rdbpot_tie)
    rest = np.flatnonzero(~(srdhm_tie | rdbpot_tie))
    pick = rng.permutation(np.concatenate([ties, rng.choice(rest, sample, replace=False)]))
    return acc[pick], {k: v[pick] for k, v in fields.items()}, srdhm_tie[pick], rdbpot_tie[pick]


def reference(acc, f):
    """``quant.requantize`` of each pair with its own parameters (vectorised over pairs)."""
    x = np.clip(acc + f["bias"], quant.INT32_MIN, quant.INT32_MAX)
    y = quant.rdbpot(quant.srdhm(x, f["multiplier"]), f["shift"]) + f["zero_point"]
    return np.clip(y, f["clamp_min"], f["clamp_max"])


def run(config, words, rng, stall):
    dut = Requantizer(config)
    got = []

    async def tb(ctx):
        i = idle = 0
        while len(got) < len(words):
            offer = i < len(words) and rng.random() >= stall
            take = rng.random() >= stall
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload.as_value(), words[i])
            ctx.set(dut.o.ready, take)
            if offer and ctx.get(dut.i.ready):
                i += 1
            if take and ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload.as_value()))
            idle = idle + 1 if i == len(words) else 0
            assert idle < 100, f"{len(words) - len(got)} beats never came out"
            await ctx.tick()
        for _ in range(8):  # nothing beyond the job
            ctx.set(dut.o.ready, 1)
            assert not ctx.get(dut.o.valid), "an output beat beyond the job"
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return got


@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_requantizer_on_edge_case_ties(out_signed, seed):
    rng = np.random.default_rng(seed)
    acc, fields, srdhm_tie, rdbpot_tie = edge_pairs(out_signed, rng, 4000)
    # the selection really holds negative ties of both kinds (where the rounding rules differ
    # from the positive side) and they reach the output unclamped
    want = reference(acc, fields)
    x = np.clip(acc + fields["bias"], quant.INT32_MIN, quant.INT32_MAX)
    h = quant.srdhm(x, fields["multiplier"])
    y = quant.rdbpot(h, fields["shift"]) + fields["zero_point"]
    shows = (y >= fields["clamp_min"]) & (y <= fields["clamp_max"])
    assert (srdhm_tie & (x < 0) & shows).sum() >= 100
    assert (rdbpot_tie & (h < 0) & shows).sum() >= 100
    config = RequantConfig(LANES, out_signed)
    beats = -(-len(acc) // LANES)
    pad = beats * LANES - len(acc)
    shape = lambda v: np.concatenate([v, np.zeros(pad, np.int64)]).reshape(beats, LANES)
    params = SimpleNamespace(**{k: shape(v) for k, v in fields.items()})
    words = tiling.requant_input_words(config, shape(acc), params)
    got = run(config, words, rng, stall=0.2)
    assert got == tiling.requant_output_words(config, shape(want)), f"seed {seed}"
