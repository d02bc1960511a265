"""Board link without RTL simulation: the protocol codec, the UART (Amaranth simulator, baud
mismatch tolerance), configuration checks, the board CLI's error paths."""

import binascii
import gc

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module
from amaranth.sim import Simulator

from systolix.board import protocol as P
from systolix.board.top import BoardConfig, BoardPlatformTop, BoardTop
from systolix.cli.app import main
from systolix.config import Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig
from systolix.hdl.link.hostlink import HostLink, crc16_step
from systolix.hdl.link.uart import UartRx, UartTx, uart_divisor

pytestmark = [pytest.mark.model, pytest.mark.amaranth, pytest.mark.rtl]

ENGINE = EngineConfig(SystolicConfig(2, 3, Dataflow.WEIGHT_STATIONARY,
                                     Numerics(acc_width=24, saturate=True)), 5, 6, 7)


def test_crc16_check_value_and_request_bytes():
    assert P.crc16(b"123456789") == 0x29B1   # CRC-16/CCITT-FALSE check value
    frame = P.encode_request(P.Op.JOB, P.job_payload(3, 5, 4))
    assert frame.hex(" ") == "a5 02 06 00 03 00 05 00 04 00 bf e0"   # README's example
    assert P.encode_reply(P.Op.JOB, P.Status.OK).hex(" ") == "5a 02 00 00 00 a8 69"
    # an independent implementation: binascii's CRC-CCITT with initial value 0xFFFF
    rng = np.random.default_rng(1)
    for n in (0, 1, 7, 300):
        data = bytes(rng.integers(0, 256, n, dtype=np.uint8))
        assert P.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


def test_hdl_crc_step_matches_the_protocol(seed):
    m = Module()
    from amaranth.hdl import Signal
    crc, byte = Signal(16), Signal(8)
    out = crc16_step(m, crc, byte)
    rng = np.random.default_rng(seed)
    sim = Simulator(m)

    async def bench(ctx):
        for c, b in zip(rng.integers(0, 65536, 300), rng.integers(0, 256, 300)):
            ctx.set(crc, int(c))
            ctx.set(byte, int(b))
            assert ctx.get(out) == P.crc16(bytes([int(b)]), int(c))
    sim.add_testbench(bench)
    sim.run()


def test_reply_parser_skips_garbage_splits_and_rejects_bad_crc():
    r1 = P.encode_reply(P.Op.STATUS, P.Status.OK, bytes(range(9)))
    r2 = P.encode_reply(P.Op.READ_C, P.Status.ERR_NOT_READY)
    parser = P.ReplyParser()
    stream = b"\x00\xff\x13" + r1 + r2
    got = []
    for i in range(len(stream)):          # byte by byte
        got += parser.feed(stream[i:i + 1])
    assert [(r.op, r.status, r.payload) for r in got] == [
        (P.Op.STATUS, 0, bytes(range(9))), (P.Op.READ_C, P.Status.ERR_NOT_READY, b"")]
    assert parser.skipped == 3 and got[1].status_name == "ERR_NOT_READY"
    bad = bytearray(r1)
    bad[6] ^= 0x10
    with pytest.raises(P.ProtocolError, match="CRC"):
        P.ReplyParser().feed(bytes(bad))


def test_info_and_status_round_trip():
    info = P.parse_info(P.info_payload(ENGINE, 12_000_000, 3_000_000, 600))
    assert info.config == ENGINE and (info.clk_hz, info.baud, info.timeout_cycles) == \
        (12_000_000, 3_000_000, 600)
    assert (info.a_word_bytes, info.b_word_bytes, info.c_word_bytes) == (2, 3, 9)
    with pytest.raises(P.ProtocolError, match="magic"):
        P.parse_info(b"XXXX" + P.info_payload(ENGINE, 1, 1, 1)[4:])
    block = P.StatusBlock(busy=True, result_ready=False, job_open=True, job_failed=False,
                          engine_error=True, cycles=1234, c_left=77)
    assert P.parse_status(P.status_payload(block)) == block
    assert P.status_payload(block)[0] == 0b10101


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_uart_divisor_and_board_config_checks():
    assert uart_divisor(25_000_000, 115200) == 217
    assert uart_divisor(12_000_000, 3_000_000) == 4
    with pytest.raises(ValueError, match="too fast"):
        uart_divisor(12_000_000, 4_000_000)
    with pytest.raises(ValueError, match="off"):
        uart_divisor(12_000_000, 2_600_000)   # divisor 5 gives 2.4 Mbaud: 7.7 % off
    with pytest.raises(TypeError, match="baud must be an integer"):
        uart_divisor(12_000_000, 115200.0)
    with pytest.raises(TypeError, match="config must be a BoardConfig"):
        BoardTop(ENGINE)
    with pytest.raises(ValueError, match="requantized"):
        BoardConfig(EngineConfig(SystolicConfig(2, 2), requant=RequantConfig(2)), 12_000_000)
    with pytest.raises(ValueError, match="shorter than two bytes"):
        BoardConfig(ENGINE, 12_000_000, 115200, timeout_ms=0.1)
    with pytest.raises(ValueError, match="timeout_cycles must be at least 16"):
        HostLink(ENGINE, b"x", 8)
    cfg = BoardConfig(ENGINE, 12_000_000, 3_000_000, timeout_ms=0.05)
    assert BoardConfig.from_dict(cfg.to_dict()) == cfg and cfg.timeout_cycles == 600
    gc.collect()  # report the half-built components here, where the warning is filtered


def _uart_bench(divisor, bit_cycles, values, glitch=False):
    """Drive a UartRx with bytes of ``bit_cycles`` per bit; returns what it received."""
    rx = UartRx(divisor)
    sim = Simulator(rx)
    sim.add_clock(1e-6)
    got = []

    async def bench(ctx):
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(5)
        if glitch:
            ctx.set(rx.rx, 0)
            await ctx.tick()
            ctx.set(rx.rx, 1)
            await ctx.tick().repeat(3 * divisor)
        t = 0.0
        for v in values:
            for level in [0] + [(v >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx.rx, level)
                t += bit_cycles
                while t >= 1:
                    await ctx.tick()
                    t -= 1
                    if ctx.get(rx.valid):
                        got.append(ctx.get(rx.data))
        for _ in range(3 * divisor):
            await ctx.tick()
            if ctx.get(rx.valid):
                got.append(ctx.get(rx.data))
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("mismatch", [-0.035, 0.0, 0.035])
def test_uart_rx_tolerates_documented_baud_mismatch(mismatch, seed):
    """Divisor 16: the documented tolerance is (0.5 - 1/16) / 9.5 = 4.6 %; 3.5 % must pass."""
    rng = np.random.default_rng(seed)
    values = [0x00, 0xFF, 0x55, 0xAA] + [int(v) for v in rng.integers(0, 256, 8)]
    assert _uart_bench(16, 16 * (1 + mismatch), values) == values


def test_uart_rx_ignores_a_glitch_and_rejects_a_bad_stop_bit():
    assert _uart_bench(8, 8, [0x5A], glitch=True) == [0x5A]
    # far too slow a sender: the stop bit is sampled inside the data -> dropped or garbage
    assert _uart_bench(8, 8 * 1.25, [0x00]) != [0x00]


def test_uart_tx_frames_bytes():
    tx = UartTx(5)
    sim = Simulator(tx)
    sim.add_clock(1e-6)
    levels = []

    async def bench(ctx):
        ctx.set(tx.i.valid, 1)
        ctx.set(tx.i.payload, 0xA5)
        await ctx.tick()
        ctx.set(tx.i.valid, 0)
        for _ in range(60):
            levels.append(ctx.get(tx.tx))
            await ctx.tick()
    sim.add_testbench(bench)
    sim.run()
    bits = levels[2:52:5]   # mid-bit samples
    assert bits == [0] + [(0xA5 >> i) & 1 for i in range(8)] + [1]
    assert all(levels[52:])


class _StubPlatform:
    """Just enough of an amaranth-boards platform for BoardPlatformTop to elaborate."""

    default_clk_frequency = 12e6

    def __init__(self, leds):
        self.requested = []
        self._leds = leds

    def request(self, name, number=0):
        from types import SimpleNamespace
        from amaranth.hdl import Signal
        if name == "led" and number >= self._leds:
            raise LookupError(name)
        self.requested.append((name, number))
        pin = lambda: SimpleNamespace(i=Signal(), o=Signal())  # noqa: E731
        return SimpleNamespace(rx=pin(), tx=pin(), o=Signal())


def test_platform_adapter_requests_uart_and_leds():
    cfg = BoardConfig(ENGINE, 12_000_000, 115200)
    platform = _StubPlatform(leds=2)
    Fragment.get(BoardPlatformTop(cfg), platform)
    assert platform.requested == [("uart", 0), ("led", 0), ("led", 1), ("led_r", 0)]
    platform.default_clk_frequency = 25e6
    with pytest.raises(ValueError, match="platform clock is 25000000 Hz"):
        Fragment.get(BoardPlatformTop(cfg), platform)


def test_board_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["board", "info", "--port", str(tmp_path / "ttyNONE")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("systolix: error: cannot open serial port") and err.count("\n") == 1
    # a port that only echoes (pyserial's loopback): no reply from a board
    assert main(["board", "info", "--port", "loop://", "--timeout", "0.02",
                 "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "no valid INFO" in err and err.count("\n") == 1
    np.save(tmp_path / "A.npy", np.ones((2, 3), np.int64))
    np.save(tmp_path / "B.npy", np.ones((4, 2), np.int64))
    assert main(["board", "run", "--port", "loop://", "--a", str(tmp_path / "A.npy"),
                 "--b", str(tmp_path / "B.npy"), "-o", str(tmp_path / "C.npy")]) == 1
    assert "shape mismatch" in capsys.readouterr().err
    assert not (tmp_path / "C.npy").exists()


@pytest.mark.verilator
def test_board_verilog_is_lint_clean():
    """`verilator --lint-only -Wall` on a whole board design, with its emitted waivers only."""
    from helpers import WORK_DIR, lint_with_config
    from systolix.board.sim import board_verilog
    from systolix.emit import lint_config
    cfg = BoardConfig(ENGINE, 12_000_000, 3_000_000, timeout_ms=0.05)
    out_dir = WORK_DIR / "lint"
    out_dir.mkdir(parents=True, exist_ok=True)
    v = out_dir / f"{cfg.name}.v"
    v.write_text(board_verilog(cfg))
    vlt = v.with_suffix(".vlt")
    vlt.write_text(lint_config(cfg.name, v.read_text()))
    lint_with_config(v, vlt, cfg.name)


def test_readme_worked_example_bytes():
    """The byte example in README's "Board link" section, rebuilt from the engine's packing."""
    from systolix.model import tiling
    cfg = EngineConfig(SystolicConfig(2, 2), 4, 6, 5)
    a = np.array([[1, 2, 3], [4, 5, 6]])
    b = np.array([[1, 0], [0, 1], [1, 1]])
    words = lambda ws: b"".join(w.to_bytes(2, "little") for w in ws)  # noqa: E731
    assert P.encode_request(P.Op.JOB, P.job_payload(2, 3, 2)).hex(" ") == \
        "a5 02 06 00 02 00 03 00 02 00 20 28"
    assert P.encode_request(P.Op.WRITE_A, words(tiling.engine_a_words(cfg, a))).hex(" ") == \
        "a5 03 06 00 01 04 02 05 03 06 56 4a"
    assert P.encode_request(P.Op.WRITE_B, words(tiling.engine_b_words(cfg, b))).hex(" ") == \
        "a5 04 06 00 01 00 00 01 01 01 d6 55"
    assert P.encode_request(P.Op.READ_C, P.read_c_payload(2)).hex(" ") == "a5 06 02 00 02 00 83 57"
    c = b"".join(int(x).to_bytes(4, "little", signed=True) for x in (4, 5, 10, 11))
    assert P.encode_reply(P.Op.READ_C, P.Status.OK, c).hex(" ") == (
        "5a 06 00 10 00 04 00 00 00 05 00 00 00 0a 00 00 00 0b 00 00 00 fd b8")
    assert P.encode_reply(P.Op.JOB, P.Status.ERR_CRC).hex(" ") == "5a 02 01 00 00 98 5e"
    words_c = [int.from_bytes(c[i:i + 8], "little") for i in (0, 8)]
    np.testing.assert_array_equal(tiling.engine_c_matrix(cfg, words_c, 2, 2)[0], a @ b)


def test_board_generate_cli(tmp_path, capsys):
    assert main(["board", "generate", "--board", "ulx3s-85f", "--rows", "2", "--cols", "2",
                 "--baud", "1000000", "-o", str(tmp_path)]) == 0
    name = "board_engine_os_2x2_int8_acc32_wrap_16x16x16_25000khz_1000000bd_to500000"
    assert (tmp_path / f"{name}.v").read_text().count(f"module {name}(") == 1
    import json
    manifest = json.loads((tmp_path / f"{name}.json").read_text())
    assert manifest["config"]["divisor"] == 25
    info = P.parse_info(bytes.fromhex(manifest["protocol"]["info"]))
    assert (info.clk_hz, info.baud, info.config.rows) == (25_000_000, 1_000_000, 2)
    capsys.readouterr()
    assert main(["board", "generate", "--board", "icebreaker", "--baud", "4000000",
                 "-o", str(tmp_path / "x")]) == 1
    assert "too fast" in capsys.readouterr().err and not (tmp_path / "x").exists()


def _stub_client(config):
    """A BoardClient whose jobs are computed by the golden model (tiling logic only)."""
    from systolix.model import golden
    from systolix.board.host import BoardClient
    client = BoardClient(transport=None, baud=115200)
    client._info = P.BoardInfo(config, 12_000_000, 115200, 1000)
    jobs = []

    def run_job(a, b):
        assert a.shape[0] <= config.max_m and a.shape[1] <= config.max_k \
            and b.shape[1] <= config.max_n, "job beyond the buffers"
        jobs.append((a.shape[0], a.shape[1], b.shape[1]))
        return golden.gemm(a, b, config.numerics, config.accumulation_chunk)
    client.run_job = run_job
    return client, jobs


@pytest.mark.parametrize("dataflow", list(Dataflow), ids=lambda d: d.value)
def test_host_tiling_combines_partial_sums_with_the_engines_numerics(dataflow, seed):
    """GEMMs beyond the buffers in every dimension, into a 20-bit wrapping accumulator that
    overflows, must equal the golden model of the whole GEMM (K split on chunk boundaries)."""
    from systolix.model import golden
    num = Numerics(acc_width=20)
    config = EngineConfig(SystolicConfig(3, 2, dataflow, num), 4, 7, 5)
    client, jobs = _stub_client(config)
    rng = np.random.default_rng(seed)
    for m, k, n in [(9, 20, 11), (1, 1, 1), (4, 7, 5), (5, 8, 6)]:
        a = rng.integers(-128, 128, (m, k))
        b = rng.integers(-128, 128, (k, n))
        a[0], b[:, 0] = -128, -128             # C[0, 0] = k * 2^14 overflows 20 bits
        jobs.clear()
        c = client.gemm(a, b, check=True)
        np.testing.assert_array_equal(c, golden.gemm(a, b, num, config.accumulation_chunk))
        kstep = 7 if dataflow is Dataflow.OUTPUT_STATIONARY else 6   # WS: multiple of R = 3
        assert len(jobs) == -(-m // 4) * -(-n // 5) * -(-k // kstep)
        assert all(j[1] <= kstep for j in jobs)


def test_host_refuses_to_split_k_of_a_saturating_engine():
    from systolix.errors import SystolixError
    config = EngineConfig(SystolicConfig(2, 2, numerics=Numerics(saturate=True)), 4, 4, 4)
    client, _ = _stub_client(config)
    assert client.gemm(np.ones((5, 4), np.int64), np.ones((4, 6), np.int64)).sum() == 5 * 6 * 4
    with pytest.raises(SystolixError, match="saturating accumulator cannot be split over K"):
        client.gemm(np.ones((2, 5), np.int64), np.ones((5, 2), np.int64))
    with pytest.raises(SystolixError, match="outside the int8 range"):
        client.gemm(np.full((2, 2), 128), np.ones((2, 2), np.int64))
