"""A board design's clock from a PLL: iCE40 PLL settings, the PLL clock domain on a platform,
the engine clock ``systolix build engine --freq`` picks, and its refusals."""

import gc
from types import SimpleNamespace

import pytest
from amaranth.hdl import Fragment, Instance, IOPort

from systolix.board.clock import ICE40PLL, PLLClock
from systolix.board.top import BoardConfig, BoardPlatformTop
from systolix.config import EngineConfig, SystolicConfig
from systolix.errors import SystolixError
from systolix.synth.board import engine_clock

pytestmark = [pytest.mark.model, pytest.mark.amaranth]

ENGINE = EngineConfig(SystolicConfig(2, 2), 4, 4, 4)


@pytest.mark.parametrize("want_mhz, divf, divq, got_mhz", [
    (48, 63, 4, 48),      # icepll -i 12 -o 48: DIVR 0, DIVF 63, DIVQ 4, FILTER_RANGE 1
    (45, 59, 4, 45),
    (30, 79, 5, 30),      # below 33.3 MHz the VCO needs DIVQ 5
    (40, 52, 4, 39.75),   # 40 is not reachable from 12: the next lower setting
    (100, 65, 3, 99),
])
def test_ice40_pll_settings_from_a_12_mhz_oscillator(want_mhz, divf, divq, got_mhz):
    s = ICE40PLL.best(12_000_000, want_mhz * 1e6)
    assert (s.divr, s.divf, s.divq, s.filter_range) == (0, divf, divq, 1)
    assert s.f_out_hz == got_mhz * 1e6 == 12e6 * (divf + 1) / 2 ** divq
    assert 533e6 <= s.f_vco_hz <= 1066e6


def test_ice40_pll_filter_range_follows_the_phase_detector():
    assert ICE40PLL(100_000_000, 4, 31, 5).filter_range == 2     # 20 MHz at the detector
    assert ICE40PLL(100_000_000, 0, 7, 2).filter_range == 5      # 100 MHz


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_ice40_pll_refuses_settings_out_of_range():
    with pytest.raises(ValueError, match="an iCE40 PLL fed 12 MHz makes 16..275 MHz, not 15 MHz"):
        ICE40PLL.best(12_000_000, 15e6)
    with pytest.raises(ValueError, match="the PLL's VCO must be in 533..1066 MHz, not 24 MHz"):
        ICE40PLL(12_000_000, 0, 1, 1)
    with pytest.raises(ValueError, match="divq must be in 1..6, not 0"):
        ICE40PLL(12_000_000, 0, 63, 0)
    with pytest.raises(TypeError, match="divf must be an integer, not 1.5"):
        ICE40PLL(12_000_000, 0, 1.5, 4)
    with pytest.raises(TypeError, match="setting must be an ICE40PLL, not 48"):
        PLLClock(48)
    gc.collect()


class _Platform:
    default_clk = "clk12"
    default_clk_frequency = 12e6

    def __init__(self):
        self.requested = []

    def request(self, name, number=0, *, dir=None):
        self.requested.append((name, number, dir))
        if name == "clk12":
            return SimpleNamespace(io=IOPort(1, name="clk12_0__io"))
        from amaranth.hdl import Signal
        if name == "uart":
            return SimpleNamespace(rx=SimpleNamespace(i=Signal()), tx=SimpleNamespace(o=Signal()))
        return SimpleNamespace(o=Signal())


def _instances(fragment):
    for sub, name, _ in fragment.subfragments:
        if isinstance(sub, Instance):
            yield name, sub
        yield from _instances(sub)


def test_pll_clock_drives_sync_from_sb_pll40_pad_on_the_clock_pin():
    platform = _Platform()
    clock = PLLClock(ICE40PLL.best(12_000_000, 45e6))
    fragment = Fragment.get(clock, platform)
    assert platform.requested == [("clk12", 0, "-")]   # the raw pad: no SB_IO in front
    (name, pll), = _instances(fragment)
    assert pll.type == "SB_PLL40_PAD"
    params = {k: (v.value if hasattr(v, "value") else v) for k, v in pll.parameters.items()}
    assert params == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 59, "DIVQ": 4,
                      "FILTER_RANGE": 1}
    assert "sync" in fragment.domains and clock.frequency == 45e6
    platform.default_clk_frequency = 25e6
    with pytest.raises(ValueError, match="the platform clock is 25000000 Hz, the PLL was set up "
                                         "for 12000000 Hz"):
        Fragment.get(PLLClock(ICE40PLL.best(12_000_000, 45e6)), platform)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_board_top_runs_from_the_pll_at_the_configured_clock():
    clock = PLLClock(ICE40PLL.best(12_000_000, 45e6))
    platform = _Platform()
    Fragment.get(BoardPlatformTop(BoardConfig(ENGINE, 45_000_000, 115200), clock), platform)
    assert {("clk12", 0, "-"), ("uart", 0, None)} <= set(platform.requested)
    with pytest.raises(ValueError, match="the clock runs at 4.5e\\+07 Hz, the design was "
                                         "configured for 12000000 Hz"):
        BoardPlatformTop(BoardConfig(ENGINE, 12_000_000, 115200), clock)
    with pytest.raises(TypeError, match="clock must be an Elaboratable with a frequency"):
        BoardPlatformTop(BoardConfig(ENGINE, 12_000_000, 115200), 12e6)
    gc.collect()  # report the refused components here, where the warning is filtered


def test_engine_clock_per_board():
    assert engine_clock("icebreaker", None) == (12_000_000, None)
    assert engine_clock("icebreaker", 12) == (12_000_000, None)
    hz, clock = engine_clock("icebreaker", 44.9)
    assert hz == 44_250_000 and clock.setting == ICE40PLL(12_000_000, 0, 58, 4)
    assert engine_clock("ulx3s-85f", 25) == (25_000_000, None)
    with pytest.raises(SystolixError, match="--freq 50 needs a PLL, which systolix sets up on "
                                            "icebreaker only: an engine on ulx3s-85f runs at its "
                                            "25 MHz oscillator"):
        engine_clock("ulx3s-85f", 50)
    with pytest.raises(SystolixError, match="--freq 15: an iCE40 PLL fed 12 MHz makes"):
        engine_clock("icebreaker", 15)
