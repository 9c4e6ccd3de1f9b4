"""Gradients through the inversion: implicit differentiation of each layer's active equations.

At a latent ``z`` found by any inverter, every layer ``y = phi(A u + b)`` has an *active set*:
the rows its activation pins (``phi`` invertible there: positive ReLU rows, every LeakyReLU
row, unsaturated Tanh/Sigmoid rows; :meth:`~ganinvert.activations.Activation.active_rows`) and
the input coordinates sitting on the previous activation's range bound (ReLU zeros). Where those
equations have full column rank on the free coordinates, they pin the layer's input, and the
*answer map* of the layer-wise method near ``z`` is their weighted least-squares solution::

    u(y) = argmin { sum_{j pinned} w_j^2 (a_j u + b_j - phi^-1(y_j))^2 : u_F = bound }

chained from the last layer to the first (:func:`differentiate`). On an EXACT sample it is the
certified answer (the equations are consistent, so ``u(x) = z``), and its derivative is the exact
derivative of the answer map: along the range of ``G`` (the directions ``x`` can move in and stay
an image) it is the only possible one, and off the range it is the least-squares one, which is
also what the layer LP's own differentiation gives (the minimum-norm solution of its singular
KKT derivative; ``Layerwise(solver="cvxpylayers")`` is that reference, see :mod:`.cvx`). On a
sample that is not EXACT the same map defines the gradient: of the least-squares point of the
active set at the latent found (EXACT_NONUNIQUE and APPROXIMATE samples whose active sets still
pin every layer). A sample whose active set does not pin some layer has no gradient: the
answer is not locally a function of ``x`` there, and :func:`guard` refuses to backpropagate
into it.

The backward pass of one layer costs two triangular solves and four GEMMs (:class:`_LeastSquares`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..chain import Chain
from ..errors import NotDifferentiableError
from .problem import LayerProblem, WeightedGram

#: largest layer input whose normal matrix (k x k per sample) the derivative builds
MAX_INPUT = 4096

#: an LP solver on the graph for the walk: ``(problem, *, fixed=(mask, value)) -> (u (B, k), t (B,))``
LayerLP = Callable[[LayerProblem], tuple[torch.Tensor, torch.Tensor]]


class _LeastSquares(torch.autograd.Function):
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
        G = torch.where(both, gram, torch.zeros_like(gram)) + eye * (~free).unsqueeze(1).to(A.dtype)
        L, info = torch.linalg.cholesky_ex(G)
        # Full column rank, conservatively (as the fast path decides it): lambda_min >= 1/||L^-1||_F^2
        L_inv = torch.linalg.solve_triangular(L, eye, upper=False)
        lam_min = torch.nan_to_num(1.0 / L_inv.square().sum((1, 2)), nan=0.0, posinf=0.0)
        trace = (G.diagonal(dim1=1, dim2=2) * free).sum(1)
        ok = (info == 0) & (lam_min > rank_rtol ** 2 * trace) & torch.isfinite(s).all(1)
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
        r = torch.where(w2 > 0, t - b - u @ A.T, torch.zeros_like(t))  # residual of the pinned rows
        dA = (w2 * r).T @ lam - w_a_lam.T @ u if ctx.needs_input_grad[1] else None
        db = -w_a_lam.sum(0) if ctx.needs_input_grad[2] else None
        return w_a_lam, dA, db, None, None, None, None


@dataclass
class Differentiated:
    """The least-squares answer map on the graph.

    Attributes:
        z: ``(B, k)`` float64, differentiable in ``x`` and the chain's tensors.
        defined: ``(B,)`` bool on the CPU: every layer's active set pins its input.
        reasons: per sample, why it has no gradient ("" where defined).
    """

    z: torch.Tensor
    defined: torch.Tensor
    reasons: list[str]


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
    from ..inverters.backward import BackwardPass  # the one backward walk over layers

    B = x.shape[0]
    with torch.no_grad():
        plain = chain.detach()
        pre, u = [], z.detach()
        for layer in plain.layers:
            p = layer.op.matvec(u) + layer.bias
            pre.append(p)
            u = layer.act.forward(p)
        ins = [z.detach()] + [plain.layers[i].act.forward(pre[i]) for i in range(len(chain) - 1)]
    defined = torch.ones(B, dtype=torch.bool, device=x.device)
    reasons = [""] * B
    last = len(chain) - 1

    def step(i: int, A: torch.Tensor, y: torch.Tensor, rows: torch.Tensor):
        layer = chain.layers[i]
        n, k = A.shape
        rows_b = layer.act.active_rows(pre[i])
        pinned = rows_b.eq & torch.isfinite(rows_b.lo)
        if i == last:  # the observation must pin the row too (a saturated or zero pixel does not)
            pinned &= layer.act.bounds(x.detach(), tol=torch.zeros_like(x[:, :1])).eq
            if observed is not None:
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
        if k > MAX_INPUT:
            short[:] = True
        for j in short.nonzero().flatten().tolist():
            if defined[j]:
                why = (f"its {k} inputs exceed {MAX_INPUT}" if k > MAX_INPUT else
                       f"{int(pinned[j].sum())} pinned rows for {int(free[j].sum())} free inputs")
                reasons[j] = f"layer {i}'s active equations do not pin its input ({why})"
        defined.logical_and_(~short)
        if k > MAX_INPUT:
            return torch.zeros(B, k, dtype=x.dtype, device=x.device), torch.ones(B, dtype=torch.bool)
        w2 = torch.where(pinned, rows_b.weight ** 2, torch.zeros_like(rows_b.weight))
        t = torch.where(pinned, layer.act.inverse(y, pre[i]), torch.zeros_like(y))
        u, ok = _LeastSquares.apply(t, A, layer.bias, w2, free, u_fix, rank_rtol)
        for j in (defined & ~ok).nonzero().flatten().tolist():
            reasons[j] = f"layer {i}'s active equations do not have full column rank"
        defined.logical_and_(ok)
        if lp_layer is not None:
            scale = y.detach().abs().amax(1, keepdim=True).clamp(min=1.0)
            bounds = layer.act.bounds(y, tol=0.1 * rtol * scale)
            prob = LayerProblem(A, layer.bias, bounds.lo, bounds.hi, bounds.weight, lo, hi)
            if i == last and observed is not None:  # unobserved pixels bound nothing
                open_ = torch.full_like(bounds.lo, math.inf)
                prob = LayerProblem(A, layer.bias, torch.where(observed, bounds.lo, -open_),
                                    torch.where(observed, bounds.hi, open_), bounds.weight, lo, hi)
            u = lp_layer(prob, fixed=(free.logical_not(), u_fix))[0]
        return u, torch.ones(B, dtype=torch.bool, device=x.device)

    out = BackwardPass(chain).run(x, step)
    return Differentiated(z=out, defined=defined.cpu(), reasons=reasons)


class _Guard(torch.autograd.Function):
    """Rows with a gradient pass it on; a nonzero gradient reaching a row without one raises."""

    @staticmethod
    def forward(z_graph, z_found, defined, why):
        return torch.where(defined[:, None], z_graph, z_found)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.defined, ctx.why = inputs[2], inputs[3]

    @staticmethod
    def backward(ctx, g):
        bad = (~ctx.defined) & (g != 0).any(1)
        if bad.any():
            idx = bad.nonzero().flatten().tolist()
            raise NotDifferentiableError(
                f"a gradient reached {len(idx)} sample(s) whose answer is not locally a function of x "
                f"(first: sample {idx[0]}: {ctx.why[idx[0]]}). Expected gradients only through samples "
                "with result.differentiable True; Fix: select them, e.g. res.z[res.differentiable]")
        return torch.where(ctx.defined[:, None], g, torch.zeros_like(g)), None, None, None


def guard(d: Differentiated, z_found: torch.Tensor) -> torch.Tensor:
    """``(B, k)``: ``d.z`` where it is defined, ``z_found`` (the inverter's answer) elsewhere,
    refusing any gradient that would flow into the latter."""
    defined = d.defined.to(z_found.device)
    return _Guard.apply(d.z, z_found.detach().to(d.z.dtype), defined, d.reasons)
