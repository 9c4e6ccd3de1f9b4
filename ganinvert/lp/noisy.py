"""The LPs of noisy inversion (docs/design.md §4), each the one layer LP
(:class:`~ganinvert.lp.problem.LayerProblem`) with thresholds in its bounds:

- the thresholded l_inf LP (the paper's main noisy method): minimise ``t`` subject to
  ``|a_j u + b_j - y_j| <= t`` on rows with ``y_j > tau``, ``a_j u + b_j <= y_j + t`` on the
  others, ``u >= 0`` on hidden ReLU layers (:func:`threshold_problem`);
- the l_1 "relax" LP: maximise ``sum_{y_j >= 2 tau} y_j a_j u`` subject to
  ``act(A u + b) <= y + tau`` row-wise (:func:`relax_problem`).

The threshold schedules that solve them layer after layer are the noisy inverter's
(:mod:`ganinvert.inverters.noisy`); the rows per activation are the activation's
(:meth:`~ganinvert.activations.Activation.threshold_bounds`, ``relax_rows``).
"""

from __future__ import annotations

import torch

from .problem import LayerProblem


def threshold_problem(act, A: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: torch.Tensor,
                      u_range: tuple[float, float]) -> LayerProblem:
    """The thresholded l_inf LP (module doc) for observation ``y`` (B, n), ``tau`` (B, 1); its rows
    come from :meth:`~ganinvert.activations.Activation.threshold_bounds`."""
    rb = act.threshold_bounds(y, tau)
    return LayerProblem(A, b, rb.lo, rb.hi, rb.weight, *u_range)


#: the l_1 relax LP's cost is scaled so that the multipliers of its fitted rows sum to this: far
#: below 1, so the exact penalty of :class:`~ganinvert.lp.problem.LayerProblem` holds (``t* = 0``
#: whenever the relaxed polyhedron is non-empty)
RELAX_COST_SCALE = 1e-2


def relax_problem(act, A: torch.Tensor, b: torch.Tensor, y: torch.Tensor, tau: torch.Tensor,
                  u_range: tuple[float, float]) -> LayerProblem:
    """The l_1 ("relax") LP of docs/design.md §4.2 for observation ``y`` (B, n), ``tau`` (B, 1)::

        maximise  sum_{y_j >= 2 tau} y_j a_j u   s.t.  act(A u + b) <= y + tau  (row-wise)

    i.e. ``A u + b <= max(0, y + tau)`` for ReLU; LeakyReLU rows with ``y + tau < 0`` bound the
    negative branch, ``A u + b <= (y + tau) / alpha`` (weight ``alpha``, output units), and rows
    with ``y <= -2 tau`` join the objective with weight ``alpha |y_j|``; linear rows keep the band
    ``|A u + b - y| <= tau`` and no objective (the rows: :meth:`~ganinvert.activations.Activation.relax_rows`).
    As the one layer LP with a cost (the exact-penalty form): ``t* = 0`` where the relaxed
    polyhedron is non-empty.
    """
    rb, g = act.relax_rows(y, tau)
    w = rb.weight
    # fitted rows tight at their bounds have multipliers g_j / w_j (weighted rows): scaled to sum to
    # RELAX_COST_SCALE; no fitted rows: no cost (the LP finds a point of the polyhedron)
    total = (g / w).sum(1, keepdim=True)
    cost = -RELAX_COST_SCALE * (g @ A) / torch.where(total > 0, total, torch.ones_like(total))
    return LayerProblem(A, b, rb.lo, rb.hi, w, *u_range, cost=cost)
