"""Drives input beats into the array's valid/ready input stream."""

from __future__ import annotations

import random


class BeatDriver:
    """Offers each job's pre-packed beats in order, honouring ``ready``.

    An always-ready input (no ``i__ready`` port, e.g. the tensor-core MMA unit) takes every
    offered beat.

    Parameters
    ----------
    dut : cocotb handle of the array
    jobs : list of list of int
        Input payloads per job (see :func:`systolix.model.tiling.pack_input_beats`).
    stall_prob : float
        Probability of holding ``valid`` low in a cycle (an idle source), from ``rng``.
    rng : random.Random
    may_start : callable(job_index) -> bool
        Asked before a job's first beat; lets the test keep jobs apart (wait for the previous
        result) or stream them back to back.
    """

    def __init__(self, dut, jobs, *, stall_prob=0.0, rng=None, may_start=lambda job: True):
        self._valid = dut.i__valid
        self._payload = dut.i__payload
        self._ready = getattr(dut, "i__ready", None)  # None: always ready
        self._jobs = jobs
        self._stall_prob = stall_prob
        self._rng = rng or random.Random(0)
        self._may_start = may_start
        self._job = 0
        self._beat = 0
        self._offered = False
        self.first_accept = [None] * len(jobs)
        self.accepted = 0

    @property
    def done(self):
        return self._job >= len(self._jobs)

    def drive(self, cycle):
        """Set this cycle's inputs (call right after the rising edge)."""
        offer = (not self.done
                 and (self._beat > 0 or self._may_start(self._job))
                 and not (self._stall_prob and self._rng.random() < self._stall_prob))
        if offer:
            self._payload.value = self._jobs[self._job][self._beat]
        if offer != self._offered:
            self._valid.value = int(offer)
            self._offered = offer

    def sample(self, cycle):
        """Observe the handshake of this cycle (call in the read-only phase)."""
        if not self._offered or (self._ready is not None and not int(self._ready.value)):
            return
        if self._beat == 0:
            self.first_accept[self._job] = cycle
        self.accepted += 1
        self._beat += 1
        if self._beat == len(self._jobs[self._job]):
            self._job += 1
            self._beat = 0
