"""Run cocotb board scenarios (``systolix_tb.board_test``) on a simulated
:class:`~systolix.board.top.BoardTop`: the real host library driving a simulated UART.

A scenario is a :class:`BoardJob`, run like every other job by :func:`systolix.sim.runner.run`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..emit import convert, lint_config
from ..fileio import atomic_write_all
from ..sim.job import Job, Outcome
from ..sim.runner import run
from .top import BoardConfig, BoardTop

__all__ = ["board_verilog", "BoardJob", "BoardOutcome", "run_board"]


def board_verilog(config: BoardConfig):
    """Verilog of the board top (ports ``clk``, ``rst``, ``uart_rx``, ``uart_tx``, ``leds``)."""
    return convert(BoardTop(config), config.name)


@dataclass
class BoardOutcome(Outcome, kind="board"):
    """What a board scenario measured (``details``: measurements, client statistics, ...)."""

    details: dict = field(default_factory=dict)


@dataclass
class BoardJob(Job, kind="board", outcome=BoardOutcome):
    """One scenario (``{"name": "gemm" | "errors" | "pty", ...}``, see
    ``systolix_tb.board_test``) on the board design ``config``."""

    config: BoardConfig
    scenario: dict
    seed: int = 0

    test_module: ClassVar[str] = "systolix_tb.board_test"

    @staticmethod
    def config_from_dict(data):
        return BoardConfig.from_dict(data)

    @staticmethod
    def write_verilog(config, out_dir):
        v_path = out_dir / f"{config.name}.v"
        text = board_verilog(config)
        texts = {v_path: text, v_path.with_suffix(".vlt"): lint_config(config.name, text)}
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_all({path: t for path, t in texts.items()
                          if not (path.is_file() and path.read_text() == t)})
        return v_path


def run_board(config: BoardConfig, scenario: dict, simulator="icarus", work_dir="sim_out",
              *, seed=0, waves=False):
    """Run one scenario; returns the outcome as a dict: ``passed``, ``failures``, the
    measurements the test recorded, and ``log`` (the simulator log, kept when it failed)."""
    outcome = run(BoardJob(config, dict(scenario), seed), simulator, work_dir, waves=waves)
    log = str(outcome.job_dir / "sim.log") if outcome.job_dir is not None else None
    return {**outcome.details, "failures": outcome.failures, "passed": outcome.passed,
            "log": log}
