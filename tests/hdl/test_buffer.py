# amaranth: UnusedElaboratable=no
# (test_rejects_bad_depth: a refused BufferMemory is constructed before its check raises)
"""The generic :class:`~systolix.hdl.buffer.BufferMemory`: a word written is read two cycles
after its address, the read register follows ``r_en`` and the output register ``r_oe``."""

import random

import pytest
from amaranth.sim import Simulator

from systolix.hdl.buffer import BufferMemory

pytestmark = pytest.mark.amaranth


def test_read_latency_and_enables(seed):
    rng = random.Random(seed)
    depth = 37
    dut = BufferMemory(12, depth)
    assert (dut.read_latency, dut.width, dut.depth) == (2, 12, depth)
    model = [0] * depth

    async def bench(ctx):
        rd_reg = out = 0
        for _ in range(400):
            w_addr, r_addr = rng.randrange(depth), rng.randrange(depth)
            w_en, r_en, r_oe = rng.random() < 0.5, rng.random() < 0.7, rng.random() < 0.7
            w_data = rng.randrange(1 << 12)
            for sig, v in ((dut.w_addr, w_addr), (dut.w_data, w_data), (dut.w_en, w_en),
                           (dut.r_addr, r_addr), (dut.r_en, r_en), (dut.r_oe, r_oe)):
                ctx.set(sig, v)
            await ctx.tick()
            # registers update from the values before this edge (a read of the word being
            # written returns the old word)
            new_out = rd_reg if r_oe else out
            new_rd = model[r_addr] if r_en else rd_reg
            if w_en:
                model[w_addr] = w_data
            rd_reg, out = new_rd, new_out
            assert ctx.get(dut.r_data) == out

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("depth", [1, 0, 2.0, True])
def test_rejects_bad_depth(depth):
    with pytest.raises(ValueError, match="depth must be an integer of at least 2, not"):
        BufferMemory(8, depth)
