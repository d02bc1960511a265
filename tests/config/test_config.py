import pytest

from systolix.config import PIPELINES, Dataflow, Numerics, PEPipeline, SystolicConfig

pytestmark = pytest.mark.model


def test_defaults_are_int8_int32_wrap():
    n = Numerics()
    assert (n.in_width, n.acc_width, n.signed, n.saturate) == (8, 32, True, False)
    assert (n.in_min, n.in_max, n.acc_min, n.acc_max) == (-128, 127, -2**31, 2**31 - 1)
    assert n.output_dtype == "int32"
    assert Numerics(acc_width=33).output_dtype == "int64"


def test_name_is_unique_and_readable():
    assert SystolicConfig(8, 8).name == "systolic_os_8x8_int8_acc32_wrap"
    assert SystolicConfig(3, 5, numerics=Numerics(signed=False, saturate=True)).name == \
        "systolic_os_3x5_uint8_acc32_saturate"


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(in_width=1), ValueError, "in_width must be in range 2..16, not 1"),
    (dict(in_width=17), ValueError, "in_width must be in range 2..16, not 17"),
    (dict(in_width=8.0), TypeError, "in_width must be an integer"),
    (dict(acc_width=15), ValueError, "acc_width must be at least 16"),
    (dict(acc_width=16, signed=False), ValueError, "acc_width must be at least 17"),
    (dict(acc_width=65), ValueError, "acc_width must be in range 16..64, not 65"),
    (dict(signed=1), TypeError, "signed must be a bool"),
    (dict(saturate="yes"), TypeError, "saturate must be a bool"),
])
def test_numerics_validation(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        Numerics(**kwargs)


@pytest.mark.parametrize("rows,cols,exc,msg", [
    (0, 4, ValueError, "rows must be in range 1..256, not 0"),
    (4, -1, ValueError, "cols must be in range 1..256, not -1"),
    (257, 4, ValueError, "rows must be in range 1..256, not 257"),
    (True, 4, TypeError, "rows must be an integer"),
    ("4", 4, TypeError, "rows must be an integer"),
])
def test_array_validation(rows, cols, exc, msg):
    with pytest.raises(exc, match=msg):
        SystolicConfig(rows, cols)


def test_dict_round_trip_and_immutability():
    c = SystolicConfig(3, 5, Dataflow.OUTPUT_STATIONARY, Numerics(12, 40, False, True))
    assert SystolicConfig.from_dict(c.to_dict()) == c
    with pytest.raises(AttributeError):
        c.rows = 4


def test_pipeline_option():
    assert SystolicConfig(8, 8).pipeline == "none"
    assert SystolicConfig(8, 8).name == "systolic_os_8x8_int8_acc32_wrap"  # no suffix by default
    assert "pipeline" not in SystolicConfig(8, 8).to_dict()
    cfg = SystolicConfig(8, 8, pipeline="full")
    assert cfg.name == "systolic_os_8x8_int8_acc32_wrap_pipe_full"
    assert cfg.pipeline_stages == 2 and SystolicConfig(2, 2, pipeline="product").pipeline_stages == 1
    assert SystolicConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="pipeline must be one of none, product, full, deep"):
        SystolicConfig(2, 2, pipeline="deeper")
    with pytest.raises(TypeError, match="pipeline must be a string"):
        SystolicConfig(2, 2, pipeline=2)


def test_pipeline_is_a_pe_pipeline_and_reads_as_its_string():
    """The array's pipeline is a named PE register structure (PEPipeline), the tensor core's a
    count; strings and members are interchangeable, and dicts, names and reprs use the string."""
    cfg = SystolicConfig(2, 2, pipeline="deep")
    assert cfg.pipeline is PEPipeline.DEEP and cfg.pipeline == "deep"
    assert cfg == SystolicConfig(2, 2, pipeline=PEPipeline.DEEP)
    assert hash(cfg) == hash(SystolicConfig(2, 2, pipeline=PEPipeline.DEEP))
    assert type(cfg.to_dict()["pipeline"]) is str and "pipeline='deep'" in repr(cfg)
    assert f"{cfg.pipeline}" == str(cfg.pipeline) == "deep"
    assert PIPELINES == {p.value: p.stages for p in PEPipeline} == \
        {"none": 0, "product": 1, "full": 2, "deep": 3}
    assert SystolicConfig(2, 2).pipeline is PEPipeline.NONE


def test_mult_option():
    from systolix.config import MULTIPLIERS
    assert MULTIPLIERS == ("dsp", "lut", "auto")
    c = SystolicConfig(4, 6, pipeline="full", mult="auto")
    assert c.name == "systolic_os_4x6_int8_acc32_wrap_pipe_full_mult_auto"
    assert c.to_dict()["mult"] == "auto" and SystolicConfig.from_dict(c.to_dict()) == c
    assert "mult" not in SystolicConfig(4, 6).to_dict()  # the default leaves manifests as they were
    with pytest.raises(ValueError, match="mult must be one of dsp, lut, auto, not 'fpga'"):
        SystolicConfig(2, 2, mult="fpga")
    with pytest.raises(TypeError, match="mult must be a string, not None"):
        SystolicConfig(2, 2, mult=None)
    ws = SystolicConfig(2, 3, dataflow=Dataflow.WEIGHT_STATIONARY, mult="lut")
    assert ws.name == "systolic_ws_2x3_int8_acc32_wrap_mult_lut"
    assert SystolicConfig.from_dict(ws.to_dict()) == ws


def test_only_lut_multiplier_arrays_drain_through_trees():
    """The drain follows from the config (same for generic and mapped RTL): OR trees where LUTs
    run out (all-LUT output-stationary arrays), the shift chain everywhere else."""
    assert SystolicConfig(4, 4, mult="lut").drain_tree
    assert not SystolicConfig(4, 4).drain_tree
    assert not SystolicConfig(4, 4, mult="auto").drain_tree
    assert not SystolicConfig(4, 4, Dataflow.WEIGHT_STATIONARY, mult="lut").drain_tree


def test_multiplier_plan_fills_dsp_blocks_first():
    from systolix.config import multiplier_plan
    D, L = "dsp", "lut"
    auto = SystolicConfig(3, 5, pipeline="full", mult="auto")
    assert multiplier_plan(auto, None) == ((D,) * 5,) * 3  # no device known: DSP everywhere
    assert multiplier_plan(auto, 0) == ((L,) * 5,) * 3
    assert multiplier_plan(auto, 7) == ((D,) * 5, (D, D, L, L, L), (L,) * 5)
    assert multiplier_plan(auto, 99) == ((D,) * 5,) * 3
    # two PEs per block (iCE40 SB_MAC16): columns 0+1 and 2+3 in pairs, column 4 alone
    assert multiplier_plan(auto, 4, pairs=True) == ((D,) * 5, (D, D, L, L, L), (L,) * 5)
    assert multiplier_plan(auto, 5, pairs=True) == ((D,) * 5, (D, D, D, D, L), (L,) * 5)
    assert multiplier_plan(SystolicConfig(2, 2, mult="lut"), 8) == ((L, L), (L, L))
    assert multiplier_plan(SystolicConfig(2, 2), 0) == ((D, D), (D, D))
    with pytest.raises(ValueError, match="dsp_blocks must be a non-negative integer, not -1"):
        multiplier_plan(auto, -1)
