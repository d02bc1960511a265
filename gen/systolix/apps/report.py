"""Text summaries of a GEMM run and of an inference run, shared by the CLI and the demo."""

from __future__ import annotations

__all__ = ["print_gemm_summary", "print_inference", "print_onnx"]


def print_gemm_summary(config, s):
    """Print the summary dict of :func:`systolix.sim.verify.run_gemm` for ``config``."""
    print(f"C = A({s['m']}x{s['k']}) x B({s['k']}x{s['n']}) on {config.name} [{s['simulator']}]")
    print(f"  matches numpy : {'yes' if s['match'] else 'NO'}")
    label = "compute cycles" if "job_cycles" in s else "cycles        "
    scalesim = ("" if s["scalesim_cycles"] is None else
                f"; SCALE-Sim estimate {s['scalesim_cycles']}")
    print(f"  {label}: {s['cycles']} (model {s['model_cycles']}: "
          f"{'exact' if s['cycles_match_model'] else 'DIFFERENT'}{scalesim})")
    if "job_cycles" in s:
        print(f"  whole job     : {s['job_cycles']} cycles with loading and draining "
              f"(model {s['model_job_cycles']})")
    util = s["utilization"]
    print(f"  utilization   : {util:.1%} of {config.macs} MACs" if util is not None else
          "  utilization   : n/a")
    if s.get("end_to_end_utilization") is not None:
        print(f"  end to end    : {s['end_to_end_utilization']:.1%} (loading and draining "
              f"included)")
    if "output" in s:
        print(f"  wrote         : {s['output']}")


def print_inference(r, indent=""):
    """Print the report dict of :func:`systolix.apps.infer.run_inference`."""
    print(f"{indent}digits MLP {' -> '.join(r['layers'])} ({r['macs_per_inference']} MACs per "
          f"image), {r['images']} held-out images on {r['engine']} [{r['simulator']}]")
    print(f"{indent}  accuracy      : float {r['float_accuracy']:.1%}, int8 reference "
          f"{r['int8_reference_accuracy']:.1%}, RTL {r['rtl_accuracy']:.1%}")
    print(f"{indent}  bit-exact     : {'every layer' if all(r['layers_bit_exact']) else 'NO'}"
          f" ({r['engine_jobs']} engine jobs)")
    print(f"{indent}  cycles/image  : {r['compute_cycles_per_inference']:.1f} compute, "
          f"{r['job_cycles_per_inference']:.1f} with loading and draining "
          f"({r['array_utilization']:.1%} array utilization while computing)")
    if r.get("images_per_second"):
        print(f"{indent}  throughput    : {r['images_per_second']:,.0f} images/s at "
              f"{r['fmax_mhz']:g} MHz")


def print_onnx(s, indent=""):
    """Print the summary dict of :func:`systolix.apps.onnx_infer.run_onnx`."""
    print(f"{indent}{s['model']}: input {'x'.join(map(str, s['input_shape']))} on "
          f"{s['engine']} [{s['simulator'] or 'model only'}]")
    for r in s["layers"]:
        m, k, n = r["gemm"]
        groups = f"{r['groups']} x " if r["groups"] > 1 else ""
        rtl = r.get("rtl_cycles")
        cycles = f"{rtl} RTL / {r['model_cycles']} model" if rtl is not None else \
            f"{r['model_cycles']} model"
        util = "n/a" if r["utilization"] is None else f"{r['utilization']:.1%}"
        ort = ", onnxruntime float32" if r.get("onnxruntime_kernel") == "float32" else ""
        print(f"{indent}  {r['node']:<16} {r['op']:<12} GEMM {groups}{m}x{k}x{n}: "
              f"{r['jobs']} job(s), {cycles} compute cycles, utilization {util}{ort}")
    print(f"{indent}  output '{s['output']}' {s['output_dtype']} "
          f"{'x'.join(map(str, s['output_shape']))}: integer reference "
          f"{'equal' if s['matches_reference'] else 'DIFFERENT'}, onnxruntime "
          f"{'equal' if s.get('matches_onnxruntime') else 'DIFFERENT'}")
    if s.get("onnxruntime_float32"):
        print(f"{indent}  onnxruntime runs in float32 (unfused QDQ node units): "
              + ", ".join(f"{f['node']} ({f['op']})" for f in s["onnxruntime_float32"]))
    for p in s["problems"]:
        print(f"{indent}  problem: {p}")
