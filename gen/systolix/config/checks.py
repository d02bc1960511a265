"""Argument checks shared by the configs: precise "must be X, not Y" errors."""

from __future__ import annotations

__all__ = ["check_int", "check_bool"]


def check_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        span = f"at least {lo}" if hi is None else f"in range {lo}..{hi}"
        raise ValueError(f"{name} must be {span}, not {value}")


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
