"""Repeated units are emitted as one module each and instantiated (systolix.hdl.units)."""

import re

import pytest

from systolix.config import Dataflow, SystolicConfig, TensorCoreConfig
from systolix.emit import verilog_text

pytestmark = pytest.mark.amaranth


def _modules(verilog):
    """``{module name: [(instantiated module, instance name), ...]}``."""
    out = {}
    for body in verilog.split("\nmodule ")[1:]:
        name = body.split("(", 1)[0].strip().lstrip("\\")
        out[name] = re.findall(r"^  \\(\S+) +(\S+) \($", body, re.M)
    return out


@pytest.mark.parametrize("dataflow", list(Dataflow))
def test_array_is_one_column_module_and_one_pe_module_per_row(dataflow):
    cfg = SystolicConfig(3, 4, dataflow)
    mods = _modules(verilog_text(cfg))
    top = cfg.name
    column = f"{top}.column_0"
    pes = {f"{top}.pe_{r}" for r in range(3)}
    assert pes | {column, top} <= set(mods)
    assert not any(re.search(r"\.pe_\d+_\d+$", name) for name in mods)
    assert sorted(i for m, i in mods[top] if m == column) == [f"col_{c}" for c in range(4)]
    assert sorted(mods[column]) == sorted((f"{top}.pe_{r}", f"pe_{r}") for r in range(3))
    for pe in pes:  # every PE port is connected (Verilator: PINMISSING otherwise)
        assert not any(m == pe for m, _ in mods[top])


def test_tensorcore_units_share_one_module():
    cfg = TensorCoreConfig(2, 3, 2)
    mods = _modules(verilog_text(cfg))
    units = [i for m, i in mods[cfg.name] if m == f"{cfg.name}.dp_0"]
    assert sorted(units) == sorted(f"dp_{r}_{c}" for r in range(2) for c in range(3))
    assert not any(name.endswith(("dp_0_1", "dp_1_0")) for name in mods)

