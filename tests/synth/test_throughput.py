"""Sustained GOPS of an engine on a named job stream (synth.throughput): the stream syntax,
the default stream, and the figure against the cycle model it is defined by."""

import pytest

from systolix.config import Dataflow, EngineConfig, RequantConfig, SystolicConfig
from systolix.model.cycles import engine_cycles, stream_cycles
from systolix.synth.throughput import (cube_stream, default_stream, mlp_stream, parse_stream,
                                       sustained)

pytestmark = pytest.mark.model


def test_stream_names_and_jobs():
    s = parse_stream("8x256")
    assert s.name == "8 x 256^3" and s.jobs == ((256, 256, 256, False),) * 8
    assert parse_stream(" 2 x 3x4x5 ").jobs == ((3, 4, 5, False),) * 2
    assert parse_stream("2x3x4x5").name == "2 x 3x4x5"
    mlp = parse_stream("MLP")
    assert mlp == mlp_stream() and mlp.items == 256
    # every batch of layer 1 (weights loaded once), then every batch of layer 2
    assert mlp.jobs == ((64, 64, 64, False),) + ((64, 64, 64, True),) * 3 \
        + ((64, 64, 10, False),) + ((64, 64, 10, True),) * 3
    for bad in ("", "8", "8x", "x8", "8x4x4", "08x4", "-1x4", "mlp2", "8x4x4x4x4"):
        with pytest.raises(ValueError, match="stream must be"):
            parse_stream(bad)
    with pytest.raises(ValueError, match="at least 1"):
        parse_stream("4x0")
    with pytest.raises(TypeError, match="stream must be a string, not 8"):
        parse_stream(8)


def test_default_stream_is_the_largest_cube_the_buffers_hold():
    assert default_stream(EngineConfig(SystolicConfig(8, 8))).name == "8 x 64^3"
    assert default_stream(EngineConfig(SystolicConfig(4, 4), 32, 16, 48)).name == "8 x 16^3"
    big = EngineConfig(SystolicConfig(16, 16), 512, 512, 512)
    assert default_stream(big) == cube_stream(256)


@pytest.mark.parametrize("buffering", ["single", "double"])
def test_sustained_gops_is_macs_over_the_stream_time(buffering):
    config = EngineConfig(SystolicConfig(8, 8, Dataflow.WEIGHT_STATIONARY, pipeline="deep"),
                          buffering=buffering, requant=RequantConfig(8))
    stream = cube_stream(64)
    got = sustained(config, stream, 150.0)
    c = stream_cycles(config, stream.jobs)
    assert got["total_cycles"] == c["total"] and got["macs"] == 8 * 64 ** 3
    # 2 x MACs x Fmax x utilization = 2 x useful MACs / stream time
    seconds = c["total"] / 150e6
    assert got["sustained_gops"] == pytest.approx(2 * got["macs"] / seconds / 1e9)
    assert got["sustained_gops"] < 2 * 64 * 0.150
    assert got["stream"] == "8 x 64^3" and "cycles_per_item" not in got
    if buffering == "single":  # jobs in series: the sum of the single-job totals
        assert c["total"] == 8 * engine_cycles(config, 64, 64, 64).total
    assert sustained(config, stream, None)["sustained_gops"] is None


def test_mlp_stream_per_image():
    config = EngineConfig(SystolicConfig(8, 8, Dataflow.WEIGHT_STATIONARY),
                          requant=RequantConfig(8))
    got = sustained(config, mlp_stream(), 100.0)
    assert got["cycles_per_item"] == got["total_cycles"] / 256
    assert got["items_per_second"] == pytest.approx(100e6 / got["cycles_per_item"])


def test_stream_must_fit_the_buffers():
    config = EngineConfig(SystolicConfig(4, 4), 16, 16, 16)
    with pytest.raises(ValueError, match="job 0 has M = 64, beyond the engine's buffers"):
        sustained(config, mlp_stream(), 100.0)
    with pytest.raises(TypeError, match="config must be an EngineConfig"):
        sustained(SystolicConfig(4, 4), cube_stream(4), 100.0)


def test_synth_engine_reports_the_sustained_figure(monkeypatch, capsys):
    """``systolix synth engine`` adds the stream's name and figures to the JSON and the text,
    computed at the Fmax the flow measured (the flow itself is replaced here)."""
    import json

    from systolix.cli import app, synth as synth_cli
    from systolix.synth.flow import SynthResult

    seen = []

    def fake_synthesize(config, target, options, **kwargs):
        seen.append(config)
        return SynthResult({
            "name": config.name, "fits": True, "in_harness": True, "macs": config.macs,
            "target": {"name": target.name, "device": "LFE5U-85F", "lut4": 83640, "ff": 83640,
                       "dsp": 156, "bram": 208, "dsp_cell": "MULT18X18D",
                       "bram_cell": "DP16KD"},
            "harness": {"used": False}, "lut4": 1000, "carry": 10, "ff": 900, "dsp": 16,
            "bram": 3, "fmax_mhz": 120.0, "freq_target_mhz": 150, "meets_target": False,
            "critical_path": None, "peak_gops": 3.84, "gops_per_klut": 3.84,
            "gops_per_dsp": 0.24})

    monkeypatch.setattr(synth_cli, "synthesize", fake_synthesize)
    argv = ["synth", "engine", "--rows", "4", "--cols", "4", "--dataflow", "ws", "--pipeline",
            "full", "--requant", "--buffering", "double", "--max-m", "32", "--max-k", "32",
            "--max-n", "32"]
    assert app.main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    config = seen[0]
    assert config.requant == RequantConfig(4) and config.buffering == "double"
    assert config.array.pipeline == "full"
    assert out["sustained"] == sustained(config, cube_stream(32), 120.0)
    assert out["sustained"]["stream"] == "8 x 32^3"
    assert app.main(argv + ["--stream", "2x32x16x8"]) == 0
    text = capsys.readouterr().out
    figure = sustained(config, parse_stream("2x32x16x8"), 120.0)
    assert f"sustained : {figure['sustained_gops']:.2f} GOPS on 2 x 32x16x8 (" in text
