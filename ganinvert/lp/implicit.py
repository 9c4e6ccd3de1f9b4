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
from ..errors import LayerTooLargeError, NotDifferentiableError
from ..tolerances import target_scale
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
        w2 = torch.where(pinned, weight ** 2, torch.zeros_like(weight))
        t = torch.where(pinned, layer.act.inverse(y, pre[i]), torch.zeros_like(y))
        u, ok = _LeastSquares.apply(t, A, layer.bias, w2, free, u_fix, rank_rtol)
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
    from .pattern import applies, hidden_patterns, pattern_problem

    B, k = z.shape
    plain = chain.detach()
    if not applies(plain):
        why = "no G(z) = x, and hidden activations that are not piecewise linear have no region to project on"
        return Differentiated(z=z.detach().clone(), defined=torch.zeros(B, dtype=torch.bool), reasons=[why] * B)
    act = chain.layers[-1].act
    with torch.no_grad():
        pats, h = hidden_patterns(plain, z)
        p = plain.layers[-1].op.matvec(h) + plain.layers[-1].bias
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
            r = plain.forward_all(v)[-1] - x.detach()
            return (r if observed is None else r * observed).norm(dim=1)
        worse = (misfit(zq.detach()) > misfit(z) * (1 + 1e-9) + 1e-12).cpu() & ok
    for i in worse.nonzero().flatten().tolist():
        reasons[i] = ("no G(z) = x, and the region's least-squares point (in pre-activation units) fits x worse "
                      "in pixels than the latent found")
    ok &= ~worse
    return Differentiated(z=torch.where(ok.to(z.device)[:, None], zq, z.detach()), defined=ok, reasons=reasons)


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
                f"Expected: gradients only through samples with result.differentiable True, Got: a gradient "
                f"reaching {len(idx)} sample(s) whose answer is not locally a function of x (first: sample "
                f"{idx[0]}: {ctx.why[idx[0]]}). Fix: select them, e.g. res.z[res.differentiable] for a batch")
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
    B = z.shape[0]
    out = Differentiated(z=z.detach().clone(), defined=torch.zeros(B, dtype=torch.bool), reasons=list(invalid))
    for rows, answer in ((solved, "layers"), (valid & ~solved, "region")):
        idx = rows.nonzero().flatten()
        if not idx.numel():
            continue
        r = idx.to(z.device)
        obs = None if observed is None else observed[r]
        try:
            part = (differentiate(chain, xg[r], z[r], observed=obs, lp_layer=lp_layer, rtol=rtol) if answer == "layers"
                    else region_projection(chain, xg[r], z[r], observed=obs))
        except LayerTooLargeError as e:  # a layer too large to write down has no active set to solve
            for i in idx.tolist():
                out.reasons[i] = f"no gradient: {e}"
            continue
        out.z = out.z.index_put((r,), part.z)
        out.defined[idx] = part.defined
        for j, i in enumerate(idx.tolist()):
            out.reasons[i] = part.reasons[j]
    keep = out.defined.nonzero().flatten().to(z.device)
    z[keep] = out.z.detach()[keep]
    return guard(out, z), out.defined
