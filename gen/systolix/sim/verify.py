"""Run a GEMM through a generated design in simulation and verify it against the references."""

from __future__ import annotations

import numpy as np

from ..config import EngineConfig
from ..model import golden
from ..model.cycles import scalesim_cycles
from . import runner
from .job import SimJob

__all__ = ["run_gemm"]


def run_gemm(config, a, b, simulator, work_dir):
    """Simulate C = A x B; returns the summary dict and C (checked against numpy)."""
    runs, failures, _ = runner.run_job(SimJob(config, [(a, b)]), simulator, work_dir)
    run = runs[0]
    want = golden.gemm(a, b, config.numerics, config.accumulation_chunk)
    match = run.c is not None and np.array_equal(run.c, want)
    m, k = a.shape
    n = b.shape[1]
    summary = {
        "m": m, "k": k, "n": n,
        "simulator": simulator,
        "match": bool(match),
        "cycles": run.cycles,
        "model_cycles": run.model_cycles,
        "cycles_match_model": run.cycles == run.model_cycles,
        # (SCALE-Sim models systolic arrays only)
        "scalesim_cycles": (None if getattr(config, "core", None) is not None
                            else scalesim_cycles(config, m, k, n)),
        "macs": run.macs,
        "utilization": run.utilization,
    }
    if isinstance(config, EngineConfig):
        # `cycles` is the compute phase; the job adds loading A and B and draining C.
        summary.update({
            "job_cycles": run.job_cycles,
            "model_job_cycles": run.model_job_cycles,
            "cycles_match_model": (run.cycles == run.model_cycles
                                   and run.job_cycles == run.model_job_cycles),
            "end_to_end_utilization": (run.macs / (config.macs * run.job_cycles)
                                       if run.job_cycles else None),
        })
    summary["config"] = config.to_dict()
    if failures:
        summary["failures"] = failures
    return summary, run.c
