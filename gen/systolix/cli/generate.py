"""``systolix generate <kind>``: emit Verilog and a JSON manifest."""

from __future__ import annotations

from ..emit import write_design
from .common import KindHelp, Parser, text
from .config_flags import GENERATE_KINDS, add_design_flags, design_config

__all__ = ["add_parser"]


def _add_flags(p, kind):
    if kind is None:
        p.add_argument("kind", choices=list(GENERATE_KINDS),
                       help="; ".join(f"{k} = {what}" for k, what in GENERATE_KINDS.items()))
    add_design_flags(p, kind=kind)
    p.add_argument("-o", "--output", type=text, required=True, metavar="DIR",
                   help="directory for <name>.v and <name>.json")


def _kind_parsers():
    parsers = {}
    for kind, what in GENERATE_KINDS.items():
        parsers[kind] = Parser(prog=f"systolix generate {kind}",
                               description=f"Emit Verilog and a JSON manifest of {what}.")
        _add_flags(parsers[kind], kind)
    return parsers


def add_parser(sub):
    p = sub.add_parser("generate", help="emit Verilog and a JSON manifest", add_help=False)
    p.add_argument("-h", "--help", action=KindHelp, kind_parsers=_kind_parsers)
    _add_flags(p, None)
    p.set_defaults(handler=_generate)


def _generate(args):
    config = design_config(args, args.kind, "generate")
    for path in write_design(config, args.output):
        print(f"wrote {path}")
    return 0
