"""``systolix board``: talk to a systolix board over its USB serial port.

``systolix board info`` prints what the board is; ``systolix board run`` multiplies two matrices
on it (any size: the host tiles the GEMM into engine-sized jobs); ``systolix board generate``
emits the board top's Verilog for a board's clock.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..board.host import BoardClient, SerialTransport
from ..board.protocol import MAX_TIMEOUT_S, PROTOCOL_VERSION
from ..board.sim import board_verilog
from ..board.top import LINK_RATES, BoardConfig
from ..errors import SystolixError
from ..emit import lint_config
from ..fileio import atomic_write_all
from ..model.matrices import (check_gemm_shapes, check_operand, check_output_path, load_matrix,
                              save_matrix)
from .common import add_gemm_files, add_baud, baud, integer, number_in, text
from .config_flags import add_design_flags, design_config

__all__ = ["add_parser", "COMMANDS"]


def _add_link_args(p):
    p.add_argument("--port", type=text, required=True,
                   help="serial port, e.g. /dev/ttyUSB0 (or a pyserial URL such as "
                        "socket://host:port)")
    add_baud(p, "baud rate")
    p.add_argument("--timeout", type=number_in(0, 3600), default=0.5, metavar="S",
                   help="seconds added to every reply timeout (default 0.5)")
    p.add_argument("--retries", type=integer, default=3,
                   help="restarts of a job after a link error (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_parser(sub):
    """Register ``board info``, ``board run`` and ``board generate`` under the top-level
    subparsers ``sub``."""
    b = sub.add_parser("board", help="run GEMMs on a systolix board over USB serial")
    b.set_defaults(handler=main)
    bsub = b.add_subparsers(dest="board_command", required=True, parser_class=type(b))
    i = bsub.add_parser("info", help="print the board's engine, clock and baud rate")
    _add_link_args(i)
    r = bsub.add_parser("run", help="C = A x B on the board")
    add_gemm_files(r)
    r.add_argument("--check", action="store_true",
                   help="compare with the numpy golden model (C is written only if it matches)")
    _add_link_args(r)

    g = bsub.add_parser("generate", help="emit the board top's Verilog (UART + link + engine)")
    g.add_argument("--board", choices=list(LINK_RATES), required=True,
                   help="sets the clock: ulx3s-85f 25 MHz, icebreaker 12 MHz")
    add_baud(g, "UART baud rate; fast: "
             + ", ".join(f"{b} {v['fast_baud']}" for b, v in LINK_RATES.items()))
    g.add_argument("--timeout-ms", type=number_in(0, MAX_TIMEOUT_S * 1e3), default=20.0,
                   help="inter-byte timeout abandoning a truncated request (default 20)")
    add_design_flags(g, kind="engine", buffers=16, arch=False)
    g.add_argument("-o", "--output", type=text, required=True, metavar="DIR",
                   help="directory for <name>.v and <name>.json")


def _generate(args):
    engine = design_config(args, "engine", "board generate")
    try:
        config = BoardConfig(engine, LINK_RATES[args.board]["clk_hz"], baud(args),
                             timeout_ms=args.timeout_ms)
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    verilog = board_verilog(config)
    manifest = {
        "module": config.name, "board": args.board, "config": config.to_dict(),
        "ports": [
            {"name": "clk", "direction": "input", "width": 1,
             "meaning": f"board clock, {config.clk_hz} Hz"},
            {"name": "rst", "direction": "input", "width": 1,
             "meaning": "synchronous reset, active high"},
            {"name": "uart_rx", "direction": "input", "width": 1,
             "meaning": "serial data from the host, 8N1, idle high"},
            {"name": "uart_tx", "direction": "output", "width": 1,
             "meaning": "serial data to the host, 8N1, idle high"},
            {"name": "leds", "direction": "output", "width": 3,
             "meaning": "0 idle, 1 busy (job open or engine working), 2 error (last reply)"},
        ],
        "protocol": {"version": PROTOCOL_VERSION, "info": config.info.hex()},
    }
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot write into {out}: {e.strerror}") from None
    paths = tuple(out / f"{config.name}{ext}" for ext in (".v", ".json", ".vlt"))
    atomic_write_all(dict(zip(paths, (verilog, json.dumps(manifest, indent=2) + "\n",
                                      lint_config(config.name, verilog)))))
    for path in paths:
        print(f"wrote {path}")
    return 0


def _client(args):
    args.baud = baud(args)
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


COMMANDS = {"info": _info, "run": _run, "generate": _generate}


def main(args):
    """Dispatch ``systolix board <command>``."""
    return COMMANDS[args.board_command](args)
