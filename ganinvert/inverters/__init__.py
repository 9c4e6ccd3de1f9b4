"""Inverters by name. Each is a strategy object; ``invert(..., method=Layerwise(solver="highs"))``
passes options, ``method="layerwise"`` uses the defaults."""

from types import MappingProxyType

from .adam import Adam
from .base import Inverter, RawSolution
from .layerwise import Layerwise

INVERTERS = MappingProxyType({Layerwise.name: Layerwise, Adam.name: Adam})

__all__ = ["INVERTERS", "Adam", "Inverter", "Layerwise", "RawSolution"]
