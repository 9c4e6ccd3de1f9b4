"""The certified least-squares fast path (docs/design.md §2.1).

Least squares on the pinned rows, batched: one Gram matrix per sample (the operator is shared,
only the row mask differs), solved by Cholesky. A sample is *certified* only when the pinned
rows have full column rank (checked: without it plain lstsq certifies wrong answers), their
residual is within tolerance, no one-sided row is violated and ``u`` lies in its box. Then the
layer's pre-image is the single point found.

The same solve can prove the opposite: every pre-image satisfies the pinned rows, so when their
least-squares misfit is positive there is none. Its weighted l2 misfit over ``m`` pinned rows
bounds the layer LP's optimum from below, ``t* >= ||W_E (A_E u_ls + b_E - y_E)||_2 / sqrt(m)``
(a largest entry is at least the root mean square), and an observation whose bound exceeds the
tolerance is proven out of the layer's range without the LP (docs/design.md §2.1). Out-of-range
data (real images, heavy noise) usually is: the LP costs a k x k factorisation per iteration and
sample, the proof one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .problem import LayerProblem


@dataclass
class FastPath:
    """Attributes: ``u`` (B, k); ``certified`` (B,) bool; ``sigma_min`` (B,) a lower bound on the
    smallest singular value of the weighted pinned rows (0 where they are rank deficient);
    ``misfit_bound`` (B,) a lower bound on the layer LP's optimum ``t*`` (module doc; 0 where the
    pinned rows are too few or rank deficient to bound it); ``infeasible`` (B,) bool: proven to
    have no pre-image (``misfit_bound`` above the tolerance)."""

    u: torch.Tensor
    certified: torch.Tensor
    sigma_min: torch.Tensor
    misfit_bound: torch.Tensor
    infeasible: torch.Tensor


def lstsq_fast_path(prob: LayerProblem, *, tol: torch.Tensor, rank_rtol: float = 1e-8) -> FastPath:
    """Least squares on the pinned rows of each sample.

    Args:
        prob: the layer problems.
        tol: ``(B,)`` absolute feasibility tolerance (weighted pre-activation units).
        rank_rtol: full column rank is certified when a lower bound on ``sigma_min`` exceeds
            ``rank_rtol`` times an upper bound on ``sigma_max`` (``sqrt(trace)``).
    """
    A, k = prob.A, prob.A.shape[1]
    B = prob.batch
    eq = prob.eq
    enough = eq.sum(1) >= k  # fewer pinned rows than unknowns can never pin u
    u = torch.zeros(B, k, dtype=A.dtype, device=A.device)
    certified = torch.zeros(B, dtype=torch.bool, device=A.device)
    sigma_min = torch.zeros(B, dtype=A.dtype, device=A.device)
    bound = torch.zeros(B, dtype=A.dtype, device=A.device)
    idx = enough.nonzero().flatten()
    if idx.numel():
        sub = prob.select(idx)
        u[idx], certified[idx], sigma_min[idx], bound[idx] = _solve(sub, A, k, tol[idx], rank_rtol)
    return FastPath(u=prob.clamp(u), certified=certified, sigma_min=sigma_min, misfit_bound=bound,
                    infeasible=bound > tol)


def cholesky_full_rank(gram: torch.Tensor, rank_rtol: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cholesky factors of a batch of normal matrices ``(B, k, k)`` and which have full rank,
    conservatively: ``lambda_min >= 1 / ||L^-1||_F^2`` (a lower bound, 4x cheaper than eigvalsh at
    k = 100) must exceed ``rank_rtol^2`` times ``trace >= lambda_max``, and never less than
    Cholesky's own rounding, ``4 k eps`` of the trace: a Gram matrix squares the singular values,
    so ``rank_rtol = 1e-8`` asks for 1e-16, below float64's eps, where a rank-1 ``a a^T`` can
    factor with a last pivot of rounding noise and pass for full rank (found by the property
    tests: a 1-row layer with 2 inputs certified unique). Returns ``(L, full (B,) bool, the
    lower bound on lambda_min)``; ``L`` is meaningless where ``full`` is False."""
    B, k = gram.shape[0], gram.shape[-1]
    floor = max(rank_rtol ** 2, 4 * k * torch.finfo(gram.dtype).eps)
    L, info = torch.linalg.cholesky_ex(gram)
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device).expand(B, k, k)
    L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
    zero = torch.zeros(B, dtype=gram.dtype, device=gram.device)
    lam_min = torch.nan_to_num(torch.where(info == 0, 1.0 / L_inv.square().sum((1, 2)), zero), nan=0.0, posinf=0.0)
    trace = gram.diagonal(dim1=1, dim2=2).sum(1)
    return L, (info == 0) & (lam_min > floor * trace), lam_min


def _solve(prob: LayerProblem, A: torch.Tensor, k: int, tol: torch.Tensor, rank_rtol: float):
    """Least squares for samples that have at least k pinned rows."""
    B, eq = prob.batch, prob.eq
    w2 = torch.where(eq, prob.w ** 2, torch.zeros_like(prob.w))  # (B, n)
    target = torch.where(eq, prob.lo - prob.b, torch.zeros_like(prob.lo))
    gram = prob.gram(w2)  # (B, k, k)
    rhs = (w2 * target) @ A  # (B, k)
    L, good, lam_min = cholesky_full_rank(gram, rank_rtol)
    u = torch.zeros(B, k, dtype=A.dtype, device=A.device)
    if good.any():
        u[good] = torch.cholesky_solve(rhs[good].unsqueeze(-1), L[good]).squeeze(-1)
    certified = good & (prob.violation(u) <= tol)
    rms = (w2 * (u @ A.T - target).square()).sum(1).div(eq.sum(1).clamp(min=1)).sqrt()
    bound = torch.where(good, rms, torch.zeros_like(rms))  # full rank: u is the least-squares minimiser
    return u, certified, lam_min.clamp(min=0).sqrt(), bound
