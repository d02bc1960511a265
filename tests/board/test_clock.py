"""A board design's clock from a PLL: iCE40 and ECP5 PLL settings, the PLL clock domain on a
platform, the engine clock ``systolix build engine --freq`` picks, and its refusals."""

import dataclasses
import gc
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from amaranth.hdl import ClockDomain, ClockSignal, Fragment, Instance, IOPort, Module, \
    ResetSignal, Signal
from amaranth.lib import io

from systolix.board.clock import ECP5PLL, ICE40PLL, PLLClock
from systolix.board.top import BoardConfig, BoardPlatformTop
from systolix.config import EngineConfig, SystolicConfig
from systolix.errors import SystolixError
from systolix.synth.board import BOARD_PLATFORMS, engine_clock

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
    with pytest.raises(TypeError, match="setting must be an ICE40PLL or an ECP5PLL, not 48"):
        PLLClock(48)
    gc.collect()


# Each setting by hand from f_out = 25 MHz x CLKFB_DIV / CLKI_DIV, f_vco = f_out x CLKOP_DIV in
# 400..800 MHz, f_in / CLKI_DIV >= 3.125 MHz (so CLKI_DIV <= 8): the nearest f_out, then the VCO
# nearest 600 MHz, then the smallest dividers.
@pytest.mark.parametrize("want_mhz, clki_div, clkfb_div, clkop_div, got_hz", [
    (100, 1, 4, 6, 100e6),      # VCO 400..800 -> CLKOP_DIV 4..8; 6 puts it at 600 exactly
    (125, 1, 5, 5, 125e6),      # 4..6: VCO 500, 625, 750
    (150, 1, 6, 4, 150e6),      # 3..5: VCO 450, 600, 750
    # 133 is not reachable: 25 x 16 / 3 = 133.33 is nearest (25 x 32 / 6 too, later); VCO 533.3
    # and 666.7 are equally near 600, the smaller divider comes first (ecppll's float32
    # arithmetic happens to prefer 666.7)
    (133, 3, 16, 4, 25e6 * 16 / 3),
    (3.2, 8, 1, 128, 3.125e6),  # the lowest output: 3.125 MHz x 128 = 400 MHz
    (400, 1, 16, 1, 400e6),     # the highest: VCO 400 and 800 equally near 600
])
def test_ecp5_pll_settings_from_the_ulx3s_25_mhz_oscillator(want_mhz, clki_div, clkfb_div,
                                                             clkop_div, got_hz):
    s = ECP5PLL.best(25_000_000, want_mhz * 1e6)
    assert (s.clki_div, s.clkfb_div, s.clkop_div) == (clki_div, clkfb_div, clkop_div)
    assert s.f_out_hz == got_hz == 25e6 * clkfb_div / clki_div
    assert s.f_vco_hz == pytest.approx(got_hz * clkop_div) and 400e6 <= s.f_vco_hz <= 800e6
    assert (s.clkop_cphase, s.clkop_fphase) == (clkop_div - 1, 0)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_ecp5_pll_refuses_settings_out_of_range():
    for mhz in (2, 900, 3.1, 400.5, float("nan")):
        with pytest.raises(ValueError, match=f"an ECP5 PLL fed 25 MHz makes 3.125..400 MHz, not "
                                             f"{mhz:g} MHz"):
            ECP5PLL.best(25_000_000, mhz * 1e6)
    with pytest.raises(ValueError, match="an ECP5 PLL takes a 8..400 MHz reference clock, not "
                                         "5 MHz"):
        ECP5PLL.best(5_000_000, 100e6)
    with pytest.raises(ValueError, match="the PLL's phase detector input must be in "
                                         "3.125..400 MHz, not 2.77778 MHz"):
        ECP5PLL(25_000_000, 9, 36, 6)
    with pytest.raises(ValueError, match="the PLL's VCO must be in 400..800 MHz, not 1000 MHz"):
        ECP5PLL(25_000_000, 1, 40, 1)
    with pytest.raises(ValueError, match="the PLL's output must be in 3.125..400 MHz, not "
                                         "500 MHz"):
        ECP5PLL(25_000_000, 1, 20, 1)
    with pytest.raises(ValueError, match="clkfb_div must be in 1..80, not 81"):
        ECP5PLL(25_000_000, 1, 81, 6)
    with pytest.raises(ValueError, match="clki_div must be in 1..128, not 0"):
        ECP5PLL(25_000_000, 0, 4, 6)
    with pytest.raises(TypeError, match="clkop_div must be an integer, not 6.0"):
        ECP5PLL(25_000_000, 1, 4, 6.0)
    with pytest.raises(TypeError, match="f_in_hz must be an integer, not 25000000.0"):
        ECP5PLL.best(25e6, 100e6)
    gc.collect()


class _Platform:
    default_clk = "clk12"
    default_clk_frequency = 12e6

    def __init__(self):
        self.requested = []

    def request(self, name, number=0, *, dir=None):
        self.requested.append((name, number, dir))
        if name == self.default_clk:
            return io.SingleEndedPort(IOPort(1, name=f"{name}_0__io"))
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


class _ECP5Platform(_Platform):
    default_clk = "clk25"
    default_clk_frequency = 25e6

    def __init__(self):
        super().__init__()
        self.buffers = []

    def get_io_buffer(self, buffer):  # stands in for the vendor's input buffer
        self.buffers.append(buffer)
        return Module()


def test_pll_clock_drives_sync_from_ehxplll_behind_the_clock_pins_buffer():
    platform = _ECP5Platform()
    clock = PLLClock(ECP5PLL.best(25_000_000, 125e6))
    fragment = Fragment.get(clock, platform)
    assert platform.requested == [("clk25", 0, "-")]
    (buffer,) = platform.buffers
    assert buffer.direction is io.Direction.Input and buffer.port.io.name == "clk25_0__io"
    (name, pll), = _instances(fragment)
    assert pll.type == "EHXPLLL"
    params = {k: (v.value if hasattr(v, "value") else v) for k, v in pll.parameters.items()}
    assert params == {"PLLRST_ENA": "DISABLED", "INTFB_WAKE": "DISABLED",
                      "STDBY_ENABLE": "DISABLED", "DPHASE_SOURCE": "DISABLED",
                      "OUTDIVIDER_MUXA": "DIVA", "CLKI_DIV": 1, "CLKFB_DIV": 5,
                      "FEEDBK_PATH": "CLKOP", "CLKOP_ENABLE": "ENABLED", "CLKOP_DIV": 5,
                      "CLKOP_CPHASE": 4, "CLKOP_FPHASE": 0}
    # nextpnr writes 0 for a loop filter attribute left out
    assert dict(pll.attrs) == {"ICP_CURRENT": "12", "LPF_RESISTOR": "8",
                               "MFG_ENABLE_FILTEROPAMP": "1", "MFG_GMCREF_SEL": "2"}
    ports = {k: v for k, (v, _) in pll.ports.items()}
    assert ports["CLKI"] is buffer.i and ports["CLKFB"] is ports["CLKOP"]  # CLKOP fed back
    assert {k for k, (_, d) in pll.ports.items() if d == "o"} == {"CLKOP", "LOCK"}
    assert "sync" in fragment.domains and clock.frequency == 125e6
    with pytest.raises(ValueError, match="the platform clock is 25000000 Hz, the PLL was set up "
                                         "for 12000000 Hz"):
        Fragment.get(PLLClock(ECP5PLL.best(12_000_000, 125e6)), platform)


def test_ecp5_pll_clock_holds_sync_in_reset_until_lock():
    """The reset from LOCK through its synchronizer, in simulation (the PLL a black box whose
    LOCK and CLKOP the testbench drives)."""
    platform = _ECP5Platform()
    clock = PLLClock(ECP5PLL.best(25_000_000, 100e6))
    fragment = Fragment.get(clock, platform)
    (_, pll), = _instances(fragment)
    lock, clk = pll.ports["LOCK"][0], pll.ports["CLKOP"][0]
    reset = Signal()
    m = Module()
    m.submodules.clock = fragment
    m.domains.tb = ClockDomain("tb", reset_less=True)
    m.d.comb += [clk.eq(ClockSignal("tb")), reset.eq(ResetSignal("sync"))]
    seen = []

    async def bench(ctx):
        for cycle in range(13):
            ctx.set(lock, 3 <= cycle < 9)
            await ctx.tick("tb")
            seen.append(ctx.get(reset))

    # (not elaborated again: the platform-less fragment keeps its stand-in buffer)
    from amaranth.sim import Simulator
    sim = Simulator(m)
    sim.add_clock(10e-9, domain="tb")
    sim.add_testbench(bench)
    sim.run()
    # lock at cycle 3: two synchronizer stages, one timer count, the ready register and the
    # reset register later, out of reset;
    # lock lost at cycle 9: back in reset as soon as the synchronizer and the reset register
    # pass it on
    assert seen == [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1], seen


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
    hz, clock = engine_clock("ulx3s-85f", 133)
    assert hz == 133_333_333 and clock.setting == ECP5PLL(25_000_000, 3, 16, 4)
    hz, clock = engine_clock("ulx3s-85f", 100)
    assert hz == 100_000_000 and clock.setting == ECP5PLL(25_000_000, 1, 4, 6)
    assert BoardConfig(ENGINE, hz, 115200).divisor == 868   # the UART divides the PLL's clock
    with pytest.raises(SystolixError, match="--freq 15: an iCE40 PLL fed 12 MHz makes"):
        engine_clock("icebreaker", 15)
    without_pll = dataclasses.replace(BOARD_PLATFORMS["ulx3s-85f"], pll=None)
    with pytest.raises(SystolixError, match="--freq 50 needs a PLL, which systolix sets up on "
                                            "ulx3s-85f, icebreaker only: an engine on ulx3s-85f "
                                            "runs at its 25 MHz oscillator"):
        engine_clock(without_pll, 50)



@pytest.mark.slow
@pytest.mark.toolchain
def test_build_engine_clocked_from_the_ulx3s_pll(tmp_path):
    """`build engine --board ulx3s-85f --freq 100`: the ECP5 PLL makes the clock from the 25 MHz
    oscillator, nextpnr times the design at it (derived through the PLL) and reports the PLL
    clock's Fmax, and the bitstream's name carries the clock. (The pipelined, double-buffered
    engine: the default PE's multiply-accumulate in one cycle stays below 100 MHz.)"""
    out = tmp_path / "bits"
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "systolix", "build", "engine", "--rows", "4",
                        "--cols", "4", "--max-m", "8", "--max-k", "8", "--max-n", "8",
                        "--pipeline", "deep", "--buffering", "double", "--board", "ulx3s-85f",
                        "--freq", "100", "-o", str(out), "--json"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    bit = Path(r["bitstream"])
    assert bit == out / "engine_os_4x4_int8_acc32_wrap_pipe_deep_8x8x8_db_ulx3s-85f_100mhz.bit"
    assert bit.stat().st_size > 100_000
    assert r["board_clock_mhz"] == 100 and r["host_link"]["clk_hz"] == 100_000_000
    assert (r["pll"]["clki_div"], r["pll"]["clkfb_div"], r["pll"]["clkop_div"]) == (1, 4, 6)
    assert r["placed"]["EHXPLLL"]["used"] == 1 and r["board_design"]["dsp"] == 16
    assert r["peak_gops"] == pytest.approx(2 * 16 * 100e6 / 1e9)
    # nextpnr's report: one clock, the PLL's output, constrained at 100 MHz (the oscillator's
    # 25 MHz x 4) and met
    report = json.loads((Path(r["reports"]) / "report.json").read_text())
    (fmax,) = report["fmax"].values()
    assert fmax["constraint"] == pytest.approx(100)
    assert fmax["achieved"] == r["board_fmax_mhz"] >= 100
    print(f"ulx3s-85f 4x4 engine at 100 MHz: Fmax {fmax['achieved']:.1f} MHz, "
          f"{time.monotonic() - start:.0f} s")
