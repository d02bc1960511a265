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
def test_array_is_groups_of_one_column_module_with_one_pe_module_per_row(dataflow):
    cfg = SystolicConfig(3, 5, dataflow)  # columns in groups of round(sqrt(5)) = 2: 2, 2, 1
    mods = _modules(verilog_text(cfg))
    top = cfg.name
    pes = {f"{top}.pe_{r}" for r in range(3)}
    assert set(mods) >= pes | {top, f"{top}.column_0", f"{top}.group_0", f"{top}.group_1"}
    assert not any(re.search(r"\.pe_\d+_\d+$", name) for name in mods)
    groups = sorted(i for i in mods[top] if ".group_" in i[0])
    assert groups == [(f"{top}.group_0", "group_0"), (f"{top}.group_0", "group_1"),
                      (f"{top}.group_1", "group_2")]
    assert sorted(mods[f"{top}.group_0"]) == [(f"{top}.column_0", "col_0"),
                                              (f"{top}.column_0", "col_1")]
    assert mods[f"{top}.group_1"] == [(f"{top}.column_0", "col_0")]
    assert sorted(mods[f"{top}.column_0"]) == sorted((f"{top}.pe_{r}", f"pe_{r}")
                                                     for r in range(3))


def test_tensorcore_units_share_one_module():
    cfg = TensorCoreConfig(2, 3, 2)
    mods = _modules(verilog_text(cfg))
    units = [i for m, i in mods[cfg.name] if m == f"{cfg.name}.dp_0"]
    assert sorted(units) == sorted(f"dp_{r}_{c}" for r in range(2) for c in range(3))
    assert not any(name.endswith(("dp_0_1", "dp_1_0")) for name in mods)

