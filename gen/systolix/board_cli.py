"""``systolix board``: talk to a systolix board over its USB serial port.

``systolix board info`` prints what the board is; ``systolix board run`` multiplies two matrices
on it (any size: the host tiles the GEMM into engine-sized jobs).
"""

from __future__ import annotations

import json
import time

from .errors import SystolixError

__all__ = ["add_parsers", "COMMANDS"]


def _add_link_args(p):
    p.add_argument("--port", required=True,
                   help="serial port, e.g. /dev/ttyUSB0 (or a pyserial URL such as "
                        "socket://host:port)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    p.add_argument("--timeout", type=float, default=0.5, metavar="S",
                   help="seconds added to every reply timeout (default 0.5)")
    p.add_argument("--retries", type=int, default=3,
                   help="restarts of a job after a link error (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_parsers(sub):
    """Register ``board info`` and ``board run`` under the top-level subparsers ``sub``."""
    b = sub.add_parser("board", help="run GEMMs on a systolix board over USB serial")
    bsub = b.add_subparsers(dest="board_command", required=True, parser_class=type(b))
    i = bsub.add_parser("info", help="print the board's engine, clock and baud rate")
    _add_link_args(i)
    r = bsub.add_parser("run", help="C = A x B on the board")
    r.add_argument("--a", required=True, metavar="A.npy", help="M x K operand (.npy/.csv/.txt)")
    r.add_argument("--b", required=True, metavar="B.npy", help="K x N operand (.npy/.csv/.txt)")
    r.add_argument("-o", "--output", required=True, metavar="C.npy", help="where to write C")
    r.add_argument("--check", action="store_true",
                   help="compare with the numpy golden model (C is written only if it matches)")
    _add_link_args(r)


def _client(args):
    from .board.host import BoardClient, SerialTransport
    if args.baud <= 0:
        raise SystolixError(f"--baud must be positive, not {args.baud}")
    if args.retries < 0:
        raise SystolixError(f"--retries must be at least 0, not {args.retries}")
    transport = SerialTransport(args.port, args.baud)
    return BoardClient(transport, args.baud, margin=args.timeout, retries=args.retries), transport


def _info(args):
    client, transport = _client(args)
    try:
        info = client.info()
    finally:
        transport.close()
    if args.json:
        print(json.dumps({"port": args.port, "config": info.config.to_dict(),
                          "clk_hz": info.clk_hz, "baud": info.baud,
                          "timeout_cycles": info.timeout_cycles, "protocol": info.version}))
    else:
        print(info.describe())
    return 0


def _run(args):
    from .matrices import (check_gemm_shapes, check_operand, check_output_path, load_matrix,
                           save_matrix)
    a = load_matrix(args.a, "A")
    b = load_matrix(args.b, "B")
    check_gemm_shapes(a, b)
    check_output_path(args.output)
    client, transport = _client(args)
    try:
        info = client.info()
        check_operand(a, info.config.numerics, "A")
        check_operand(b, info.config.numerics, "B")
        t0 = time.monotonic()
        c = client.gemm(a, b, check=args.check)
        seconds = time.monotonic() - t0
    finally:
        transport.close()
    save_matrix(c, args.output)
    m, k = a.shape
    n = b.shape[1]
    s = client.stats
    summary = {"m": m, "k": k, "n": n, "port": args.port, "board": info.config.name,
               "checked": bool(args.check), "jobs": s.jobs, "retries": s.retries,
               "bytes_out": s.bytes_out, "bytes_in": s.bytes_in, "seconds": seconds,
               "macs_per_second": m * k * n / seconds if seconds else None,
               "output": args.output}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"C = A({m}x{k}) x B({k}x{n}) on {info.config.name} at {args.port} "
              f"({info.baud} baud)")
        print(f"  matches numpy : {'yes' if args.check else 'not checked (add --check)'}")
        print(f"  jobs          : {s.jobs} ({s.retries} retried)")
        print(f"  link          : {s.bytes_out} B out, {s.bytes_in} B in in {seconds:.2f} s "
              f"({summary['macs_per_second']:.0f} MAC/s)")
        print(f"  wrote         : {args.output}")
    return 0


COMMANDS = {"info": _info, "run": _run}


def main(args):
    """Dispatch ``systolix board <command>``."""
    return COMMANDS[args.board_command](args)
