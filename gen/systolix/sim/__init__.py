"""Running generated designs in cocotb on Icarus or Verilator."""
