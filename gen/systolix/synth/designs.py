"""Registry of design kinds that ``synth``, ``sweep`` and ``build`` accept.

A *design* is a frozen config object with ``.name``, ``.macs`` and ``.to_dict()``, plus a
function that turns it into an Amaranth :class:`~amaranth.lib.wiring.Component`. The synthesis
flow knows nothing else about it: the I/O harness walks the component's signature. Registering
a new kind (a weight-stationary array, a matrix engine, a tensor core) is one
:func:`register` call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from ..config import EngineConfig, SystolicConfig, TensorCoreConfig
from ..emit import build as _emit_build
from ..errors import SystolixError

__all__ = ["DesignKind", "register", "get_kind", "KINDS"]


@dataclass(frozen=True)
class DesignKind:
    """How to make and build one kind of design.

    Attributes
    ----------
    name : str
        Kind name on the command line, e.g. ``systolic``.
    build : callable
        ``build(config) -> wiring.Component``.
    from_dict : callable
        ``from_dict(config.to_dict()) -> config`` (sweep workers receive dicts).
    sweep_configs : callable or None
        ``sweep_configs(sizes, variants, base) -> list of configs``: the design space a
        ``systolix sweep`` walks (``sizes`` are ``(rows, cols)`` pairs, ``variants`` are
        architecture option strings, ``base`` the config built from the engine flags).
    """

    name: str
    build: Callable
    from_dict: Callable
    sweep_configs: Callable | None = None


KINDS: dict = {}


def register(kind: DesignKind):
    """Add (or replace) a design kind."""
    if not isinstance(kind, DesignKind):
        raise TypeError(f"kind must be a DesignKind, not {kind!r}")
    KINDS[kind.name] = kind
    return kind


def get_kind(name):
    try:
        return KINDS[name]
    except KeyError:
        raise SystolixError(f"unknown design kind {name!r}; choose one of "
                            f"{', '.join(KINDS)}") from None


def kind_of(config):
    """The registered kind whose name is ``config.to_dict()["kind"]``."""
    return get_kind(config.to_dict()["kind"])


# --- the output-stationary systolic array --------------------------------------------------

def _systolic_build(config):
    return _emit_build(config)  # output- or weight-stationary, by the config's dataflow


def _systolic_from_dict(d):
    return SystolicConfig.from_dict(d)


def _systolic_sweep(sizes, variants, base):
    configs = []
    for rows, cols in sizes:
        for variant in variants or [None]:
            changes = {"rows": rows, "cols": cols}
            if variant is not None:
                changes["pipeline"] = variant
            try:
                configs.append(dataclasses.replace(base, **changes))
            except (TypeError, ValueError) as e:
                raise SystolixError(f"sweep point {rows}x{cols} {variant or ''}: {e}") from None
    return configs


register(DesignKind("systolic", _systolic_build, _systolic_from_dict, _systolic_sweep))


# --- the matrix engine (array + buffers + controller) --------------------------------------

def _engine_from_dict(d):
    return EngineConfig.from_dict(d)


def _engine_sweep(sizes, variants, base):
    if base.array is None:
        raise SystolixError("sweep walks array sizes: it takes a systolic engine, not a "
                            "tensor-core one")
    arrays = _systolic_sweep(sizes, variants, base.array)
    return [dataclasses.replace(base, array=a) for a in arrays]


register(DesignKind("engine", _systolic_build, _engine_from_dict, _engine_sweep))


# --- the tensor-core MMA unit ---------------------------------------------------------------

def _tensorcore_from_dict(d):
    return TensorCoreConfig.from_dict(d)


register(DesignKind("tensorcore", _systolic_build, _tensorcore_from_dict))
