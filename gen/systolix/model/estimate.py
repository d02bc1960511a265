"""Cycle estimates of any design and GEMM from the exact cycle models, without any RTL.

The numbers are those of :mod:`systolix.model.cycles` (the same formulas the RTL tests check
cycle for cycle), so an estimate for a size that was never generated is exact if the hardware
is what the generator would emit for it. :data:`VERIFIED_RECORD` names the benchmark results
that say which sizes have been run in RTL.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import Dataflow, EngineConfig, SystolicConfig, TensorCoreConfig
from ..config.core import TensorCore
from .cycles import engine_cycles, gemm_cycles, scalesim_cycles, ws_array_cycles

__all__ = ["estimate", "estimate_stream", "verified_sizes", "VERIFIED_RECORD"]

#: The committed scale benchmark (``bench/scale_bench.py``): which sizes ran in RTL.
VERIFIED_RECORD = Path(__file__).resolve().parents[3] / "bench" / "results" / "scale.json"


def _check_dims(m, k, n):
    for name, v in (("M", m), ("K", k), ("N", n)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")


def estimate(config, m, k, n, *, cores=1):
    """A JSON-ready dict of the cycles of C = A(M x K) x B(K x N) on ``config``.

    ``config`` is a :class:`SystolicConfig` (the bare array: output-stationary tiles streamed
    back to back, or weight-stationary at its tightest schedule), an :class:`EngineConfig`
    (one job: load, compute, drain) or a :class:`TensorCoreConfig` (``cores`` MMA units under
    the engine's tensor-core schedule, compute phase only).
    """
    _check_dims(m, k, n)
    base = {"m": m, "k": k, "n": n, "macs": m * k * n}
    if isinstance(config, SystolicConfig):
        model = (gemm_cycles if config.dataflow is Dataflow.OUTPUT_STATIONARY
                 else ws_array_cycles)(config, m, k, n)
        return {**base, "tiles": model.tiles, "cycles": model.cycles,
                "utilization": model.utilization,
                "scalesim_cycles": scalesim_cycles(config, m, k, n)}
    if isinstance(config, EngineConfig):
        model = engine_cycles(config, m, k, n)
        return {**base, **model.to_dict(), "cycles": model.total}
    if isinstance(config, TensorCoreConfig):
        core = TensorCore(config, cores)
        tiles, span, compute = core.schedule(m, k, n)
        return {**base, "tiles": tiles, "span": span, "cycles": compute,
                "utilization": m * k * n / (core.macs * compute)}
    raise TypeError(f"config must be a SystolicConfig, EngineConfig or TensorCoreConfig, "
                    f"not {config!r}")


def estimate_stream(config, gemms, *, cores=1):
    """Estimates of several GEMMs ``[(m, k, n), ...]`` run one after the other, and their sum:
    ``{"gemms": [...], "cycles": total, "macs": total, "utilization": ...}``."""
    gemms = list(gemms)
    if not gemms:
        raise ValueError("a job stream needs at least one GEMM")
    rows = [estimate(config, *g, cores=cores) for g in gemms]
    cycles = sum(r["cycles"] for r in rows)
    macs = sum(r["macs"] for r in rows)
    peak = config.macs * (cores if isinstance(config, TensorCoreConfig) else 1)
    return {"gemms": rows, "cycles": cycles, "macs": macs, "utilization": macs / (peak * cycles)}


def verified_sizes(record=VERIFIED_RECORD):
    """``{"emitted": [...], "verilator": [...], "gemm": [...]}``: the array sizes (``"RxC"``)
    the committed scale benchmark emitted, built with Verilator, and ran GEMMs on bit- and
    cycle-exactly; empty lists when the record is absent (an installed copy without it)."""
    out = {"emitted": [], "verilator": [], "gemm": [], "record": None}
    try:
        rows = json.loads(Path(record).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return out
    out["record"] = "bench/results/scale.json"
    for row in rows:
        size = f"{row['rows']}x{row['cols']}"
        tag = f"{row['design']} {size}"
        if row.get("verilog_bytes"):
            out["emitted"].append(tag)
        if row.get("verilator_build_s"):
            out["verilator"].append(tag)
        if row.get("gemm_verified"):
            out["gemm"].append(f"{tag} ({row['gemm']})")
    return out
