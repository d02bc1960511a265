"""systolix: generate int8 matrix engines as hardware, prove them bit-exact, measure them."""

from .config import Dataflow, Numerics, SystolicConfig

__version__ = "0.1.0"

__all__ = ["Dataflow", "Numerics", "SystolicConfig", "__version__"]
