"""Frozen, validated configuration of generated designs.

One config object describes one generator run. It is validated once, here, and the same object
then feeds the Amaranth generator, the numpy golden model, the cycle model, the testbench and the
manifest written beside the RTL, so those can never disagree about a parameter.
"""

from .array import (MAX_ARRAY_DIM, MULTIPLIERS, PIPELINES, Dataflow, PEPipeline,
                    SystolicConfig, multiplier_plan)
from .engine import DIM_WIDTH, MAX_CORES, EngineConfig
from .numerics import Numerics
from .requant import (REQUANT_FIELDS, REQUANT_MODES, REQUANT_PARAM_BITS, RequantConfig,
                      requant_fields)
from .tensorcore import DEFAULT_MMA_PIPELINE, MAX_MMA_DIM, TensorCoreConfig

__all__ = ["Dataflow", "PEPipeline", "Numerics", "SystolicConfig", "RequantConfig",
           "EngineConfig", "TensorCoreConfig", "MAX_ARRAY_DIM", "MAX_CORES", "MAX_MMA_DIM",
           "DIM_WIDTH", "PIPELINES", "MULTIPLIERS", "multiplier_plan", "DEFAULT_MMA_PIPELINE",
           "REQUANT_FIELDS", "REQUANT_MODES", "requant_fields", "REQUANT_PARAM_BITS"]

