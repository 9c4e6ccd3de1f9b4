"""Inverters by name. Each is a strategy object; ``invert(..., method=Layerwise(solver="highs"))``
passes options, ``method="layerwise"`` uses the defaults. ``Encoder`` needs its encoder, so it
is only available as an instance."""

from types import MappingProxyType

from .adam import Adam, GradientDescent, LatentOptimizer
from .auto import Auto
from .base import Inverter, RawSolution
from .hybrid import Encoder, Hybrid
from .layerwise import Layerwise
from .noisy import Noisy

INVERTERS = MappingProxyType({c.name: c for c in (Layerwise, Auto, Noisy, Adam, GradientDescent, Hybrid)})

__all__ = ["INVERTERS", "Adam", "Auto", "Encoder", "GradientDescent", "Hybrid", "Inverter", "LatentOptimizer",
           "Layerwise", "Noisy", "RawSolution"]
