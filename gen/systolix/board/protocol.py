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
import struct
from dataclasses import dataclass

from ..config import Dataflow, EngineConfig, Numerics, SystolicConfig

__all__ = ["REQUEST_SYNC", "REPLY_SYNC", "Op", "Status", "crc16", "encode_request",
           "encode_reply", "Reply", "ReplyParser", "ProtocolError", "BoardInfo", "info_payload",
           "parse_info", "job_payload", "read_c_payload", "StatusBlock", "parse_status",
           "word_bytes", "PROTOCOL_VERSION", "INFO_MAGIC", "MAX_PAYLOAD", "REPLY_OVERHEAD",
           "REQUEST_OVERHEAD", "FIXED_LENGTH", "STATUS_PAYLOAD_BYTES", "status_payload"]

REQUEST_SYNC = 0xA5
REPLY_SYNC = 0x5A
PROTOCOL_VERSION = 1
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

_INFO_FORMAT = "<4sBBHHBBBHHHIII"


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
        return word_bytes(self.config.rows * self.config.numerics.in_width)

    @property
    def b_word_bytes(self):
        return word_bytes(self.config.cols * self.config.numerics.in_width)

    @property
    def c_word_bytes(self):
        return word_bytes(self.config.cols * self.config.numerics.acc_width)

    def describe(self):
        c = self.config
        return (f"{c.name}: {c.rows}x{c.cols} {c.dataflow.name.lower().replace('_', '-')} "
                f"array, {c.numerics.operand_type} operands, {c.numerics.acc_width}-bit "
                f"{c.numerics.overflow} accumulator, buffers up to M={c.max_m} K={c.max_k} "
                f"N={c.max_n}; clock {self.clk_hz} Hz, {self.baud} baud, protocol v{self.version}")


def info_payload(config: EngineConfig, clk_hz, baud, timeout_cycles):
    """The INFO reply's payload for a device built from ``config``."""
    n = config.numerics
    flags = int(n.signed) | (int(n.saturate) << 1)
    return struct.pack(_INFO_FORMAT, INFO_MAGIC, PROTOCOL_VERSION,
                       0 if config.dataflow is Dataflow.OUTPUT_STATIONARY else 1,
                       config.rows, config.cols, n.in_width, n.acc_width, flags,
                       config.max_m, config.max_k, config.max_n, clk_hz, baud, timeout_cycles)


def parse_info(payload):
    """Inverse of :func:`info_payload`; raises ProtocolError on a malformed block."""
    if len(payload) != struct.calcsize(_INFO_FORMAT):
        raise ProtocolError(f"INFO payload has {len(payload)} bytes, expected "
                            f"{struct.calcsize(_INFO_FORMAT)}")
    (magic, version, dataflow, rows, cols, in_w, acc_w, flags, max_m, max_k, max_n, clk_hz,
     baud, timeout) = struct.unpack(_INFO_FORMAT, payload)
    if magic != INFO_MAGIC:
        raise ProtocolError(f"not a systolix board (INFO magic {magic!r})")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"board speaks protocol v{version}, this host v{PROTOCOL_VERSION}")
    try:
        numerics = Numerics(in_width=in_w, acc_width=acc_w, signed=bool(flags & 1),
                            saturate=bool(flags & 2))
        config = EngineConfig(SystolicConfig(rows, cols, Dataflow.WEIGHT_STATIONARY if dataflow
                                             else Dataflow.OUTPUT_STATIONARY, numerics),
                              max_m, max_k, max_n)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"INFO describes an invalid engine: {e}") from None
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
