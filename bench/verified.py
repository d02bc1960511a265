"""Shared by the benchmark scripts: RTL runs that count only when both models agree."""

from __future__ import annotations

import sys

import numpy as np

from systolix.model import golden
from systolix.model.cycles import engine_cycles
from systolix.sim.job import SimJob
from systolix.sim.runner import run_job


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def verified_engine_runs(config, operands, simulator, work_dir, seed):
    """Run GEMMs ``operands`` through engine ``config`` in one simulation; returns
    ``[(run, model), ...]``. Exits unless every result is bit-exact and every cycle count
    (compute and whole job) equals :func:`systolix.model.cycles.engine_cycles`."""
    runs, failures, _ = run_job(SimJob(config, operands, seed=seed), simulator, work_dir)
    if len(runs) != len(operands):
        raise SystemExit(f"{config.name}: {len(runs)} results for {len(operands)} GEMMs; "
                         f"not a benchmark result")
    out = []
    for (a, b), run in zip(operands, runs):
        m, k = a.shape
        n = b.shape[1]
        model = engine_cycles(config, m, k, n)
        exact = (run.c is not None and not failures and np.array_equal(
            run.c, golden.gemm(a, b, config.numerics, config.accumulation_chunk)))
        if not exact or run.cycles != model.compute or run.job_cycles != model.total:
            raise SystemExit(f"{config.name} {m}x{k}x{n}: RTL disagrees with a model "
                             f"({failures or 'cycles'}); not a benchmark result")
        out.append((run, model))
    return out
