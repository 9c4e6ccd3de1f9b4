"""The pixel fit: ``min_z ||G(z) - x||^2`` by L-BFGS from several starts per sample, all of them
one batch, each start its own problem (:func:`~ganinvert.search.lbfgs.lbfgs_rows`), the best end
kept per sample (by the pixel residual). An output activation with flat pieces (ReLU, Hardtanh)
has no gradient where a pixel should be lit and is not; there the fit first minimises the last
pre-activation's misfit to the interval each pixel allows, which is zero exactly where the pixel
loss is (on the paper's bias-free 20-60-784 decoder the pixel loss alone left 11 of 100
``x = G(z*)`` at relative residual 0.5-1.0), then the pixel loss from there (for an x out of
range the two minima differ, and the pixels are what the user sees).

This is what a user projecting a real image onto the range wants at any moment, and what
``auto`` runs first on every sample its cheap exact checks leave open (docs/design.md §3.6).
Measured on 16 real held-out digits per shipped generator (2 cores, float64), L-BFGS from
``z = 0`` reaches Adam's 1000-step residual in a quarter of Adam's time on ``mnist_mlp``,
``mlp_gan`` and ``dcgan``; more starts at the same time fit worse (each gets a fraction of the
iterations), so restarts come after the first fit has converged, not beside it.

:class:`EarlyLM` is ``auto``'s hook into the fit (its ``every``): Levenberg-Marquardt tried from
where a sample's fit has come, for the ``x = G(z*)`` whose fit creeps under deep output
saturation (docs/design.md §3.7).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from ..budget import Budget
from ..chain import Chain
from .lbfgs import lbfgs_rows
from .lm import levenberg_marquardt


class Fit(NamedTuple):
    """Per sample: the best ``z`` (B, k), its relative residual ``||G(z) - x|| / ||x||`` (B,) and
    which start it came from (B,) long."""

    z: torch.Tensor
    residual: torch.Tensor
    start: torch.Tensor


def fit_pixels(chain: Chain, x: torch.Tensor, starts: torch.Tensor, *, iters: int,
               budget: Budget | None = None, ftol: float = 0.0,
               every: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Fit:
    """L-BFGS on ``||G(z) - x||^2`` from every start of every sample, as one batch.

    Args:
        chain: the generator (anything with ``output(z)`` and ``relative_residual``).
        x: ``(B, n)`` flat observations.
        starts: ``(S, B, k)``: start ``s`` of sample ``i`` is ``starts[s, i]``.
        iters: L-BFGS iterations per start (a start whose fit stops descending stops earlier).
        budget: checked between iterations; once expired every start keeps where it is.
        ftol: a start stops once its loss falls by less than this fraction per 25 iterations.
        every: :func:`~ganinvert.search.lbfgs.lbfgs_rows`' hook, on the rows ``s * B + i`` (start
            ``s`` of sample ``i``): every 25 iterations it may finish rows another way (``auto``
            tries Levenberg-Marquardt from where a start has come near x) and stop them.

    Returns:
        The best end per sample (:class:`Fit`); never worse than the best start.
    """
    S, B, k = starts.shape
    xs = x.repeat(S, 1)  # row s * B + i: start s of sample i
    act = chain.output_act
    rb = act.fit_bounds(xs) if act is not None and act.flat else None

    def pixels(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return ((chain.output(z) - xs[rows]) ** 2).sum(1)

    def misfit(z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # flat pieces: the pre-activation's
        return (rb.rows(rows).misfit(chain.walk(z)[-1].pre) ** 2).sum(1)  # distance to what x allows

    z = z0 = starts.reshape(S * B, k)
    if rb is not None:  # out of the flat pieces first, then the pixels themselves (an x out of range
        z, _ = lbfgs_rows(misfit, z, iters=iters, budget=budget, ftol=ftol, every=every)  # fits them better)
    z, _ = lbfgs_rows(pixels, z, iters=iters, budget=budget, ftol=ftol, every=every)
    res, res0 = chain.relative_residual(z, xs), chain.relative_residual(z0, xs)
    z = torch.where((res <= res0)[:, None], z, z0)  # the misfit phase can leave a start's pixels worse
    res = torch.minimum(res, res0).view(S, B)
    best, start = res.min(0)
    return Fit(z=z.view(S, B, k)[start, torch.arange(B, device=z.device)], residual=best, start=start)


#: an early LM try stops once its misfit fell by less than this fraction over a window of 2
#: Jacobians (``search.lm._WINDOW``). Measured per 8 Jacobians from the fit's 25th iteration
#: (while LM still weighted saturated rows): x = G(z*) on dcgan_odd x2, x3 fell to 0.04-0.13 of
#: it, on mlp_gan x3 to 0.3-0.5; a real digit's stays at 0.95-1.0 (mlp_gan, mnist_mlp, dcgan)
STALL = 0.3
#: a try that starts within this relative residual stops only once its misfit falls by less than
#: ``CLOSE_STALL`` per window, as the exact route's first start does: a real digit's fit ends at
#: 4e-2 or more (docs/design.md §3.6), so only an x in the range gets here, where the last steps
#: into z*'s region may creep. On cgan_mlp x3 a sample's tries stalled at 1e-5 to 8e-5 while its
#: fit crept on for the rest of its 1 s; the exact route's LM then solved it in 0.14 s
CLOSE, CLOSE_STALL = 1e-3, 0.01


class EarlyLM:
    """The pixel fit's hook (:func:`fit_pixels`' ``every``): a start that has
    come within ``near`` of x (relative residual), and has halved its residual since its last
    try, gets up to ``steps`` Levenberg-Marquardt Jacobians from where it is (it stops early once
    its misfit stalls: on a real image after a window or two; within ``CLOSE`` of x it persists);
    one that reaches ``G(z) = x`` stops its fit there, one that ends closer fits on from LM's end.
    Under deep output saturation the pixel loss creeps towards x (a saturated pixel's gradient
    vanishes), while LM on the last pre-activation, with saturated pixels as one-sided rows, gets
    into the basin from far coarser fits (docs/design.md §3.7). Only the rows ``tryable`` are tried
    (not those proven out of range, nor a second start that is the same point as another).
    ``solved`` ``(rows,)`` bool: the rows it finished (their answers written into the fit's ``z``)."""

    def __init__(self, chain: Chain, xs: torch.Tensor, tryable: torch.Tensor, *, near: float, steps: int,
                 rtol: float, budget: Budget) -> None:
        self.chain, self.xs, self.near, self.steps, self.rtol, self.budget = chain, xs, near, steps, rtol, budget
        self.last = torch.where(tryable, float("inf"), 0.0).to(torch.float64)  # residual at the last try (0: never)
        self.solved = torch.zeros(xs.shape[0], dtype=torch.bool)

    def __call__(self, z: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moved = torch.zeros_like(self.solved)
        rows = (active.cpu() & ~self.solved).nonzero().flatten()
        if rows.numel() == 0 or self.budget.expired:
            return self.solved.to(active.device), moved.to(active.device)
        dev = z.device
        res = self.chain.relative_residual(z[rows.to(dev)], self.xs[rows.to(dev)]).cpu()
        go = (res <= self.near) & (res <= self.last[rows] / 2)
        rows, res = rows[go], res[go]
        if rows.numel():
            sol = levenberg_marquardt(self.chain, z[rows.to(dev)], self.xs[rows.to(dev)], rtol=self.rtol,
                                      steps=self.steps, budget=self.budget,
                                      stall=torch.where(res <= CLOSE, CLOSE_STALL, STALL).to(z))
            after = sol.residual.cpu()
            # LM's end where it fits the pixels better: solved rows stop there, the others fit on
            # from it (the next try starts where this one ended)
            won = (after < res).nonzero().flatten()
            z[rows[won].to(dev)] = sol.z[won.to(dev)]
            self.last[rows] = torch.minimum(res, after)
            self.solved[rows] = after <= self.rtol  # (counted on the bar by the exact route, which polishes them)
            moved[rows[won]] = True
        return self.solved.to(active.device), (moved & ~self.solved).to(active.device)
