"""Batched primal-dual interior-point method for :class:`LayerProblem` (Mehrotra).

The LP is written in inequality form ``min c^T x  s.t.  G x <= h`` with ``x = (u, t)``,
``c = (cost, 1)`` (per sample) and the row blocks of ``G``::

    [ W A, -1]   (hi rows)      [-W A, -1]   (lo rows)
    [ -I ,  0]   (u >= u_lo)    [  I ,  0]   (u <= u_hi)      [ 0, -1]   (t >= 0)

The operator ``A`` is shared by the batch (or given per sample, ``(B, n, k)``); only the row masks (open sides), weights ``W`` and
right-hand sides differ per sample, so each Newton step forms one ``(k+1) x (k+1)`` normal
matrix per sample, ``G^T D G``, straight from ``A`` and solves it by batched Cholesky. Everything
is plain torch: it runs unchanged on CUDA tensors. Converged samples leave the batch.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch

from .problem import LayerProblem, LPSolution, apply_rows, apply_rows_t, weighted_gram_batched

logger = logging.getLogger(__name__)

_STEP = 0.99
_REFINE = 2


class _Rows:
    """The row structure of ``G`` for one (sub-)batch: masks, weights and ``A``."""

    def __init__(self, prob: LayerProblem) -> None:
        self.A, self.w, self.gram = prob.A, prob.w, prob.gram
        self.n, self.k = prob.A.shape[-2:]
        B, dt, dev = prob.batch, prob.A.dtype, prob.A.device
        m_hi, m_lo = torch.isfinite(prob.hi), torch.isfinite(prob.lo)
        ones_k = torch.ones(B, self.k, dtype=dt, device=dev)
        self.mask = torch.cat([m_hi.to(dt), m_lo.to(dt), ones_k * math.isfinite(prob.u_lo),
                               ones_k * math.isfinite(prob.u_hi), torch.ones(B, 1, dtype=dt, device=dev)], 1)
        zero = torch.zeros((), dtype=dt, device=dev)
        h1 = torch.where(m_hi, prob.w * (prob.hi - prob.b), zero)
        h2 = torch.where(m_lo, prob.w * (prob.b - prob.lo), zero)
        h3 = ones_k * (-prob.u_lo if math.isfinite(prob.u_lo) else 0.0)
        h4 = ones_k * (prob.u_hi if math.isfinite(prob.u_hi) else 0.0)
        self.h = torch.cat([h1, h2, h3, h4, torch.zeros(B, 1, dtype=dt, device=dev)], 1)  # (B, m)

    def take(self, idx: torch.Tensor) -> "_Rows":
        new = object.__new__(_Rows)
        new.A = self.A if self.A.dim() == 2 else self.A[idx]
        new.n, new.k, new.gram = self.n, self.k, self.gram
        new.w, new.mask, new.h = self.w[idx], self.mask[idx], self.h[idx]
        return new

    def split(self, v: torch.Tensor):
        n, k = self.n, self.k
        return v[:, :n], v[:, n:2 * n], v[:, 2 * n:2 * n + k], v[:, 2 * n + k:2 * n + 2 * k], v[:, -1:]

    def G(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, k+1) -> (B, m)``."""
        u, t = x[:, :-1], x[:, -1:]
        wau = self.w * apply_rows(self.A, u)  # (B, n)
        return torch.cat([wau - t, -wau - t, -u, u, -t], 1) * self.mask

    def GT(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, m) -> (B, k+1)``."""
        y1, y2, y3, y4, y5 = self.split(y * self.mask)
        gu = apply_rows_t(self.A, self.w * (y1 - y2)) - y3 + y4
        gt = -(y1.sum(1, keepdim=True) + y2.sum(1, keepdim=True) + y5)
        return torch.cat([gu, gt], 1)

    def normal(self, d: torch.Tensor) -> torch.Tensor:
        """``G^T diag(d) G``, ``(B, k+1, k+1)``, built block-wise from ``A``."""
        d1, d2, d3, d4, d5 = self.split(d * self.mask)
        B, k, A = d.shape[0], self.k, self.A
        du = self.w ** 2 * (d1 + d2)  # (B, n)
        K = torch.empty(B, k + 1, k + 1, dtype=d.dtype, device=d.device)
        K[:, :k, :k] = self.gram(du) if A.dim() == 2 else weighted_gram_batched(A, du)
        K[:, :k, :k].diagonal(dim1=1, dim2=2).add_(d3 + d4)
        ut = apply_rows_t(A, self.w * (d2 - d1))  # (B, k)
        K[:, :k, k] = ut
        K[:, k, :k] = ut
        K[:, k, k] = d1.sum(1) + d2.sum(1) + d5[:, 0]
        return K


def _factor(K: torch.Tensor) -> torch.Tensor:
    """Cholesky with a tiny diagonal shift; larger shifts only where a factorisation fails
    (rank-deficient normal matrices appear when a layer's pre-image is not a point)."""
    scale = K.diagonal(dim1=1, dim2=2).amax(1).clamp(min=1e-300)[:, None, None]  # (B, 1, 1)
    eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
    L, info = torch.linalg.cholesky_ex(K + 1e-14 * scale * eye)
    for rel in (1e-11, 1e-8, 1e-5):
        bad = info != 0
        if not bad.any():
            break
        L[bad], info[bad] = torch.linalg.cholesky_ex(K[bad] + rel * scale[bad] * eye)
    return L


def _max_step(v: torch.Tensor, dv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Largest ``a <= 1`` with ``v + a dv >= 0`` on masked entries, per sample ``(B, 1)``."""
    ratio = torch.where((dv < 0) & (mask > 0), -v / dv, torch.full_like(v, math.inf))
    return ratio.amin(1, keepdim=True).clamp(max=1.0)


def _direction(rows: _Rows, K: torch.Tensor, L: torch.Tensor, rd: torch.Tensor, rp: torch.Tensor,
               s: torch.Tensor, lam: torch.Tensor, rc: torch.Tensor):
    """Newton direction for complementarity target ``rc`` (``lam ds + s dlam = rc``), with the
    slack and dual steps eliminated: ``(G^T D G) dx = -rd - G^T ((rc + lam rp) / s)``."""
    rhs = -rd - rows.GT((rc + lam * rp) / s)
    dx = torch.cholesky_solve(rhs.unsqueeze(-1), L)  # (b, k+1, 1)
    for _ in range(_REFINE):  # undo the diagonal shift of the factorisation
        dx = dx + torch.cholesky_solve(rhs.unsqueeze(-1) - K @ dx, L)
    dx = dx.squeeze(-1)
    ds = (-rp - rows.G(dx)) * rows.mask
    dlam = (rc - lam * ds) / s * rows.mask
    return dx, ds, dlam


def solve_ipm(prob: LayerProblem, *, u0: torch.Tensor | None = None, tol: float = 1e-9,
              max_iter: int = 100, stop: Callable[[], bool] | None = None) -> LPSolution:
    """Solve a batch of layer LPs.

    Args:
        prob: the problems (float64 recommended; any device).
        u0: optional ``(B, k)`` starting guess (e.g. the least-squares estimate).
        tol: relative tolerance on primal/dual residuals and the duality gap.
        max_iter: iteration cap; samples that do not converge come back with ``ok=False``.
        stop: asked before each iteration; once true the samples still running come back with
            ``ok=False`` (a time limit: the LP is the longest unit of work there is).

    Returns:
        An :class:`LPSolution` for the whole batch.
    """
    B, k = prob.batch, prob.A.shape[-1]
    dt, dev = prob.A.dtype, prob.A.device
    rows_all = _Rows(prob)
    u = torch.zeros(B, k, dtype=dt, device=dev) if u0 is None else u0.to(dt).clone()
    # Start strictly inside the input box, with t large enough that every slack is >= 1.
    if math.isfinite(prob.u_lo) and math.isfinite(prob.u_hi):
        margin = 0.05 * (prob.u_hi - prob.u_lo)
        u = u.clamp(prob.u_lo + margin, prob.u_hi - margin)
    else:
        margin = 0.1 * u.abs().mean(1, keepdim=True).clamp(min=1e-3)  # (B, 1)
        if math.isfinite(prob.u_lo):
            u = torch.maximum(u, prob.u_lo + margin)
        if math.isfinite(prob.u_hi):
            u = torch.minimum(u, prob.u_hi - margin)
    x = torch.cat([u, torch.zeros(B, 1, dtype=dt, device=dev)], 1)
    viol = ((rows_all.G(x) - rows_all.h) * rows_all.mask).amax(1, keepdim=True).clamp(min=0)
    x[:, -1:] = viol + 1.0
    s = (rows_all.h - rows_all.G(x)) * rows_all.mask + (1 - rows_all.mask)
    lam = rows_all.mask.clone()
    c = torch.zeros(B, k + 1, dtype=dt, device=dev)
    c[:, -1] = 1.0
    if prob.cost is not None:
        c[:, :-1] = prob.cost.to(dt)

    out_x, ok = x.clone(), torch.zeros(B, dtype=torch.bool, device=dev)
    out_lam = lam.clone()
    live = torch.arange(B, device=dev)
    rows = rows_all
    hnorm = 1.0 + rows.h.abs().amax(1)
    it = 0
    for it in range(1, max_iter + 1):
        if stopped := stop is not None and stop():
            break
        mask = rows.mask
        m_act = mask.sum(1, keepdim=True)
        rd = rows.GT(lam) + c  # (b, k+1)
        rp = (rows.G(x) + s - rows.h) * mask  # (b, m)
        gap = (s * lam * mask).sum(1)
        gap_tol = tol * (1.0 + (c * x).sum(1).abs())
        rd_max = rd.abs().amax(1)
        # converged; or complementarity exhausted (gap 1000x below tolerance) with the dual
        # residual stalled within sqrt(tol): past that point the normal matrix is so
        # ill-conditioned that further steps only add round-off to the dual (reduced accuracy)
        done = ((rp.abs().amax(1) <= tol * hnorm)
                & (((rd_max <= tol) & (gap <= gap_tol)) | ((rd_max <= tol ** 0.5) & (gap <= 1e-3 * gap_tol))))
        if done.any():
            out_x[live[done]], out_lam[live[done]], ok[live[done]] = x[done], lam[done], True
            keep = ~done
            live, x, s, lam, rows, hnorm = live[keep], x[keep], s[keep], lam[keep], rows.take(keep), hnorm[keep]
            c = c[keep]
            if live.numel() == 0:
                break
            mask, m_act, rd, rp = rows.mask, m_act[keep], rd[keep], rp[keep]
        mu = (s * lam * mask).sum(1, keepdim=True) / m_act
        K = rows.normal(lam / s)
        L = _factor(K)

        # predictor (affine scaling), then Mehrotra's centred corrector
        dx, ds, dlam = _direction(rows, K, L, rd, rp, s, lam, -s * lam)
        ap, ad = _max_step(s, ds, mask), _max_step(lam, dlam, mask)
        mu_aff = ((s + ap * ds) * (lam + ad * dlam) * mask).sum(1, keepdim=True) / m_act
        sigma = (mu_aff / mu).clamp(0, 1) ** 3
        dx, ds, dlam = _direction(rows, K, L, rd, rp, s, lam, -s * lam + sigma * mu * mask - ds * dlam)
        ap = (_STEP * _max_step(s, ds, mask)).clamp(max=1.0)
        ad = (_STEP * _max_step(lam, dlam, mask)).clamp(max=1.0)
        x, s, lam = x + ap * dx, s + ap * ds, lam + ad * dlam
        s = torch.where(mask > 0, s.clamp(min=1e-300), torch.ones_like(s))
        lam = torch.where(mask > 0, lam.clamp(min=1e-300), torch.zeros_like(lam))
    if live.numel():
        out_x[live], out_lam[live] = x, lam
    why = f"interior point stopped by the time limit after {it - 1} iterations" if stopped else \
        f"interior point did not converge in {max_iter} iterations"
    messages = ["" if o else why for o in ok.tolist()]
    logger.debug("ipm: %d samples, %d iterations, %d converged", B, it, int(ok.sum()))
    u_out = prob.clamp(out_x[:, :-1])
    n = prob.A.shape[-2]
    dual = out_lam[:, :n] + out_lam[:, n:2 * n]  # per row: whichever side is finite (both on equalities)
    return LPSolution(u=u_out, t=out_x[:, -1].clamp(min=0), ok=ok, messages=messages, iterations=it, dual=dual)
