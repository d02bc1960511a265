"""``systolix sweep``: synthesize a design space in parallel and tabulate and plot it.

Each point runs the full flow of :func:`systolix.synth.flow.synthesize` (cached) in a worker
process. The outputs are ``sweep.json`` (every result), ``sweep.md`` (a Markdown table with the
Pareto-optimal points marked) and PNG plots: LUT4 and DSP vs MACs, Fmax vs size, GOPS vs LUT4.
All files are written atomically once every point is done.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .. import kinds
from ..errors import SystolixError
from ..fileio import atomic_open
from .flow import SynthOptions, synthesize
from .pareto import pareto_front
from .plots import render_plots
from .targets import TARGETS, Target

__all__ = ["run_sweep", "pareto_front", "markdown_table", "variant_of", "per_mac"]


def _worker(kind_name, config_dict, target_name, options, cache_dir, use_cache):
    config = kinds.get(kind_name).from_dict(config_dict)
    try:
        result = synthesize(config, TARGETS[target_name], options, cache_dir=cache_dir,
                            use_cache=use_cache)
        return result.to_dict()
    except SystolixError as e:  # a tool failure is one failed point, not a failed sweep
        return {"fits": False, "error": str(e), "name": config.name, "config": config_dict,
                "macs": config.macs, "target": TARGETS[target_name].to_dict()}


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
            lines.append(f"| `{r['name']}` | {variant} | {r['macs']} | | | | | | | | | | | | "
                         f"{r['error']} |")
            continue
        h = r["harness"]
        hcost = f"{h['cost']['lut4']}/{h['cost']['ff']}" if h["used"] else "not used"
        lines.append(
            f"| `{r['name']}` | {variant} | {r['macs']} | {r['lut4']:,} | {r['ff']:,} | "
            f"{per_mac(r, 'lut4'):.1f} | {per_mac(r, 'ff'):.1f} | {r['dsp']} | {r['bram']} | {r['fmax_mhz']:.1f} | {r['peak_gops']:.2f} | "
            f"{_fmt(r['gops_per_klut'], '.2f')} | {_fmt(r['gops_per_dsp'], '.3f')} | {hcost} | "
            f"{'*' if id(r) in front else ''} |")
    return "\n".join(lines) + "\n"


class _Progress:
    """A one-line progress bar on stderr (plain lines when stderr is not a terminal)."""

    def __init__(self, total, stream=sys.stderr):
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()
        self.t0 = time.monotonic()

    def step(self, text):
        self.done += 1
        width = 24
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        line = (f"[sweep] [{bar}] {self.done}/{self.total} {time.monotonic() - self.t0:6.0f} s "
                f"{text}")
        if self.tty:
            self.stream.write("\r\033[K" + line)
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def run_sweep(configs, target: Target, options: SynthOptions, out_dir, *, jobs=2,
              cache_dir=None, use_cache=True, progress=True):
    """Synthesize every config for ``target`` (``jobs`` worker processes) and write the reports.

    Returns
    -------
    dict
        ``{"target", "results", "files"}``; results are in the order of ``configs``.
    """
    if not configs:
        raise SystolixError("the sweep has no design points")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SystolixError(f"cannot create output directory {out}: {e.strerror}") from None
    bar = _Progress(len(configs)) if progress else None
    results = [None] * len(configs)
    args = [(kinds.of(c).name, c.to_dict(), target.name, options, cache_dir, use_cache)
            for c in configs]
    if jobs == 1:
        for i, a in enumerate(args):
            results[i] = _worker(*a)
            if bar:
                bar.step(_point_text(results[i]))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_worker, *a): i for i, a in enumerate(args)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if bar:
                    bar.step(_point_text(results[i]))

    summary = {"target": target.to_dict(), "options": {"freq": options.freq,
               "harness": options.harness, "seed": options.seed}, "results": results}
    files = []
    payloads = [("sweep.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()),
                ("sweep.md", markdown_table(results, target).encode())]
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
