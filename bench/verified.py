"""Shared by the benchmark scripts: RTL runs that count only when both models agree."""

from __future__ import annotations

import sys

from systolix.model.cycles import engine_cycles
from systolix.sim.job import SimJob
from systolix.sim.verify import check


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def verified_engine_runs(config, operands, simulator, work_dir, seed):
    """Run GEMMs ``operands`` through engine ``config`` in one simulation; returns
    ``[(run, model), ...]`` (``run`` a :class:`systolix.sim.verify.GemmCheck`). Exits unless
    every result is bit-exact and every cycle count (compute and whole job) equals
    :func:`systolix.model.cycles.engine_cycles`."""
    report = check(SimJob(config, operands, seed=seed), simulator, work_dir)
    if not report.ok or len(report.gemms) != len(operands):
        raise SystemExit(f"RTL disagrees with a model ({report}); not a benchmark result")
    return [(run, engine_cycles(config, a.shape[0], a.shape[1], b.shape[1]))
            for (a, b), run in zip(operands, report.gemms)]
