"""The activation-pattern LP (docs/design.md §3.3): with the on/off pattern of every hidden unit fixed,
a piecewise-linear generator is affine in ``z`` on a polyhedron (the pattern's region), so
"find ``z`` in that region with ``G(z) = x``" is one LP in ``z`` over all layers at once.

The LP is :class:`LayerProblem` again, with a per-sample operator: its rows are every hidden
pre-activation (``p >= 0`` where the pattern says on, ``p <= 0`` where off: the region) and the
output rows of the last activation (equalities on positive pixels, one-sided rows on zeros,
exactly as in the layer-wise LP). Its optimum is the smallest l_inf output misfit in the region.
The rows come from the chain's linearisation (:mod:`ganinvert.linearize`); only the latent is a
variable (``k`` columns), so conv generators fit. The descent through regions that solves it
round after round is a search: :mod:`ganinvert.search.pattern`.
"""

from __future__ import annotations

import torch

from ..chain import Chain
from ..linearize import affine_pieces
from .problem import LayerProblem


def pattern_problem(chain: Chain, patterns: list[torch.Tensor], x: torch.Tensor, *,
                    tol: torch.Tensor, sign_weight: float = 1.0, out_bounds=None) -> LayerProblem:
    """The pattern LP for hidden patterns ``[(B, n_l) bool]`` and observations ``x`` (B, n): the
    region rows of every kinked hidden layer (:func:`affine_pieces`) and the output rows.

    ``tol`` (B,) decides which output pixels are zero; ``sign_weight`` weighs the region rows
    against the output rows (large: walls). ``out_bounds`` ``(lo, hi, w)`` (B, n) replaces the
    output rows' bounds (noisy observations:
    :meth:`ganinvert.activations.Activation.threshold_bounds`).
    """
    A_rows, b_rows, lo, hi, w = [], [], [], [], []
    for i, layer, J, c in affine_pieces(chain, patterns, x.shape[0], dtype=x.dtype, device=x.device):
        if i == len(chain) - 1:
            if out_bounds is None:
                rb = layer.act.bounds(x, tol=tol[:, None])
                out_bounds = (rb.lo, rb.hi, rb.weight)
            A_rows.append(J), b_rows.append(c), lo.append(out_bounds[0]), hi.append(out_bounds[1])
            w.append(out_bounds[2])
        elif layer.act.kinked:  # the region: p >= 0 where the pattern says on, p <= 0 where off
            A_rows.append(J), b_rows.append(c), w.append(torch.full_like(c, sign_weight))
            region = layer.act.region_bounds(patterns[i], like=c)
            lo.append(region[0]), hi.append(region[1])
    return LayerProblem(torch.cat(A_rows, 1), torch.cat(b_rows, 1), torch.cat(lo, 1), torch.cat(hi, 1),
                        torch.cat(w, 1))


def region_rows(chain: Chain) -> list[tuple[int, slice]]:
    """``(layer, rows)`` of each hidden layer's region rows in :func:`pattern_problem`'s rows."""
    out, at = [], 0
    for i, layer in enumerate(chain.layers[:-1]):
        if layer.act.kinked:
            out.append((i, slice(at, at + layer.op.out_dim)))
            at += layer.op.out_dim
    return out
