"""cocotb testbench pieces for systolix engines: driver, monitor, scoreboard and the test itself.

The pieces are separated as in cocotb's ``examples/matrix_multiplier``: the driver turns jobs
into port-level beats, the monitor records what comes out, the scoreboard compares it with the
numpy golden model, and :mod:`systolix_tb.gemm_test` wires them to one clocked loop.
"""
