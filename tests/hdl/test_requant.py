# amaranth: UnusedElaboratable=no
"""The requantizer in Amaranth's simulator on the edge cases of systolix.model.quant: every pair
that sits on a rounding tie, and a random sample of the rest, with stalls on both streams."""

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.model import quant, tiling
from systolix.config import RequantConfig
from systolix.hdl.requant import Requantizer

from requant_cases import float32_pairs

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


@pytest.mark.parametrize("out_signed", [True, False], ids=["int8", "uint8"])
def test_clamp_around_its_bounds(out_signed, seed):
    """The zero point and clamp of every y in -450..450 and on both ends of 12 bits (where
    the hardware compares the low 12 bits and whether y fits them), of far values and of y up
    to 70 either side of each bound less the zero point, each with its own random zero point
    and bounds. Multiplier 2**30 makes the high part h = floor((acc + 1) / 2), so acc = 2h reaches
    every h; h = y * 2**shift + r with a random shift of 0..2 and remainder r reaches y
    through every rounding (y = 2048 and -2048 also as a rounded-up 2047 and -2049)."""
    rng = np.random.default_rng(seed)
    far = np.array([1 << 30, (1 << 30) - 1, 1 << 20, 4096, 4095, 2049, 2048])
    sweep = np.concatenate([np.arange(-2100, -1990), np.arange(-450, 451),
                            np.arange(1990, 2100), far, -far])
    near = np.tile(np.arange(-70, 71), 8)
    n = len(sweep) + 2 * len(near) + 2
    lo_, hi_ = (-128, 127) if out_signed else (0, 255)
    bounds = np.sort(rng.integers(lo_, hi_ + 1, (2, n)), axis=0)
    zp = rng.integers(lo_, hi_ + 1, n)
    base = bounds - zp
    m = len(near)
    t = np.concatenate([sweep, base[0, len(sweep):len(sweep) + m] + near,
                        base[1, len(sweep) + m:n - 2] + near])
    shift = rng.integers(0, 3, n)
    h = np.clip(t * (1 << shift[:-2]) + rng.integers(0, 1 << shift[:-2]), -(1 << 30),
                (1 << 30) - 1)
    h = np.concatenate([h, [4095, -8193]])   # 2047 and -2049, rounded up
    shift[-2:] = [1, 2]
    y = quant.rdbpot(h, shift)
    assert y[-2] == 2048 and y[-1] == -2048
    fields = {"bias": np.zeros(n, np.int64), "multiplier": np.full(n, 1 << 30, np.int64),
              "shift": shift, "zero_point": zp, "clamp_min": bounds[0],
              "clamp_max": bounds[1]}
    acc = 2 * h
    z = y + fields["zero_point"]
    # every relation of y + zero_point to each bound, many times over
    for bound in (fields["clamp_min"], fields["clamp_max"]):
        for rel in (z < bound, z == bound, z > bound):
            assert rel.sum() >= 8
    want = reference(acc, fields)
    _check_lanes(RequantConfig(LANES, out_signed), acc, fields, want, rng, seed)


def test_rounding_shift_at_every_shift(seed):
    """RoundingDivideByPOT at every shift 0..31: h = k * 2**shift + r for kept parts k around
    0 and the 12-bit edges (2047 may round up to 2048, -2049 to -2048) and k = +-(2**m + 3),
    whose low 12 bits lie inside the int8 bounds (so a kept part wrongly found to fit 12 bits
    shows), with remainders r on both sides of the tie and at both ends, and random ones.
    Multiplier 2**30 makes h = floor((acc + 1) / 2), so acc = 2h (2h - 1 for h = 2**30)
    reaches every h in -2**30..2**30."""
    rng = np.random.default_rng(seed)
    hs, shifts = [], []
    for s in range(32):
        ks = [0, 1, -1, 2, -2, 63, -64, 127, -128, 2047, 2048, -2048, -2049, 2049, -2050,
              4096 + 5, -4096 - 5, 4096 + 2047, -4096 - 2049]
        ks += [v for m in range(12, 30) for v in ((1 << m) + 3, -(1 << m) - 3)]
        ks += rng.integers(-(1 << 30) >> s, 1 << max(30 - s, 0), 8).tolist()
        tie = (1 << s) >> 1
        rs = {0, (1 << s) - 1, tie - 1, tie, tie + 1, *rng.integers(0, 1 << s, 3).tolist()}
        rs = [r for r in rs if 0 <= r < 1 << s]
        for k in ks:
            for r in rs:
                if -(1 << 30) <= k * (1 << s) + r <= 1 << 30:
                    hs.append(k * (1 << s) + r)
                    shifts.append(s)
    h, shift = np.array(hs, np.int64), np.array(shifts, np.int64)
    n = len(h)
    fields = {"bias": np.zeros(n, np.int64), "multiplier": np.full(n, 1 << 30, np.int64),
              "shift": shift, "zero_point": np.zeros(n, np.int64),
              "clamp_min": np.full(n, -128, np.int64), "clamp_max": np.full(n, 127, np.int64)}
    acc = np.where(h == 1 << 30, 2 * h - 1, 2 * h)
    want = reference(acc, fields)
    assert (quant.srdhm(acc, fields["multiplier"]) == h).all()
    y = quant.rdbpot(h, shift)
    # every shift sees rounding up and down on both signs (from 2 on: a negative h with
    # shift 1 never rounds up), with outputs inside the bounds
    for s in range(2, 32):
        at = (shift == s) & (np.abs(y) < 128)
        below = h - (y << s)                    # the part rounded away: up if negative
        for neg in (h < 0, h >= 0):
            assert (at & neg & (below < 0)).any() and (at & neg & (below > 0)).any(), s
    _check_lanes(RequantConfig(LANES, True), acc, fields, want, rng, seed)


@pytest.mark.parametrize("out_signed", [
    True, pytest.param(False, marks=pytest.mark.slow)], ids=["int8", "uint8"])
def test_float32_requantizer_on_edge_cases(out_signed, seed):
    """The float32 mode against quant.requantize_float32 (numpy's float32 arithmetic, the
    spec), with stalls on both streams; the inputs reach ties, rounded int -> float32
    conversions and saturation, unclamped."""
    rng = np.random.default_rng(seed)
    acc, scale, f = float32_pairs(out_signed, rng, 400, n_scales=5)
    want = quant.requantize_float32(acc, f["bias"], scale, f["zero_point"], f["clamp_min"],
                                    f["clamp_max"], out_signed)
    x = quant.wrap32(acc + f["bias"])
    fx = x.astype(np.int32).astype(np.float32)
    p = (fx * scale).astype(np.float64)
    y = np.rint(p) + f["zero_point"]
    shows = (y >= f["clamp_min"]) & (y <= f["clamp_max"])
    assert (shows & (p - np.floor(p) == 0.5)).sum() >= 20                     # ties
    assert (shows & (fx.astype(np.int64) != x)).sum() >= 20                   # > 2**24
    assert (want == f["clamp_min"]).sum() >= 50 and (want == f["clamp_max"]).sum() >= 50
    config = RequantConfig(8, out_signed, "float32")
    L = config.lanes
    beats = -(-len(acc) // L)
    pad = beats * L - len(acc)
    shape = lambda v: np.concatenate([v, np.zeros(pad, np.int64)]).reshape(beats, L)
    params = SimpleNamespace(**{k: shape(v) for k, v in f.items()})
    words = tiling.requant_input_words(config, shape(acc), params)
    got = run(config, words, rng, stall=0.2)
    assert got == tiling.requant_output_words(config, shape(want.astype(np.int64))), \
        f"seed {seed}"


@pytest.mark.parametrize("mode", ["gemmlowp", "float32"])
def test_latency_and_full_rate(mode, seed):
    """Unstalled, i.ready never drops and every beat comes out exactly config.latency cycles
    after it went in; with a stalled output the credits hold the input before anything is
    lost (checked by the stall tests' exact outputs)."""
    config = RequantConfig(2, True, mode)
    dut = Requantizer(config)
    rng = np.random.default_rng(seed)
    beats = 3 * config.latency
    words = [int(w) for w in rng.integers(0, 1 << 62, beats)]
    times_in, times_out = [], []

    async def tb(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(beats + config.latency + 4):
            offer = cycle < beats
            ctx.set(dut.i.valid, offer)
            if offer:
                ctx.set(dut.i.payload.as_value(), words[cycle])
                assert ctx.get(dut.i.ready), f"i.ready low at cycle {cycle}"
                times_in.append(cycle)
            if ctx.get(dut.o.valid):
                times_out.append(cycle)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert [t - config.latency for t in times_out] == times_in


def test_float32_requantizing_engine(seed):
    """An engine with a float32-mode requantizer in Amaranth's simulator (the engine tests'
    driver), fed by the ordinary packer: float32 parameters fitted to each job's accumulators,
    stalls on every stream; C equals golden.gemm + quant.requantize_float32."""
    from helpers import requant_entries
    from test_engine import simulate
    from systolix.config import Dataflow, EngineConfig, SystolicConfig
    from systolix.model import golden
    config = EngineConfig(SystolicConfig(2, 3, Dataflow("os")), 4, 6, 5,
                          requant=RequantConfig(3, True, "float32"))
    rng = np.random.default_rng(seed)
    jobs = [(a, b, quant.float32_params_like(q)) for a, b, q in
            requant_entries(rng, config, [(4, 6, 5), (3, 2, 4), (4, 5, 5)], True)]
    results = simulate(config, jobs, stall=0.3, seed=seed)
    assert len(results) == len(jobs)
    for (a, b, q), (c, err, _, _) in zip(jobs, results):
        acc = golden.gemm(a, b, config.numerics, config.accumulation_chunk)
        assert not err
        assert c.tolist() == quant.requantize_float32(
            acc, q.bias, q.scale, q.zero_point, q.clamp_min, q.clamp_max, True).tolist(), \
            f"seed {seed}"


@pytest.mark.parametrize("slack", [0, 2])
def test_capacity_with_a_stalled_output(slack):
    """With ``o`` stalled, ``i`` takes exactly ``capacity`` beats (latency + 1 + slack) and
    delivers them all, in order, once ``o`` is ready."""
    config = RequantConfig(1, True)
    dut = Requantizer(config, slack=slack)
    assert dut.capacity == config.latency + 1 + slack
    offered = 3 * dut.capacity
    taken, got = [], []

    async def tb(ctx):
        for cycle in range(offered + 3 * config.latency):
            ctx.set(dut.o.ready, cycle >= offered)
            offer = len(taken) < dut.capacity + 5
            ctx.set(dut.i.valid, offer)
            ctx.set(dut.i.payload.acc[0], len(taken))
            ctx.set(dut.i.payload.params[0].multiplier, (1 << 31) - 1)
            ctx.set(dut.i.payload.params[0].clamp_min, -128)
            ctx.set(dut.i.payload.params[0].clamp_max, 127)
            if offer and ctx.get(dut.i.ready):
                taken.append((cycle, len(taken)))
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload.data[0]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    before = [t for t in taken if t[0] < offered]
    assert len(before) == dut.capacity
    assert got == [min(v, 127) for _, v in taken]


def test_slack_must_be_a_count():
    with pytest.raises(TypeError, match="slack must be a non-negative integer, not -1"):
        Requantizer(RequantConfig(1), slack=-1)


def _check_lanes(config, acc, fields, want, rng, seed):
    """Run the flat values ``acc`` (parameters ``fields``) through the requantizer, padded to
    whole beats, with stalls; its output words must be ``want``'s."""
    n = len(acc)
    beats = -(-n // LANES)
    pad = beats * LANES - n
    shape = lambda v: np.concatenate([v, np.zeros(pad, np.int64)]).reshape(beats, LANES)
    params = SimpleNamespace(**{k: shape(v) for k, v in fields.items()})
    words = tiling.requant_input_words(config, shape(acc), params)
    got = run(config, words, rng, stall=0.1)
    assert got == tiling.requant_output_words(config, shape(want)), f"seed {seed}"
