"""L-BFGS on many independent problems at once, one per row.

``torch.optim.LBFGS`` treats its parameters as one problem: on a batch of latents its
curvature pairs, its inner products and its line search mix the rows, so a sample's polished
answer depended on which samples shared its batch (the property tests found a status that did).
Here every row keeps its own history, direction and backtracking (Armijo) line search, batched:
row ``i``'s iterates depend on row ``i``'s loss only. Hand-written for that reason; no
maintained library offers a batched, row-independent L-BFGS for torch.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..budget import Budget

_ARMIJO = 1e-4  # sufficient decrease
_HALVINGS = 30  # backtracking steps before a row gives up this iteration
_PIECE = 25  # iterations between two looks at the plateau and the hook


def _value_and_grad(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z: torch.Tensor,
                    rows: torch.Tensor):
    with torch.enable_grad():
        v = z.detach().requires_grad_()
        f = loss_fn(v, rows)
        (g,) = torch.autograd.grad(f.sum(), v)  # rows independent: the sum's gradient is each row's own
    return f.detach(), g


def lbfgs_rows(loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z: torch.Tensor, *, iters: int,
               history: int = 20, budget: Budget | None = None, ftol: float = 0.0,
               every: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``loss_fn`` row by row from ``z`` ``(rows, k)``.

    Args:
        loss_fn: ``(z, rows) -> (len(rows),)``: the losses of the rows ``rows`` (indices into
            ``z``'s rows) at the points ``z`` ``(len(rows), k)``, each a function of its own row
            alone (the line search evaluates only the rows still searching).
        z: the starting points.
        iters: L-BFGS iterations.
        history: curvature pairs kept per row.
        budget: checked every few iterations; once expired the rows keep where they are.
        ftol: a row stops once its loss fell by less than this fraction over the last few
            iterations (a plateau: a real image's fit is done long before its iterations are).
        every: called as ``every(z, active)`` every few iterations with the current iterates and
            the ``(rows,)`` bool mask of rows still descending; it may overwrite rows of ``z`` in
            place and returns ``(done, moved)``, ``(rows,)`` bool masks: the rows to stop (solved
            another way; their returned loss is the one at their last iterate) and the rows it
            moved that go on from their new point (with a fresh history).

    Returns:
        ``(z, loss)``: the last iterates and their losses (never above the start's).
    """
    if history < 1:
        raise ValueError(f"Expected history >= 1 curvature pairs, Got: {history}")
    z = z.detach().clone()
    f, g = _value_and_grad(loss_fn, z, torch.arange(z.shape[0], device=z.device))
    pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (s, y, rho), each row's own
    tiny = torch.finfo(z.dtype).tiny
    active = torch.ones_like(f, dtype=torch.bool)  # a row that could not descend is finished
    mark = f.clone()  # each row's loss at the last look
    for it in range(iters):
        if budget is not None and budget.expired:  # a clock read: every iteration (a hook may have used the time)
            break
        if it % _PIECE == 0:
            if ftol > 0 and it:
                active &= f < (1 - ftol) * mark  # still descending by more than ftol per piece
                mark = f.clone()
            if every is not None and it and active.any():
                done, moved = every(z, active.clone())
                active &= ~done
                if not active.any() or (budget is not None and budget.expired):
                    break
                moved = (moved & active).nonzero().flatten()
                if moved.numel():  # a new point: its loss and gradient anew, its curvature pairs dropped
                    f[moved], g[moved] = _value_and_grad(loss_fn, z[moved], moved)
                    mark[moved] = f[moved]
                    pairs = [(s_, y_, rho_.index_fill(0, moved, 0.0)) for s_, y_, rho_ in pairs]
        q, alphas = g.clone(), []
        for s, y, rho in reversed(pairs):
            a = rho * (s * q).sum(1)
            q -= a[:, None] * y
            alphas.append(a)
        scaled = torch.zeros_like(f, dtype=torch.bool)  # rows whose step has a curvature scale
        if pairs:  # the initial Hessian's scale, per row, from the newest pair
            s, y, rho = pairs[-1]
            yy = (y * y).sum(1)
            scaled = rho > 0
            q *= torch.where(scaled, 1.0 / (rho * yy).clamp(min=tiny), torch.ones_like(yy))[:, None]
        for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
            b = rho * (y * q).sum(1)
            q += s * (a - b)[:, None]
        d = -q
        slope = (g * d).sum(1)
        scaled &= slope < 0
        d = torch.where((slope < 0)[:, None], d, -g)  # not a descent direction: steepest descent
        slope = (g * d).sum(1)
        # no curvature scale (first step, an inert pair, steepest descent): a step of at most unit length
        t = torch.where(scaled, torch.ones_like(f), (1.0 / d.norm(dim=1).clamp(min=tiny)).clamp(max=1.0))
        todo = active & (slope < 0)
        z_new, f_new, g_new = z.clone(), f.clone(), g.clone()
        for _ in range(_HALVINGS):
            if not todo.any():
                break
            idx = todo.nonzero().flatten()
            trial = z[idx] + t[idx, None] * d[idx]
            fz, gz = _value_and_grad(loss_fn, trial, idx)
            ok = torch.isfinite(fz) & (fz <= f[idx] + _ARMIJO * t[idx] * slope[idx])
            won = idx[ok]
            z_new[won], f_new[won], g_new[won] = trial[ok], fz[ok], gz[ok]
            todo[won] = False
            t = torch.where(todo, t / 2, t)
        moved = f_new < f
        active &= moved
        if not active.any():
            break
        s, y = z_new - z, g_new - g
        sy = (s * y).sum(1)
        rho = torch.where(moved & (sy > 1e-10 * (y * y).sum(1).sqrt() * s.norm(dim=1)), 1.0 / sy.clamp(min=tiny),
                          torch.zeros_like(sy))  # rho = 0: the pair is inert for this row
        pairs = (pairs + [(s, y, rho)])[-history:]
        z, f, g = z_new, f_new, g_new
    return z, f
