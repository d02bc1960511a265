"""SCALE-Sim (the ``scalesim`` package from PyPI) on the GEMMs of a lowered model, for
comparison with the engine's exact cycle model and RTL.

:func:`topology_csv` writes SCALE-Sim's GEMM topology (``Layer, M, N, K,`` per row) from the
layers' GEMM shapes; :func:`run_scalesim` runs SCALE-Sim v2 on it with the array's size and
dataflow and returns each layer's "Total Cycles" (compute, without SCALE-Sim's prefetch).
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path

from ..config import Dataflow
from ..errors import SystolixError

__all__ = ["topology_csv", "config_ini", "run_scalesim", "available"]


def available():
    """Whether the optional ``scalesim`` package is installed."""
    try:
        import scalesim.scale_sim  # noqa: F401
    except ImportError:
        return False
    return True


def topology_csv(layers):
    """SCALE-Sim's GEMM topology for ``layers``: ``[(name, m, k, n), ...]``."""
    lines = ["Layer, M, N, K,"]
    for name, m, k, n in layers:
        lines.append(f"{name}, {m}, {n}, {k},")
    return "\n".join(lines) + "\n"


def config_ini(array, name="systolix"):
    """A SCALE-Sim config for ``array`` (:class:`~systolix.config.SystolicConfig`): its rows,
    columns and dataflow, SRAMs large enough that no layer stalls on them."""
    df = "os" if array.dataflow is Dataflow.OUTPUT_STATIONARY else "ws"
    return f"""[general]
run_name = {name}

[architecture_presets]
ArrayHeight : {array.rows}
ArrayWidth : {array.cols}
IfmapSramSzkB : 1024
FilterSramSzkB : 1024
OfmapSramSzkB : 1024
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Bandwidth : 10
Dataflow : {df}
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def run_scalesim(array, layers):
    """Run SCALE-Sim on ``layers`` (``[(name, m, k, n), ...]``) for the systolic ``array``;
    returns ``{name: total compute cycles}``."""
    if not available():
        raise SystolixError("SCALE-Sim is not installed (pip install scalesim)")
    import numpy as np
    from scalesim.memory import double_buffered_scratchpad_mem as mem
    from scalesim.scale_sim import scalesim
    # scalesim 3.0.0 takes int() of a one-element array, which numpy 2 refuses: its module's
    # `max` (looked up in the module before the builtins) returns a scalar instead
    mem.max = lambda *values: np.max(np.asarray(values[0] if len(values) == 1 else values))
    with tempfile.TemporaryDirectory(prefix="systolix-scalesim-") as tmp:
        tmp = Path(tmp)
        (tmp / "config.cfg").write_text(config_ini(array))
        (tmp / "topology.csv").write_text(topology_csv(layers))
        # read even when unused (no custom layout): one placeholder row per layer
        (tmp / "layout.csv").write_text("Layer name" + ", x" * 20 + ",\n" + "".join(
            f"{name}" + ", 1" * 20 + ",\n" for name, *_ in layers))
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=str(tmp / "config.cfg"),
                           topology=str(tmp / "topology.csv"),
                           layout=str(tmp / "layout.csv"), input_type_gemm=True)
            sim.run_scale(top_path=str(tmp))
        reports = list(tmp.rglob("COMPUTE_REPORT.csv"))
        if not reports:
            raise SystolixError("SCALE-Sim wrote no COMPUTE_REPORT.csv")
        rows = list(csv.reader(reports[0].read_text().splitlines()))
    header = [h.strip() for h in rows[0]]
    col = header.index("Total Cycles")
    cycles = [int(float(r[col])) for r in rows[1:] if r and r[0].strip()]
    return {name: c for (name, *_), c in zip(layers, cycles)}
