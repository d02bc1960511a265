"""Compares the engine's results with the numpy golden model."""

from __future__ import annotations

import numpy as np

from systolix.model import golden


class GemmScoreboard:
    """Checks each job's assembled C against :func:`systolix.model.golden.gemm`."""

    def __init__(self, numerics, log, chunk=1):
        self._numerics = numerics
        self._chunk = chunk
        self._log = log
        self.failures = []

    def check(self, name, a, b, got, requant=None):
        """Compare ``got`` with the golden C (requantized with ``requant`` parameters if any)."""
        want = golden.gemm(a, b, self._numerics, self._chunk)
        if requant is not None:
            from systolix.model.quant import requantize
            want = requantize(want, requant)
        if got.shape == want.shape and np.array_equal(got, want):
            return True
        if got.shape != want.shape:
            msg = f"{name}: result shape {got.shape}, expected {want.shape}"
        else:
            bad = np.argwhere(got != want)
            i, j = (int(x) for x in bad[0])
            msg = (f"{name}: {len(bad)} of {want.size} elements differ; first at C[{i}, {j}]: "
                   f"RTL {int(got[i, j])}, reference {int(want[i, j])}")
        self._log.error(msg)
        self.failures.append(msg)
        return False
