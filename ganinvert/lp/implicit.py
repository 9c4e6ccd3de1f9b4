"""Gradients through the inversion: implicit differentiation of each answer's active set.

**Samples with G(z) = x.** At the latent ``z`` found, every layer ``y = phi(A u + b)`` has an
active set: the rows its activation pins (``phi`` invertible there: positive ReLU rows, every
LeakyReLU row, unsaturated Tanh/Sigmoid rows; :meth:`~ganinvert.activations.Activation.active_rows`)
and the input coordinates sitting on the previous activation's range bound (ReLU zeros). Where
those equations have full column rank on the free coordinates, they pin the layer's input, and
the answer map of the layer-wise method near ``z`` is their weighted least-squares solution::

    u(y) = argmin { sum_{j pinned} w_j^2 (a_j u + b_j - phi^-1(y_j))^2 : u_F = bound }

chained from the last layer to the first (:func:`differentiate`). On an EXACT sample it is the
certified answer (``u(x) = z``), and its derivative the exact derivative of the answer map: along
the range of ``G`` the only possible one; off the range the least-squares one, which is also the
layer LP's own derivative (the minimum-norm solution of its singular KKT derivative;
``Layerwise(solver="cvxpylayers")`` is that reference, see :mod:`.cvx`). The backward pass of one
layer costs two triangular solves and four GEMMs (:class:`_LeastSquares`).

**Samples without G(z) = x** (noisy or perturbed observations, Defense-GAN style projections):
on the activation region of ``z`` the generator is affine, so the least-squares projection of
``x`` onto the image of the region's closure is a convex QP (:func:`region_projection`): it is
solved by an active-set method from ``z`` and differentiated through its active set (the hidden
units held at 0 and the pinned output rows). It fits ``x`` at least as well as ``z``, equals ``z``
where ``z`` already minimises the misfit in its region, and stays continuous when the projection
sits on a boundary between regions (both closures hold it), where the plain projection has no
derivative: the QP's active set gives the one-sided derivative along that face.

A sample whose active set does not pin ``z`` (a contracting layer, a rank-deficient region) has
no gradient: :func:`guard` refuses to backpropagate into it (:class:`NotDifferentiableError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..chain import Chain
from ..errors import NotDifferentiableError
from .fastpath import cholesky_full_rank
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
        L, full, _ = cholesky_full_rank(G, rank_rtol)  # the fixed inputs' unit diagonal is well conditioned
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


def _active_set_qp(H: torch.Tensor, g: torch.Tensor, C: torch.Tensor, d: torch.Tensor, z: torch.Tensor, *,
                   max_iter: int = 200) -> tuple[torch.Tensor, list[int]] | None:
    """``min z^T H z / 2 - g^T z`` s.t. ``C z >= d``, from a feasible ``z`` (one sample, small ``k``):
    the primal active-set method (Nocedal & Wright, Algorithm 16.3). Returns ``(z, working set)``
    at the optimum, or None if it does not settle within ``max_iter`` steps."""
    k, work = z.shape[0], []
    scale = 1e-9 * (1 + C.abs().amax())
    for _ in range(max_iter):
        Cw = C[work]
        K = torch.cat([torch.cat([H, -Cw.T], 1), torch.cat([Cw, torch.zeros(len(work), len(work), dtype=H.dtype)], 1)])
        sol = torch.linalg.lstsq(K, torch.cat([g, d[work]]).unsqueeze(-1)).solution.squeeze(-1)
        step, lam = sol[:k] - z, sol[k:]
        if step.norm() <= 1e-12 * (1 + z.norm()):
            if not work or lam.min() >= -1e-12 * (1 + lam.abs().max()):
                return z, work
            work.pop(int(lam.argmin()))  # a constraint that holds z back the wrong way: release it
            continue
        slack, rate = C @ z - d, C @ step
        block = (rate < -scale) & ~torch.isin(torch.arange(C.shape[0]), torch.tensor(work, dtype=torch.long))
        alpha, j = 1.0, -1
        if block.any():
            ratios = torch.where(block, slack.clamp(min=0) / -rate, torch.full_like(slack, float("inf")))
            j = int(ratios.argmin())
            alpha = min(1.0, float(ratios[j]))
        z = z + alpha * step
        if alpha < 1.0:
            work.append(j)
    return None


def region_projection(chain: Chain, x: torch.Tensor, z: torch.Tensor, *, observed: torch.Tensor | None = None,
                      rank_rtol: float = 1e-8) -> Differentiated:
    """For samples without ``G(z) = x``: the least-squares projection of ``x`` onto the image of the
    closure of z's activation region, on the graph. There the generator is affine, so this is a
    convex QP over the region's polyhedron (the rows of the activation-pattern LP, with the
    pinned output rows in the objective): solved by an active-set method, then differentiated
    implicitly through its active constraints (the KKT system of the hidden units held at 0 and
    the pinned rows). It fits ``x`` at least as well as ``z`` (which is feasible), and equals ``z``
    where ``z`` already minimises the misfit in its region.

    Args:
        chain: float64, its tensors on the graph; hidden activations piecewise linear (else no
            sample is defined).
        x: ``(B, n)`` observations on the graph; z: ``(B, k)`` the latents found.
        observed: ``(B, n)`` bool, the observed pixels (None: all).
    """
    from .pattern import _hidden_pass, applies, pattern_problem

    B, k = z.shape
    plain = chain.detach()
    if not applies(plain):
        why = "no G(z) = x, and hidden activations that are not piecewise linear have no region to project on"
        return Differentiated(z=z.detach().clone(), defined=torch.zeros(B, dtype=torch.bool), reasons=[why] * B)
    last = chain.layers[-1]
    with torch.no_grad():
        pats, h = _hidden_pass(plain, z)
        p = plain.layers[-1].op.matvec(h) + plain.layers[-1].bias
        rows = last.act.active_rows(p)
        pinned = rows.eq & torch.isfinite(rows.lo) & last.act.bounds(x.detach(), tol=torch.zeros_like(x[:, :1])).eq
        if observed is not None:
            pinned &= observed
    t = torch.where(pinned, last.act.inverse(x, p), torch.zeros_like(x))
    open_ = torch.full_like(t, math.inf)
    prob = pattern_problem(chain, pats, x.detach(), tol=torch.zeros(B, dtype=x.dtype, device=x.device),
                           out_bounds=(torch.where(pinned, t, -open_), torch.where(pinned, t, open_), rows.weight))
    fit = prob.eq & torch.isfinite(prob.lo)  # the objective's rows: the pinned pixels
    up, down = torch.isfinite(prob.hi) & ~fit, torch.isfinite(prob.lo) & ~fit  # the region's walls
    outs, ok, reasons = [], torch.zeros(B, dtype=torch.bool), [""] * B
    for i in range(B):
        A, b, w2 = prob.A[i], prob.b[i], prob.w[i].detach() ** 2
        Af, tf = A[fit[i]], prob.lo[i][fit[i]]
        C = torch.cat([-A[up[i]], A[down[i]]])  # C z >= d: the region, p <= hi and p >= lo
        d = torch.cat([b[up[i]] - prob.hi[i][up[i]], prob.lo[i][down[i]] - b[down[i]]])
        H = (Af.T * w2[fit[i]]) @ Af
        g = (Af.T * w2[fit[i]]) @ (tf - b[fit[i]])
        Hd, gd, Cd, dd = H.detach(), g.detach(), C.detach(), d.detach()
        if not bool(cholesky_full_rank(Hd[None], rank_rtol)[1][0]):
            outs.append(z[i].detach())
            reasons[i] = "the region's linearization does not pin z (rank deficient)"
            continue
        found = _active_set_qp(Hd, gd, Cd, dd, z[i].detach())
        if found is None:
            outs.append(z[i].detach())
            reasons[i] = "the projection onto the activation region did not settle"
            continue
        work = found[1]
        if work and int(torch.linalg.matrix_rank(Cd[work])) < len(work):
            outs.append(z[i].detach())
            reasons[i] = "the projection's active walls are degenerate (linearly dependent)"
            continue
        Cw = C[work]  # on the graph: the KKT system of the active set, differentiated by autograd
        K = torch.cat([torch.cat([H, -Cw.T], 1), torch.cat([Cw, torch.zeros(len(work), len(work), dtype=H.dtype)], 1)])
        outs.append(torch.linalg.solve(K, torch.cat([g, d[work]]))[:k])
        ok[i] = True
    return Differentiated(z=torch.stack(outs), defined=ok, reasons=reasons)


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


def attach(chain: Chain, x_graph: torch.Tensor, x: torch.Tensor, z: torch.Tensor, *, observed: torch.Tensor | None,
           valid: torch.Tensor, invalid: list[str], rtol: float, lp_layer: LayerLP | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``invert(differentiable=True)``: samples with ``G(z) = x`` (to ``rtol``) get the layers'
    active-set answer map (:func:`differentiate`), the others the projection onto their region
    (:func:`region_projection`). Samples take the value their gradient is of (the same ``z`` where
    ``G(z) = x``): ``z`` is updated in place, so the statuses describe the latents returned.

    Args:
        chain, x_graph: the chain and the observations ``(B, n)`` on the autograd graph.
        x: the observations, detached (unobserved pixels zeroed); z: ``(B, k)`` the latents found.
        observed: ``(B, n)`` bool or None; valid: ``(B,)`` bool on the CPU; invalid: per sample
            why it is INVALID ("" when valid).

    Returns:
        The guarded latents ``(B, k)`` on the graph, and the ``(B,)`` bool mask of those with a
        gradient.
    """
    xg = x_graph if observed is None else torch.where(observed, x_graph, torch.zeros_like(x_graph))
    with torch.no_grad():
        fit = chain.detach().forward_all(z)[-1] - x
        fit = fit if observed is None else fit * observed
        solved = (fit.norm(dim=1) <= rtol * x.norm(dim=1)).cpu() & valid
    d = differentiate(chain, xg, z, observed=observed, lp_layer=lp_layer, rtol=rtol)
    d.defined &= solved
    rows = (valid & ~solved).nonzero().flatten()
    if rows.numel():
        r = rows.to(x.device)
        p = region_projection(chain, xg[r], z[r], observed=None if observed is None else observed[r])
        d.z = d.z.index_put((r,), p.z)
        d.defined[rows] = p.defined
        for j, i in enumerate(rows.tolist()):
            d.reasons[i] = p.reasons[j]
    for i, why in enumerate(invalid):
        d.reasons[i] = why or d.reasons[i]
    keep = d.defined.nonzero().flatten().to(z.device)
    z[keep] = d.z.detach()[keep]
    return guard(d, z), d.defined
