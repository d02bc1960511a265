"""``systolix regress``: the jobs drawn from seeds, a seed through the real runner and check,
a failing seed reported with the command that replays it, and seeds on a Dask cluster."""

import json

import numpy as np
import pytest

from helpers import WORK_DIR
from systolix.cli.app import main
from systolix.config import EngineConfig, SystolicConfig
from systolix.sim import regress
from systolix.sim.job import is_reject
from systolix.sim.verify import verify as real_verify

pytestmark = pytest.mark.model

REGRESS_DIR = WORK_DIR / "regress"


def _same_job(a, b):
    if a.config != b.config or len(a.operands) != len(b.operands):
        return False
    if (a.stall_prob, a.back_to_back, a.seed) != (b.stall_prob, b.back_to_back, b.seed):
        return False
    for x, y in zip(a.operands, b.operands):
        if is_reject(x) or is_reject(y):
            if x != y:
                return False
        elif not all(np.array_equal(p, q) for p, q in zip(x[:2], y[:2])):
            return False
    return True


def test_a_seed_draws_one_job_and_the_draws_cover_the_space():
    assert _same_job(regress.draw_job(7), regress.draw_job(7))
    jobs = [regress.draw_job(s) for s in range(200)]
    assert sum(_same_job(jobs[0], j) for j in jobs) == 1
    configs = [j.config for j in jobs]
    engines = [c for c in configs if isinstance(c, EngineConfig)]
    assert any(isinstance(c, SystolicConfig) for c in configs)
    assert {type(e.compute).__name__ for e in engines} == {
        "OutputStationaryCore", "WeightStationaryCore", "TensorCore"}
    assert any(e.requant is not None for e in engines)
    numerics = [c.numerics for c in configs]
    assert {n.signed for n in numerics} == {True, False}
    assert {n.saturate for n in numerics} == {True, False}
    assert len({n.in_width for n in numerics}) > 2 and min(n.acc_width for n in numerics) < 20
    assert {j.stall_prob > 0 for j in jobs} == {True, False}
    assert any(is_reject(e) for j in jobs for e in j.operands)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        regress.draw_job(-1)


@pytest.mark.rtl
def test_seed_runs_through_the_rtl_and_a_failure_names_its_replay(monkeypatch, capsys):
    """Seed 1 runs through the runner and passes the real check; with its result then spoiled
    on the way to the command, the command fails with one line and prints the exact command
    that replays the seed (one simulation for both)."""
    verdicts = []

    def spoiled(job, outcome):
        verdicts.append(real_verify(job, outcome))
        outcome.results[0] = outcome.results[0] + 1
        return real_verify(job, outcome)

    monkeypatch.setattr(regress, "verify", spoiled)
    assert main(["regress", "--seeds", "1", "--first-seed", "1", "-j", "1",
                 "--work-dir", str(REGRESS_DIR)]) == 1
    [real] = verdicts
    assert real.ok, str(real)
    assert real.job.config.name == regress.draw_job(1).config.name
    assert len(real.gemms) == len(regress.draw_job(1).operands) > 0
    out, err = capsys.readouterr()
    assert err.strip().splitlines()[-1] == "systolix: error: 1 of 1 seeds failed: 1"
    assert "Traceback" not in err
    assert "gemm 0 " in out and "elements differ from the reference" in out
    assert "  replay: systolix regress --seeds 1 --first-seed 1 --sim icarus\n" in out


def test_summary_json_and_record_of_a_seed(monkeypatch, capsys):
    """The --json summary, with the simulation replaced by a recorded verdict."""
    from systolix.sim.verify import Report
    monkeypatch.setattr(regress, "build", lambda *a, **k: None)
    monkeypatch.setattr(regress, "run", lambda job, sim, work_dir: type(
        "O", (), {"job_dir": None})())
    monkeypatch.setattr(regress, "verify", lambda job, outcome: Report(
        job, outcome, result_problems=["gemm 0: wrong"] if job.seed == 4 else []))
    assert main(["regress", "--seeds", "3", "--first-seed", "3", "-j", "1", "--json",
                 "--work-dir", str(REGRESS_DIR)]) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert (summary["seeds"], summary["first_seed"], summary["passed"]) == (3, 3, 2)
    assert [r["seed"] for r in summary["results"]] == [3, 4, 5]
    [bad] = summary["failed"]
    assert bad["seed"] == 4 and bad["problems"] == ["gemm 0: wrong"] and not bad["ok"]
    assert bad["command"] == "systolix regress --seeds 1 --first-seed 4 --sim icarus"
    assert bad["design"] == regress.draw_job(4).config.name
    assert err.strip().splitlines()[-1] == "systolix: error: 1 of 3 seeds failed: 4"


def test_regress_bad_input_is_one_line(capsys):
    for args, message in [(["--seeds", "0"], "--seeds"),
                          (["--seeds", "2", "--scheduler", "nowhere"], "is not tcp://HOST:PORT"),
                          (["--seeds", "2", "--scheduler", "tcp://127.0.0.1:8786", "-j", "2"],
                           "does not apply with --scheduler")]:
        try:
            code = main(["regress", *args])
        except SystemExit as e:  # a malformed command line
            code = e.code
        err = capsys.readouterr().err
        assert code in (1, 2) and len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.slow
@pytest.mark.rtl
def test_seeds_on_a_cluster_equal_the_local_run():
    distributed = pytest.importorskip("distributed")
    local = regress.run_regress(3, 1, "icarus", REGRESS_DIR, jobs=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        dist = regress.run_regress(3, 1, "icarus", REGRESS_DIR, scheduler=c.scheduler_address,
                                   progress=False)
    strip = lambda s: [{k: v for k, v in r.items() if k != "seconds"} for r in s["results"]]
    assert strip(dist) == strip(local) and dist["passed"] == 3
