"""Records the array's output stream."""

from __future__ import annotations


class RowMonitor:
    """Collects every valid output beat's payload and the cycle it appeared in."""

    def __init__(self, dut):
        self._valid = dut.o__valid
        self._payload = dut.o__payload
        self.payloads = []
        self.cycles = []

    def sample(self, cycle):
        """Call in the read-only phase of each cycle."""
        if int(self._valid.value):
            self.payloads.append(self._payload.value.to_unsigned())
            self.cycles.append(cycle)

    def __len__(self):
        return len(self.payloads)
