"""Polishing an LP point onto its active set, and the uniqueness test (docs/design.md §2.3).

At a feasible ``u`` the rows split into pinned rows ``E``, tight one-sided rows ``T`` and tight
box bounds. The pre-image is the single point ``u`` iff the cone of feasible directions
``{d : A_E d = 0, s_j a_j d <= 0 (j in T), box directions}`` is ``{0}``. With ``N`` a basis of
``null(A_E)`` and ``M`` the tight rows in those coordinates, ``{w : M w <= 0} = {0}`` iff ``M``
has full column rank and some ``y > 0`` has ``M^T y = 0`` (Stiemke's alternative): one small
feasibility LP, ``y >= 1, M^T y = 0``, solved by HiGHS.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .highs import solve_lp
from .problem import LayerProblem


def _rank_and_null(M: np.ndarray, rank_rtol: float) -> tuple[int, np.ndarray]:
    """Numerical rank of ``M`` (m, r) and an orthonormal basis of its null space (r, r - rank)."""
    if M.shape[0] == 0 or M.shape[1] == 0:
        return 0, np.eye(M.shape[1])
    # Only V is needed; the full U of a tall matrix (784 x 784 for an output layer) is waste.
    _, sv, vt = np.linalg.svd(M, full_matrices=M.shape[0] < M.shape[1])
    rank = int((sv > rank_rtol * max(sv[0], 1e-300)).sum())
    return rank, vt[rank:].T


def _cone_is_zero(M: np.ndarray, rank_rtol: float) -> bool:
    """``{w : M w <= 0} == {0}`` for ``M`` (m, r)."""
    r = M.shape[1]
    if r == 0:
        return True
    rank, _ = _rank_and_null(M, rank_rtol)
    if rank < r:
        return False  # a direction along which every tight constraint stays tight
    M = M / np.linalg.norm(M, axis=1, keepdims=True).clip(min=1e-300)
    m = M.shape[0]
    x, _ = solve_lp(np.zeros(m), M.T, np.zeros(r), np.zeros(r), np.ones(m), np.full(m, math.inf))
    return x is not None


def polish_and_certify(prob: LayerProblem, u: torch.Tensor, *, tol: torch.Tensor,
                       rank_rtol: float = 1e-8) -> tuple[torch.Tensor, torch.Tensor]:
    """Snap each ``u`` onto its active set and test whether the pre-image is that one point.

    Args:
        prob: the layer problems (a sub-batch of the samples the fast path did not certify).
        u: ``(B, k)`` LP solutions.
        tol: ``(B,)`` absolute tolerance deciding which constraints are tight.

    Returns:
        ``(u, unique)``: the polished points (unchanged where polishing did not help) and a
        ``(B,)`` bool mask of certified single-point pre-images.
    """
    A = prob.A.detach().cpu().numpy()
    b = prob.b.detach().cpu().numpy()
    k = A.shape[1]
    lo, hi, w = (v.detach().cpu().numpy() for v in (prob.lo, prob.hi, prob.w))
    U = u.detach().cpu().numpy().copy()
    tols = tol.detach().cpu().numpy()
    viol0 = prob.violation(u).cpu().numpy()
    unique = np.zeros(prob.batch, dtype=bool)
    for i in range(prob.batch):
        ui, ti = U[i], tols[i]
        p = A @ ui + b
        eq = lo[i] == hi[i]
        t_hi = ~eq & np.isfinite(hi[i]) & (w[i] * (hi[i] - p) <= ti)
        t_lo = ~eq & np.isfinite(lo[i]) & (w[i] * (p - lo[i]) <= ti)
        at_lo = (ui - prob.u_lo <= ti) if math.isfinite(prob.u_lo) else np.zeros(k, bool)
        at_hi = (prob.u_hi - ui <= ti) if math.isfinite(prob.u_hi) else np.zeros(k, bool)
        fixed = at_lo | at_hi
        # Polish: every tight row and bound as an equality; least squares on the free coordinates.
        rows = eq | t_hi | t_lo
        target = np.where(eq | t_lo, lo[i], hi[i])[rows]
        u_fix = np.where(at_lo, prob.u_lo, np.where(at_hi, prob.u_hi, 0.0))
        WA = w[i][rows, None] * A[rows]
        rhs = w[i][rows] * (target - b[rows] - A[rows][:, fixed] @ u_fix[fixed])
        free = ~fixed
        Af = WA[:, free]
        rank, _ = _rank_and_null(Af, rank_rtol)
        if rank == free.sum():  # the active set pins u: polishing is exact
            cand = u_fix.copy()
            cand[free] = np.linalg.lstsq(Af, rhs, rcond=None)[0]
            viol = prob.select([i]).violation(torch.as_tensor(cand[None], dtype=u.dtype, device=u.device)).item()
            if viol <= max(ti, viol0[i]):
                U[i] = cand
        else:
            continue  # a direction keeps every active constraint: not a single point
        # Uniqueness: cone of feasible directions restricted to null(A_E).
        rank_e, N = _rank_and_null(w[i][eq, None] * A[eq], rank_rtol)
        if rank_e == k:
            unique[i] = True
            continue
        M = np.vstack([A[t_hi] @ N, -A[t_lo] @ N, -N[at_lo], N[at_hi]])  # (m, r)
        unique[i] = _cone_is_zero(M, rank_rtol)
    U_t = prob.clamp(torch.as_tensor(U, dtype=u.dtype, device=u.device))
    return U_t, torch.as_tensor(unique, device=u.device)
