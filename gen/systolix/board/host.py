"""Host side of the board link: :class:`BoardClient` runs GEMMs on a device over a transport.

The transport is anything with ``write(data)``, ``read(n, timeout) -> bytes`` (fewer bytes on
timeout) and ``reset_input_buffer()``: :class:`SerialTransport` wraps a pyserial port; the tests
plug in a simulated UART (``systolix_tb.board_test``), so the code below is what they exercise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..model import golden, tiling
from ..errors import SystolixError
from . import protocol as P

__all__ = ["SerialTransport", "BoardClient", "BoardError", "LinkStats", "job_link_bytes",
           "check_timeout", "MAX_MARGIN_S"]

#: Longest reply-timeout margin (seconds) :class:`BoardClient` accepts.
MAX_MARGIN_S = 3600.0


def check_timeout(name, value, *, maximum=MAX_MARGIN_S):
    """``value`` as a float if it is a finite number of seconds in 0..``maximum``; TypeError or
    ValueError naming ``name`` otherwise. A NaN timeout would make every wait endless, an
    infinite or negative one is refused by the serial port."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    value = float(value)
    if not (math.isfinite(value) and 0 <= value <= maximum):
        raise ValueError(f"{name} must be a finite number of seconds in 0..{maximum:g}, "
                         f"not {value}")
    return value


def _frames(nbytes, per_frame):
    return -(-nbytes // per_frame) if nbytes else 0


def job_link_bytes(config, m, k, n, max_frame=1024):
    """Bytes (to the board, from the board) of one M x K x N job as :class:`BoardClient` runs
    it, with no retries and no ERR_NOT_READY polls.

    Each request costs 6 bytes of framing and each reply 7, plus the payloads: JOB 6, the A
    and B words, and the C words. A tensor-core engine's A and B words are m x k and k x cols
    fragments.
    """
    cc = config.compute
    ab, bb, cb = (P.word_bytes(P.a_word_bits(config)), P.word_bytes(P.b_word_bits(config)),
                  P.word_bytes(P.c_word_bits(config)))
    a_words, b_words = cc.a_words(m, k), cc.b_words(k, n)
    c_words = m * -(-n // config.cols)
    frames_a = _frames(a_words, max(1, max_frame // ab))
    frames_b = _frames(b_words, max(1, max_frame // bb))
    frames_c = _frames(c_words, max(1, min(max_frame, P.MAX_PAYLOAD) // cb))
    requests = 1 + frames_a + frames_b + frames_c
    out = requests * P.REQUEST_OVERHEAD + 6 + a_words * ab + b_words * bb + 2 * frames_c
    inn = requests * P.REPLY_OVERHEAD + c_words * cb
    return out, inn


class BoardError(SystolixError):
    """The device answered with an error, or did not answer properly."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class SerialTransport:
    """A pyserial port as a transport.

    Parameters
    ----------
    port : str
        e.g. ``/dev/ttyUSB0``.
    baud : int
    """

    def __init__(self, port, baud):
        try:
            import serial
        except ImportError:
            raise SystolixError("the board link needs pyserial: pip install pyserial") from None
        try:
            self._serial = serial.serial_for_url(port, baudrate=baud, timeout=0.1)
        except (serial.SerialException, OSError, ValueError) as e:
            raise SystolixError(f"cannot open serial port {port}: {e}") from None

    def write(self, data):
        self._serial.write(data)
        self._serial.flush()

    def read(self, n, timeout):
        self._serial.timeout = check_timeout("timeout", timeout, maximum=1e9)
        return self._serial.read(n)

    def reset_input_buffer(self):
        self._serial.reset_input_buffer()

    def close(self):
        self._serial.close()


@dataclass
class LinkStats:
    """What crossed the link (for throughput reports)."""

    bytes_out: int = 0
    bytes_in: int = 0
    frames: int = 0
    retries: int = 0
    jobs: int = 0
    errors: list = field(default_factory=list)


class BoardClient:
    """Run GEMMs on a systolix board.

    Parameters
    ----------
    transport
        See the module docstring.
    baud : int
        The line rate, used to size reply timeouts.
    margin : float
        Seconds added to every reply timeout (USB latency, device processing), finite, 0 ..
        :data:`MAX_MARGIN_S`. The timeouts are in the transport's time: wall time on a serial
        port, simulated time in the tests.
    retries : int
        How often a job is restarted after an error or a lost reply before giving up.
    max_frame : int
        Largest WRITE payload per frame, in bytes (rounded down to whole words).
    """

    def __init__(self, transport, baud, *, margin=0.5, retries=3, max_frame=1024, log=None):
        if not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        margin = check_timeout("margin", margin)
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        if not isinstance(max_frame, int) or not 1 <= max_frame <= P.MAX_PAYLOAD:
            raise ValueError(f"max_frame must be in 1..{P.MAX_PAYLOAD}, not {max_frame!r}")
        self._t = transport
        self._baud = baud
        self._margin = margin
        self._retries = retries
        self._max_frame = max_frame
        self._log = log or (lambda msg: None)
        self._info = None
        self.stats = LinkStats()

    # -- frames

    def _line_time(self, nbytes):
        return nbytes * 10 / self._baud

    def request(self, op, payload=b"", reply_bytes=0):
        """Send one request and return its :class:`~systolix.board.protocol.Reply` (any status).

        Raises BoardError when no well-formed reply arrives in time.
        """
        frame = P.encode_request(op, payload)
        self._t.reset_input_buffer()
        self._t.write(frame)
        self.stats.bytes_out += len(frame)
        self.stats.frames += 1
        timeout = self._line_time(len(frame) + reply_bytes + P.REPLY_OVERHEAD) * 1.25 \
            + self._margin
        if self._info is not None:
            timeout += self._info.timeout_cycles / self._info.clk_hz
        parser = P.ReplyParser()
        remaining = timeout
        budget = reply_bytes + P.REPLY_OVERHEAD + 4096   # bytes we accept before giving up
        while True:
            want = parser.needed()
            data = self._t.read(want, remaining)
            self.stats.bytes_in += len(data)
            try:
                replies = parser.feed(data)
            except P.ProtocolError as e:
                raise BoardError(f"{P.Op(op).name}: corrupted reply ({e})") from None
            if replies:
                reply = replies[0]
                if reply.op != int(op) and reply.status == P.Status.OK:
                    raise BoardError(f"{P.Op(op).name}: reply is for opcode 0x{reply.op:02x}")
                return reply
            if len(data) < want:
                raise BoardError(f"{P.Op(op).name}: no reply within {timeout:.3g} s "
                                 f"(got {len(data)} of {want} bytes)")
            budget -= len(data)
            if budget < 0:
                raise BoardError(f"{P.Op(op).name}: no well-formed reply in "
                                 f"{reply_bytes + P.REPLY_OVERHEAD + 4096} bytes")
            remaining = timeout  # bytes keep coming: each chunk gets the full budget

    def _expect_ok(self, op, payload=b"", reply_bytes=0):
        reply = self.request(op, payload, reply_bytes)
        if not reply.ok:
            raise BoardError(f"{P.Op(op).name} failed: {reply.status_name}", reply.status)
        return reply

    # -- commands

    def info(self):
        """The device's :class:`~systolix.board.protocol.BoardInfo` (cached)."""
        if self._info is None:
            last = None
            for _ in range(self._retries + 1):
                try:
                    reply = self._expect_ok(P.Op.INFO, reply_bytes=64)
                    self._info = P.parse_info(reply.payload)
                    break
                except P.InfoError as e:   # a well-formed answer: asking again will not help
                    raise BoardError(f"refusing the board: {e}") from None
                except (BoardError, P.ProtocolError) as e:
                    last = e
                    self.stats.retries += 1
                    self._log(f"INFO retry: {e}")
            else:
                raise BoardError(f"no valid INFO from the board: {last}")
        return self._info

    def status(self):
        return P.parse_status(self._expect_ok(P.Op.STATUS, reply_bytes=16).payload)

    def abort(self):
        self._expect_ok(P.Op.ABORT)

    def _write_words(self, op, words, nbytes):
        per = max(1, self._max_frame // nbytes)
        for i in range(0, len(words), per):
            chunk = b"".join(w.to_bytes(nbytes, "little") for w in words[i:i + per])
            self._expect_ok(op, chunk)

    def run_job(self, a, b):
        """One engine-sized job (dimensions within the buffers), no retries; returns C.

        JOB, WRITE_A and WRITE_B frames of at most ``max_frame`` bytes, then READ_C frames
        (asked again while the board answers ERR_NOT_READY)."""
        info = self.info()
        cfg = info.config
        m, k = a.shape
        n = b.shape[1]
        self._expect_ok(P.Op.JOB, P.job_payload(m, k, n))
        self._write_words(P.Op.WRITE_A, tiling.engine_a_words(cfg, a), info.a_word_bytes)
        self._write_words(P.Op.WRITE_B, tiling.engine_b_words(cfg, b), info.b_word_bytes)
        total = m * -(-n // cfg.cols)
        per = max(1, min(self._max_frame, P.MAX_PAYLOAD) // info.c_word_bytes)
        words = []
        polls = 0
        while len(words) < total:
            count = min(per, total - len(words))
            reply = self.request(P.Op.READ_C, P.read_c_payload(count),
                                 count * info.c_word_bytes)
            if reply.status == P.Status.ERR_NOT_READY and polls < 1000:
                polls += 1
                continue
            if not reply.ok:
                raise BoardError(f"READ_C failed: {reply.status_name}", reply.status)
            if len(reply.payload) != count * info.c_word_bytes:
                raise BoardError(f"READ_C returned {len(reply.payload)} bytes, expected "
                                 f"{count * info.c_word_bytes}")
            nb = info.c_word_bytes
            words += [int.from_bytes(reply.payload[i:i + nb], "little")
                      for i in range(0, len(reply.payload), nb)]
        c, _ = tiling.engine_c_matrix(cfg, words, m, n)
        self.stats.jobs += 1
        return c

    def _drain(self):
        """After an error: wait until the line has been quiet for a while (a reply may still be
        on its way, or the board may be timing out a request), then drop what came."""
        quiet = self._line_time(32)
        if self._info is not None:
            quiet += self._info.timeout_cycles / self._info.clk_hz
        for _ in range(100):
            if not self._t.read(1 << 16, quiet):
                break
        self._t.reset_input_buffer()

    def _job_with_retries(self, a, b):
        last = None
        for attempt in range(self._retries + 1):
            if attempt:
                self._drain()
            try:
                return self.run_job(a, b)
            except BoardError as e:
                last = e
                self.stats.errors.append(str(e))
                self.stats.retries += 1
                self._log(f"job {a.shape[0]}x{a.shape[1]}x{b.shape[1]} attempt {attempt + 1}: "
                          f"{e}")
        raise BoardError(f"job failed after {self._retries + 1} attempts: {last}")

    def gemm(self, a, b, *, check=False):
        """C = A x B for any shape: tiled into engine-sized jobs, partial sums over K combined
        with the engine's numerics (wrapping); ``check`` compares with the numpy golden model.
        """
        info = self.info()
        cfg = info.config
        num = cfg.numerics
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise SystolixError(f"shape mismatch: A is {a.shape} but B is {b.shape}")
        for name, x in (("A", a), ("B", b)):
            if x.size and (x.min() < num.in_min or x.max() > num.in_max):
                raise SystolixError(f"{name} has values outside the {num.operand_type} range")
        M, K = a.shape
        N = b.shape[1]
        if num.saturate and K > cfg.max_k:
            raise SystolixError(f"K = {K} exceeds the board's max K = {cfg.max_k}, and a "
                                f"saturating accumulator cannot be split over K")
        # keep WS k-tiles whole: split K at multiples of the chunk
        kstep = cfg.max_k - cfg.max_k % cfg.accumulation_chunk if cfg.max_k >= \
            cfg.accumulation_chunk else cfg.max_k
        out = np.zeros((M, N), dtype=np.int64)
        for m0 in range(0, M, cfg.max_m):
            for n0 in range(0, N, cfg.max_n):
                acc = np.zeros((min(cfg.max_m, M - m0), min(cfg.max_n, N - n0)), np.int64)
                for k0 in range(0, K, kstep):
                    part = self._job_with_retries(a[m0:m0 + cfg.max_m, k0:k0 + kstep],
                                                  b[k0:k0 + kstep, n0:n0 + cfg.max_n])
                    acc = golden.wrap(acc + part.astype(np.int64), num.acc_width)
                out[m0:m0 + acc.shape[0], n0:n0 + acc.shape[1]] = acc
        c = out.astype(num.output_dtype)
        if check:
            want = golden.gemm(a, b, num, cfg.accumulation_chunk)
            if not np.array_equal(c, want):
                bad = np.argwhere(c != want)[0]
                raise BoardError(f"board result differs from numpy at C[{bad[0]}, {bad[1]}]: "
                                 f"{c[tuple(bad)]} != {want[tuple(bad)]}")
        return c
