"""Build a :class:`~systolix.board.top.BoardTop` for Icarus or Verilator and run cocotb board
scenarios on it (``systolix_tb.board_test``), the real host library driving a simulated UART."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from amaranth.back import verilog

from ..errors import SystolixError
from ..fileio import atomic_open
from ..sim.runner import _runner, _tool_environment, check_simulator, compile_verilog, design_key
from .top import BoardConfig, BoardTop

__all__ = ["board_verilog", "build_board", "run_board", "BOARD_TEST_MODULE", "SCENARIO_ENV"]

BOARD_TEST_MODULE = "systolix_tb.board_test"
SCENARIO_ENV = "SYSTOLIX_BOARD_SCENARIO"


def board_verilog(config: BoardConfig):
    """Verilog of the board top (ports ``clk``, ``rst``, ``uart_rx``, ``uart_tx``, ``leds``)."""
    top = BoardTop(config)
    return verilog.convert(top, name=config.name, emit_src=False)


def build_board(config: BoardConfig, simulator="icarus", work_dir="sim_out"):
    """Emit and compile the board top; cached per (config, simulator, generator source)."""
    check_simulator(simulator)
    build_dir = Path(work_dir).resolve() / config.name / simulator
    key = design_key(config)  # the config and every generator source: a superset of its deps
    stamp = build_dir / "design.key"
    if stamp.is_file() and stamp.read_text() == key:
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    v_path = build_dir / f"{config.name}.v"
    with atomic_open(v_path) as f:
        f.write(board_verilog(config))
    stamp.unlink(missing_ok=True)
    compile_verilog(v_path, config.name, build_dir, simulator)
    stamp.write_text(key)
    return build_dir


def run_board(config: BoardConfig, scenario: dict, simulator="icarus", work_dir="sim_out",
              *, seed=0, waves=False):
    """Run one scenario (``{"name": ..., ...}``, see ``systolix_tb.board_test``); returns the
    outcome dict the test wrote (``passed``, ``failures``, measurements)."""
    build_dir = build_board(config, simulator, work_dir)
    jobs = build_dir / "jobs"
    jobs.mkdir(exist_ok=True)
    job_dir = Path(tempfile.mkdtemp(prefix=f"{scenario['name']}-", dir=jobs))
    job_file = job_dir / "scenario.json"
    job_file.write_text(json.dumps({"config": config.to_dict(), "seed": seed, **scenario}))
    log = job_dir / "sim.log"
    with _tool_environment(simulator):
        try:
            _runner(simulator).test(
                test_module=BOARD_TEST_MODULE, hdl_toplevel=config.name,
                hdl_toplevel_lang="verilog", build_dir=build_dir / "sim", test_dir=job_dir,
                results_xml=str(job_dir / "results.xml"), extra_env={SCENARIO_ENV: str(job_file)},
                log_file=log, waves=waves, seed=seed)
        except (RuntimeError, SystemExit):
            pass
    out = job_dir / "outcome.json"
    if not out.is_file():
        raise SystolixError(f"board simulation produced no outcome; see {log}")
    outcome = json.loads(out.read_text())
    outcome["log"] = str(log)
    if outcome.get("passed") and not waves:
        shutil.rmtree(job_dir, ignore_errors=True)
    return outcome
