"""The activation-pattern LP (DESIGN.md 3): with the on/off pattern of every hidden unit fixed,
a piecewise-linear generator is affine in ``z`` on a polyhedron, so "find ``z`` in that region
with ``G(z) = x``" is one LP in ``z`` over all layers at once.

The LP is :class:`LayerProblem` again, with a per-sample operator: its rows are every hidden
pre-activation (``p >= 0`` where the pattern says on, ``p <= 0`` where off) and the output
rows of the last activation (equalities on positive pixels, one-sided rows on zeros, exactly
as in the layer-wise LP). The pattern is read off a candidate ``z0`` (the layer-wise estimate,
an Adam restart); when the region has no exact pre-image, the LP optimum violates some sign
rows, and re-reading the pattern there flips exactly those units. A bounded number of rounds.

Only the latent is a variable (``k`` columns), so conv generators fit: the rows are built by
pushing the ``k`` latent directions through the matrix-free operators.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..activations import Identity, LeakyReLU, ReLU
from ..chain import Chain
from .ipm import solve_ipm
from .problem import LayerProblem

logger = logging.getLogger(__name__)

_PIECEWISE_LINEAR = (ReLU, LeakyReLU, Identity)


def applies(chain: Chain) -> bool:
    """True when every hidden activation is piecewise linear (ReLU, LeakyReLU, identity); the
    output activation may be anything the layer-wise LP handles."""
    return all(isinstance(layer.act, _PIECEWISE_LINEAR) for layer in chain.layers[:-1])


def _slope(act, p: torch.Tensor) -> torch.Tensor:
    if isinstance(act, ReLU):
        return (p > 0).to(p.dtype)
    if isinstance(act, LeakyReLU):
        return torch.where(p >= 0, torch.ones_like(p), torch.full_like(p, act.negative_slope))
    return torch.ones_like(p)


def patterns_at(chain: Chain, z: torch.Tensor) -> list[torch.Tensor]:
    """The on/off pattern (``p >= 0``) of every hidden layer at ``z`` (B, k): ``[(B, n_l)]``."""
    out, u = [], z
    for layer in chain.layers[:-1]:
        p = layer.op.matvec(u) + layer.bias
        out.append(p >= 0)
        u = layer.act.forward(p)
    return out


def pattern_problem(chain: Chain, patterns: list[torch.Tensor], x: torch.Tensor, *,
                    tol: torch.Tensor) -> LayerProblem:
    """The pattern LP for hidden patterns ``[(B, n_l) bool]`` and observations ``x`` (B, n).

    With the slopes fixed by the pattern every pre-activation is affine in ``z``,
    ``p_l = J_l z + c_l``; ``J_l`` is built by pushing the ``k`` latent directions through the
    operators and ``c_l`` by pushing ``z = 0``. ``tol`` (B,) decides which output pixels are zero.
    """
    B, k = x.shape[0], chain.in_dim
    dt, dev = x.dtype, x.device
    c = torch.zeros(B, k, dtype=dt, device=dev)  # the image of z = 0
    J = torch.eye(k, dtype=dt, device=dev).expand(B, k, k)  # d(layer input)/dz, (B, dim, k)
    A_rows, b_rows, lo, hi, w = [], [], [], [], []
    for i, layer in enumerate(chain.layers):
        c = layer.op.matvec(c) + layer.bias
        J = layer.op.matvec(J.transpose(1, 2).reshape(B * k, -1)).reshape(B, k, -1).transpose(1, 2)
        if i == len(chain) - 1:
            rb = layer.act.bounds(x, tol=tol[:, None])
            A_rows.append(J), b_rows.append(c), lo.append(rb.lo), hi.append(rb.hi), w.append(rb.weight)
            break
        if isinstance(layer.act, Identity):
            continue
        on = patterns[i]
        inf = torch.full_like(c, float("inf"))
        A_rows.append(J), b_rows.append(c), w.append(torch.ones_like(c))  # the sign rows of the region
        lo.append(torch.where(on, torch.zeros_like(c), -inf))
        hi.append(torch.where(on, inf, torch.zeros_like(c)))
        s = _slope(layer.act, torch.where(on, torch.ones_like(c), -torch.ones_like(c)))
        c, J = s * c, s.unsqueeze(-1) * J
    return LayerProblem(torch.cat(A_rows, 1), torch.cat(b_rows, 1), torch.cat(lo, 1), torch.cat(hi, 1),
                        torch.cat(w, 1))


@dataclass
class PatternSolution:
    """Attributes: ``z`` (B, k) best point found; ``residual`` (B,) its relative output residual
    ``||G(z) - x|| / ||x||``; ``rounds`` (B,) pattern LPs solved per sample."""

    z: torch.Tensor
    residual: torch.Tensor
    rounds: torch.Tensor


def solve_pattern_lp(chain: Chain, z0: torch.Tensor, x: torch.Tensor, *, rtol: float, rounds: int = 5,
                     max_iter: int = 100, chunk: int | None = None,
                     patterns: list[torch.Tensor] | None = None) -> PatternSolution:
    """Pattern LPs from the pattern at ``z0`` (or the given first ``patterns``), re-reading the
    pattern at each LP optimum, until ``||G(z) - x|| <= rtol ||x||`` or ``rounds`` LPs; per
    sample the best ``z`` seen is kept.

    ``chunk`` bounds the samples per LP batch (default: about 64 MiB of rows per batch).
    """
    B, k = z0.shape
    with torch.no_grad():
        best_z = z0.clone()
        best = chain.relative_residual(z0, x)
        n_rows = sum(layer.op.out_dim for layer in chain.layers)
        chunk = chunk or max(1, (1 << 23) // (n_rows * (k + 1)))
        used = torch.zeros(B, dtype=torch.long, device=z0.device)
        live = (best > rtol).nonzero().flatten()
        z = z0.clone()
        pats = patterns_at(chain, z0) if patterns is None else [p.clone() for p in patterns]
        scale = x.abs().amax(1).clamp(min=1.0)
        for r in range(rounds):
            if live.numel() == 0:
                break
            for s in range(0, live.numel(), chunk):
                idx = live[s:s + chunk]
                prob = pattern_problem(chain, [p[idx] for p in pats], x[idx], tol=0.1 * rtol * scale[idx])
                sol = solve_ipm(prob, u0=z[idx], max_iter=max_iter)
                z[idx] = sol.u
                used[idx] += 1
                for p, q in zip(pats, patterns_at(chain, sol.u), strict=True):  # flip what the optimum violates
                    p[idx] = q
            res = chain.relative_residual(z[live], x[live])
            better = res < best[live]
            best_z[live[better]], best[live[better]] = z[live[better]], res[better]
            live = live[best[live] > rtol]
            logger.debug("pattern LP round %d: %d samples still without G(z) = x", r + 1, live.numel())
    return PatternSolution(z=best_z, residual=best, rounds=used)
