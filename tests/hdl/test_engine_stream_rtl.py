"""Job streams through the matrix engine's Verilog under cocotb: every command offered as soon
as the previous one is taken, keep-weights jobs, rejects inside the stream, random stalls on
every stream; both bufferings, every core, and every ``done`` exactly where
:func:`systolix.model.cycles.stream_cycles` puts it."""

import numpy as np
import pytest

from helpers import WORK_DIR, rand_operands, requant_entries
from systolix.config import Dataflow, EngineConfig, RequantConfig, SystolicConfig, TensorCoreConfig
from systolix.model.cycles import stream_cycles
from systolix.sim.job import SimJob
from systolix.sim.verify import check

pytestmark = pytest.mark.rtl


def _config(core, buffering, requant=False, pipeline=None):
    limits = dict(max_m=9, max_k=11, max_n=10, buffering=buffering)
    if core == "tc":
        return EngineConfig(core=TensorCoreConfig(2, 2, 4, 1 if pipeline is None else pipeline),
                            cores=2, **limits)
    return EngineConfig(SystolicConfig(3, 4, Dataflow(core), pipeline=pipeline or "none"),
                        **limits, requant=RequantConfig(4, True) if requant else None)


def _stream(config, rng, requant=False):
    """Entries and keep flags: new weights, kept weights, other shapes, a reject."""
    n = config.numerics
    if requant:
        base = requant_entries(rng, config, [(9, 11, 10), (4, 3, 5), (9, 11, 10)], True)
    else:
        base = [rand_operands(rng, n, 9, 11, 10), rand_operands(rng, n, 4, 3, 5),
                rand_operands(rng, n, 9, 11, 10)]
    entries, keep = [], []
    for e in base:
        entries.append(e)
        keep.append(False)
        a2 = rng.integers(n.in_min, n.in_max + 1, (5, e[0].shape[1]))
        entries.append((a2, *e[1:]))
        keep.append(True)
    return entries, keep


def check_stream(config, entries, keep, simulator, seed, stall_prob=0.0):
    job = SimJob(config, entries, stall_prob=stall_prob, seed=seed, stream=True, keep=keep)
    report = check(job, simulator, WORK_DIR)
    assert report.ok, f"[{config.name} on {simulator}, seed {seed}, stall {stall_prob}] {report}"
    return report


SLOW = pytest.mark.slow


@pytest.mark.parametrize("core", ["os", pytest.param("ws", marks=SLOW),
                                  pytest.param("tc", marks=SLOW)])
@pytest.mark.parametrize("buffering", [pytest.param("single", marks=SLOW), "double"])
def test_stream_exact(core, buffering, seed):
    config = _config(core, buffering)
    entries, keep = _stream(config, np.random.default_rng(seed))
    report = check_stream(config, entries, keep, "icarus", seed)
    assert report.total_cycles == report.stream["total"]


@pytest.mark.parametrize("core,pipeline,requant", [
    pytest.param("os", "deep", False, marks=SLOW),
    pytest.param("ws", "deep", True, marks=SLOW),
    pytest.param("tc", 3, False, marks=SLOW),
])
def test_pipelined_double_buffered_stream_with_stalls(core, pipeline, requant, seed):
    """The deepest pipelines: every read that feeds the core or the c stream passes the
    buffer's second read register (generic RTL here, the block RAM's output register on
    ECP5)."""
    config = _config(core, "double", requant=requant, pipeline=pipeline)
    entries, keep = _stream(config, np.random.default_rng(seed), requant=requant)
    report = check_stream(config, entries, keep, "icarus", seed)
    assert report.total_cycles == report.stream["total"]
    check_stream(config, entries, keep, "icarus", seed, stall_prob=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("core", ["os", "ws"])
def test_requantizing_stream_with_stalls_and_a_reject(core, seed):
    config = _config(core, "double", requant=True)
    entries, keep = _stream(config, np.random.default_rng(seed), requant=True)
    check_stream(config, entries, keep, "icarus", seed)
    entries.insert(2, (10, 1, 1))        # rejected: M beyond the buffers
    keep.insert(2, False)
    entries.insert(4, (5, 2, 5))         # rejected: keeps weights of another K
    keep.insert(4, True)
    check_stream(config, entries, keep, "icarus", seed, stall_prob=0.3)


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("core", ["os", "ws", "tc"])
@pytest.mark.parametrize("buffering", ["single", "double"])
def test_stream_exact_verilator(core, buffering, seed):
    config = _config(core, buffering)
    entries, keep = _stream(config, np.random.default_rng(seed))
    check_stream(config, entries, keep, "verilator", seed)
    check_stream(config, entries, keep, "verilator", seed, stall_prob=0.3)


def _stream_model(config, entries, keep):
    return stream_cycles(config, [(e[0].shape[0], e[0].shape[1], e[1].shape[1], k)
                                  for e, k in zip(entries, keep)])


def check_reset_mid_stream(simulator, seed, stall_prob=0.0, cuts=(0.01, 0.4, 0.8),
                           core="os", buffering="double", requant=False, pipeline=None):
    """Streams cut by a reset (random stalls on every stream) at ``cuts`` of their unstalled
    length (0.01: while the first job loads; later: with jobs in every stage), each followed
    by a keep-weights command that must be rejected; then a new stream, bit-exact and,
    unstalled, every ``done`` where the model puts it. The testbench checks the reset's
    reaction itself (see :func:`systolix_tb.engine_test.run_cut_by_reset`)."""
    config = _config(core, buffering, requant, pipeline)
    rng = np.random.default_rng(seed)
    resets = []
    for fraction in cuts:
        entries, keep = _stream(config, rng, requant)
        # stalls only make a stream longer: a cut before the unstalled end is mid-stream
        cut = int(fraction * _stream_model(config, entries, keep)["total"])
        resets.append({"entries": entries, "keep": keep, "cycle": cut, "stall_prob": 0.3})
    entries, keep = _stream(config, rng, requant)
    job = SimJob(config, entries, stall_prob=stall_prob, seed=seed, stream=True, keep=keep,
                 resets=resets)
    report = check(job, simulator, WORK_DIR)
    assert report.ok, f"[{config.name} on {simulator}, seed {seed}] {report}"
    cut = report.outcome.resets
    assert [r["cycle"] for r in cut] == [r["cycle"] for r in resets]
    assert cut[0]["done"] == 0 and cut[0]["words"] == 0  # during the first load
    # the last cut: stalls cannot bring job 0's done (unstalled: at most 35 % of the stream)
    # past it
    assert 0 < cut[-1]["done"] < len(resets[-1]["entries"])
    if not stall_prob:
        assert report.total_cycles == report.stream["total"]


#: (core, buffering, requant, pipeline) of the engines cut by a reset besides the default
#: suite's double-buffered output-stationary one
RESET_ENGINES = [("os", "single", False, None), ("ws", "single", True, None),
                 ("ws", "double", True, "deep"), ("tc", "single", False, None),
                 ("tc", "double", False, 2)]


def test_reset_mid_stream(seed):
    check_reset_mid_stream("icarus", seed, cuts=(0.01, 0.8))


@pytest.mark.parametrize("core, buffering, requant, pipeline", RESET_ENGINES)
def test_reset_mid_stream_every_engine(core, buffering, requant, pipeline, seed):
    check_reset_mid_stream("icarus", seed, core=core, buffering=buffering, requant=requant,
                           pipeline=pipeline)


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("core, buffering, requant, pipeline",
                         [("os", "double", False, None)] + RESET_ENGINES)
def test_reset_mid_stream_verilator(core, buffering, requant, pipeline, seed):
    for stall_prob in (0.0, 0.3):
        check_reset_mid_stream("verilator", seed, stall_prob, core=core, buffering=buffering,
                               requant=requant, pipeline=pipeline)
