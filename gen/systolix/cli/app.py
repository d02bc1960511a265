"""``systolix`` command line: the parser built from every command's module, and dispatch.

Every user error ends as one line on stderr (``systolix: error: ...``) and a non-zero exit:
1 for a bad input or environment, 2 for a malformed command line.
"""

from __future__ import annotations

import sys

from .. import __version__
from ..errors import SystolixError
from ..process import stop_on_signals
from . import estimate

__all__ = ["main"]


def _commands():
    """The command modules, in the order of ``systolix --help``; each has ``add_parser(sub)``,
    which adds its command(s) with a ``handler`` default. ``estimate`` alone is imported when
    it is the command: the others import the generator (Amaranth), which it must not wait for."""
    from . import board, demo, generate, infer, regress, run, synth
    return [generate, run, estimate, infer, board, demo, synth, regress]


def _parser(commands=None):
    """The parser of ``commands`` (default: every command)."""
    from .common import Parser
    commands = _commands() if commands is None else commands
    p = Parser(prog="systolix",
               description="Generate int8 matrix engines as hardware (Verilog), run GEMMs and an "
                           "MLP on them in simulation, synthesize them for FPGAs and talk to a "
                           "board.")
    p.add_argument("--version", action="version", version=f"systolix {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="command")
    for module in commands:
        module.add_parser(sub)
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser([estimate] if argv[:1] == ["estimate"] else _commands()).parse_args(argv)
    try:
        # SIGTERM/SIGHUP unwind like an exception: every tool started through
        # systolix.process.run_command dies with its whole process group (a build script's
        # yosys and nextpnr included), and partial outputs are removed
        with stop_on_signals():
            return args.handler(args)
    except SystolixError as e:
        print(f"systolix: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("systolix: interrupted", file=sys.stderr)
        return 130
