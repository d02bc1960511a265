"""Pieces every sub-command shares: the one-line parser, strict value types, shared flags."""

from __future__ import annotations

import argparse
import math
import re
import sys


__all__ = ["Parser", "add_gemm_files", "integer", "integer_in", "number_in", "text", "add_baud",
           "baud", "eprint", "SIMULATORS", "KindHelp"]

#: The simulators ``run``, ``infer`` and ``demo`` accept.
SIMULATORS = ("icarus", "verilator")

_INTEGER = re.compile(r"[+-]?[0-9]+")


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (no usage dump) and exit 2."""

    def error(self, message):
        self.exit(2, f"systolix: error: {message} (see '{self.prog} --help')\n")


def integer(value):
    """A decimal integer, strictly: no ``_`` digit separators, no spaces (unlike ``int()``)."""
    if not _INTEGER.fullmatch(value):
        raise argparse.ArgumentTypeError(f"invalid int value: {value!r}")
    return int(value)


def integer_in(lo, hi):
    """An argparse type: a strict :func:`integer` in ``lo..hi``."""
    def parse(value):
        n = integer(value)
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be in range {lo}..{hi}, not {n}")
        return n
    return parse


def number_in(lo, hi, unit=""):
    """An argparse type: a finite decimal number in ``lo..hi`` (no NaN, no infinity)."""
    def parse(value):
        try:
            x = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if "_" in value or not math.isfinite(x) or not lo <= x <= hi:
            raise argparse.ArgumentTypeError(f"must be in range {lo:g}..{hi:g}{unit}, "
                                             f"not {value}")
        return x
    return parse


def text(value):
    """A non-empty argument (a path, a port): ``""`` would silently mean "here"."""
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def add_gemm_files(p):
    """``--a``, ``--b`` and ``-o``: the operand files of C = A x B and where C goes."""
    p.add_argument("--a", type=text, required=True, metavar="A.npy",
                   help="M x K operand (.npy/.csv/.txt)")
    p.add_argument("--b", type=text, required=True, metavar="B.npy",
                   help="K x N operand (.npy/.csv/.txt)")
    p.add_argument("-o", "--output", type=text, required=True, metavar="C.npy",
                   help="where to write C")


def add_baud(p, what):
    """The one ``--baud`` flag (default :data:`systolix.board.top.DEFAULT_BAUD`); it stays
    ``None`` when not given, so a command can refuse it where it does not apply."""
    from ..board.top import DEFAULT_BAUD  # (the board's gateware: not for every command)
    p.add_argument("--baud", type=integer_in(1, 100_000_000), default=None, metavar="BAUD",
                   help=f"{what} (default {DEFAULT_BAUD})")


def baud(args):
    """``--baud`` or its default."""
    from ..board.top import DEFAULT_BAUD
    return DEFAULT_BAUD if args.baud is None else args.baud


def eprint(message):
    print(message, file=sys.stderr, flush=True)


class KindHelp(argparse.Action):
    """``-h``/``--help`` of a command with a design kind: once the kind is on the command
    line (``generate engine --help``), the help of that kind only."""

    def __init__(self, option_strings, dest, kind_parsers, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show this help (of the kind, if given) and exit")
        self.kind_parsers = kind_parsers

    def __call__(self, parser, namespace, values, option_string=None):
        kind = getattr(namespace, "kind", None)
        (self.kind_parsers()[kind] if kind else parser).print_help()
        parser.exit()
