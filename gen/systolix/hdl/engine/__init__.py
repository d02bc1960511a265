"""A TPU-style matrix engine: on-chip A/B/C buffers, a tiling controller, and a compute core
(a systolic array, or tensor-core MMA units).

The engine has three phases per job, each with its own stream: load A and B (concurrently),
compute (the controller folds the GEMM over the array; no port activity), drain C. See
:class:`MatrixEngine` for the protocol and ``systolix.model.cycles.engine_cycles`` for the exact
cycle count of each phase.

:mod:`.shell` holds the component (ports, buffers, phase FSM, drain); each compute core has a
sequencer of its own (:mod:`.os_sequencer`, :mod:`.ws_sequencer`, :mod:`.tc_sequencer`, all
built on :class:`.sequencer.Sequencer`), found through :data:`SEQUENCERS`.
"""

from .shell import (CYCLES_WIDTH, SEQUENCERS, MatrixEngine, a_word_layout, b_word_layout,
                    command_layout, result_layout)

__all__ = ["MatrixEngine", "command_layout", "a_word_layout", "b_word_layout", "result_layout",
           "CYCLES_WIDTH", "SEQUENCERS"]
