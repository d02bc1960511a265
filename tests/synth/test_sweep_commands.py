"""Each sweep point records the ``systolix synth`` line that reproduces it alone."""

import pytest

from systolix.cli import synth as cli_synth
from systolix.cli.app import main

pytestmark = pytest.mark.model


class _Stop(Exception):
    pass


def _sweep_points(monkeypatch, argv):
    seen = {}

    def fake_run_sweep(configs, target, options, out_dir, **kw):
        seen.update(configs=configs, target=target, options=options, commands=kw["commands"])
        return {"files": []}
    monkeypatch.setattr(cli_synth, "run_sweep", fake_run_sweep)
    assert main(argv) == 0
    return seen


def _synth_point(monkeypatch, command):
    seen = {}

    def fake_synthesize(config, target, options, **kw):
        seen.update(config=config, target=target, options=options)
        raise _Stop
    monkeypatch.setattr(cli_synth, "synthesize", fake_synthesize)
    words = command.split()
    assert words[:2] == ["systolix", "synth"]
    with pytest.raises(_Stop):
        main(words[1:])
    return seen


@pytest.mark.parametrize("argv", [
    ["sweep", "systolic", "--sizes", "2x3,4", "-o", "unused"],
    ["sweep", "systolic", "--sizes", "3x2,4x5", "--variants", "none,deep", "--mult", "auto",
     "--acc-width", "20", "--dataflow", "ws", "--saturate", "--target", "ice40-up5k",
     "--freq", "40", "--seed", "3", "--harness", "auto", "-j", "1", "--no-cache", "-o", "x"],
    ["sweep", "engine", "--sizes", "2,3x4", "--variants", "full,deep", "--dataflow", "ws",
     "--max-k", "32", "--buffering", "double", "--harness", "off", "--json", "-o", "x"],
], ids=["defaults", "systolic-flags", "engine"])
def test_each_point_command_reproduces_its_config_and_options(monkeypatch, argv):
    sweep = _sweep_points(monkeypatch, argv)
    assert len(sweep["commands"]) == len(sweep["configs"]) > 1
    for config, command in zip(sweep["configs"], sweep["commands"]):
        point = _synth_point(monkeypatch, command)
        assert point["config"] == config, command
        assert point["target"] == sweep["target"] and point["options"] == sweep["options"]
        for word in ("--sizes", "--variants", "-j", "--jobs", "-o", "--json", "--no-cache"):
            assert word not in command.split()
