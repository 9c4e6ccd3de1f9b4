"""The projection onto an activation region, for samples without ``G(z) = x``: on the region of
``z`` the generator is affine, so the least-squares fit of ``x`` over the region's closure is a
convex QP, solved by an active-set method and differentiated through its active set (the
package doc)."""

from __future__ import annotations

import math

import torch

from ..chain import Chain
from ..linearize import piecewise_linear
from ..lp.fastpath import cholesky_full_rank
from ..lp.pattern import pattern_problem
from .guard import Differentiated


def _kkt(H: torch.Tensor, Cw: torch.Tensor) -> torch.Tensor:
    """The KKT matrix ``[[H, -Cw^T], [Cw, 0]]`` of ``min z^T H z / 2 - g^T z`` with walls ``Cw z = d``."""
    m = Cw.shape[0]
    return torch.cat([torch.cat([H, -Cw.T], 1), torch.cat([Cw, H.new_zeros(m, m)], 1)])


def _active_set_qp(H: torch.Tensor, g: torch.Tensor, C: torch.Tensor, d: torch.Tensor, z: torch.Tensor, *,
                   max_iter: int = 200) -> list[int] | None:
    """``min z^T H z / 2 - g^T z`` s.t. ``C z >= d``, from a feasible ``z`` (one sample, small ``k``,
    on the CPU): the primal active-set method (Nocedal & Wright, Algorithm 16.3). Returns the
    working set at the optimum, or None if it does not settle within ``max_iter`` steps."""
    k, work = z.shape[0], []
    in_work = torch.zeros(C.shape[0], dtype=torch.bool)
    scale = 1e-9 * (1 + (C.abs().amax().item() if C.numel() else 0.0))
    for _ in range(max_iter):
        sol = torch.linalg.lstsq(_kkt(H, C[work]), torch.cat([g, d[work]]).unsqueeze(-1)).solution.squeeze(-1)
        step, lam = sol[:k] - z, sol[k:]
        if step.norm() <= 1e-12 * (1 + z.norm()):
            if not work or lam.min() >= -1e-12 * (1 + lam.abs().max()):
                return work
            in_work[work.pop(int(lam.argmin()))] = False  # a wall holding z back the wrong way: release it
            continue
        slack, rate = C @ z - d, C @ step
        block = (rate < -scale) & ~in_work
        alpha, j = 1.0, -1
        if block.any():
            ratios = torch.where(block, slack.clamp(min=0) / -rate, torch.full_like(slack, math.inf))
            j = int(ratios.argmin())
            alpha = min(1.0, float(ratios[j]))
        z = z + alpha * step
        if alpha < 1.0:
            work.append(j)
            in_work[j] = True
    return None


def region_projection(chain: Chain, x: torch.Tensor, z: torch.Tensor, *, observed: torch.Tensor | None = None,
                      rank_rtol: float = 1e-8) -> Differentiated:
    """For samples without ``G(z) = x``: the least-squares fit of ``x`` by the generator on the
    closure of z's activation region (every layer's pattern, the output's included), on the
    graph. There the generator is affine, so this is a convex QP: the rows of the
    activation-pattern LP as walls, the output rows ``z`` pins as the objective (weighted in
    pre-activation units, as the LPs weigh them: the pixel misfit itself for ReLU, LeakyReLU and
    linear outputs). Solved by an active-set method from ``z``, then differentiated implicitly
    through its active set (the KKT system of the walls it rests on). Kept only where it fits
    ``x`` (in pixels) at least as well as ``z``; it is ``z`` where ``z`` already minimises the misfit
    in its region.

    Args:
        chain: float64, its tensors on the graph; hidden activations piecewise linear (else no
            sample is defined).
        x: ``(B, n)`` observations on the graph; z: ``(B, k)`` the latents found.
        observed: ``(B, n)`` bool, the observed pixels (None: all).
    """
    B, k = z.shape
    plain = chain.detach()
    if not piecewise_linear(plain):
        why = "no G(z) = x, and hidden activations that are not piecewise linear have no region to project on"
        return Differentiated(z=z.detach().clone(), defined=torch.zeros(B, dtype=torch.bool), reasons=[why] * B)
    act = chain.layers[-1].act
    with torch.no_grad():
        steps = plain.walk(z)
        pats, p = [step.pattern for step in steps[:-1]], steps[-1].pre
        rows = act.active_rows(p)  # pinned rows fitted, the others' one-sided bounds kept as walls
        seen = torch.ones_like(rows.eq) if observed is None else observed
        fit = rows.eq & torch.isfinite(rows.lo) & seen
        inf = torch.full_like(p, math.inf)
    t = act.inverse(x, p)
    prob = pattern_problem(chain, pats, x.detach(), tol=torch.zeros(B, dtype=x.dtype, device=x.device),
                           out_bounds=(torch.where(fit, t, torch.where(seen & ~rows.eq, rows.lo, -inf)),
                                       torch.where(fit, t, torch.where(seen & ~rows.eq, rows.hi, inf)), rows.weight))
    n_out = p.shape[1]
    is_fit = torch.cat([torch.zeros(B, prob.lo.shape[1] - n_out, dtype=torch.bool, device=p.device), fit], 1)
    up, down = torch.isfinite(prob.hi) & ~is_fit, torch.isfinite(prob.lo) & ~is_fit  # the walls
    outs, ok, reasons = [], torch.zeros(B, dtype=torch.bool), [""] * B
    for i in range(B):
        A, b, w2 = prob.A[i], prob.b[i], prob.w[i].detach() ** 2
        Af, tf, wf = A[is_fit[i]], prob.lo[i][is_fit[i]], w2[is_fit[i]]
        C = torch.cat([-A[up[i]], A[down[i]]])  # C z >= d: p <= hi and p >= lo on every wall
        d = torch.cat([b[up[i]] - prob.hi[i][up[i]], prob.lo[i][down[i]] - b[down[i]]])
        if act.kinked:  # a fitted output row keeps its branch too (p >= 0 on, <= 0 off), or its
            sign = (p[i][fit[i]] >= 0).to(A.dtype) * 2 - 1  # fit in pre-activation units is not the pixels'
            C = torch.cat([C, sign[:, None] * Af])
            d = torch.cat([d, -sign * b[is_fit[i]]])
        H, g = (Af.T * wf) @ Af, (Af.T * wf) @ (tf - b[is_fit[i]])
        Hd, gd, Cd, dd = (v.detach().cpu() for v in (H, g, C, d))
        work = _active_set_qp(Hd, gd, Cd, dd, z[i].detach().cpu()) if bool(
            cholesky_full_rank(Hd[None], rank_rtol)[1][0]) else None
        if work is not None and work and int(torch.linalg.matrix_rank(Cd[work])) < len(work):
            work = None
        if work is None:
            outs.append(z[i].detach())
            reasons[i] = ("no G(z) = x, and the projection onto z's activation region is not pinned there (rank "
                          "deficient or degenerate walls)")
            continue
        # on the graph: the KKT system of the active set, differentiated by autograd
        outs.append(torch.linalg.solve(_kkt(H, C[work]), torch.cat([g, d[work]]))[:k])
        ok[i] = True
    zq = torch.stack(outs)
    with torch.no_grad():  # in pixels, never worse than the inverter's answer
        def misfit(v):
            r = plain.walk(v)[-1].out - x.detach()
            return (r if observed is None else r * observed).norm(dim=1)
        worse = (misfit(zq.detach()) > misfit(z) * (1 + 1e-9) + 1e-12).cpu() & ok
    for i in worse.nonzero().flatten().tolist():
        reasons[i] = ("no G(z) = x, and the region's least-squares point (in pre-activation units) fits x worse "
                      "in pixels than the latent found")
    ok &= ~worse
    return Differentiated(z=torch.where(ok.to(z.device)[:, None], zq, z.detach()), defined=ok, reasons=reasons)
