# amaranth: UnusedElaboratable=no
"""The LUT-built multiplier is exactly ``a * b``, ``latency`` cycles late.

Emitted as Verilog and run in Icarus: every int8 x int8 operand pair (and every pair of a few
small, mixed shapes) for both algorithms, and a random stream through the pipelined versions
compared with the product of the operands ``latency`` cycles earlier.
"""

import shutil

import pytest
from amaranth.hdl import Signal, signed, unsigned

from systolix.hdl.lutmult import LUTMultiplier

from helpers import check_every_product, check_pipelined_product

pytestmark = [pytest.mark.rtl,
              pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus")]


#: int8 x int8 in full, and smaller or mixed shapes (odd widths, 1-bit operands)
SHAPES = [(signed(8), signed(8)), (unsigned(8), unsigned(4)), (signed(5), signed(3)),
          (unsigned(4), unsigned(7)), (signed(2), signed(1)), (unsigned(1), unsigned(2))]
#: under the slow marker: also uint8 x uint8 in full
SLOW_SHAPES = SHAPES + [(unsigned(8), unsigned(8))]


@pytest.mark.parametrize("algorithm,shapes", [
    ("booth", SHAPES),
    pytest.param("booth", SLOW_SHAPES, marks=pytest.mark.slow, id="booth-uint8"),
    pytest.param("array", SLOW_SHAPES, marks=pytest.mark.slow, id="array-uint8")])
def test_every_operand_pair(algorithm, shapes, tmp_path):
    """Exhaustive, combinational (latency 0), every shape in one module."""
    check_every_product(tmp_path, [LUTMultiplier(sa, sb, latency=0, algorithm=algorithm)
                                   for sa, sb in shapes])


@pytest.mark.parametrize("latency", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_pipelined_product_is_latency_cycles_late(latency, tmp_path, seed):
    check_pipelined_product(tmp_path, LUTMultiplier(signed(8), unsigned(7), latency=latency),
                            seed)


def test_bad_arguments():
    with pytest.raises(ValueError, match="latency must be 0, 1 or 2, not 3"):
        LUTMultiplier(signed(8), signed(8), latency=3)
    with pytest.raises(ValueError, match="algorithm must be one of booth, array, not 'wallace'"):
        LUTMultiplier(signed(8), signed(8), algorithm="wallace")
    with pytest.raises(ValueError, match="a_shape must be 1..32 bits wide, not 33"):
        LUTMultiplier(signed(33), signed(8))
    a, b = Signal(signed(8)), Signal(unsigned(8))
    assert LUTMultiplier(a.shape(), b.shape()).p.shape() == (a * b).shape()
