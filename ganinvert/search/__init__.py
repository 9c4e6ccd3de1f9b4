"""Searches for ``G(z) = x`` from starting points: local methods that move ``z`` until it fits,
with no certificate of their own (the inverters certify what they find).

- :mod:`.lm`: Levenberg-Marquardt on the last layer's pre-activation (the fast way into the
  basin on piecewise-linear generators);
- :mod:`.pattern`: the descent through activation regions, one activation-pattern LP per round,
  and the kicks that restart it from a trapped seed;
- :mod:`.lbfgs`: L-BFGS on many independent problems at once, one per row (the polish of the
  latent optimisers).
"""

from .lbfgs import lbfgs_rows
from .lm import LMSolution, levenberg_marquardt
from .pattern import PatternSolution, kick, kick_descent, solve_pattern_lp

__all__ = ["LMSolution", "PatternSolution", "kick", "kick_descent", "lbfgs_rows", "levenberg_marquardt", "solve_pattern_lp"]
