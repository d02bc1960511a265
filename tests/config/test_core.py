"""The compute core of a matrix engine (systolix.config.core): one definition of its word
blocks and load counts serves the buffers, the packers, the cycle model, the board link's byte
count and the hardware's word layouts; every core has a sequencer."""

import dataclasses
import math

import numpy as np
import pytest
from amaranth.lib import data

from systolix.board.host import job_link_bytes
from systolix.config import (Dataflow, EngineConfig, Numerics, RequantConfig, SystolicConfig,
                             TensorCoreConfig)
from systolix.config.core import (ComputeCore, OutputStationaryCore, SystolicCore, TensorCore,
                                  WeightStationaryCore)
from systolix.hdl.engine import SEQUENCERS, a_word_layout, b_word_layout
from systolix.model import tiling
from systolix.model.cycles import engine_cycles

pytestmark = pytest.mark.amaranth

OS, WS = Dataflow.OUTPUT_STATIONARY, Dataflow.WEIGHT_STATIONARY

CONFIGS = [
    EngineConfig(SystolicConfig(3, 2, OS), 7, 5, 9),
    EngineConfig(SystolicConfig(2, 4, WS, Numerics(6, 20)), 6, 9, 7),
    EngineConfig(core=TensorCoreConfig(2, 3, 3, 2), cores=2, max_m=9, max_k=7, max_n=10),
    EngineConfig(core=TensorCoreConfig(1, 2, 1, 0), max_m=5, max_k=6, max_n=7),
    EngineConfig(core=TensorCoreConfig(3, 1, 2, 1), max_m=5, max_k=6, max_n=7,
                 requant=RequantConfig(1)),
]


def _reference_a(config, a, fill):
    """A words as :class:`~systolix.hdl.engine.MatrixEngine` documents them, one by one."""
    R, (M, K) = config.rows, a.shape
    at = lambda r, c: int(a[r, c]) if r < M and c < K else fill
    if config.compute.arch == "tensorcore":
        fm, fk = config.core.m, config.core.k
        return [[at(m0 + r, k0 + j) for r in range(fm) for j in range(fk)]
                for m0 in range(0, M, fm) for k0 in range(0, K, fk)]
    if config.dataflow is OS:
        return [[at(m0 + r, k) for r in range(R)] for m0 in range(0, M, R) for k in range(K)]
    return [[at(m, k0 + r) for r in range(R)] for k0 in range(0, K, R) for m in range(M)]


def _reference_b(config, b, fill):
    C, (K, N) = config.cols, b.shape
    at = lambda r, c: int(b[r, c]) if r < K and c < N else fill
    fk = config.core.k if config.compute.arch == "tensorcore" else 1
    return [[at(k0 + j, n0 + c) for j in range(fk) for c in range(C)]
            for n0 in range(0, N, C) for k0 in range(0, K, fk)]


def _lanes(words, lanes, width):
    mask = (1 << width) - 1
    out = []
    for w in words:
        vals = [(w >> (i * width)) & mask for i in range(lanes)]
        out.append([v - (1 << width) if v >> (width - 1) else v for v in vals])
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_word_counts_and_layouts_agree_everywhere(config, seed):
    rng = np.random.default_rng(seed)
    cc, w = config.compute, config.numerics.in_width
    assert config.a_depth == cc.a_words(config.max_m, config.max_k)
    assert config.b_depth == cc.b_words(config.max_k, config.max_n)
    assert math.prod(cc.a_word) == math.prod(cc.a_block)
    assert math.prod(cc.b_word) == math.prod(cc.b_block) and cc.b_block[1] == config.cols
    assert data.Layout.cast(a_word_layout(config)).size == math.prod(cc.a_word) * w
    assert data.Layout.cast(b_word_layout(config)).size == math.prod(cc.b_word) * w
    for _ in range(6):
        m, k, n = (int(rng.integers(1, hi + 1)) for hi in (config.max_m, config.max_k,
                                                          config.max_n))
        a = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (m, k))
        b = rng.integers(-(1 << (w - 1)), 1 << (w - 1), (k, n))
        fill = int(rng.integers(-3, 4))
        a_words = tiling.engine_a_words(config, a, fill=fill)
        b_words = tiling.engine_b_words(config, b, fill=fill)
        model = engine_cycles(config, m, k, n)
        assert len(a_words) == cc.a_words(m, k) == model.a_words, (m, k, n)
        assert len(b_words) == cc.b_words(k, n) == model.b_words, (m, k, n)
        assert _lanes(a_words, math.prod(cc.a_word), w) == _reference_a(config, a, fill)
        assert _lanes(b_words, math.prod(cc.b_word), w) == _reference_b(config, b, fill)
        if isinstance(cc, SystolicCore):  # (the board link carries systolic engines)
            to_board, _ = job_link_bytes(config, m, k, n, max_frame=1 << 20)
            ab, bb = (-(-math.prod(word) * w // 8) for word in (cc.a_word, cc.b_word))
            assert to_board >= len(a_words) * ab + len(b_words) * bb


def test_every_core_has_a_sequencer_and_the_engine_picks_it():
    concrete = {OutputStationaryCore, WeightStationaryCore, TensorCore}
    assert set(SEQUENCERS) == concrete
    assert all(issubclass(c, ComputeCore) for c in concrete)
    assert [type(c.compute) for c in CONFIGS[:3]] == [OutputStationaryCore, WeightStationaryCore,
                                                      TensorCore]


def test_compute_is_derived_not_a_field():
    """``compute`` follows ``array``/``core``; equality, repr and the dict ignore it."""
    a = EngineConfig(SystolicConfig(2, 2), 4, 4, 4)
    b = EngineConfig(SystolicConfig(2, 2), 4, 4, 4)
    assert a == b and hash(a) == hash(b) and "compute" not in repr(a)
    assert "compute" not in a.to_dict()
    c = dataclasses.replace(a, array=SystolicConfig(2, 2, WS))
    assert type(c.compute) is WeightStationaryCore and c.compute.array is c.array
