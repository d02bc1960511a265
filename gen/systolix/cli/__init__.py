"""The ``systolix`` command line."""

from .main.app import main

__all__ = ["main"]
