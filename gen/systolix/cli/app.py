"""``systolix`` command line: the parser built from every command's module, and dispatch.

Every user error ends as one line on stderr (``systolix: error: ...``) and a non-zero exit:
1 for a bad input or environment, 2 for a malformed command line.
"""

from __future__ import annotations

import sys

from .. import __version__
from ..errors import SystolixError
from . import board, demo, generate, infer, regress, run, synth
from .common import Parser

__all__ = ["main"]

#: The command modules, in the order of ``systolix --help``; each has ``add_parser(sub)``,
#: which adds its command(s) with a ``handler`` default.
COMMANDS = [generate, run, infer, board, demo, synth, regress]


def _parser():
    p = Parser(prog="systolix",
               description="Generate int8 matrix engines as hardware (Verilog), run GEMMs and an "
                           "MLP on them in simulation, synthesize them for FPGAs and talk to a "
                           "board.")
    p.add_argument("--version", action="version", version=f"systolix {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="command")
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except SystolixError as e:
        print(f"systolix: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("systolix: interrupted", file=sys.stderr)
        return 130
