"""Requantizer stimulus shared by the Amaranth and the RTL tests."""

import numpy as np

from systolix.model import quant


def float32_pairs(out_signed, rng, n_random, n_scales=None):
    """(accumulator, lane parameters) pairs for the float32 rule: every edge accumulator
    against the edge scales (all, or 0.5, 2**-20 and ``n_scales - 2`` others at random; biases
    0, so the conversions and the ties stay as built; zero points spread over the type), then
    random pairs with random biases (wrapping too)."""
    lo, hi = quant.output_range(out_signed)
    edges = quant.float32_edge_accumulators()
    scales = quant.float32_edge_scales()
    if n_scales is not None:
        must = np.isin(scales, np.float32([0.5, 2.0 ** -20]))
        scales = np.concatenate([scales[must], rng.choice(scales[~must], n_scales - 2,
                                                          replace=False)])
    acc = np.repeat(edges, len(scales))
    scale = np.tile(scales, len(edges))
    bias = np.zeros_like(acc)
    acc = np.concatenate([acc, quant.random_accumulators(rng, n_random)])
    scale = np.concatenate([scale, (2.0 ** rng.uniform(-34, 1, n_random)).astype(np.float32)])
    bias = np.concatenate([bias, quant.random_accumulators(rng, n_random)])
    n = len(acc)
    zp = rng.integers(lo, hi + 1, n)
    cmin = np.where(rng.random(n) < 0.8, lo, rng.integers(lo, hi + 1, n))
    cmax = np.where(rng.random(n) < 0.8, hi, rng.integers(lo, hi + 1, n))
    cmin, cmax = np.minimum(cmin, cmax), np.maximum(cmin, cmax)
    fields = dict(bias=bias, scale_bits=scale.view(np.uint32).astype(np.int64), zero_point=zp,
                  clamp_min=cmin, clamp_max=cmax)
    pick = rng.permutation(n)
    return acc[pick], scale[pick], {k: v[pick] for k, v in fields.items()}
