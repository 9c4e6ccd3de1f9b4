"""Levenberg-Marquardt on the last layer's pre-activation: the fast way into the basin.

On a piecewise-linear generator the last pre-activation ``p(z)`` is affine on each activation
region, with the Jacobian :func:`~ganinvert.linearize.linearize` builds. The observation
turns into per-row bounds on ``p`` (:meth:`~ganinvert.activations.Activation.bounds`: equalities
where the output activation is invertible, one-sided rows on ReLU zeros and saturated
Tanh/Sigmoid pixels: :meth:`~ganinvert.activations.Activation.search_bounds`), and the residual
of a row is how far ``p`` lies outside its interval. Gauss-Newton steps on that residual, damped
per sample (Levenberg-Marquardt), walk across regions; inside the right one a step lands on
``G(z) = x`` exactly.

Fitting before the output activation is what makes this work: measured on the shipped 28x28
DCGAN (16 samples, from ``z = 0``), 15 of 16 reach ``G(z) = x`` with ``z = z*`` to 1e-12 within
40 steps, where LM on ``||G(z) - x||^2`` through the Tanh (with ``atanh`` of near-saturated pixels
as targets, an inconsistent system) left all 16 at ~7% error, and Adam from 32 random starts per
sample reached the basin on 31% of samples after 600 steps.

A saturating output's rows are not weighted by its slope (the weights the observation's bounds
carry, floored at 1e-2, which make the misfit look like a pixel error). For an ``x`` in the range
the system is consistent, and on ``z*``'s region any weights give the same answer; away from it
the slope weights made the rows of near-saturated pixels, which under deep saturation are most of
the equations and carry what the others leave free, count 1e-4 as much: the damped steps then
crept along them. Measured on ``dcgan_odd`` with its last layer x3 (8 samples from the pixel
fit's 25th iteration, seed 2), slope weights left 7 of 8 at relative residual 3e-3 to 1e-2 after
8-22 Jacobians (3.6 s); unit weights solved 8 of 8 in 2-4 Jacobians each (0.7 s). A real 8-bit
image has no near-saturated pixel (its closest to an end, 1 - 1/127.5, is ``atanh`` 2.8).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..budget import Budget
from ..chain import Chain
from ..linearize import linearize
from ..tolerances import relative_residual

logger = logging.getLogger(__name__)

_MAX_ENTRIES = 1 << 24  # Jacobian entries per chunk (128 MiB in float64)
_LAMBDA = (1e-12, 1e6)  # damping range, relative to the mean curvature; a sample stalls at the top
_POLISH = 1e-3  # steps go on below rtol to this fraction of it: inside the region one more step is exact
#: further steps with the same Jacobian, one forward pass each instead of k directions pushed through
#: the chain: after a successful step, from where it landed, with the Jacobian updated by the step's
#: secant (Broyden's rank-one update: on a piecewise-linear chain the Jacobian is exact as long as
#: the step stays in its region, and the secant carries what the step learned across a region's
#: wall; a step from a stale one that does not help ends the reuse), and after a failed one, from
#: the same point with more damping (the Jacobian is still exact there: building it again would
#: give the same matrix). Measured on dcgan_odd with its last layer x3 (8 samples from the pixel
#: fit's 25th iteration, 60 Jacobians): 5 of 8 at G(z) = x with 5 plain reuses and a new Jacobian
#: after every failed step, 8 of 8 with both changes and 10 reuses, in less time. At most this
#: many, and no more than the steps that together cost about one Jacobian (:func:`_reuses`)
_REUSE = 10
#: a sample whose relative residual is above this takes its steps on the Jacobian's chain (float32)
#: too, forward passes included: they decide only whether a step lowers a misfit still far from 0.
#: Below it every forward pass is in the chain's float64, which the answer needs. On dcgan_odd
#: float64's ConvTranspose2d(256, 128, 4) was 18x slower than float32's (CPU, batch of 8); 2.5x
#: since it takes its input channels-last (``operators.ConvTranspose2d``)
_COARSE = 1e-3
#: Jacobians between two looks at a sample's progress (``stall``). Measured on the paper's decoder
#: (ReLU output, kicked descents): 2 kept 96% of the solved samples at 61% of the time of 4
_WINDOW = 2


@dataclass
class LMSolution:
    """Attributes: ``z`` (B, k) the best point per sample; ``residual`` (B,) its relative output
    residual ``||G(z) - x|| / ||x||``; ``steps`` (B,) long, Jacobians built per sample."""

    z: torch.Tensor
    residual: torch.Tensor
    steps: torch.Tensor


def levenberg_marquardt(chain: Chain, z0: torch.Tensor, x: torch.Tensor, *, rtol: float, steps: int = 50,
                        jacobian_dtype: torch.dtype | None = torch.float32,
                        budget: Budget | None = None, stall: float | torch.Tensor = 0.0,
                        group: torch.Tensor | None = None, looks: int | None = None) -> LMSolution:
    """Levenberg-Marquardt from ``z0`` (B, k) towards ``G(z) = x`` (B, n), one row per start.

    A sample stops at ``G(z) = x`` (relative residual ``<= 1e-3 rtol``: once inside the right
    region the next step is exact, so ``z`` is as close to ``z*`` as float64 allows, which the
    uniqueness check then needs), when its damping reaches the
    top of its range (no step lowers the misfit: a local minimum), after ``steps`` Jacobians, or
    when ``budget`` expires. Samples take their steps in chunks that bound the Jacobians' memory,
    round-robin, so under a time limit every sample has had as many steps as any other.

    ``stall``: a sample also stops once its misfit fell by less than this fraction over its last
    window of ``_WINDOW`` Jacobians (0: never); one for all, or per sample ``(B,)``.
    LM tried early on an x that may be out of range (``auto``'s
    pixel fit) should not spend its steps creeping down to a non-zero minimum.

    ``looks``: with ``stall``, a sample also stops after this many windows, whatever its progress
    (None: never; ``auto``'s random starts and kicks use
    :data:`~ganinvert.inverters.exact._LOOKS`).

    ``group`` (B,) long, when given, names the sample each row is a start of: once one start of a
    sample reaches ``G(z) = x`` (``rtol``), the sample's other starts stop (all starts of all
    samples run as one batch, so a search from many starts costs one call's overhead).

    ``jacobian_dtype``: the Jacobians are built in this dtype (None: the chain's). float32 halves
    their cost (they dominate it) and costs no accuracy: the misfit, the steps' acceptance and
    ``G(z)`` stay in the chain's float64, so an inexact Jacobian only slows the last steps.
    """
    B, k = z0.shape
    z = z0.clone()
    residual = chain.relative_residual(z, x)
    used = torch.zeros(B, dtype=torch.long, device=z.device)
    chunk = max(1, _MAX_ENTRIES // (2 * max(layer.op.out_dim for layer in chain.layers) * k))
    rb = chain.layers[-1].act.search_bounds(x)  # a saturating output's rows weigh 1 (see the module doc)
    eye = torch.eye(k, dtype=z.dtype, device=z.device)
    jc = None if jacobian_dtype in (None, chain.dtype) else chain.to(dtype=jacobian_dtype)
    lam = torch.full((B,), 1e-2, dtype=z.dtype, device=z.device)
    live = residual > rtol * _POLISH
    reuse = _reuses(chain)
    cap = steps if looks is None else looks
    stall = torch.as_tensor(stall, dtype=z.dtype, device=z.device).expand(B)
    watch = bool((stall > 0).any())
    mark = (rb.misfit(chain.walk(z)[-1].pre) ** 2).sum(1) if watch else None  # misfit a window ago
    rows_of = _row_source(chain)  # the last operator's matrix, in each dtype a round may use
    as_dtype = {} if rows_of is None else {dt: rows_of.to(dt) for dt in {z.dtype, jacobian_dtype or z.dtype}}
    def round_(j: torch.Tensor, walker: Chain, jdtype: torch.dtype) -> None:
        """One Jacobian for the samples ``j``, and the steps taken with it (see _REUSE)."""
        bj, xj, zj, lj, res = rb.rows(j), x[j], z[j], lam[j], residual[j]
        A = as_dtype.get(jdtype)
        p, J, *h = linearize(walker, zj.to(walker.dtype), jacobian_chain=jc, dtype=jdtype, below_last=A is not None)
        p, h = p.to(z.dtype), (h[0].to(z.dtype) if h else None)
        r = bj.misfit(p)
        f = (r * r).sum(1)
        used[j] += 1
        fresh, go = torch.ones_like(j, dtype=torch.bool), None  # fresh: J is the Jacobian at the sample's z
        for _ in range(1 + reuse):
            dz, q, xh, rq, fq, hq = _step(walker, J, r, bj, zj, lj, eye, A)
            better = torch.isfinite(fq) & (fq < f)
            if go is not None:
                better &= go
            if better.any():
                J = _secant(J, dz, q - p if A is None else hq - h, better)
                b1 = better[:, None]
                zj, p, r = torch.where(b1, zj + dz, zj), torch.where(b1, q, p), torch.where(b1, rq, r)
                f, res = torch.where(better, fq, f), torch.where(better, relative_residual(xh, xj), res)
                h = None if A is None else torch.where(b1, hq, h)
            tried = torch.ones_like(better) if go is None else go
            # where J is exact, a failed step says the damping is too small (retry at once, z and
            # J unchanged); where the step from a stale J failed, only a new Jacobian can tell
            lj = torch.where(tried & fresh, torch.where(better, lj / 3, lj * 4), lj).clamp(*_LAMBDA)
            fresh &= ~better
            go = (res > rtol * _POLISH) & (better | (fresh & (lj < _LAMBDA[1])))
            if not go.any():
                break
        z[j], lam[j], residual[j] = zj, lj, res
        live[j] = (res > rtol * _POLISH) & (lj < _LAMBDA[1])
        if watch:  # a sample with stall 0 is never stopped by either test
            on = stall[j] > 0
            look = (used[j] % _WINDOW == 0) & on
            live[j] &= ~(look & (f > (1 - stall[j]) * mark[j])) & ((used[j] < cap * _WINDOW) | ~on)
            mark[j] = torch.where(look, f, mark[j])

    for _ in range(steps):  # every live sample takes a step before any takes its next
        rows = live.nonzero().flatten()
        for s in range(0, rows.numel(), chunk):
            j = rows[s:s + chunk]
            coarse = residual[j] > _COARSE if jc is not None else torch.zeros_like(j, dtype=torch.bool)
            # a coarse sample forms its normal equations in float32 too (on the paper's decoder LM
            # took 0.6 of the time); the rows' unit weights keep them as well conditioned as J
            for part, walker, jd in ((j[coarse], jc, jacobian_dtype), (j[~coarse], chain, z.dtype)):
                if budget is not None and budget.expired:
                    return LMSolution(z=z, residual=residual, steps=used)
                if part.numel():
                    round_(part, walker, jd)
        if group is not None and live.any():
            done = torch.zeros(int(group.max()) + 1, dtype=torch.bool, device=z.device)
            done[group[residual <= rtol]] = True
            live &= ~done[group] | (residual <= rtol)  # the solved start itself polishes on
        if not live.any():
            break
    logger.debug("LM: %d of %d samples at G(z) = x after up to %d steps", int((residual <= rtol).sum()), B,
                 int(used.max()) if B else 0)
    return LMSolution(z=z, residual=residual, steps=used)


def _secant(J: torch.Tensor, dz: torch.Tensor, dv: torch.Tensor, better: torch.Tensor) -> torch.Tensor:
    """``J`` (b, n, k) after the step ``dz`` (b, k) that moved what ``J`` maps by ``dv`` (b, n):
    Broyden's rank-one update ``J + (dv - J dz) dz^T / |dz|^2``, where ``better`` (b,) (the step
    was taken); elsewhere ``J`` as it was."""
    b1 = better[:, None]
    s, d = torch.where(b1, dz, 0.0).to(J.dtype), torch.where(b1, dv, 0.0).to(J.dtype)
    upd = (d - (J * s[:, None, :]).sum(2)) / (s * s).sum(1, keepdim=True).clamp(min=torch.finfo(J.dtype).tiny)
    return J + upd.unsqueeze(-1) * s.unsqueeze(1)


def _reuses(chain: Chain) -> int:
    """Steps a Jacobian serves after its first (see :data:`_REUSE`): about as many as cost what a
    new Jacobian costs, in multiply-adds ``k F`` (``k`` directions through the chain, ``F`` its
    dense layers' entries, a bound for convolutions) against ``F + n k^2`` per step (a forward
    pass and the ``n x k`` normal equations). On the paper's 20-60-784 decoder that is 3: a step's
    normal equations cost as much as a third of a Jacobian, and measured from random starts, 10
    reuses took 1.7x the time of 4 for the same share of ``G(z) = x``; on the convolutional GANs it
    is the cap."""
    k, n, F = chain.in_dim, chain.layers[-1].op.out_dim, chain.dense_macs
    return max(1, min(_REUSE, round(k * F / (F + n * k * k))))


def _normal(J: torch.Tensor, r: torch.Tensor, w: torch.Tensor, A: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The Gauss-Newton system of the weighted misfit ``r`` (b, n): ``H = J^T diag(a^2) J`` and
    ``g = J^T (a r)``, returned in ``r``'s dtype, with ``a = w`` on the rows outside their
    interval and 0 inside (no gradient there). The products are formed in ``J``'s dtype: float32
    for a coarse sample, whose Jacobian is float32 anyway (on the paper's decoder this made LM
    2.5x faster: the products, not the Jacobians, were most of its time).

    Only the rows outside their interval enter the products. Each sample's are gathered, in their
    order, into :func:`_bucket` rows (padded with rows of weight 0), and the samples of one size form
    theirs in one batch: the size depends on the sample alone, so its sums are rounded alike in
    any batch. On the paper's decoder LM's samples had a median of 44-54 such rows of 784.

    ``A`` (n, m), when given, is the last operator and ``J`` (b, m, k) the Jacobian of its input:
    the rows used are ``A_i J``, formed for the gathered rows alone."""
    live = r != 0
    a = w * live
    b, n, k = J.shape[0], r.shape[1], J.shape[2]
    size = _bucket(live.sum(1), n, whole=n // 4 if A is None else max(64, n * k // A.shape[1]))
    sizes = size.unique().tolist()
    parts = [(None, sizes[0])] if len(sizes) == 1 else [((size == s).nonzero().flatten(), s) for s in sizes]
    H = torch.empty(b, k, k, dtype=r.dtype, device=r.device)
    g = torch.empty(b, k, dtype=r.dtype, device=r.device)
    for i, s in parts:  # i None: the whole batch
        rows = torch.arange(b, device=J.device) if i is None else i
        Jr = J if i is None else J[i]
        if s == n:
            Ji, ai, ri = (Jr if A is None else A @ Jr), (a if i is None else a[i]), (r if i is None else r[i])
        else:  # row j of a sample's outside rows goes to slot j: the gather keeps their order
            m = live[rows]
            si, col = m.nonzero(as_tuple=True)
            slot = m.cumsum(1)[si, col] - 1
            idx = torch.zeros(rows.numel(), s, dtype=torch.long, device=J.device)
            idx[si, slot] = col
            pad = torch.ones(rows.numel(), s, dtype=torch.bool, device=J.device)
            pad[si, slot] = False
            Ji = J[rows[:, None], idx] if A is None else A[idx] @ Jr
            ai, ri = a[rows[:, None], idx].masked_fill(pad, 0), r[rows[:, None], idx].masked_fill(pad, 0)
        Jw = ai.to(J.dtype).unsqueeze(-1) * Ji
        Hs, gs = (Jw.transpose(1, 2) @ Jw).to(r.dtype), (Jw * ri.to(J.dtype).unsqueeze(-1)).sum(1).to(r.dtype)
        if i is None:
            return Hs, gs
        H[i], g[i] = Hs, gs
    return H, g


def _bucket(count: torch.Tensor, n: int, *, whole: int) -> torch.Tensor:
    """Rows gathered for a sample with ``count`` of its ``n`` rows outside their interval: the next
    power of two from 64, or all ``n`` past ``whole``: ``n / 4`` where the rows are gathered from the
    whole Jacobian (past it the gather costs about what it saves); ``n k / m`` where they are formed
    from the last operator ``(n, m)`` (past it the gathered rows of ``A``, ``s x m``, take more
    memory than the whole ``n x k`` Jacobian the chunk is sized for)."""
    size = 2 ** torch.log2(count.clamp(min=64).double()).ceil().long()
    return torch.where(size > whole, torch.full_like(size, n), size)


def _step(chain: Chain, J: torch.Tensor, r: torch.Tensor, bounds, z: torch.Tensor, lam: torch.Tensor,
          eye: torch.Tensor, A: torch.Tensor | None = None):
    """One damped Gauss-Newton step from ``z`` (b, k) with Jacobian ``J`` and misfit ``r`` there
    (``bounds.misfit``), damping ``lam`` (b,); ``A``: as in :func:`_normal`. The trial point's
    forward pass is in ``chain``'s dtype. Returns the step, and at the trial point its last
    pre-activation, ``G``, misfit, squared misfit and the last layer's input."""
    H, g = _normal(J, r, bounds.weight, A)
    mu = lam * H.diagonal(dim1=1, dim2=2).mean(1).clamp(min=torch.finfo(z.dtype).tiny)
    dz = torch.linalg.solve(H + mu[:, None, None] * eye, -g.unsqueeze(-1)).squeeze(-1)
    steps = chain.walk((z + dz).to(chain.dtype))
    q, xh = (t.to(z.dtype) for t in steps[-1])  # the last pre-activation and G(trial)
    rq = bounds.misfit(q)
    return dz, q, xh, rq, (rq * rq).sum(1), (steps[-2].out if len(steps) > 1 else z + dz).to(z.dtype)


def _row_source(chain: Chain) -> torch.Tensor | None:
    """The last operator as a matrix where LM forms the Jacobian's rows from it (:func:`_normal`'s
    ``A``); None where it builds the whole Jacobian. It does where the output activation has flat
    pieces (a ReLU's zeros: most rows are satisfied one-sided rows, and only those outside their
    interval are formed) and the last layer expands at least 4x: on the paper's 20-60-784 decoder
    a Jacobian is then 20 x 60 instead of 20 x 784, and a step's rows a median of 64 of 784."""
    last = chain.layers[-1]
    m, n = last.op.in_dim, last.op.out_dim
    if not (last.act.flat and 4 * m <= n and m * n <= _MAX_ENTRIES):
        return None
    return last.op.dense()
