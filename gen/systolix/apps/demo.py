"""``make demo``: generate an 8x8 array and two 8x8 matrix engines, run one random GEMM through
each in RTL and compare them with the golden model, the cycle model and SCALE-Sim; then classify
the held-out digits with a quantized MLP through a requantizing engine in RTL, and with the
shipped quantized CNN (ONNX) whose convolutions run as GEMMs on the engine."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from ..config import Dataflow, EngineConfig, SystolicConfig
from ..emit import check_buffer_size, write_design
from ..errors import SystolixError
from ..fileio import atomic_open
from ..sim.runner import check_simulator
from ..sim.verify import run_gemm
from .infer import run_inference
from .report import print_inference, print_onnx

__all__ = ["run_demo", "demo_designs"]


def demo_designs(size=64):
    """The designs the demo runs: the bare 8x8 array and its two engines (buffers for
    ``size`` in every dimension)."""
    array = SystolicConfig(8, 8)
    return [
        ("array, output-stationary (testbench tiles)", array),
        ("engine, output-stationary", EngineConfig(array, size, size, size)),
        ("engine, weight-stationary", EngineConfig(
            SystolicConfig(8, 8, Dataflow.WEIGHT_STATIONARY), size, size, size)),
    ]


def run_demo(size=64, simulator="icarus", seed=None, rtl_dir="rtl", work_dir="sim_out",
             infer_sim=None, infer_images=None):
    if infer_images is not None and not 1 <= infer_images <= 360:
        raise SystolixError(f"--infer-images must be in range 1..360, not {infer_images}")
    if not 1 <= size <= 1024:
        raise SystolixError(f"--size must be in range 1..1024, not {size}")
    if seed is not None and not 0 <= seed < 2**63:
        raise SystolixError(f"--seed must be in range 0..2^63-1, not {seed}")
    designs = demo_designs(size)
    for _, config in designs:
        check_buffer_size(config, "lower --size")
    check_simulator(simulator)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    steps = len(designs) + 4

    print(f"[1/{steps}] generating {len(designs)} designs (8x8 int8, int32 wrap) into {rtl_dir}/")
    for _, config in designs:
        v, _, _ = write_design(config, rtl_dir, only_if_changed=True)
        print(f"      {v} ({v.stat().st_size // 1024} KiB) + .json, .vlt")

    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (size, size), dtype=np.int64)
    b = rng.integers(-128, 128, (size, size), dtype=np.int64)
    results = []
    for i, (label, config) in enumerate(designs):
        print(f"[{i + 2}/{steps}] C = A x B, {size}x{size}x{size} random int8 (seed {seed}), "
              f"{label}, on {simulator}")
        t0 = time.monotonic()
        summary, _ = run_gemm(config, a, b, simulator, work_dir)
        summary["wall_seconds"] = round(time.monotonic() - t0, 2)
        summary["design"] = label
        results.append(summary)
        print(f"      {'bit-exact' if summary['match'] else 'MISMATCH'}, "
              f"{summary['cycles']} cycles (model {summary['model_cycles']}), "
              f"{summary['utilization']:.1%} utilization, {summary['wall_seconds']:.1f} s")

    out = Path(work_dir) / "demo"
    out.mkdir(parents=True, exist_ok=True)
    table = [
        "| design | matches numpy | cycles (RTL) | cycles (model) | SCALE-Sim | utilization "
        "| whole job (load + compute + drain) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in results:
        job = (f"{s['job_cycles']} cycles, {s['end_to_end_utilization']:.1%}"
               if "job_cycles" in s else "n/a (testbench streams the tiles)")
        table.append(f"| {s['design']} | {'yes' if s['match'] else 'NO'} | {s['cycles']} | "
                     f"{s['model_cycles']} | {s['scalesim_cycles']} | {s['utilization']:.1%} | "
                     f"{job} |")
    with atomic_open(out / "report.json") as f:
        json.dump({"size": size, "seed": seed, "simulator": simulator, "runs": results}, f,
                  indent=2)
    with atomic_open(out / "report.md") as f:
        f.write(f"# systolix demo: {size}x{size}x{size} int8 GEMM, seed {seed}, {simulator}\n\n"
                + "\n".join(table) + "\n")
    print(f"[{steps - 2}/{steps}] GEMM results ({out / 'report.md'}, {out / 'report.json'})")
    for line in table:
        print("      " + line)
    if not all(s["match"] and s["cycles_match_model"] for s in results):
        raise SystolixError("demo failed: RTL disagrees with the golden or cycle model")

    # The quantized MLP: by default all held-out images on Verilator (its first build takes a
    # minute), or 48 on the GEMM steps' simulator when Verilator is missing.
    images = infer_images
    if infer_sim is None:
        try:
            check_simulator("verilator")
            infer_sim = "verilator"
        except SystolixError:
            infer_sim, images = simulator, images or 48
    print(f"[{steps - 1}/{steps}] int8 MLP on {'all 360' if images is None else images} held-out "
          f"digits: GEMM + requantization per layer on the 8x8 weight-stationary engine, "
          f"{infer_sim}")
    t0 = time.monotonic()
    report = run_inference(simulator=infer_sim, images=images, work_dir=work_dir,
                           progress=lambda msg: print("      " + msg))
    report["wall_seconds"] = round(time.monotonic() - t0, 2)
    print_inference(report, indent="      ")
    with atomic_open(out / "inference.json") as f:
        json.dump(report, f, indent=2)
    if not (all(report["layers_bit_exact"]) and report["predictions_identical"]):
        raise SystolixError("demo failed: the RTL's layer outputs differ from the reference")

    count = 360 if images is None else images
    print(f"[{steps}/{steps}] quantized CNN (ONNX, onnxruntime's QOperator format) on {count} "
          f"held-out digits: convolutions as GEMMs on the 8x8 weight-stationary engine, "
          f"{infer_sim}, checked against onnxruntime")
    cnn = run_cnn(count, infer_sim, work_dir, progress=lambda msg: print("      " + msg))
    print_onnx(cnn, indent="      ")
    print(f"      accuracy      : onnxruntime int8 {cnn['onnxruntime_accuracy']:.1%}, RTL "
          f"{cnn['rtl_accuracy']:.1%}")
    with atomic_open(out / "cnn.json") as f:
        json.dump(cnn, f, indent=2)
    if not (cnn["matches_reference"] and cnn["matches_onnxruntime"]):
        raise SystolixError(f"demo failed: the CNN's output differs: {cnn['problems'][0]}")
    return 0


def run_cnn(images, simulator, work_dir, fmt="qop", progress=print):
    """The shipped digits CNN on ``images`` held-out images through the default ONNX engine;
    the :func:`~systolix.apps.onnx_infer.run_onnx` summary plus accuracies."""
    from ..frontend.ort import run_onnxruntime
    from .cnn import digits_images, model_path
    from .mlp import load_digits_split
    from .onnx_infer import onnx_engine, run_onnx
    split = load_digits_split()
    x, y = digits_images(split.x_test[:images]), split.y_test[:images]
    out, summary = run_onnx(model_path(fmt), x, onnx_engine(), simulator, work_dir, progress)
    ort = next(iter(run_onnxruntime(model_path(fmt), x).values()))
    summary["onnxruntime_accuracy"] = float((ort.argmax(axis=1) == y).mean())
    summary["rtl_accuracy"] = float((out.argmax(axis=1) == y).mean())
    summary["model"] = model_path(fmt).name
    return summary
