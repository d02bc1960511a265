"""The design flags and the one function that turns them into a config.

``generate``, ``run``, ``synth``, ``sweep``, ``build`` and ``board generate`` describe a design
with the same flags; :func:`add_design_flags` adds them and :func:`design_config` /
:func:`run_config` are the only places that turn them into a :class:`SystolicConfig`,
:class:`EngineConfig` or :class:`TensorCoreConfig`. A flag that does not apply to the kind is
refused, never ignored.
"""

from __future__ import annotations

import argparse

from .. import kinds
from ..config import (DEFAULT_MMA_PIPELINE, MULTIPLIERS, PIPELINES, Dataflow, EngineConfig,
                      Numerics, RequantConfig, SystolicConfig, TensorCoreConfig)
from ..emit import check_buffer_size
from ..errors import SystolixError
from .common import integer

__all__ = ["GENERATE_KINDS", "ENGINE_DEFAULT_MAX", "add_design_flags", "design_config",
           "check_run_flags", "run_config"]

#: The design kinds of ``generate`` (and of ``synth``/``sweep``/``build``), with their help:
#: the registry's command-line kinds (:func:`systolix.kinds.command_line_names`).
GENERATE_KINDS = {name: kinds.get(name).summary for name in kinds.command_line_names()}

#: Default buffer limits of a generated engine (M, K, N up to 64 each).
ENGINE_DEFAULT_MAX = 64

#: Flags of one core kind only, with their defaults: None on the parser means "not given", so
#: the flags of the other kind are refused instead of ignored.
_SYSTOLIC_ONLY = {"rows": 8, "cols": 8, "dataflow": "os", "mult": "dsp"}
_TENSORCORE_ONLY = {"m": 4, "n": 4, "k": 4}


def _show(kind, *kinds):
    """``help`` for a flag of ``kinds``: hidden in the help of any other kind (the flag is still
    parsed, so that it can be refused with a precise message)."""
    return kind is None or kind in kinds


def add_design_flags(p, *, kind=None, buffers=ENGINE_DEFAULT_MAX, arch=True, engine=False):
    """Add the design flags to ``p``.

    Parameters
    ----------
    kind : str or None
        Show only the flags of this kind in the help (all flags are parsed either way).
    buffers : int or None
        Default of ``--max-m/k/n``; ``None`` = the GEMM's own dimensions (``run``).
    arch : bool
        Add the tensor-core and ``--arch``/``--cores`` flags.
    engine : bool
        The flags describe an engine whatever ``kind`` says (``run --engine``, ``board``).
    """
    def shown(help, *kinds):
        return help if _show(kind, *kinds) else argparse.SUPPRESS

    g = p.add_argument_group("array" if kind != "tensorcore" else "numerics")
    g.add_argument("--rows", type=integer, default=None,
                   help=shown("array rows R (default 8)", "systolic", "engine"))
    g.add_argument("--cols", type=integer, default=None,
                   help=shown("array columns C (default 8)", "systolic", "engine"))
    g.add_argument("--dataflow", choices=[d.value for d in Dataflow], default=None,
                   help=shown("os = output-stationary (default), ws = weight-stationary",
                              "systolic", "engine"))
    g.add_argument("--in-width", type=integer, default=8, help="operand bits, 2..16 (default 8)")
    g.add_argument("--acc-width", type=integer, default=32,
                   help="accumulator bits (default 32; results are int64 above 32)")
    g.add_argument("--unsigned", action="store_true", help="unsigned operands (default signed)")
    g.add_argument("--saturate", action="store_true",
                   help="saturate the accumulator instead of wrapping")
    array_pipe = f"PE register stages before the adder (either dataflow), one of " \
                 f"{', '.join(PIPELINES)} (default none)"
    mma_pipe = f"register stages in each dot-product unit, 0..ceil(log2 k)+2 (default " \
               f"{DEFAULT_MMA_PIPELINE})"
    g.add_argument("--pipeline", default=None, metavar="P",
                   help={"systolic": array_pipe, "tensorcore": mma_pipe}.get(
                       kind, f"arrays: {array_pipe}; tensor cores: {mma_pipe}"))

    g.add_argument("--mult", choices=list(MULTIPLIERS), default=None,
                   help=shown("the PEs' multipliers: dsp = DSP blocks (default), lut = built "
                              "from LUTs, auto = every DSP block of the target first, LUTs for "
                              "the remaining PEs",
                              "systolic", "engine"))

    b = p.add_argument_group("engine buffers")
    for dim, what in (("m", "rows of A and C"), ("k", "columns of A / rows of B"),
                      ("n", "columns of B and C")):
        b.add_argument(f"--max-{dim}", type=integer, default=None, metavar="N",
                       help=shown(f"largest {dim.upper()} ({what}) the buffers hold"
                                  + (f" (default {buffers})" if buffers else
                                     " (default: this GEMM's own)"), "engine"))
    b.add_argument("--buffering", choices=["single", "double"], default=None,
                   help=shown("single (default) or double (ping-pong) buffers: double hides "
                              "the next job's load and the previous job's drain behind "
                              "compute, at twice the block RAM", "engine"))
    p.set_defaults(max_default=buffers)
    b.add_argument("--requant", nargs="?", const="int8", choices=["int8", "uint8"],
                   default=None, metavar="TYPE",
                   help=shown("requantize C on its way out to int8 (default) or uint8, with "
                              "per-column parameters loaded with each job", "engine"))
    if not arch:
        return

    t = p.add_argument_group("tensorcore")
    t.add_argument("--m", type=integer, help=shown("rows of A, C and D (default 4)",
                                                   "tensorcore", "engine"))
    t.add_argument("--n", type=integer, help=shown("columns of B, C and D (default 4)",
                                                   "tensorcore", "engine"))
    t.add_argument("--k", type=integer, help=shown("columns of A, rows of B: the dot-product "
                                                   "length (default 4)", "tensorcore", "engine"))
    c = p.add_argument_group("engine core")
    c.add_argument("--arch", choices=["systolic", "tensorcore"], default=None,
                   help=shown("the engine's compute core: a systolic array (default; --rows, "
                              "--cols, --dataflow) or tensor-core MMA units (--m, --n, --k, "
                              "--pipeline, --cores)", "engine"))
    c.add_argument("--cores", type=integer, default=None,
                   help=shown("MMA units side by side of a tensor-core engine (default 1)",
                              "engine"))


def _mma_pipeline(value):
    """A tensor core's ``--pipeline``: register stages, an integer (default 1)."""
    if value is None:
        return DEFAULT_MMA_PIPELINE
    try:
        return integer(value)
    except argparse.ArgumentTypeError:
        raise SystolixError(f"--pipeline of a tensor core is a number of register stages, not "
                            f"{value!r}") from None


def _resolve_arch(args, label, tensorcore, allow_cores):
    """Refuse flags of the other core kind (naming them and ``label``), fill in defaults."""
    mine, other = ((_TENSORCORE_ONLY, _SYSTOLIC_ONLY) if tensorcore else
                   (_SYSTOLIC_ONLY, _TENSORCORE_ONLY))
    given = [f"--{name}" for name in other if getattr(args, name, None) is not None]
    if not allow_cores and getattr(args, "cores", None) is not None:
        given.append("--cores")
    if given:
        raise SystolixError(f"{', '.join(given)} cannot be used with '{label}'")
    for name, default in mine.items():
        if getattr(args, name, None) is None:
            setattr(args, name, default)
    if allow_cores and args.cores is None:
        args.cores = 1


def _given_limits(args):
    return [f"--max-{d}" for d in "mkn" if getattr(args, f"max_{d}") is not None]


def _given_engine_options(args):
    return [f"--{name}" for name in ("buffering", "requant")
            if getattr(args, name, None) is not None]


def _config(args, engine, engine_hint, dims=None):
    """The array or engine config of the (resolved) flags; ``dims`` (m, k, n) fills unset
    engine buffer limits."""
    try:
        numerics = Numerics(in_width=args.in_width, acc_width=args.acc_width,
                            signed=not args.unsigned, saturate=args.saturate)
        tensorcore = getattr(args, "arch", None) == "tensorcore"
        if tensorcore:
            core = TensorCoreConfig(m=args.m, n=args.n, k=args.k,
                                    pipeline=_mma_pipeline(args.pipeline), numerics=numerics)
        else:
            array = SystolicConfig(rows=args.rows, cols=args.cols,
                                   dataflow=Dataflow(args.dataflow), numerics=numerics,
                                   pipeline="none" if args.pipeline is None else args.pipeline,
                                   mult=args.mult)
        buffering = getattr(args, "buffering", None)
        if not engine:
            given = _given_limits(args) + (["--buffering"] if buffering else [])
            if given:
                raise SystolixError(f"{given[0]} sizes an engine's buffers: use it with "
                                    f"{engine_hint}")
            given = _given_engine_options(args)
            if given:
                raise SystolixError(f"{given[0]} configures an engine: use it with "
                                    f"{engine_hint}")
            return array
        default = args.max_default
        limits = [getattr(args, f"max_{d}") for d in "mkn"]
        if dims is not None:
            limits = [dim if lim is None else lim for lim, dim in zip(limits, dims)]
        limits = [default if lim is None else lim for lim in limits]
        extra = {}
        if getattr(args, "buffering", None) is not None:
            extra["buffering"] = args.buffering
        if getattr(args, "requant", None) is not None:
            cols = core.n * args.cores if tensorcore else array.cols
            extra["requant"] = RequantConfig(cols, out_signed=args.requant == "int8")
        config = (EngineConfig(None, *limits, core=core, cores=args.cores, **extra)
                  if tensorcore else EngineConfig(array, *limits, **extra))
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None
    if dims is not None:
        for d, dim, lim in zip("MKN", dims, limits):
            if dim > lim:
                raise SystolixError(f"{d} = {dim} exceeds the engine's buffers (max {d} = {lim});"
                                    f" raise --max-{d.lower()}")
    check_buffer_size(config)
    return config


def design_config(args, kind, verb):
    """The config of ``<verb> <kind>`` (``generate``, ``synth``, ``sweep``, ``build``,
    ``board generate``); flags of another kind are an error naming ``<verb> <kind>``."""
    arch = getattr(args, "arch", None)
    if kind != "engine" and arch is not None:
        raise SystolixError(f"--arch selects an engine's core: it cannot be used with "
                            f"'{verb} {kind}'")
    tensorcore = kind == "tensorcore" or arch == "tensorcore"
    label = f"{verb} engine --arch tensorcore" if kind == "engine" and tensorcore else \
        f"{verb} {kind}"
    if kind == "engine" and verb not in ("generate", "synth") \
            and getattr(args, "requant", None) is not None:
        # (a sweep changes the array's cols, which the requantizer's lanes must follow; the
        # board's host link has no requantization parameters)
        raise SystolixError(f"--requant cannot be used with '{verb} engine'")
    if kind == "tensorcore":
        given = _given_limits(args) + _given_engine_options(args)
        if given:
            raise SystolixError(f"{', '.join(given)} cannot be used with '{label}'")
    _resolve_arch(args, label, tensorcore, allow_cores=kind == "engine" and tensorcore)
    if kind != "tensorcore":
        return _config(args, kind == "engine", "engine")
    try:
        return TensorCoreConfig(
            m=args.m, n=args.n, k=args.k, pipeline=_mma_pipeline(args.pipeline),
            numerics=Numerics(in_width=args.in_width, acc_width=args.acc_width,
                              signed=not args.unsigned, saturate=args.saturate))
    except (TypeError, ValueError) as e:
        raise SystolixError(str(e)) from None


def check_run_flags(args):
    """Refuse the core flags ``run`` cannot use (before any file is read)."""
    tensorcore = args.arch == "tensorcore"
    if tensorcore and not args.engine:
        raise SystolixError("the tensor-core MMA units need the engine's controller to tile "
                            "the GEMM: add --engine")
    _resolve_arch(args, "run --arch tensorcore" if tensorcore else "run --arch systolic",
                  tensorcore, allow_cores=tensorcore)


def run_config(args, dims):
    """The config of ``run``: the bare array, or with ``--engine`` an engine whose unset buffer
    limits are the GEMM's dimensions ``dims`` (m, k, n)."""
    check_run_flags(args)
    if getattr(args, "requant", None) is not None:
        raise SystolixError("--requant needs requantization parameters per job: 'run' takes "
                            "none (use 'systolix infer')")
    config = _config(args, args.engine, "--engine", dims)
    if isinstance(config, SystolicConfig) and config.dataflow is Dataflow.WEIGHT_STATIONARY:
        raise SystolixError("the weight-stationary array needs the engine's controller to "
                            "schedule its weights: add --engine")
    return config
