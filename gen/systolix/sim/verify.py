"""Check a simulation's outcome against the golden model and the cycle model.

:func:`verify` is the one place that decides whether an RTL run was right: every result must
equal :mod:`systolix.model.golden` bit for bit and every cycle count must equal
:mod:`systolix.model.cycles` where the job makes it exact (no stalls). It returns a
:class:`Report` and raises nothing, so each caller decides what a problem means to it (the
command line exits with a message, the tests assert, the benchmarks refuse to report).
:func:`check` runs and verifies in one call; :func:`run_gemm` is ``systolix run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import EngineConfig
from ..model import golden
from ..model.cycles import (engine_cycles, gemm_cycles, mma_stream_cycles, os_stream_cycles,
                            scalesim_cycles, stream_cycles)
from ..model.tiling import plan_tiles
from .job import MMAJob, SimJob, is_reject

__all__ = ["GemmCheck", "Report", "verify", "check", "run_gemm", "run_batch"]


@dataclass
class GemmCheck:
    """One GEMM of a job: what the RTL produced beside what the models predict.

    For an engine, ``cycles`` is the compute phase, measured by the testbench at the ports
    (which also checks that it equals the engine's own ``cycles`` output), and ``job_cycles`` the
    whole job, command handshake to ``done``; a command the engine had to reject has
    ``rejected`` set, no result and no model.
    """

    c: object                    # numpy array, or None if the RTL produced no well-formed result
    want: object                 # the golden result (None for a rejected command)
    cycles: int | None
    model_cycles: int | None
    macs: int
    peak_macs: int
    job_cycles: int | None = None
    model_job_cycles: int | None = None
    error: bool | None = None    # engine: its `error` flag after the job
    rejected: bool = False
    exact: bool = False          # c equals want (for a rejected command: no result, flagged)

    @property
    def utilization(self):
        return self.macs / (self.peak_macs * self.cycles) if self.cycles else None


@dataclass
class Report:
    """The verdict on one job.

    ``failures`` are the problems the simulation found itself (scoreboard, protocol);
    ``result_problems`` and ``cycle_problems`` what :func:`verify` found. A job whose results
    are right but whose cycles are not is a bug in a model (or in the RTL's timing).
    """

    job: object
    outcome: object
    failures: list = field(default_factory=list)
    result_problems: list = field(default_factory=list)
    cycle_problems: list = field(default_factory=list)
    gemms: list = field(default_factory=list)   # GemmCheck per entry of a SimJob
    total_cycles: int | None = None
    model_total_cycles: int | None = None       # when the job makes the total exact
    stream: dict | None = None                  # engine stream: stream_cycles' prediction

    @property
    def results_ok(self):
        return not self.failures and not self.result_problems

    @property
    def cycles_ok(self):
        return not self.cycle_problems

    @property
    def ok(self):
        return self.results_ok and self.cycles_ok

    @property
    def problems(self):
        return [*self.failures, *self.result_problems, *self.cycle_problems]

    def __str__(self):
        config = self.job.config
        if self.ok:
            return f"{config.name}: results and cycles agree with the models"
        return f"{config.name}: " + "; ".join(self.problems)


def verify(job, outcome):
    """Compare ``outcome`` (from :func:`systolix.sim.runner.run`) with the models; returns a
    :class:`Report`. Supports :class:`~systolix.sim.job.SimJob` and
    :class:`~systolix.sim.job.MMAJob`."""
    if isinstance(job, SimJob):
        return _verify_gemms(job, outcome)
    if isinstance(job, MMAJob):
        return _verify_mma(job, outcome)
    raise TypeError(f"no model to verify a {type(job).__name__} against")


def check(job, simulator="icarus", work_dir="sim_out", *, waves=False):
    """Run ``job`` (:func:`systolix.sim.runner.run`) and :func:`verify` it."""
    from .runner import run
    return verify(job, run(job, simulator, work_dir, waves=waves))


def _want(config, entry):
    a, b = entry[:2]
    want = golden.gemm(a, b, config.numerics, config.accumulation_chunk)
    if len(entry) == 3:  # an engine with a requantizer: (A, B, RequantParams)
        from ..model.quant import requantize
        want = requantize(want, entry[2])
    return want


def _verify_gemms(job, outcome):
    config = job.config
    engine = isinstance(config, EngineConfig)
    report = Report(job, outcome, failures=list(outcome.failures),
                    total_cycles=outcome.total_cycles)
    count = len(job.operands)
    lengths = {"results": len(outcome.results), "cycles": len(outcome.cycles)}
    if engine:
        lengths.update(job_cycles=len(outcome.job_cycles), errors=len(outcome.errors))
    short = {k: n for k, n in lengths.items() if n != count}
    if short:  # zip would silently pass over what never came out
        report.result_problems.append(
            f"{count} GEMMs in the job but the simulation reported "
            + ", ".join(f"{n} {k}" for k, n in short.items()))
        return report
    stalled = job.stall_prob > 0
    streamed = engine and job.stream
    for i, entry in enumerate(job.operands):
        c, cycles = outcome.results[i], outcome.cycles[i]
        extra = ({"job_cycles": outcome.job_cycles[i], "error": bool(outcome.errors[i])}
                 if engine else {})
        if is_reject(entry):
            run = GemmCheck(c=c, want=None, cycles=cycles, model_cycles=None, macs=0,
                            peak_macs=config.macs, rejected=True, **extra)
            run.exact = bool(engine and run.error and c is None
                             and (streamed or run.job_cycles == 1))
            if not run.exact:
                report.result_problems.append(
                    f"gemm {i}: command {tuple(int(d) for d in entry)} not rejected "
                    f"(error {run.error}, result {'none' if c is None else 'present'}, "
                    f"{run.job_cycles} job cycles)")
            report.gemms.append(run)
            continue
        a, b = entry[:2]
        m, k, n = a.shape[0], a.shape[1], b.shape[1]
        want = _want(config, entry)
        label = f"gemm {i} ({m}x{k}x{n})"
        if engine:
            model = engine_cycles(config, m, k, n)
            run = GemmCheck(c=c, want=want, cycles=cycles, model_cycles=model.compute,
                            macs=model.macs, peak_macs=config.macs,
                            model_job_cycles=model.total, **extra)
        else:
            model = gemm_cycles(config, m, k, n)
            run = GemmCheck(c=c, want=want, cycles=cycles, model_cycles=model.cycles,
                            macs=model.macs, peak_macs=config.macs)
        run.exact = c is not None and c.shape == want.shape and bool(np.array_equal(c, want))
        if c is None:
            report.result_problems.append(f"{label}: no result")
        elif not run.exact:
            report.result_problems.append(_difference(label, c, want))
        elif not engine and c.dtype != np.dtype(config.numerics.output_dtype):
            report.result_problems.append(f"{label}: result dtype {c.dtype}, expected "
                                          f"{np.dtype(config.numerics.output_dtype)}")
        if engine:
            if run.error:
                report.result_problems.append(f"{label}: the engine flagged an error")
            if run.cycles != run.model_cycles:
                report.cycle_problems.append(f"{label}: compute took {run.cycles} cycles, "
                                             f"the model says {run.model_cycles}")
            if streamed:
                pass  # the jobs overlap: the stream's done cycles are checked below
            elif stalled:
                if run.job_cycles is None or run.job_cycles < run.model_job_cycles:
                    report.cycle_problems.append(
                        f"{label}: job took {run.job_cycles} cycles with stalls, fewer than "
                        f"the unstalled model's {run.model_job_cycles}")
            elif run.job_cycles != run.model_job_cycles:
                report.cycle_problems.append(f"{label}: job took {run.job_cycles} cycles, "
                                             f"the model says {run.model_job_cycles}")
        elif not stalled and (i == 0 or not job.back_to_back) and run.cycles != run.model_cycles:
            # back to back, a GEMM's beats may queue behind the previous one's
            report.cycle_problems.append(f"{label}: took {run.cycles} cycles, the model says "
                                         f"{run.model_cycles}")
        report.gemms.append(run)
    if streamed and count and not any(is_reject(e) for e in job.operands):
        report.stream = stream_cycles(config, [(e[0].shape[0], e[0].shape[1], e[1].shape[1],
                                                job.keeps(i))
                                               for i, e in enumerate(job.operands)])
        report.model_total_cycles = report.stream["total"]
        if not stalled and list(outcome.done_cycles) != report.stream["done"]:
            report.cycle_problems.append(
                f"the stream's done pulses came in cycles {_head(outcome.done_cycles)}, the "
                f"model says {_head(report.stream['done'])}")
        elif stalled and (outcome.total_cycles or 0) < report.model_total_cycles:
            report.cycle_problems.append(
                f"the stream took {outcome.total_cycles} cycles with stalls, fewer than the "
                f"unstalled model's {report.model_total_cycles}")
    if not engine and job.back_to_back and not stalled and count:
        ks = [a.shape[1] for a, b in job.operands
              for _ in plan_tiles(config, a.shape[0], b.shape[1])]
        report.model_total_cycles = os_stream_cycles(config, ks)[0]
        if outcome.total_cycles != report.model_total_cycles:
            report.cycle_problems.append(
                f"back to back the job took {outcome.total_cycles} cycles, the model says "
                f"{report.model_total_cycles}")
    return report


def _head(values, n=6):
    values = list(values)
    return ", ".join(map(str, values[:n])) + (", .." if len(values) > n else "")


def _difference(label, c, want):
    if c.shape != want.shape:
        return f"{label}: result has shape {c.shape}, expected {want.shape}"
    bad = np.argwhere(c != want)
    r, col = (int(x) for x in bad[0])
    return (f"{label}: {len(bad)} of {want.size} elements differ from the reference; first "
            f"C[{r}, {col}]: RTL {int(c[r, col])}, reference {int(want[r, col])}")


def _verify_mma(job, outcome):
    config = job.config
    beats = len(job.a)
    report = Report(job, outcome, failures=list(outcome.failures))
    want = golden.mma(job.a, job.b, job.c, config.numerics)
    if outcome.d is None or outcome.d.shape != want.shape:
        report.result_problems.append(
            f"{beats} beats issued but the results have shape "
            f"{None if outcome.d is None else outcome.d.shape}")
    elif not np.array_equal(outcome.d, want):
        bad = np.argwhere(outcome.d != want)
        t, r, c = (int(x) for x in bad[0])
        report.result_problems.append(
            f"{len(bad)} of {want.size} elements differ; first in beat {t} at D[{r}, {c}]: "
            f"RTL {int(outcome.d[t, r, c])}, reference {int(want[t, r, c])}")
    issue, result = outcome.issue_cycles, outcome.result_cycles
    if not len(issue) == len(result) == beats:
        report.cycle_problems.append(f"{beats} beats but {len(issue)} issue and {len(result)} "
                                     f"result cycles")
        return report
    late = [(i, r - s) for i, (s, r) in enumerate(zip(issue, result)) if r - s != config.latency]
    if late:
        report.cycle_problems.append(f"{len(late)} results not exactly {config.latency} cycles "
                                     f"after their beat; first: beat {late[0][0]} after "
                                     f"{late[0][1]}")
    if beats:
        report.total_cycles = result[-1] - issue[0] + 1
        model = mma_stream_cycles(config, beats)
        if job.stall_prob == 0:
            report.model_total_cycles = model
            gaps = [i for i, d in enumerate(np.diff(issue).tolist()) if d != 1]
            if gaps:
                report.cycle_problems.append(f"a gap before beat {gaps[0] + 1} with no stall")
            if report.total_cycles != model:
                report.cycle_problems.append(f"the stream took {report.total_cycles} cycles, "
                                             f"the model says {model}")
        elif report.total_cycles < model:
            report.cycle_problems.append(f"the stream took {report.total_cycles} cycles with "
                                         f"stalls, fewer than the unstalled model's {model}")
    return report


def run_gemm(config, a, b, simulator, work_dir):
    """``systolix run``: simulate C = A x B once; returns the summary dict and C.

    ``summary["match"]`` says whether C equals the golden model, ``cycles_match_model`` whether
    the cycles (compute, and the whole job for an engine) equal the cycle model.
    """
    job = SimJob(config, [(a, b)])
    report = check(job, simulator, work_dir)
    m, k = a.shape
    n = b.shape[1]
    run = report.gemms[0] if report.gemms else None
    get = lambda name: getattr(run, name) if run is not None else None  # noqa: E731
    summary = {
        "m": m, "k": k, "n": n,
        "simulator": simulator,
        "match": report.results_ok,
        "cycles": get("cycles"),
        "model_cycles": get("model_cycles"),
        "cycles_match_model": report.cycles_ok and run is not None,
        # (SCALE-Sim models systolic arrays only)
        "scalesim_cycles": (None if getattr(config, "core", None) is not None
                            else scalesim_cycles(config, m, k, n)),
        "macs": get("macs"),
        "utilization": run.utilization if run is not None else None,
    }
    if isinstance(config, EngineConfig):
        # `cycles` is the compute phase; the job adds loading A and B and draining C.
        job_cycles = get("job_cycles")
        summary.update({
            "job_cycles": job_cycles,
            "model_job_cycles": get("model_job_cycles"),
            "end_to_end_utilization": (run.macs / (config.macs * job_cycles)
                                       if job_cycles else None),
        })
    summary["config"] = config.to_dict()
    if not report.results_ok:
        summary["failures"] = report.failures + report.result_problems
    return summary, (run.c if run is not None else None)


def run_batch(config, a, b, simulator, work_dir):
    """``systolix run --engine`` with a batch: the J GEMMs ``a[j] x b`` (``b`` of shape (K, N),
    shared: every job after the first keeps the weights) or ``a[j] x b[j]`` (``b`` of shape
    (J, K, N)) as one stream of jobs back to back; returns the summary dict and C (J, M, N).

    The summary has the per-job fields of :func:`run_gemm` for the whole batch (``cycles``:
    the compute phases summed) and the stream's: ``jobs``, ``stream_cycles`` (first command
    handshake to the last C word), ``model_stream_cycles`` and ``end_to_end_utilization``
    (useful MACs over MACs per cycle x ``stream_cycles``).
    """
    jobs = a.shape[0]
    shared = b.ndim == 2
    entries = [(a[j], b if shared else b[j]) for j in range(jobs)]
    keep = [shared and j > 0 for j in range(jobs)]
    job = SimJob(config, entries, stream=True, keep=keep)
    report = check(job, simulator, work_dir)
    m, k = a.shape[1:]
    n = b.shape[-1]
    runs = report.gemms
    results = [r.c for r in runs]
    complete = len(runs) == jobs and all(c is not None for c in results)
    total = report.total_cycles if complete else None
    macs = m * k * n * jobs
    cycles = sum(r.cycles for r in runs) if complete and all(r.cycles for r in runs) else None
    model = report.stream
    summary = {
        "m": m, "k": k, "n": n, "jobs": jobs, "shared_b": shared,
        "simulator": simulator,
        "match": report.results_ok and complete,
        "cycles": cycles,
        "model_cycles": model["compute"] if model else None,
        "cycles_match_model": report.cycles_ok and complete,
        "macs": macs,
        "utilization": macs / (config.macs * cycles) if cycles else None,
        "stream_cycles": total,
        "model_stream_cycles": model["total"] if model else None,
        "end_to_end_utilization": macs / (config.macs * total) if total else None,
        "config": config.to_dict(),
    }
    if not report.results_ok:
        summary["failures"] = report.failures + report.result_problems
    elif not report.cycles_ok:
        summary["failures"] = report.cycle_problems
    c = np.stack(results) if complete else None
    return summary, c
