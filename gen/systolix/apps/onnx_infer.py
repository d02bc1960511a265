"""A quantized ONNX model through the engine RTL, checked against onnxruntime.

Every GEMM layer (convolutions via im2col, Gemm, MatMul) runs on a generated engine in RTL:
all jobs of a layer (row tiles, column tiles, groups) back to back in one simulation; the
host steps run in numpy (:mod:`systolix.frontend`). The result must equal the exact integer
reference (:func:`systolix.frontend.plan.reference_gemm`) and onnxruntime's CPU session.

The engine multiplies int8: a uint8 activation enters as ``x - 128`` and the ``128 - x_zp``
it lacks is folded into the bias (``(128 - x_zp) * sum_k W[k, n]``), which is exact.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from pathlib import Path

import numpy as np

from ..config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from ..errors import SystolixError
from ..frontend.lower import load_model, lower
from ..frontend.ort import float_nodes, run_onnxruntime
from ..frontend.plan import GemmLayer, execute, layer_operands, reference_gemm
from ..model.cycles import engine_cycles, scalesim_cycles
from ..model.quant import INT32_MAX, INT32_MIN, Float32RequantParams
from ..sim.job import SimJob
from ..sim.verify import check

__all__ = ["onnx_engine", "layer_engine", "EngineGemm", "ModelGemm", "engine_operands",
           "run_onnx", "saturation_mask", "float32_message"]


def onnx_engine(arch="systolic", rows=8, cols=8, dataflow=Dataflow.WEIGHT_STATIONARY,
                mma=(4, 4, 4), cores=1, max_m=64, max_k=256, max_n=64):
    """The engine ``systolix infer --model`` uses, without its requantizer: each layer runs
    with the one for its output type (:func:`layer_engine`)."""
    if arch == "tensorcore":
        m, n, k = mma
        return EngineConfig(None, max_m, max_k, max_n, core=TensorCoreConfig(m=m, n=n, k=k),
                            cores=cores)
    return EngineConfig(SystolicConfig(rows, cols, Dataflow(dataflow)), max_m, max_k, max_n)


def layer_engine(config, out_dtype):
    """``config`` with the float32-mode requantizer (onnxruntime's rule) of a layer with
    ``out_dtype`` (``"int8"`` or ``"uint8"``) outputs."""
    return dataclasses.replace(config, requant=RequantConfig(
        config.cols, out_signed=out_dtype == "int8", mode="float32"))


def engine_operands(layer, groups):
    """Per group ``(A_e, W, bias_e)``: the engine's int8 A (``x - 128`` for uint8 inputs)
    and the bias with the zero-point terms folded in."""
    shift = 128 if layer.x_q.dtype == "uint8" else 0
    out = []
    for a, w, b in zip(groups, layer.weights, layer.bias):
        bias = b + (shift - layer.x_q.zero_point) * w.sum(axis=0)
        if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
            raise SystolixError(f"layer '{layer.node}': the folded bias leaves int32")
        out.append((a - shift, w, bias))
    return out


def _float32_params(layer, bias, scale):
    lo, hi = layer.clamp
    return Float32RequantParams(tuple(int(b) for b in bias), tuple(float(s) for s in scale),
                                layer.y_q.zero_point, lo, hi, layer.y_q.dtype == "int8")


class _LayerRecord(dict):
    pass


def _tiles(config, layer, m, k, n):
    if k > config.max_k:
        raise SystolixError(f"layer '{layer.node}': K = {k} exceeds the engine's buffers "
                            f"(max K = {config.max_k}); raise --max-k")
    return [(r, min(config.max_m, m - r), c, min(config.max_n, n - c))
            for r in range(0, m, config.max_m) for c in range(0, n, config.max_n)]


class EngineGemm:
    """``gemm(layer, groups)`` for :func:`systolix.frontend.plan.execute`, computed by the
    engine's RTL: every job of a layer (M and N tiles, groups) in one simulation. Records
    each layer's shape, jobs and cycles in :attr:`layers`."""

    def __init__(self, config, simulator="icarus", work_dir="sim_out", progress=None):
        self.config = config
        self.simulator = simulator
        self.work_dir = work_dir
        self.progress = progress or (lambda msg: None)
        self.layers = []

    def __call__(self, layer, groups):
        cfg = layer_engine(self.config, layer.y_q.dtype)
        entries, where = [], []
        for g, (a, w, bias) in enumerate(engine_operands(layer, groups)):
            m, k = a.shape
            n = w.shape[1]
            for r, mm, c, nn in _tiles(cfg, layer, m, k, n):
                entries.append((a[r:r + mm], w[:, c:c + nn],
                                _float32_params(layer, bias[c:c + nn],
                                                layer.scale[g][c:c + nn])))
                where.append((g, r, mm, c, nn))
        self.progress(f"layer '{layer.node}' ({layer.op}): {len(groups)} x GEMM "
                      f"{groups[0].shape[0]}x{layer.weights[0].shape[0]}x"
                      f"{layer.weights[0].shape[1]} as {len(entries)} engine job(s) on "
                      f"{self.simulator}")
        t0 = time.monotonic()
        report = check(SimJob(cfg, entries), self.simulator, self.work_dir)
        if not report.results_ok:
            raise SystolixError(f"layer '{layer.node}': the RTL disagrees with the reference: "
                                f"{report.problems[0]}")
        if not report.cycles_ok:
            raise SystolixError(f"layer '{layer.node}': {report.cycle_problems[0]}; please "
                                f"report this")
        outs = [np.zeros((a.shape[0], w.shape[1]), np.int64)
                for a, w in zip(groups, layer.weights)]
        for (g, r, mm, c, nn), run in zip(where, report.gemms):
            outs[g][r:r + mm, c:c + nn] = np.asarray(run.c, np.int64)
        shapes = [(mm, groups[g].shape[1], nn) for g, _, mm, _, nn in where]
        self.layers.append(_record(layer, cfg, groups, report.gemms, shapes, self.simulator))
        self.progress(f"layer '{layer.node}': done in {time.monotonic() - t0:.1f} s")
        return outs


def _record(layer, cfg, groups, runs, shapes, simulator):
    m, k = groups[0].shape
    n = layer.weights[0].shape[1]
    macs = sum(r.macs for r in runs)
    compute = sum(r.cycles for r in runs) if runs and runs[0].cycles is not None else None
    model = sum(r.model_cycles for r in runs)
    rec = {
        "node": layer.node, "op": layer.op, "engine": cfg.name, "gemm": [m, k, n],
        "groups": len(groups),
        "jobs": len(runs), "macs": macs,
        "model_cycles": model,
        "model_job_cycles": sum(r.model_job_cycles for r in runs),
        "requant": "engine (float32)",
        "job_shapes": [[*shape, count] for shape, count in
                       sorted(collections.Counter(map(tuple, shapes)).items())],
    }
    if simulator is not None:
        rec["rtl_cycles"] = compute
        rec["rtl_job_cycles"] = sum(r.job_cycles for r in runs)
    cycles = compute if compute is not None else model
    rec["utilization"] = macs / (cfg.macs * cycles) if cycles else None
    if cfg.arch == "systolic":
        rec["scalesim_formula_cycles"] = sum(scalesim_cycles(cfg.array, *s) for s in shapes)
    return rec


@dataclasses.dataclass
class _ModelRun:
    macs: int
    cycles: int | None
    model_cycles: int
    model_job_cycles: int
    job_cycles: int | None


class ModelGemm(EngineGemm):
    """Like :class:`EngineGemm` but without a simulator: the reference results and the exact
    cycle model (for benchmarks of all images)."""

    def __init__(self, config):
        super().__init__(config, None)

    def __call__(self, layer, groups):
        cfg = layer_engine(self.config, layer.y_q.dtype)
        runs, shapes = [], []
        for g, (a, w, bias) in enumerate(engine_operands(layer, groups)):
            m, k = a.shape
            for r, mm, c, nn in _tiles(cfg, layer, m, k, w.shape[1]):
                cyc = engine_cycles(cfg, mm, k, nn)
                runs.append(_ModelRun(mm * k * nn, None, cyc.compute, cyc.total, None))
                shapes.append((mm, k, nn))
        self.layers.append(_record(layer, cfg, groups, runs, shapes, None))
        return reference_gemm(layer, groups)


def saturation_mask(layer, x):
    """Where onnxruntime's u8s8 kernels may saturate on ``layer`` for the input ``x``: on x86
    without VNNI they sum pairs of uint8 x int8 products in int16 (``vpmaddubsw``), exact only
    while every pair fits. Returns a boolean array shaped as the layer's output, true where two
    of an output's products sum beyond int16 (nowhere when the weights are 7-bit, i.e.
    quantized with ``reduce_range``, or the input is int8)."""
    groups, assemble = layer_operands(layer, x)
    masks = []
    for a, w in zip(groups, layer.weights):
        if layer.x_q.dtype != "uint8" or a.shape[1] < 2:
            masks.append(np.zeros((a.shape[0], w.shape[1]), bool))
            continue
        p = np.sort(a[:, :, None] * w[None, :, :], axis=1)   # (M, K, N) products
        masks.append((p[:, -1] + p[:, -2] > 32767) | (p[:, 0] + p[:, 1] < -32768))
    return assemble(masks)


def run_onnx(model_path, x, config=None, simulator="icarus", work_dir="sim_out",
             progress=print, ort_check=True):
    """Run a quantized ONNX model with its GEMMs on the engine RTL (``simulator`` None: the
    numpy reference and the cycle model only) and compare with onnxruntime.

    Returns
    -------
    (numpy.ndarray, dict)
        The model's first output (onnxruntime's dtype and shape) and the summary:
        ``matches_onnxruntime``, ``matches_reference``, per-layer records (with
        ``onnxruntime_kernel``: ``"quantized"`` or ``"float32"``, how onnxruntime runs the
        layer), ``onnxruntime_float32`` (every step onnxruntime runs in float32), problems.
    """
    config = config or onnx_engine()
    model = load_model(model_path)
    plan = lower(model, Path(model_path).name)
    try:
        plan.check_input(x)
    except ValueError as e:
        raise SystolixError(f"{model_path}: {e}") from None
    # the reference run with the cycle model also refuses a layer the engine cannot take
    # (K beyond its buffers) before any simulation starts
    modelled = ModelGemm(config)
    reference, ref_env = execute(plan, x, gemm=modelled, keep=True)
    t0 = time.monotonic()
    if simulator is not None:
        gemm = EngineGemm(config, simulator, work_dir, progress)
        got, _ = execute(plan, x, gemm=gemm)
    else:
        gemm, got = modelled, reference
    wall = time.monotonic() - t0
    out = got[0]
    summary = {
        "model": str(model_path),
        "engine": ", ".join(dict.fromkeys(r["engine"] for r in gemm.layers)),
        "simulator": simulator,
        "input_shape": list(x.shape), "output": plan.outputs[0],
        "output_dtype": out.dtype.name, "output_shape": list(out.shape),
        "matches_reference": bool(out.dtype == reference[0].dtype
                                  and np.array_equal(out, reference[0])),
        "layers": gemm.layers, "problems": [], "wall_seconds": round(wall, 2),
    }
    summary["compute_cycles"] = sum(r.get("rtl_cycles") or r["model_cycles"]
                                    for r in gemm.layers)
    if not summary["matches_reference"]:
        summary["problems"].append("the engine's output differs from the integer reference")
    if ort_check:
        # Which steps onnxruntime runs as float32 (QDQ node units it did not fuse into a
        # quantized kernel): systolix computes every step's quantized arithmetic, so those
        # may differ from onnxruntime's output; they are reported, never excused.
        floats = float_nodes(model)
        float_steps = {s.node: floats[s.node] for s in plan.steps if s.node in floats}
        for rec in gemm.layers:
            rec["onnxruntime_kernel"] = "float32" if rec["node"] in float_steps else "quantized"
        summary["onnxruntime_float32"] = [{"node": n, "op": op} for n, op in float_steps.items()]
        # The verdict comes from the model as it is: exposing intermediate tensors as graph
        # outputs stops onnxruntime fusing a QDQ model's node units into its quantized kernels
        # (they run in float32), so the intermediates serve only to explain a difference.
        want = run_onnxruntime(model, x)[plan.outputs[0]]
        summary["matches_onnxruntime"] = bool(
            out.dtype == want.dtype and out.shape == want.shape and np.array_equal(out, want))
        if not summary["matches_onnxruntime"]:
            ort = {plan.outputs[0]: want}
            if not float_steps:
                ort = run_onnxruntime(model, x, [s.y for s in plan.steps])
                ort[plan.outputs[0]] = want
            summary["problems"].extend(_explain(plan, ref_env, ort, float_steps))
    return out, summary


def float32_message(node, op):
    """The problem reported for a step onnxruntime computes in float32."""
    return (f"onnxruntime runs '{node}' ({op}) in float32: it did not fuse this QDQ node unit "
            f"into a quantized kernel; systolix computes the quantized arithmetic")


def _explain(plan, env, ort, float_steps=None):
    """Explain a difference from onnxruntime: name the steps onnxruntime computes in float32
    (``float_steps``, ``{node: op}`` from :func:`systolix.frontend.ort.float_nodes`) as its
    cause; without such steps, name the first step whose output differs and whether it is
    onnxruntime's own int16 saturation.

    ``ort`` holds onnxruntime's tensors by name. Intermediate tensors come from a session that
    exposes them as outputs; in a QDQ model that session runs the layers in float32, so an
    intermediate named here can differ from what the fused kernels computed."""
    if float_steps:
        out = plan.outputs[0]
        theirs = ort.get(out)
        wrong = None if theirs is None or theirs.shape != env[out].shape else \
            int(np.sum(env[out] != theirs))
        head = [] if wrong is None else [f"{wrong} values of '{out}' differ from onnxruntime"]
        return head + [float32_message(s.node, float_steps[s.node]) for s in plan.steps
                       if s.node in float_steps]
    for step in plan.steps:
        mine, theirs = env[step.y], ort.get(step.y)
        if theirs is None or np.array_equal(mine, theirs):
            continue
        wrong = int(np.sum(mine != theirs))
        msg = f"'{step.node}' ({step.op}): {wrong} values differ from onnxruntime"
        if isinstance(step, GemmLayer) and np.array_equal(env[step.x], ort.get(step.x)):
            mask = saturation_mask(step, env[step.x])
            if mask[mine != theirs].all():
                msg += (": onnxruntime's own int16 saturation (its u8s8 kernel sums pairs of "
                        "products in int16; every differing output has a pair beyond int16: "
                        "weights not quantized with reduce_range); the systolix result is the "
                        "exact integer arithmetic")
        return [msg]
    return ["the output differs from onnxruntime's"]
