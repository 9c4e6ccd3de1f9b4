"""The certified least-squares fast path (DESIGN.md 2.1).

Least squares on the pinned rows, batched: one Gram matrix per sample (the operator is shared,
only the row mask differs), solved by Cholesky. A sample is *certified* only when the pinned
rows have full column rank (checked: without it plain lstsq certifies wrong answers), their
residual is within tolerance, no one-sided row is violated and ``u`` lies in its box. Then the
layer's pre-image is the single point found.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .problem import LayerProblem


@dataclass
class FastPath:
    """Attributes: ``u`` (B, k); ``certified`` (B,) bool; ``sigma_min`` (B,) smallest singular
    value of the weighted pinned rows (0 where fewer than k rows are pinned)."""

    u: torch.Tensor
    certified: torch.Tensor
    sigma_min: torch.Tensor


def lstsq_fast_path(prob: LayerProblem, *, tol: torch.Tensor, rank_rtol: float = 1e-8) -> FastPath:
    """Least squares on the pinned rows of each sample.

    Args:
        prob: the layer problems.
        tol: ``(B,)`` absolute feasibility tolerance (weighted pre-activation units).
        rank_rtol: full column rank means ``sigma_min > rank_rtol * sigma_max``.
    """
    A, k = prob.A, prob.A.shape[1]
    eq = prob.eq
    w2 = torch.where(eq, prob.w ** 2, torch.zeros_like(prob.w))  # (B, n)
    target = torch.where(eq, prob.lo - prob.b, torch.zeros_like(prob.lo))
    B = prob.batch
    gram = torch.empty(B, k, k, dtype=A.dtype, device=A.device)
    chunk = max(1, (1 << 25) // max(1, k * A.shape[0]))  # bounds the (chunk, k, n) temporary
    for s in range(0, B, chunk):
        gram[s:s + chunk] = (A.T.unsqueeze(0) * w2[s:s + chunk].unsqueeze(1)) @ A
    rhs = (w2 * target) @ A  # (B, k)
    enough = eq.sum(1) >= k
    evals = torch.linalg.eigvalsh(gram)  # (B, k) ascending
    sigma_min = evals[:, 0].clamp(min=0).sqrt()
    full_rank = enough & (evals[:, 0] > (rank_rtol ** 2) * evals[:, -1].clamp(min=1e-300))
    L, info = torch.linalg.cholesky_ex(gram)
    u = torch.zeros(B, k, dtype=A.dtype, device=A.device)
    good = full_rank & (info == 0)
    if good.any():
        u[good] = torch.cholesky_solve(rhs[good].unsqueeze(-1), L[good]).squeeze(-1)
    certified = good & (prob.violation(u) <= tol)
    return FastPath(u=prob.clamp(u), certified=certified, sigma_min=torch.where(enough, sigma_min, 0))
