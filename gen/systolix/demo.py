"""``make demo``: generate an 8x8 array, run a random GEMM through its RTL, report."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from .config import SystolicConfig
from .emit import write_design
from .errors import SystolixError

__all__ = ["run_demo"]


def run_demo(size=64, simulator="icarus", seed=None, rtl_dir="rtl", work_dir="sim_out"):
    from .cli import run_gemm
    from .simulate import check_simulator

    if size < 1:
        raise SystolixError(f"--size must be at least 1, not {size}")
    if seed is not None and not 0 <= seed < 2**63:
        raise SystolixError(f"--seed must be in range 0..2^63-1, not {seed}")
    check_simulator(simulator)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    config = SystolicConfig(8, 8)
    print(f"[1/3] generating {config.name} (8x8 int8, int32 wrap) into {rtl_dir}/")
    v, m = write_design(config, rtl_dir, only_if_changed=True)
    print(f"      {v} ({v.stat().st_size // 1024} KiB), {m}")

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (size, size), dtype=np.int64)
    b = rng.integers(-128, 128, (size, size), dtype=np.int64)
    print(f"[2/3] C = A x B, {size}x{size}x{size} random int8 (seed {seed}), "
          f"through the RTL on {simulator}")
    t0 = time.monotonic()
    summary, c = run_gemm(config, a, b, simulator, work_dir)
    wall = time.monotonic() - t0

    out = Path(work_dir) / "demo"
    out.mkdir(parents=True, exist_ok=True)
    summary.update({"seed": seed, "wall_seconds": round(wall, 2)})
    (out / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"# systolix demo ({config.name}, {simulator})", "",
        "| quantity | value |", "|---|---|",
        f"| GEMM | {size} x {size} x {size}, int8, seed {seed} |",
        f"| matches numpy (bit-exact) | {'yes' if summary['match'] else 'NO'} |",
        f"| cycles (RTL) | {summary['cycles']} |",
        f"| cycles (model) | {summary['model_cycles']} |",
        f"| SCALE-Sim OS estimate | {summary['scalesim_cycles']} |",
        f"| utilization | {summary['utilization']:.2%} |",
        f"| wall time | {wall:.1f} s |", "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("[3/3] result")
    print(f"      matches numpy : {'YES, bit-exact' if summary['match'] else 'NO'}")
    print(f"      cycles        : {summary['cycles']} measured, {summary['model_cycles']} "
          f"predicted ({'exact' if summary['cycles_match_model'] else 'MISMATCH'}); "
          f"SCALE-Sim per-fold estimate {summary['scalesim_cycles']}")
    print(f"      utilization   : {summary['utilization']:.1%} of 64 MACs")
    print(f"      report        : {out / 'report.md'}, {out / 'report.json'} ({wall:.1f} s)")
    if not (summary["match"] and summary["cycles_match_model"]):
        raise SystolixError("demo failed: RTL disagrees with the golden or cycle model")
    return 0
