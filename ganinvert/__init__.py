"""ganinvert: exact, certified inversion of generative models, one layer at a time."""

from importlib.metadata import PackageNotFoundError, version as _version

from .api import default_rtol, invert, invert_conditions
from .adapters import to_chain
from .converters import DEFAULT_CONVERTERS, Affine, Reshape
from .chain import Chain, Layer
from .conditions import ConditionsResult
from .errors import (ChainMismatchError, GanInvertError, InvalidInputError, InversionError,
                     LayerTooLargeError, NotDifferentiableError, ShapeMismatchError, SolverError, TrainingModeError,
                     UnsupportedLayerError)
from .inverters import INVERTERS, Adam, Auto, Encoder, GradientDescent, Hybrid, Inverter, Layerwise, Noisy
from .lp import SOLVERS
from .module import Inversion
from .report import GeneratorReport, inspect
from .result import InversionResult, Status

try:
    __version__ = _version("ganinvert")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "INVERTERS", "SOLVERS", "Adam", "Auto", "Encoder", "GradientDescent", "Hybrid", "Inverter", "Layerwise", "Noisy",
    "ConditionsResult", "GeneratorReport", "Inversion", "default_rtol", "inspect", "invert", "invert_conditions",
    "Affine", "Chain", "ChainMismatchError", "DEFAULT_CONVERTERS", "GanInvertError",
    "InvalidInputError", "InversionError", "InversionResult", "Layer", "LayerTooLargeError", "NotDifferentiableError",
    "Reshape", "ShapeMismatchError", "SolverError", "Status", "TrainingModeError",
    "UnsupportedLayerError", "to_chain",
]
