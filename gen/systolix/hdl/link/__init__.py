"""The board link in gateware: a UART and the engine's host-link controller."""
