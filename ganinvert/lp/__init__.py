"""Every LP formulation and the solvers behind them (see :mod:`.problem`)."""

from .cvx import to_cvxpy
from .layer import SOLVER_OPTIONS, SOLVERS, LayerSolution, invert_layer
from .problem import LayerProblem, LPSolution

__all__ = ["SOLVER_OPTIONS", "SOLVERS", "LayerProblem", "LPSolution", "LayerSolution", "invert_layer", "to_cvxpy"]
