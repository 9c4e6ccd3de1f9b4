"""Polishing an LP point onto its active set, and the uniqueness test (docs/design.md §2.3),
batched on the device of the problem: no host round trip per sample.

At a feasible ``u`` the rows split into pinned rows ``E``, tight one-sided rows ``T`` and tight
box bounds. The pre-image is the single point ``u`` iff the cone of feasible directions
``{d : A_E d = 0, s_j a_j d <= 0 (j in T), box directions}`` is ``{0}``. With ``N`` a basis of
``null(A_E)`` and ``M`` the tight rows in those coordinates, ``{w : M w <= 0} = {0}`` iff ``M``
has full column rank and some ``y > 0`` has ``M^T y = 0`` (Stiemke's alternative): one small
feasibility LP, ``y >= 1, M^T y = 0``, for all such samples at once by the interior-point method
(:func:`~ganinvert.lp.ipm.solve_ipm`, its misfit ``t* = 0`` exactly when it is feasible).

Every sample's active set has its own size; the batch keeps them in fixed shapes by masking:
inactive rows are zero rows, range directions of ``A_E`` zero columns of ``N``, neither of which
changes a rank or the cone.
"""

from __future__ import annotations

import math

import torch

from .fastpath import cholesky_full_rank
from .ipm import solve_ipm
from .problem import LayerProblem

#: the Stiemke LP (rows of unit norm, ``y >= 1``) counts as feasible at misfit ``t* <=`` this:
#: HiGHS's default primal feasibility tolerance, which this test used before it was batched
STIEMKE_TOL = 1e-7


def _rank(S: torch.Tensor, rank_rtol: float) -> torch.Tensor:
    """``(B,)`` numerical rank from singular values ``S`` (B, r), sorted descending."""
    return (S > rank_rtol * S[:, :1].clamp(min=1e-300)).sum(1)


def _cone_is_zero(M: torch.Tensor, live: torch.Tensor, r: torch.Tensor, rank_rtol: float) -> torch.Tensor:
    """``(B,)`` bool: ``{w : M_i w <= 0} = {0}`` in the ``r_i`` live coordinates of ``M`` (B, m, k)
    (its other columns are zero), over its ``live`` (B, m) rows."""
    out = r == 0
    keep = int(live.sum(1).max()) if live.numel() else 0
    order = torch.argsort((~live).to(torch.int8), dim=1, stable=True)[:, :keep]  # each sample's live rows first
    M = torch.gather(M, 1, order[:, :, None].expand(-1, -1, M.shape[2])) * torch.gather(live, 1, order)[:, :, None]
    full = ~out & (_rank(torch.linalg.svdvals(M), rank_rtol) == r)  # else a direction keeps every row tight
    idx = full.nonzero().flatten()
    if idx.numel():
        Mi = M[idx]
        norms = Mi.norm(dim=2, keepdim=True)
        Mi = torch.where(norms > 0, Mi / norms.clamp(min=1e-300), Mi)
        zeros = torch.zeros(idx.numel(), Mi.shape[2], dtype=M.dtype, device=M.device)
        ones = torch.ones_like(zeros)
        stiemke = LayerProblem(Mi.transpose(1, 2), zeros, zeros, zeros, ones, u_lo=1.0)  # M^T y = 0, y >= 1
        out[idx] = solve_ipm(stiemke).t <= STIEMKE_TOL
    return out


def _tight(prob: LayerProblem, u: torch.Tensor, tol: torch.Tensor):
    """The active set at ``u``: pinned rows, tight upper and lower rows, inputs at their bounds."""
    s_lo, s_hi = prob.row_slack(u)
    t = tol[:, None]
    eq = prob.eq
    t_hi = ~eq & torch.isfinite(prob.hi) & (s_hi <= t)
    t_lo = ~eq & torch.isfinite(prob.lo) & (s_lo <= t)
    none = torch.zeros_like(u, dtype=torch.bool)
    at_lo = (u - prob.u_lo <= t) if math.isfinite(prob.u_lo) else none
    at_hi = (prob.u_hi - u <= t) if math.isfinite(prob.u_hi) else none
    return eq, t_hi, t_lo, at_lo, at_hi


def _polish(prob: LayerProblem, u: torch.Tensor, active, rank_rtol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares with every tight row and bound as an equality: ``(candidates, pinned)``,
    ``pinned`` (B,) where the active set has full column rank on the free inputs (Cholesky on
    the normal matrix, the fast path's conservative test)."""
    eq, t_hi, t_lo, at_lo, at_hi = active
    A, k = prob.A, u.shape[1]
    rows = eq | t_hi | t_lo
    target = torch.where(eq | t_lo, prob.lo, prob.hi)
    w2 = torch.where(rows, prob.w ** 2, torch.zeros_like(prob.w))
    fixed = at_lo | at_hi
    u_fix = torch.zeros_like(u)  # the inputs at a bound, held there (at_lo/at_hi are False at an open side)
    for at, bound in ((at_hi, prob.u_hi), (at_lo, prob.u_lo)):
        if math.isfinite(bound):
            u_fix = torch.where(at, torch.full_like(u, bound), u_fix)
    gram = prob.gram(w2)  # (B, k, k)
    rhs = (w2 * torch.where(rows, target - prob.b, torch.zeros_like(target))) @ A - (gram @ u_fix[..., None])[..., 0]
    free = (~fixed).to(u.dtype)
    scale = (gram.diagonal(dim1=1, dim2=2) * free).sum(1) / free.sum(1).clamp(min=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]  # fixed inputs: rows of this size
    eye = torch.eye(k, dtype=u.dtype, device=u.device)
    K = gram * free[:, :, None] * free[:, None, :] + eye * (fixed.to(u.dtype) * scale)[:, None, :]
    rhs = torch.where(fixed, scale * u_fix, rhs)
    L, pinned, _ = cholesky_full_rank(K, rank_rtol)
    cand = u.clone()
    if pinned.any():
        cand[pinned] = torch.cholesky_solve(rhs[pinned, :, None], L[pinned])[..., 0]
    return cand, pinned


def polish_and_certify(prob: LayerProblem, u: torch.Tensor, *, tol: torch.Tensor,
                       rank_rtol: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Snap each ``u`` onto its active set and test whether the pre-image is that one point.

    Args:
        prob: the layer problems (a sub-batch of the samples the fast path did not certify).
        u: ``(B, k)`` LP solutions.
        tol: ``(B,)`` absolute tolerance deciding which constraints are tight.
        rank_rtol: relative threshold of the rank tests.

    Returns:
        ``(u, unique)``: the polished points (unchanged where polishing did not help) and a
        ``(B,)`` bool mask of certified single-point pre-images, both on ``u``'s device.
    """
    active = _tight(prob, u, tol)
    cand, pinned = _polish(prob, u, active, rank_rtol)
    better = pinned & (prob.violation(cand) <= torch.maximum(tol, prob.violation(u)))
    U = torch.where(better[:, None], cand, u)
    unique = torch.zeros(prob.batch, dtype=torch.bool, device=u.device)
    # A direction keeping every active constraint exists unless the active set pins u.
    eq, t_hi, t_lo, at_lo, at_hi = active
    w_eq = torch.where(eq, prob.w ** 2, torch.zeros_like(prob.w))
    _, eq_full, _ = cholesky_full_rank(prob.gram(w_eq), rank_rtol)
    unique |= pinned & eq_full  # the pinned rows alone pin u
    # the cone of feasible directions inside null(A_E), where U is a pre-image (the projection of
    # an observation out of range has no pre-image to be unique)
    idx = (pinned & ~eq_full & (prob.violation(U) <= tol)).nonzero().flatten()
    if idx.numel():
        A, k = prob.A, u.shape[1]
        AE = torch.where(eq[idx, :, None], prob.w[idx, :, None] * A, torch.zeros((), dtype=A.dtype, device=A.device))
        if A.shape[0] > k:  # R of AE = QR has AE's singular values and right vectors, at a k x k SVD's cost
            AE = torch.linalg.qr(AE, mode="r")[1]
        _, S, Vh = torch.linalg.svd(AE, full_matrices=A.shape[0] < k)  # all k right vectors, never a full U
        rank_e = _rank(S, rank_rtol)
        N = Vh.transpose(1, 2) * (torch.arange(k, device=u.device) >= rank_e[:, None]).to(u.dtype)[:, None, :]
        AN = A @ N  # (b, n, k)
        M = torch.cat([AN, -AN, -N, N], dim=1)  # (b, 2n + 2k, k): rows live where tight
        live = torch.cat([t_hi[idx], t_lo[idx], at_lo[idx], at_hi[idx]], dim=1)
        unique[idx] = _cone_is_zero(M, live, k - rank_e, rank_rtol)
    return prob.clamp(U), unique
