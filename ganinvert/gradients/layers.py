"""The layers' answer map for samples with ``G(z) = x``: at the latent found, the weighted
least-squares solution of every layer's active equations, chained from the last layer to the
first (the package doc), and its implicit derivative (:class:`LeastSquares`)."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..backward import BackwardPass
from ..chain import Chain
from ..lp.fastpath import cholesky_full_rank
from ..lp.problem import MAX_DENSE_INPUT, LayerProblem, WeightedGram
from ..tolerances import target_scale
from .guard import Differentiated

#: an LP solver on the graph for the walk: ``(problem, *, fixed=(mask, value)) -> (u (B, k), t (B,))``
LayerLP = Callable[[LayerProblem], tuple[torch.Tensor, torch.Tensor]]


class LeastSquares(torch.autograd.Function):
    """``u = argmin ||diag(w) (A u + b - t)||`` over the free coordinates, ``u_F = u_fix``, per
    sample; ``w2 = w^2`` is zero off the pinned rows. Returns ``(u, ok)``; ``ok`` is False where
    the pinned rows do not have full column rank on the free coordinates.

    Backward, with ``G`` the normal matrix on the free coordinates, ``r = t - b - A u`` and
    ``G lam = dL/du``: ``dL/dt = W2 A lam``, ``dL/db = -sum W2 A lam`` and
    ``dL/dA = sum (W2 r) lam^T - (W2 A lam) u^T`` (implicit differentiation of the normal
    equations; ``r = 0`` on an exact sample)."""

    @staticmethod
    def forward(ctx, t, A, b, w2, free, u_fix, rank_rtol):
        B, k = free.shape
        s = t - b - u_fix @ A.T  # (B, n): what the free coordinates must fit
        gram = WeightedGram(A)(w2)  # (B, k, k)
        both = free.unsqueeze(2) & free.unsqueeze(1)
        eye = torch.eye(k, dtype=A.dtype, device=A.device).expand(B, k, k)
        G = torch.where(both, gram, torch.zeros_like(gram))
        # the fixed inputs' rows: the free block's mean diagonal, so the rank test stays scale-free
        mean = G.diagonal(dim1=1, dim2=2).sum(1) / free.sum(1).clamp(min=1)
        G = G + eye * ((~free).to(A.dtype) * mean[:, None]).unsqueeze(1)
        L, full, _ = cholesky_full_rank(G, rank_rtol)
        ok = full & torch.isfinite(s).all(1)
        L = torch.where(ok[:, None, None], L, eye)  # a harmless factor where the rows do not pin u
        rhs = ((w2 * torch.nan_to_num(s)) @ A) * free
        u = torch.cholesky_solve(rhs.unsqueeze(-1), L).squeeze(-1) * free + u_fix
        ctx.mark_non_differentiable(ok)
        ctx.save_for_backward(t, A, b, w2, free, u, ok, L)
        return u, ok

    @staticmethod
    def backward(ctx, g, _):
        t, A, b, w2, free, u, ok, L = ctx.saved_tensors
        g = torch.where(free & ok[:, None], g, torch.zeros_like(g))
        lam = torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1) * free  # G lam = g
        w_a_lam = w2 * (lam @ A.T)  # (B, n)
        # residual of the pinned rows (a sample without a gradient may hold inf: 0 * inf is nan)
        r = torch.where((w2 > 0) & ok[:, None], t - b - u @ A.T, torch.zeros_like(t))
        dA = (w2 * r).T @ lam - w_a_lam.T @ u if ctx.needs_input_grad[1] else None
        db = -w_a_lam.sum(0) if ctx.needs_input_grad[2] else None
        return w_a_lam, dA, db, None, None, None, None


def differentiate(chain: Chain, x: torch.Tensor, z: torch.Tensor, *, observed: torch.Tensor | None = None,
                  lp_layer: LayerLP | None = None, rank_rtol: float = 1e-8,
                  rtol: float = 1e-6) -> Differentiated:
    """The answer map at the active sets of ``z``, evaluated at ``x`` on the autograd graph.

    Args:
        chain: the generator, float64, its tensors on the graph the gradients should reach.
        x: ``(B, n)`` float64 observations, on the graph.
        z: ``(B, k)`` the latents found (their active sets are read off ``chain(z)``).
        observed: ``(B, n)`` bool, the observed pixels (None: all).
        lp_layer: solve each layer's LP on the graph instead (its own differentiation gives the
            gradient), e.g. :func:`ganinvert.lp.cvx.lp_layer`; definedness is decided the same way.
        rank_rtol: relative singular-value threshold of the full-rank test.
        rtol: the inversion's tolerance (the LP layer's bounds take ``0.1 * rtol`` of each target).
    """
    B = x.shape[0]
    with torch.no_grad():
        steps = chain.detach().walk(z.detach())
        pre = [p for p, _ in steps]
        ins = [z.detach()] + [h for _, h in steps[:-1]]
    defined = torch.ones(B, dtype=torch.bool, device=x.device)
    reasons = [""] * B
    last = len(chain) - 1

    def step(i: int, A: torch.Tensor, y: torch.Tensor, rows: torch.Tensor):
        layer = chain.layers[i]
        k = A.shape[1]
        # the last layer's rows must be pinned by the observation too (not a saturated pixel)
        pinned, weight = layer.act.pinned_rows(pre[i], x.detach() if i == last else None)
        if i == last and observed is not None:
            pinned &= observed
        lo, hi = chain.input_range(i)
        free = torch.ones_like(ins[i], dtype=torch.bool)
        u_fix = torch.zeros_like(ins[i])
        for bound in (lo, hi):
            if math.isfinite(bound):
                at = ins[i] == bound
                free &= ~at
                u_fix = torch.where(at, torch.full_like(u_fix, bound), u_fix)
        short = pinned.sum(1) < free.sum(1)
        if k > MAX_DENSE_INPUT:
            short[:] = True
        for j in short.nonzero().flatten().tolist():
            if defined[j]:
                why = (f"its {k} inputs exceed {MAX_DENSE_INPUT}" if k > MAX_DENSE_INPUT else
                       f"{int(pinned[j].sum())} pinned rows for {int(free[j].sum())} free inputs")
                reasons[j] = f"layer {i}'s active equations do not pin its input ({why})"
        defined.logical_and_(~short)
        if k > MAX_DENSE_INPUT:
            return torch.zeros(B, k, dtype=x.dtype, device=x.device), torch.ones(B, dtype=torch.bool)
        w2 = torch.where(pinned, weight ** 2, torch.zeros_like(weight))
        t = torch.where(pinned, layer.act.inverse(y, pre[i]), torch.zeros_like(y))
        u, ok = LeastSquares.apply(t, A, layer.bias, w2, free, u_fix, rank_rtol)
        for j in (defined & ~ok).nonzero().flatten().tolist():
            reasons[j] = f"layer {i}'s active equations do not have full column rank"
        defined.logical_and_(ok)
        if lp_layer is not None:
            bounds = layer.act.bounds(y, tol=0.1 * rtol * target_scale(y.detach(), keepdim=True))
            seen = observed if i == last and observed is not None else torch.ones_like(pinned)  # unobserved: open
            prob = LayerProblem(A, layer.bias, torch.where(seen, bounds.lo, -math.inf),
                                torch.where(seen, bounds.hi, math.inf), bounds.weight, lo, hi)
            u = lp_layer(prob, fixed=(free.logical_not(), u_fix))[0]
        return u, torch.ones(B, dtype=torch.bool, device=x.device)

    out = BackwardPass(chain).run(x, step)
    return Differentiated(z=out, defined=defined.cpu(), reasons=reasons)
