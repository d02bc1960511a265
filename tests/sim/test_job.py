"""The job format (one writer/reader pair for every kind) and the verify step, without a
simulator: outcomes are fabricated from the models, then spoiled one way at a time."""

import json

import numpy as np
import pytest

from helpers import rand_operands
from systolix.config import EngineConfig, Numerics, SystolicConfig, TensorCoreConfig
from systolix.model import golden
from systolix.model.cycles import engine_cycles, gemm_cycles, mma_stream_cycles
from systolix.model.quant import RequantParams
from systolix.sim.job import (JobOutcome, MMAJob, MMAOutcome, SimJob, StreamJob, StreamOutcome,
                              read_job, read_outcome, write_job, write_outcome)
from systolix.sim.verify import verify

pytestmark = pytest.mark.model


def test_every_kind_round_trips(tmp_path, seed):
    rng = np.random.default_rng(seed)
    engine = EngineConfig(SystolicConfig(2, 2), 8, 8, 8)
    a, b = rand_operands(rng, engine.numerics, 3, 4, 5)
    params = RequantParams(bias=[1, 2, 3, 4, 5], multiplier=[2**30] * 5, shift=[31] * 5,
                           zero_point=0)
    job = SimJob(engine, [(a.astype(np.int8), b), (9, 1, 1), (a, b, params)],
                 back_to_back=False, stall_prob=0.25, seed=seed)
    back = read_job(write_job(job, tmp_path / "gemm"))
    assert isinstance(back, SimJob) and back.config == engine and back.seed == seed
    assert (back.back_to_back, back.stall_prob) == (False, 0.25)
    assert back.operands[1] == (9, 1, 1)
    assert back.operands[0][0].dtype == np.int64  # operands are stored as int64
    np.testing.assert_array_equal(back.operands[0][0], a)
    np.testing.assert_array_equal(back.operands[2][1], b)
    assert back.operands[2][2].to_dict() == params.to_dict()

    big = [2**200 + 5, 0, 2**64]  # stream payloads are arbitrarily wide integers
    stream = read_job(write_job(StreamJob(engine, big, big[::-1], 0.5, 7), tmp_path / "s"))
    assert (stream.inputs, stream.expected, stream.stall_prob) == (big, big[::-1], 0.5)

    core = TensorCoreConfig(2, 2, 2)
    stack = rng.integers(-128, 128, (4, 2, 2))
    mma = read_job(write_job(MMAJob(core, stack, stack, stack, 0.1, 3), tmp_path / "m"))
    assert isinstance(mma, MMAJob) and mma.config == core
    np.testing.assert_array_equal(mma.c, stack)
    assert json.loads((tmp_path / "m" / "job.json").read_text())["kind"] == "mma"


def test_outcomes_round_trip_and_keep_their_dtype(tmp_path):
    assert read_outcome(tmp_path) is None  # no result written: None, not an error
    c = np.arange(6, dtype=np.int32).reshape(2, 3)
    write_outcome(JobOutcome(results=[c, None], cycles=[5, None], total_cycles=9,
                             failures=["x"]), tmp_path)
    out = read_outcome(tmp_path)
    assert isinstance(out, JobOutcome) and out.results[1] is None and out.cycles == [5, None]
    assert out.results[0].dtype == np.int32 and out.failures == ["x"] and not out.passed
    write_outcome(StreamOutcome(outputs=[2**100]), tmp_path)
    assert read_outcome(tmp_path).outputs == [2**100]
    write_outcome(MMAOutcome(d=None, issue_cycles=[1]), tmp_path)
    assert read_outcome(tmp_path).d is None


def test_unstorable_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot be stored"):
        write_job(SimJob(SystolicConfig(2, 2), [(object(), object())]), tmp_path)
    with pytest.raises(TypeError, match="registered Job"):
        write_job({"kind": "gemm"}, tmp_path)
    (tmp_path / "job.json").write_text(json.dumps({"kind": "gpu", "config": {}}))
    with pytest.raises(ValueError, match="unknown job kind 'gpu'"):
        read_job(tmp_path / "job.json")


def _array_outcome(config, operands):
    """What a correct simulation of isolated GEMMs on an array reports."""
    return JobOutcome(
        results=[golden.gemm(a, b, config.numerics).astype(config.numerics.output_dtype)
                 for a, b in operands],
        cycles=[gemm_cycles(config, a.shape[0], a.shape[1], b.shape[1]).cycles
                for a, b in operands])


def test_verify_array_gemms(seed):
    rng = np.random.default_rng(seed)
    config = SystolicConfig(2, 3)
    operands = [rand_operands(rng, config.numerics, 4, 5, 6),
                rand_operands(rng, config.numerics, 1, 2, 3)]
    job = SimJob(config, operands, back_to_back=False)
    good = verify(job, _array_outcome(config, operands))
    assert good.ok and len(good.gemms) == 2 and all(g.exact for g in good.gemms)

    wrong = _array_outcome(config, operands)
    wrong.results[1][0, 2] += 1
    report = verify(job, wrong)
    assert not report.results_ok and report.cycles_ok
    assert "gemm 1 (1x2x3): 1 of 3 elements differ" in report.result_problems[0]

    slow = _array_outcome(config, operands)
    slow.cycles[0] += 1
    report = verify(job, slow)
    assert report.results_ok and not report.cycles_ok and "gemm 0" in str(report)

    inside = _array_outcome(config, operands)
    inside.failures = ["scoreboard: mismatch"]
    assert not verify(job, inside).results_ok


def test_verify_does_not_pass_what_never_came_out(seed):
    """zip() over results would pass an outcome with nothing in it."""
    rng = np.random.default_rng(seed)
    config = SystolicConfig(2, 2)
    operands = [rand_operands(rng, config.numerics, 2, 2, 2)] * 2
    short = _array_outcome(config, operands)
    short.results.pop()
    short.cycles.pop()
    report = verify(SimJob(config, operands, back_to_back=False), short)
    assert not report.ok and "2 GEMMs in the job but the simulation reported 1 results" in \
        report.result_problems[0]
    assert not verify(SimJob(config, operands), JobOutcome()).ok


def test_verify_engine_rejects_stalls_and_requant(seed):
    rng = np.random.default_rng(seed)
    config = EngineConfig(SystolicConfig(2, 2), 4, 4, 4)
    a, b = rand_operands(rng, config.numerics, 3, 4, 2)
    model = engine_cycles(config, 3, 4, 2)
    want = golden.gemm(a, b, config.numerics)
    outcome = lambda **kw: JobOutcome(**{  # noqa: E731
        "results": [want, None], "cycles": [model.compute, 0],
        "job_cycles": [model.total, 1], "errors": [0, 1], **kw})
    job = SimJob(config, [(a, b), (5, 4, 2)])
    assert verify(job, outcome()).ok
    assert not verify(job, outcome(errors=[0, 0])).results_ok  # reject not flagged
    assert not verify(job, outcome(job_cycles=[model.total + 1, 1])).cycles_ok
    stalled = SimJob(config, [(a, b), (5, 4, 2)], stall_prob=0.5)
    assert verify(stalled, outcome(job_cycles=[model.total + 7, 1])).ok  # slower is allowed
    assert not verify(stalled, outcome(job_cycles=[model.total - 1, 1])).cycles_ok


def test_verify_mma(seed):
    rng = np.random.default_rng(seed)
    config = TensorCoreConfig(2, 2, 2, numerics=Numerics(acc_width=16))
    a, b, c = (rng.integers(-128, 128, (5, 2, 2)) for _ in range(3))
    d = golden.mma(a, b, c, config.numerics)
    issue = list(range(3, 8))
    result = [i + config.latency for i in issue]
    job = MMAJob(config, a, b, c)
    report = verify(job, MMAOutcome(d=d, issue_cycles=issue, result_cycles=result))
    assert report.ok and report.total_cycles == mma_stream_cycles(config, 5)
    late = result[:-1] + [result[-1] + 1]
    assert not verify(job, MMAOutcome(d=d, issue_cycles=issue, result_cycles=late)).cycles_ok
    assert not verify(job, MMAOutcome(d=d[:4], issue_cycles=issue[:4],
                                      result_cycles=result[:4])).ok
