"""FPGA flow: synthesis, place and route, design-space sweeps and board bitstreams on the open
toolchain (YoWASP Yosys and nextpnr from PyPI). See :mod:`systolix.synth.flow`."""
