"""The board link: a matrix engine behind a UART, its protocol, host library and board top."""
