"""Quantized MLP inference on the digits data set, through a generated engine in RTL.

Each layer is one batched int8 GEMM plus requantization on a :class:`~systolix.config.
EngineConfig` with a requantizer: all row batches of a layer run as one stream of jobs in one
simulation (every job after the first keeps the layer's weights in the engine), and every
layer's int8 output must equal the numpy integer reference bit for bit.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import Dataflow, EngineConfig, RequantConfig, SystolicConfig
from ..errors import SystolixError
from ..sim import runner
from ..sim.job import SimJob
from ..sim.verify import check
from .mlp import digits_model

__all__ = ["inference_engine", "RTLGemmRequant", "run_inference"]


def inference_engine(rows=8, cols=8, dataflow=Dataflow.WEIGHT_STATIONARY, batch=64,
                     width=64, buffering="double"):
    """The engine ``systolix infer`` uses: int8 x int8 -> int32 (wrap) -> requantized int8,
    buffers for ``batch`` images and layers up to ``width`` inputs and outputs; double-buffered
    by default (a batch's A load and C drain hide behind its neighbours' compute: 84.9 instead
    of 107.6 cycles per image on 8 x 8, for 2 x 0.4 Mibit of buffers)."""
    return EngineConfig(SystolicConfig(rows, cols, dataflow), max_m=batch, max_k=width,
                        max_n=width, requant=RequantConfig(cols), buffering=buffering)


class RTLGemmRequant:
    """``gemm_requant(a_q, w_q, params)`` for :meth:`systolix.apps.mlp.QuantizedMLP.infer`, computed
    by the engine's RTL: the rows are cut into jobs of at most ``max_m`` and run back to back
    as one stream of jobs in one simulation, the weights loaded once per layer (keep-weights).
    Records each job's cycles in :attr:`jobs` and each layer's stream cycles (first command to
    last C word) in :attr:`streams`."""

    def __init__(self, config: EngineConfig, simulator="icarus", work_dir="sim_out",
                 progress=None):
        if config.requant is None:
            raise ValueError("inference needs an engine with a requantizer")
        self.config = config
        self.simulator = simulator
        self.work_dir = work_dir
        self.progress = progress or (lambda msg: None)
        self.jobs = []     # (m, k, n, compute cycles) per engine job
        self.streams = []  # per layer: cycles from the first command to the last C word
        self.layer = 0

    def __call__(self, a_q, w_q, params):
        cfg = self.config
        m, k = a_q.shape
        n = w_q.shape[1]
        if k > cfg.max_k or n > cfg.max_n:
            raise SystolixError(f"layer {self.layer} is {k}x{n}, beyond the engine's "
                                f"{cfg.max_k}x{cfg.max_n} buffers")
        entries = [(np.asarray(a_q[r:r + cfg.max_m], dtype=np.int64),
                    np.asarray(w_q, dtype=np.int64), params) for r in range(0, m, cfg.max_m)]
        self.progress(f"layer {self.layer}: {m}x{k}x{n} as {len(entries)} engine job(s) "
                      f"on {self.simulator}")
        t0 = time.monotonic()
        keep = [r > 0 for r in range(len(entries))]
        report = check(SimJob(cfg, entries, stream=True, keep=keep), self.simulator,
                       self.work_dir)
        if not report.results_ok:
            raise SystolixError(f"layer {self.layer}: the RTL disagrees with the reference: "
                                f"{report.problems[0]}")
        if not report.cycles_ok:
            raise SystolixError(f"layer {self.layer}: {report.cycle_problems[0]}; please "
                                f"report this")
        runs = report.gemms
        for (a, _, _), run in zip(entries, runs):
            self.jobs.append((a.shape[0], k, n, run.cycles))
        self.streams.append(report.total_cycles)
        self.progress(f"layer {self.layer}: done in {time.monotonic() - t0:.1f} s")
        self.layer += 1
        return np.concatenate([run.c for run in runs]).astype(params.out_dtype)


def run_inference(config=None, simulator="icarus", images=None, work_dir="sim_out", seed=0,
                  progress=print, fmax_mhz=None):
    """Classify held-out digits through the engine RTL and through the numpy references.

    Parameters
    ----------
    config : EngineConfig, optional
        Default :func:`inference_engine`.
    images : int or None
        How many of the held-out images (default: all 360).
    fmax_mhz : float or None
        The engine's clock (e.g. its synthesized Fmax): adds ``images_per_second``.

    Returns
    -------
    dict
        Accuracies (float model, int8 reference, RTL), bit-exactness per layer, cycles per
        inference and the MACs behind them.
    """
    config = config or inference_engine()
    split, model, qmodel = digits_model(seed)
    count = len(split.y_test) if images is None else images
    if not 1 <= count <= len(split.y_test):
        raise SystolixError(f"--images must be in range 1..{len(split.y_test)}, not {count}")
    x, y = split.x_test[:count], split.y_test[:count]
    x_q = qmodel.quantize_input(x)
    reference = qmodel.infer(x_q)
    t0 = time.monotonic()
    runner.build(config, simulator, work_dir)  # cached; timed apart from the simulation
    built = time.monotonic() - t0
    if built > 1:
        progress(f"built {config.name} for {simulator} in {built:.0f} s")
    rtl = RTLGemmRequant(config, simulator, work_dir, progress)
    t0 = time.monotonic()
    got = qmodel.infer(x_q, rtl)
    wall = time.monotonic() - t0
    exact = [bool(np.array_equal(g, w)) for g, w in zip(got.layer_outputs,
                                                       reference.layer_outputs)]
    if len(got.layer_outputs) != len(reference.layer_outputs):
        exact.append(False)  # a missing layer must not pass as "every layer bit-exact"
    compute = sum(j[3] for j in rtl.jobs)
    total = sum(rtl.streams)
    macs = qmodel.macs_per_inference
    return {
        "engine": config.name,
        "simulator": simulator,
        "images": count,
        "layers": [f"{l.weights.shape[0]}x{l.weights.shape[1]}" for l in qmodel.layers],
        "macs_per_inference": macs,
        "float_accuracy": float(np.mean(model.predict(x) == y)),
        "int8_reference_accuracy": float(np.mean(reference.predictions == y)),
        "rtl_accuracy": float(np.mean(got.predictions == y)),
        "layers_bit_exact": exact,
        "predictions_identical": bool(np.array_equal(got.predictions, reference.predictions)),
        "engine_jobs": len(rtl.jobs),
        "compute_cycles_per_inference": compute / count,
        "job_cycles_per_inference": total / count,
        "array_utilization": (macs * count) / (config.macs * compute),
        "fmax_mhz": fmax_mhz,
        "images_per_second": (fmax_mhz * 1e6 * count / total) if fmax_mhz else None,
        "wall_seconds": round(wall, 2),
        "build_seconds": round(built, 1),
        "seed": seed,
    }
