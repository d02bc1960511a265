"""Generic valid/ready stream source and sink for cocotb, with replayable random stalls.

Both follow one discipline per clock cycle: ``drive()`` right after the rising edge sets this
cycle's outputs, ``sample()`` in the read-only phase sees whether the handshake happens at the
next edge. Payloads are pre-packed integers, so the per-cycle Python work is a few handle ops.
"""

from __future__ import annotations


class _StreamEnd:
    """The three handles of one stream end, and the stall settings."""

    def __init__(self, dut, prefix, stall_prob, rng):
        self._valid = getattr(dut, f"{prefix}__valid")
        self._ready = getattr(dut, f"{prefix}__ready")
        self._payload = getattr(dut, f"{prefix}__payload")
        self._stall_prob = stall_prob
        self._rng = rng

    def _stall(self):
        return bool(self._stall_prob) and self._rng.random() < self._stall_prob


class StreamSource(_StreamEnd):
    """Offers ``payloads`` in order on ``<prefix>__valid/__payload``, honouring ``__ready``.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        Stream name in the emitted Verilog (``a`` -> ``a__valid``, ``a__payload``, ``a__ready``).
    payloads : list of int
    stall_prob : float
        Probability of an idle cycle (``valid`` low) before each offer.
    rng : random.Random
    overrun : int or None
        After the last payload keep ``valid`` high with this payload: the DUT must not take it
        (``extra`` counts how often it did).
    """

    def __init__(self, dut, prefix, payloads, *, stall_prob=0.0, rng=None, overrun=None):
        super().__init__(dut, prefix, stall_prob, rng)
        self._payloads = payloads
        self._overrun = overrun
        self._offered = None  # what we offer this cycle: index, "overrun" or None
        self._valid_now = False
        self.taken = 0
        self.extra = 0

    @property
    def done(self):
        return self.taken >= len(self._payloads)

    def drive(self):
        if not self.done:
            stall = self._stall()
            self._offered = None if stall else self.taken
            if not stall:
                self._payload.value = self._payloads[self.taken]
        elif self._overrun is not None:
            if self._offered != "overrun":
                self._payload.value = self._overrun
            self._offered = "overrun"
        else:
            self._offered = None
        valid = self._offered is not None
        if valid != self._valid_now:
            self._valid.value = int(valid)
            self._valid_now = valid

    def sample(self):
        if self._offered is None or not int(self._ready.value):
            return
        if self._offered == "overrun":
            self.extra += 1
        else:
            self.taken += 1

    def idle(self):
        """Drop ``valid`` (call after the rising edge)."""
        self._offered = None
        if self._valid_now:
            self._valid.value = 0
            self._valid_now = False


class StreamSink(_StreamEnd):
    """Takes words from ``<prefix>__valid/__payload``, driving ``__ready`` (randomly low with
    ``stall_prob``), until ``count`` words have arrived."""

    def __init__(self, dut, prefix, count, *, stall_prob=0.0, rng=None):
        super().__init__(dut, prefix, stall_prob, rng)
        self._count = count
        self._ready_now = None
        self.payloads = []

    @property
    def done(self):
        return len(self.payloads) >= self._count

    def drive(self):
        ready = not self._stall()
        if ready != self._ready_now:
            self._ready.value = int(ready)
            self._ready_now = ready

    def sample(self):
        if self._ready_now and int(self._valid.value):
            self.payloads.append(self._payload.value.to_unsigned())

    def idle_ready(self):
        """Hold ``ready`` high (call after the rising edge): outside a transfer, any word the
        DUT offers is taken, so nothing can wait unseen."""
        if not self._ready_now:
            self._ready.value = 1
            self._ready_now = True
