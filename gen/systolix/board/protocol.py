"""The board link's frame format: the one definition of opcodes, status codes, CRC and payloads.

Shared by the hardware generator (:mod:`systolix.hdl.link.hostlink` takes its constants and the INFO
block from here), the host library (:mod:`systolix.board.host`) and the tests.

Frames (all multi-byte fields little-endian)::

    request  (host -> device):  A5 | op | len_lo len_hi | payload (len bytes) | crc_lo crc_hi
    reply    (device -> host):  5A | op | status | len_lo len_hi | payload   | crc_lo crc_hi

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR; check value 0x29B1 for ``b"123456789"``) over every byte after the sync byte up to the end
of the payload. The device answers every request it sees with exactly one reply, also for a
malformed one (status != OK), and discards bytes outside frames (anything before a sync byte).
A request that stops arriving for ``timeout_cycles`` is abandoned with ``ERR_TIMEOUT``.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass

from ..config import Dataflow, EngineConfig, Numerics, SystolicConfig, TensorCoreConfig

__all__ = ["REQUEST_SYNC", "REPLY_SYNC", "Op", "Status", "crc16", "encode_request",
           "encode_reply", "Reply", "ReplyParser", "ProtocolError", "InfoError", "BoardInfo",
           "info_payload", "parse_info", "check_link_rates", "job_payload", "read_c_payload",
           "StatusBlock", "parse_status", "word_bytes", "a_word_bits", "b_word_bits",
           "c_word_bits", "PROTOCOL_VERSION", "PROTOCOL_VERSIONS", "INFO_MAGIC", "MAX_PAYLOAD",
           "REPLY_OVERHEAD", "REQUEST_OVERHEAD", "FIXED_LENGTH", "STATUS_PAYLOAD_BYTES",
           "status_payload", "CLOCK_RANGE_HZ", "MIN_BAUD", "MAX_TIMEOUT_S"]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
#: The version this package's devices report. Version 2 added the engine's core (tensor-core
#: engines) to INFO; the host still reads a version-1 INFO (systolic engines only).
PROTOCOL_VERSION = 2
PROTOCOL_VERSIONS = (1, 2)
INFO_MAGIC = b"SXLB"
#: Largest payload a length field can state.
MAX_PAYLOAD = 0xFFFF
REQUEST_OVERHEAD = 6   # sync, op, len (2), crc (2)
REPLY_OVERHEAD = 7     # sync, op, status, len (2), crc (2)


class Op(enum.IntEnum):
    """Request opcodes (echoed in the reply)."""

    #: Payload none. Reply: the INFO block (:func:`info_payload`).
    INFO = 0x01
    #: Payload ``m, k, n`` (u16 each). Aborts any job, resets the engine and opens a job of these
    #: dimensions: the engine now takes A and B words. ``ERR_DIMS`` if a dimension is 0 or beyond
    #: the buffers (no job is open then).
    JOB = 0x02
    #: Payload: whole A words of the open job, in the engine's stream order (each word
    #: ``a_word_bytes`` bytes, lane 0 in the low bits). Several frames may follow each other.
    WRITE_A = 0x03
    #: Payload: whole B words, as WRITE_A.
    WRITE_B = 0x04
    #: Payload none. Reply: the status block (:func:`parse_status`).
    STATUS = 0x05
    #: Payload ``count`` (u16). Reply: the next ``count`` C words (``c_word_bytes`` each).
    #: ``ERR_NOT_READY`` while the engine is still loading or computing (nothing consumed).
    READ_C = 0x06
    #: Payload none. Resets the engine and closes any job.
    ABORT = 0x07


class Status(enum.IntEnum):
    """Reply status codes."""

    OK = 0x00
    ERR_CRC = 0x01        #: the request's CRC is wrong
    ERR_LENGTH = 0x02     #: the length does not suit the opcode (or is not whole words)
    ERR_OPCODE = 0x03     #: unknown opcode
    ERR_TIMEOUT = 0x04    #: the request stopped arriving (truncated); it was abandoned
    ERR_DIMS = 0x05       #: JOB with a dimension that is 0 or beyond the buffers
    ERR_STATE = 0x06      #: WRITE/READ without an open job, or after the job failed
    ERR_OVERRUN = 0x07    #: more A or B words than the job takes
    ERR_NOT_READY = 0x08  #: READ_C before the result is ready
    ERR_RANGE = 0x09      #: READ_C count is 0, beyond the words left, or too long for a frame


#: Requests whose payload has a fixed length.
FIXED_LENGTH = {Op.INFO: 0, Op.JOB: 6, Op.STATUS: 0, Op.READ_C: 2, Op.ABORT: 0}


class ProtocolError(Exception):
    """A reply that cannot be decoded (bad sync, CRC or length)."""


class InfoError(ProtocolError):
    """A well-formed INFO reply that describes no device this host can use (unknown protocol
    version, invalid engine, implausible clock, baud rate or timeout). Asking again would give
    the same answer."""


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (continue a running CRC by passing it as ``crc``)."""
    for byte in bytes(data):
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def _check_payload(payload):
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return payload


def encode_request(op, payload=b""):
    """One request frame as bytes."""
    payload = _check_payload(payload)
    body = bytes([int(op) & 0xFF]) + struct.pack("<H", len(payload)) + payload
    return bytes([REQUEST_SYNC]) + body + struct.pack("<H", crc16(body))


def encode_reply(op, status, payload=b""):
    """One reply frame as bytes (what the device sends)."""
    payload = _check_payload(payload)
    body = bytes([int(op) & 0xFF, int(status)]) + struct.pack("<H", len(payload)) + payload
    return bytes([REPLY_SYNC]) + body + struct.pack("<H", crc16(body))


@dataclass(frozen=True)
class Reply:
    op: int
    status: int
    payload: bytes

    @property
    def ok(self):
        return self.status == Status.OK

    @property
    def status_name(self):
        try:
            return Status(self.status).name
        except ValueError:
            return f"status 0x{self.status:02x}"


class ReplyParser:
    """Incremental decoder of reply frames: :meth:`feed` bytes, collect :class:`Reply` objects.

    Bytes before a sync byte are skipped (counted in ``skipped``); a frame whose CRC fails raises
    :class:`ProtocolError` (after which the parser hunts for the next sync byte).
    """

    def __init__(self):
        self._buf = bytearray()
        self.skipped = 0

    def needed(self):
        """Bytes still missing for the frame being parsed (at least 1)."""
        if len(self._buf) < 5:
            return 5 - len(self._buf) + 2
        length = self._buf[3] | (self._buf[4] << 8)
        return max(1, 5 + length + 2 - len(self._buf))

    def feed(self, data):
        """Add bytes; returns the list of complete replies."""
        out = []
        for byte in bytes(data):
            if not self._buf and byte != REPLY_SYNC:
                self.skipped += 1
                continue
            self._buf.append(byte)
            if len(self._buf) >= 5:
                length = self._buf[3] | (self._buf[4] << 8)
                if len(self._buf) == 5 + length + 2:
                    frame, self._buf = bytes(self._buf), bytearray()
                    body, crc = frame[1:-2], frame[-2] | (frame[-1] << 8)
                    if crc16(body) != crc:
                        raise ProtocolError(f"reply CRC 0x{crc:04x} != 0x{crc16(body):04x}")
                    out.append(Reply(op=body[0], status=body[1], payload=body[4:]))
        return out


def word_bytes(bits):
    """Bytes carrying a ``bits``-bit word (lane 0 in the low bits, little-endian, zero-padded)."""
    return (bits + 7) // 8


# -- INFO: what the device is

#: Clock frequencies a board design may run at (and an INFO reply may report).
CLOCK_RANGE_HZ = (1_000_000, 1_000_000_000)
#: Slowest UART rate a board design may use.
MIN_BAUD = 1200
#: Longest inter-byte timeout of a board design, in seconds.
MAX_TIMEOUT_S = 60.0

#: Version 1: magic, version, dataflow (0 os, 1 ws), rows, cols, in_width, acc_width, flags
#: (bit 0 signed, bit 1 saturate), max_m, max_k, max_n, clock Hz, baud, timeout cycles.
_INFO_V1 = "<4sBBHHBBBHHHIII"
#: Version 2: version 1 with core 2 = tensor core, then the MMA unit's m, n, k, pipeline and
#: the number of units (all 0 for a systolic engine).
_INFO_V2 = _INFO_V1 + "BBBBB"
_INFO_FORMATS = {1: _INFO_V1, 2: _INFO_V2}
_CORE_CODES = {Dataflow.OUTPUT_STATIONARY: 0, Dataflow.WEIGHT_STATIONARY: 1}
_TENSORCORE_CODE = 2


def a_word_bits(config: EngineConfig):
    """Bits of one ``a`` stream word: ``rows`` operands, or an m x k fragment."""
    return math.prod(config.compute.a_word) * config.numerics.in_width


def b_word_bits(config: EngineConfig):
    """Bits of one ``b`` stream word: ``cols`` operands, or a k x cols fragment."""
    return math.prod(config.compute.b_word) * config.numerics.in_width


def c_word_bits(config: EngineConfig):
    """Bits of one C word on the link: ``cols`` accumulators (one row of a C tile)."""
    return config.cols * config.numerics.acc_width


def check_link_rates(clk_hz, baud, timeout_cycles=None):
    """Refuse a clock, baud rate or inter-byte timeout (if given) no board design has
    (ValueError naming the value). The same rules hold for a design being built
    (:class:`BoardConfig <systolix.board.top.BoardConfig>`) and for what a device reports in
    INFO."""
    from ..hdl.link.uart import uart_divisor
    lo, hi = CLOCK_RANGE_HZ
    if not lo <= clk_hz <= hi:
        raise ValueError(f"clock must be in {lo}..{hi} Hz, not {clk_hz} Hz")
    if baud < MIN_BAUD:
        raise ValueError(f"baud must be at least {MIN_BAUD}, not {baud}")
    divisor = uart_divisor(clk_hz, baud)
    if timeout_cycles is None:
        return
    if timeout_cycles < 16 * divisor:
        raise ValueError(f"timeout of {timeout_cycles} cycles is shorter than two bytes on the "
                         f"line ({16 * divisor} cycles at {baud} baud)")
    if timeout_cycles > MAX_TIMEOUT_S * clk_hz:
        raise ValueError(f"timeout of {timeout_cycles} cycles is longer than {MAX_TIMEOUT_S:g} "
                         f"s at {clk_hz} Hz")


@dataclass(frozen=True)
class BoardInfo:
    """The device's configuration, as its INFO reply reports it."""

    config: EngineConfig
    clk_hz: int
    baud: int
    timeout_cycles: int
    version: int = PROTOCOL_VERSION

    @property
    def a_word_bytes(self):
        return word_bytes(a_word_bits(self.config))

    @property
    def b_word_bytes(self):
        return word_bytes(b_word_bits(self.config))

    @property
    def c_word_bytes(self):
        return word_bytes(c_word_bits(self.config))

    def describe(self):
        c = self.config
        if c.core is not None:
            t = c.core
            core = (f"{c.cores} x {t.m}x{t.n}x{t.k} tensor-core MMA unit"
                    f"{'s' if c.cores > 1 else ''} (pipeline {t.pipeline}, {c.rows}x{c.cols} "
                    f"C tiles)")
        else:
            core = f"{c.rows}x{c.cols} {c.dataflow.name.lower().replace('_', '-')} array"
        return (f"{c.name}: {core}, {c.numerics.operand_type} operands, "
                f"{c.numerics.acc_width}-bit {c.numerics.overflow} accumulator, buffers up to "
                f"M={c.max_m} K={c.max_k} N={c.max_n}; clock {self.clk_hz} Hz, {self.baud} baud, "
                f"protocol v{self.version}")


def info_payload(config: EngineConfig, clk_hz, baud, timeout_cycles):
    """The INFO reply's payload (protocol :data:`PROTOCOL_VERSION`) for a device built from
    ``config``."""
    n = config.numerics
    flags = int(n.signed) | (int(n.saturate) << 1)
    t = config.core
    core = (_TENSORCORE_CODE, t.m, t.n, t.k, t.pipeline, config.cores) if t is not None else \
        (_CORE_CODES[config.dataflow], 0, 0, 0, 0, 0)
    return struct.pack(_INFO_V2, INFO_MAGIC, PROTOCOL_VERSION, core[0],
                       config.rows, config.cols, n.in_width, n.acc_width, flags,
                       config.max_m, config.max_k, config.max_n, clk_hz, baud, timeout_cycles,
                       *core[1:])


def parse_info(payload):
    """Inverse of :func:`info_payload`, also for a version-1 device.

    Raises :class:`ProtocolError` on a block of the wrong size or magic, and
    :class:`InfoError` on a well-formed block that describes no usable device: an unknown
    protocol version or core, an invalid engine (dimensions, widths, buffers), or a clock, baud
    rate or timeout outside :func:`check_link_rates`.
    """
    payload = bytes(payload)
    if len(payload) < 5:
        raise ProtocolError(f"INFO payload has {len(payload)} bytes, too short for a header")
    if payload[:4] != INFO_MAGIC:
        raise ProtocolError(f"not a systolix board (INFO magic {payload[:4]!r})")
    version = payload[4]
    if version not in _INFO_FORMATS:
        raise InfoError(f"board speaks protocol v{version}, this host "
                        f"v{PROTOCOL_VERSIONS[0]}..v{PROTOCOL_VERSIONS[-1]}")
    fmt = _INFO_FORMATS[version]
    if len(payload) != struct.calcsize(fmt):
        raise ProtocolError(f"INFO v{version} payload has {len(payload)} bytes, expected "
                            f"{struct.calcsize(fmt)}")
    fields = struct.unpack(fmt, payload)
    (_, _, code, rows, cols, in_w, acc_w, flags, max_m, max_k, max_n, clk_hz, baud,
     timeout) = fields[:14]
    tc_m, tc_n, tc_k, tc_pipeline, cores = fields[14:] or (0, 0, 0, 0, 0)
    if code not in _CORE_CODES.values() and not (version >= 2 and code == _TENSORCORE_CODE):
        raise InfoError(f"INFO v{version} names an unknown engine core {code}")
    if flags >> 2:
        raise InfoError(f"INFO has unknown numerics flags 0x{flags:02x}")
    try:
        numerics = Numerics(in_width=in_w, acc_width=acc_w, signed=bool(flags & 1),
                            saturate=bool(flags & 2))
        if code == _TENSORCORE_CODE:
            config = EngineConfig(None, max_m, max_k, max_n,
                                  core=TensorCoreConfig(tc_m, tc_n, tc_k, tc_pipeline, numerics),
                                  cores=cores)
        else:
            if (tc_m, tc_n, tc_k, tc_pipeline, cores) != (0, 0, 0, 0, 0):
                raise ValueError("a systolic engine has no tensor-core fields")
            config = EngineConfig(SystolicConfig(rows, cols, Dataflow.WEIGHT_STATIONARY if code
                                                 else Dataflow.OUTPUT_STATIONARY, numerics),
                                  max_m, max_k, max_n)
        if (config.rows, config.cols) != (rows, cols):
            raise ValueError(f"C tiles of {rows}x{cols} do not match {cores} x "
                             f"{tc_m}x{tc_n}x{tc_k} MMA units")
    except (TypeError, ValueError) as e:
        raise InfoError(f"INFO describes an invalid engine: {e}") from None
    try:
        check_link_rates(clk_hz, baud, timeout)
    except (TypeError, ValueError) as e:
        raise InfoError(f"INFO describes an implausible device: {e}") from None
    return BoardInfo(config, clk_hz, baud, timeout, version)


def job_payload(m, k, n):
    return struct.pack("<HHH", m, k, n)


def read_c_payload(count):
    return struct.pack("<H", count)


# -- STATUS

_STATUS_FORMAT = "<BII"


@dataclass(frozen=True)
class StatusBlock:
    """The STATUS reply: flags, the last job's compute cycles, C words left to read."""

    busy: bool          #: the engine is loading, computing or draining
    result_ready: bool  #: C words are waiting to be read
    job_open: bool      #: a JOB was accepted and has not failed or been aborted
    job_failed: bool    #: the open job lost data (bad frame during WRITE, overrun): reopen it
    engine_error: bool  #: the engine rejected the last command
    cycles: int
    c_left: int

    FLAG_BITS = ("busy", "result_ready", "job_open", "job_failed", "engine_error")


def status_payload(block: StatusBlock):
    flags = sum(int(getattr(block, name)) << i for i, name in enumerate(StatusBlock.FLAG_BITS))
    return struct.pack(_STATUS_FORMAT, flags, block.cycles, block.c_left)


def parse_status(payload):
    if len(payload) != struct.calcsize(_STATUS_FORMAT):
        raise ProtocolError(f"STATUS payload has {len(payload)} bytes, expected "
                            f"{struct.calcsize(_STATUS_FORMAT)}")
    flags, cycles, c_left = struct.unpack(_STATUS_FORMAT, payload)
    bits = {name: bool(flags >> i & 1) for i, name in enumerate(StatusBlock.FLAG_BITS)}
    return StatusBlock(cycles=cycles, c_left=c_left, **bits)


STATUS_PAYLOAD_BYTES = struct.calcsize(_STATUS_FORMAT)
