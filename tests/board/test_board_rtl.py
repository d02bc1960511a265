"""The whole board design (UART -> host link -> engine -> UART) on Icarus and Verilator, driven
by the real host library through a bit-level UART model at the board's clock and baud rate."""

import json
import threading
import time

import numpy as np
import pytest

from helpers import WORK_DIR
from systolix.board.sim import run_board
from systolix.board.top import BoardConfig
from systolix.cli.app import main
from systolix.config import Dataflow, EngineConfig, Numerics, SystolicConfig, TensorCoreConfig

pytestmark = pytest.mark.rtl

SIMULATORS = [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=pytest.mark.verilator),
]

#: iCEBreaker clock at the default baud rate: 104 clocks per bit, ~1 ms per 10 bytes.
ICEBREAKER_115200 = BoardConfig(
    EngineConfig(SystolicConfig(2, 2, Dataflow.OUTPUT_STATIONARY), 4, 6, 5), 12_000_000, 115200,
    timeout_ms=2.0)
#: iCEBreaker clock at its fast rate, 3 Mbaud (4 clocks per bit), weight-stationary engine.
ICEBREAKER_3M = BoardConfig(
    EngineConfig(SystolicConfig(2, 3, Dataflow.WEIGHT_STATIONARY), 5, 6, 7), 12_000_000,
    3_000_000, timeout_ms=0.05)


def _check(outcome, where):
    assert outcome["passed"], f"{where}: {outcome['failures']} (log: {outcome['log']})"
    exact = [m for m in outcome["measurements"] if m["exact"]]
    assert exact, f"{where}: no GEMM was checked"
    for m in outcome["measurements"]:
        print(f"{where} {m['label']} {m['shape']}: {m['sim_seconds'] * 1e3:.2f} ms simulated, "
              f"{m['bytes_out']} B out, {m['bytes_in']} B in, {m['wall_seconds']:.1f} s wall")


@pytest.mark.parametrize("simulator", [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=[pytest.mark.verilator, pytest.mark.slow]),
])
def test_gemm_at_board_clock_and_115200_baud(simulator, seed):
    """INFO, then a 3x5x4 GEMM through UART at 12 MHz / 115200 baud, bit-exact. (Verilator
    needs a build of its own for this design, so it runs with the slow tests.)"""
    out = run_board(ICEBREAKER_115200, {"name": "gemm", "shapes": [[3, 5, 4]]}, simulator,
                    WORK_DIR, seed=seed)
    _check(out, f"[{ICEBREAKER_115200.name} on {simulator}, seed {seed}]")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_tiled_gemms_at_3_mbaud(simulator, seed):
    """GEMMs larger than the buffers in every dimension, tiled by the host (K split too)."""
    shapes = [[1, 1, 1], [5, 6, 7], [7, 8, 9]]   # the last: 2 x 2 x 2 jobs
    out = run_board(ICEBREAKER_3M, {"name": "gemm", "shapes": shapes}, simulator, WORK_DIR,
                    seed=seed)
    _check(out, f"[{ICEBREAKER_3M.name} on {simulator}, seed {seed}]")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_malformed_frames_faults_and_reset_then_exact_gemms(simulator, seed):
    """Corrupted CRC and payload, unknown opcode, wrong lengths, garbage, a glitch and a cut-off
    byte, oversize and zero dimensions, writes and reads without a job, overrun, partial
    words, reading beyond the job, a truncated frame (timeout reply); then GEMMs through a link
    that corrupts, truncates and pads frames (the client retries), and a reset mid-frame. Every
    reply must carry the expected status and every GEMM must be exact."""
    out = run_board(ICEBREAKER_3M, {"name": "errors"}, simulator, WORK_DIR, seed=seed)
    _check(out, f"[{ICEBREAKER_3M.name} on {simulator}, seed {seed}]")
    assert out["fault_retries"] >= 1
    # the device abandons a truncated frame (5 bytes) after its timeout, then replies (7 bytes)
    byte = 10 / ICEBREAKER_3M.baud
    expected = 5 * byte + ICEBREAKER_3M.timeout_ms * 1e-3 + 7 * byte
    assert expected - byte < out["timeout_reply_seconds"] < expected + 2 * byte


#: A tensor-core engine on the link: two 2x2x3 MMA units (C tiles 2 x 4), 6-bit operands (A
#: words 6 x 6 bits, B words 3 x 4 x 6 bits: fragments, not rows), 3 Mbaud at the iCEBreaker
#: clock.
ICEBREAKER_TC_3M = BoardConfig(
    EngineConfig(None, 5, 6, 7, core=TensorCoreConfig(2, 2, 3, 1, Numerics(in_width=6)),
                 cores=2), 12_000_000, 3_000_000, timeout_ms=0.05)


@pytest.mark.parametrize("simulator", [
    pytest.param("icarus", id="icarus"),
    pytest.param("verilator", id="verilator", marks=[pytest.mark.verilator, pytest.mark.slow]),
])
@pytest.mark.parametrize("scenario", ["gemm", "errors"])
def test_tensor_core_engine_on_the_link(scenario, simulator, seed):
    """A tensor-core engine behind the UART: INFO (v2) describes its core, the host packs m x k
    and k x cols fragments, tiles K at multiples of k; exact GEMMs (one job, padded edges, and
    beyond the buffers in every dimension), the bytes on the line equal the framing model, and
    the malformed-frame scenario. (Verilator needs a build of its own: slow.)"""
    job = ({"name": "gemm", "shapes": [[1, 1, 1], [5, 6, 7], [3, 5, 4], [7, 15, 13]]}
           if scenario == "gemm" else {"name": "errors"})
    out = run_board(ICEBREAKER_TC_3M, job, simulator, WORK_DIR, seed=seed)
    _check(out, f"[{ICEBREAKER_TC_3M.name} on {simulator}, seed {seed}]")
    assert all(m["exact"] for m in out["measurements"])
    # the single-job GEMMs were checked against job_link_bytes on the line
    assert sum("line_seconds" in m for m in out["measurements"]) == (3 if scenario == "gemm"
                                                                     else 2)


def test_cli_board_run_through_a_pseudo_terminal(tmp_path, seed, capsys):
    """`systolix board run` and `board info`, as a user types them, against the simulated board
    (Icarus) behind a pseudo-terminal: the CLI opens the pty with pyserial like a USB port."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (4, 9))
    b = rng.integers(-128, 128, (9, 6))
    np.save(tmp_path / "A.npy", a)
    np.save(tmp_path / "B.npy", b)
    scenario = {"name": "pty", "pty_file": str(tmp_path / "pty"),
                "stop_file": str(tmp_path / "stop"), "wall_limit": 300}
    result = []
    sim = threading.Thread(target=lambda: result.append(
        run_board(ICEBREAKER_3M, scenario, "icarus", WORK_DIR, seed=seed)))
    sim.start()
    try:
        for _ in range(1200):
            if (tmp_path / "pty").is_file() or not sim.is_alive():
                break
            time.sleep(0.05)
        port = (tmp_path / "pty").read_text()
        link = ["--port", port, "--baud", "3000000", "--timeout", "20"]
        assert main(["board", "info", *link]) == 0
        assert "engine_ws_2x3_int8_acc32_wrap_5x6x7" in capsys.readouterr().out
        assert main(["board", "run", *link, "--a", str(tmp_path / "A.npy"), "--b",
                     str(tmp_path / "B.npy"), "-o", str(tmp_path / "C.npy"), "--check",
                     "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
    finally:
        (tmp_path / "stop").write_text("")
        sim.join(timeout=120)
    assert result and result[0]["passed"], result
    np.testing.assert_array_equal(np.load(tmp_path / "C.npy"), a @ b)
    # 4x9x6 on 5x6x7 buffers: K is split in two (at 6, a multiple of R = 2)
    assert summary["jobs"] == 2 and summary["checked"]
    print(f"seed {seed}: {summary}")


ULX3S_115200 = BoardConfig(
    EngineConfig(SystolicConfig(4, 4, Dataflow.OUTPUT_STATIONARY), 8, 8, 8), 25_000_000, 115200)
ULX3S_1M = BoardConfig(
    EngineConfig(SystolicConfig(4, 4, Dataflow.WEIGHT_STATIONARY), 16, 16, 16), 25_000_000,
    1_000_000, timeout_ms=1.0)


@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("config", [ULX3S_115200, ULX3S_1M], ids=["ulx3s-115200", "ulx3s-1M"])
def test_ulx3s_rates(config, simulator, seed):
    """ULX3S clock (25 MHz) at 115200 and 1 Mbaud on 4 x 4 engines; Icarus (~12 k cycles/s on
    these designs) gets the smaller share."""
    if config.baud < 1_000_000:
        shapes = [[8, 8, 8]]
    else:
        shapes = [[16, 16, 16]] + ([[20, 33, 17]] if simulator == "verilator" else [])
    out = run_board(config, {"name": "gemm", "shapes": shapes}, simulator, WORK_DIR, seed=seed)
    _check(out, f"[{config.name} on {simulator}, seed {seed}]")
