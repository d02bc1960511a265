"""Shared fixtures: replayable random seeds."""

import os
import random

import pytest

#: One base seed per session, printed in the header; SYSTOLIX_SEED=<n> replays a run.
BASE_SEED = int(os.environ.get("SYSTOLIX_SEED", random.SystemRandom().randrange(2**31)))
os.environ["SYSTOLIX_SEED"] = str(BASE_SEED)  # pytest-xdist's workers inherit the same seed


def pytest_report_header(config):
    return f"systolix random seed: {BASE_SEED} (replay with SYSTOLIX_SEED={BASE_SEED})"


@pytest.fixture
def seed(request):
    """A per-test seed derived from the session seed and the test's id (stable on replay)."""
    s = (BASE_SEED * 1_000_003 + sum(map(ord, request.node.nodeid))) % 2**31
    print(f"seed {s} (session SYSTOLIX_SEED={BASE_SEED})")
    return s


#: Test levels (see pyproject.toml): every test declares at least one, by module or decorator.
LEVELS = ("model", "amaranth", "rtl", "toolchain")


#: Verilator variants of cases that stay in the default suite on Icarus, while other Verilator
#: cases of the same design kind stay in it too: each is a separate Verilator build of ~10 s, so
#: they run under `make test-slow` and keep `make test` within its 10 minutes.
SLOW_VERILATOR_REPEATS = {
    "tests/hdl/test_os_array_rtl.py::test_signed_int8_shapes[1-1-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_signed_int8_shapes[1-8-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_signed_int8_shapes[8-1-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_signed_int8_shapes[3-5-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_numerics_extremes[uint16_acc64_saturate-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_numerics_extremes[uint8_acc17_wrap-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_accumulator_overflow[wrap-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_int32_wraps_after_131072_products[verilator]",
    "tests/hdl/test_engine_rtl.py::test_requantized_engine_with_stalls[uint8-os-verilator]",
    "tests/hdl/test_engine_rtl.py::test_requantized_engine_with_stalls[int8-ws-verilator]",
    "tests/hdl/test_engine_rtl.py::test_weight_stationary_accumulator_overflow[wrap-verilator]",
    "tests/hdl/test_engine_rtl.py::test_unsigned_narrow_accumulator[ws-verilator]",
    "tests/hdl/test_tensorcore_rtl.py::test_mma_stream[tensorcore_2x3x5_int8_acc18_saturate_p3-verilator]",
    "tests/hdl/test_requant_rtl.py::test_requantizer_bit_exact_with_stalls[uint8-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_pipelined_array[verilator-deep]",
    "tests/hdl/test_os_array_rtl.py::test_unsigned_uint8[verilator]",
    "tests/hdl/test_os_array_rtl.py::test_wide_operands_int64_results[verilator]",
    "tests/hdl/test_os_array_rtl.py::test_random_input_stalls[verilator]",
    "tests/hdl/test_tc_engine_rtl.py::test_accumulator_overflow[saturate-verilator]",
    "tests/board/test_board_rtl.py::test_tiled_gemms_at_3_mbaud[verilator]",
    "tests/hdl/test_engine_rtl.py::test_requantized_engine_with_stalls[int8-os-verilator]",
    "tests/hdl/test_engine_rtl.py::test_requantized_engine_with_stalls[uint8-ws-verilator]",
    "tests/hdl/test_engine_rtl.py::test_awkward_shapes_back_to_back_with_rejects[ws-verilator]",
    "tests/hdl/test_engine_rtl.py::test_weight_stationary_accumulator_overflow[saturate-verilator]",
    "tests/hdl/test_engine_rtl.py::test_unsigned_narrow_accumulator[os-verilator]",
    "tests/hdl/test_engine_rtl.py::test_pipelined_double_buffered_engine[os-verilator]",
    "tests/hdl/test_requant_rtl.py::test_requantizer_on_the_reference_edge_cases[uint8-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_accumulator_overflow[saturate-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_numerics_extremes[int4_acc8_wrap-verilator]",
    "tests/hdl/test_engine_rtl.py::test_random_stalls_on_every_stream[ws-verilator]",
    "tests/hdl/test_engine_rtl.py::test_awkward_shapes_back_to_back_with_rejects[os-verilator]",
    "tests/hdl/test_os_array_rtl.py::test_back_to_back_no_idle_cycles[verilator]",
    "tests/hdl/test_requant_rtl.py::test_requantizer_on_the_reference_edge_cases[int8-verilator]",
    "tests/hdl/test_tc_engine_rtl.py::test_awkward_shapes_two_units[verilator]",
    # (the engine and tensor-core engine stall tests keep these designs on Verilator)
    "tests/apps/test_infer.py::test_a_few_digits_bit_exact[verilator]",
    "tests/board/test_board_rtl.py::test_malformed_frames_faults_and_reset_then_exact_gemms[verilator]",
    "tests/hdl/test_tensorcore_rtl.py::test_mma_stream[tensorcore_4x4x4_int8_acc32_wrap-verilator]",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the markers
def pytest_collection_modifyitems(config, items):
    ids = {item.nodeid for item in items}
    for item in items:
        if item.nodeid in SLOW_VERILATOR_REPEATS:
            item.add_marker(pytest.mark.slow)
    files = {item.nodeid.split("::")[0] for item in items}
    stale = [i for i in SLOW_VERILATOR_REPEATS if i.split("::")[0] in files and i not in ids]
    if stale:
        raise pytest.UsageError(f"SLOW_VERILATOR_REPEATS names tests that do not exist: {stale}")
    missing = [item.nodeid for item in items
               if not any(item.get_closest_marker(level) for level in LEVELS)]
    if missing:
        raise pytest.UsageError(f"tests without a level marker ({', '.join(LEVELS)}): "
                                + ", ".join(missing[:5]))
