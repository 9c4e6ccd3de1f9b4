"""Every LP formulation and the solvers behind them (see :mod:`.problem`)."""

from .layer import SOLVERS, LayerSolution, invert_layer
from .problem import LayerProblem, LPSolution

__all__ = ["SOLVERS", "LayerProblem", "LPSolution", "LayerSolution", "invert_layer"]
