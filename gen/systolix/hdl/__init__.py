"""Amaranth 0.5 gateware: arithmetic helpers, processing elements and arrays."""
