"""The certified uniqueness radius of an answer (docs/design.md §3.8): a radius ``r`` such that no
other latent within ``r`` of ``z`` has the same output on the rows that pin it.

On a piecewise-linear chain, the activation region of ``z`` contains the ball of radius

    r0 = min over hidden units of |p_j| / ||J_j||

(``p_j`` the unit's pre-activation, ``J_j`` its row of the chain's Jacobian at ``z``): inside, no
unit changes branch, layer by layer from the bottom, so ``G`` is one affine map there. Where that
map restricted to the output's *equation rows* ``E`` (a ReLU's positive pixels, a Tanh's
unsaturated ones, observed pixels only) has full column rank, ``z`` is the only point of the ball
with its output: ``||J_E d|| >= sigma_min ||d|| > 0`` for every step ``d``.

Past ``r0`` some units may change branch. For ``||d|| <= t`` the deviation of every
pre-activation from its linearisation, ``e_l = p_l(z + d) - p_l(z) - J_l d``, is bounded
entrywise by pushing, layer by layer,

    |delta_l| <= |s_l| |e_l| + jump_l (g_l t + |e_l| - m_l)_+,    |e_{l+1}| <= |A_{l+1}| |delta_l|

(``s_l`` the slope of each unit's branch, ``jump_l`` the change of slope at its kink, ``g_l`` and
``m_l`` its Jacobian row norm and margin; ``e_0 = 0``) through operators that bound ``|A|``
entrywise (:meth:`~ganinvert.operators.LinearOperator.abs_bound`). A second pre-image at distance
``t`` needs ``J_E d = -e_E``, so ``sigma_min t <= ||e_E(t)||``. The bound is convex in ``t`` and zero
up to ``r0``, so ``sigma_min R > ||e_E(R)||`` at one ``R`` proves every ``t`` in ``(0, R]``: the
radius is the largest such ``R`` found by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .chain import Chain
from .linearize import affine_pieces, piecewise_linear

#: entries of the Jacobians held at once ((samples x widest layer x latent), float64): 128 MiB
_MAX_ENTRIES = 2**24
#: bisection steps of the radius past the region (relative precision 2^-10 of the bracket)
_BISECT = 10
#: the bracket's growth past ``r0``: at most 2^_GROW times ``r0``
_GROW = 12


def unique_radius(chain: Chain, z: torch.Tensor, *, observed: torch.Tensor | None = None,
                  rank_rtol: float = 1e-8, stop: Callable[[], bool] | None = None) -> torch.Tensor:
    """``(B,)`` float64 on the CPU: per sample a radius ``r`` such that no other latent ``z'`` with
    ``||z' - z||_2 < r`` has ``G(z')`` equal to ``G(z)`` on the output's equation rows (and so on
    every observed pixel); 0 where nothing is proven, ``inf`` where ``G`` is one injective affine
    map (no kinked hidden unit). See the module doc for the bound.

    Args:
        chain: the generator; a chain whose hidden activations are not piecewise linear has no
            regions, and every radius is 0.
        z: ``(B, k)`` latents.
        observed: ``(B, n)`` bool, the output rows that are data (None: all).
        rank_rtol: the rank test of the equation rows' Jacobian (its smallest singular value
            relative to its largest).
        stop: asked before each chunk of samples and each layer's Jacobian within it (the time
            limit: on a convolutional chain one chunk's Jacobians take seconds); once true, the
            chunk in hand and the rest stay 0.
    """
    B, k = z.shape[0], chain.in_dim
    z = z.reshape(B, k).to(dtype=chain.dtype, device=chain.device)  # the chain's own (a float32 latent is cast)
    out = torch.zeros(B, dtype=torch.float64)
    if B == 0 or not piecewise_linear(chain):
        return out
    widest = max(layer.op.out_dim for layer in chain.layers)
    chunk = max(1, _MAX_ENTRIES // (widest * k))
    bounds = [layer.op.abs_bound() for layer in chain.layers[1:]]
    for i in range(0, B, chunk):
        if stop is not None and stop():
            break
        rows = slice(i, i + chunk)
        obs = None if observed is None else observed[rows]
        r = _radius(chain, z[rows], obs, bounds, rank_rtol, stop)
        if r is None:
            break
        out[rows] = r.cpu()
    return out


def _radius(chain: Chain, z: torch.Tensor, observed: torch.Tensor | None, bounds: list, rank_rtol: float,
            stop: Callable[[], bool] | None) -> torch.Tensor | None:
    """:func:`unique_radius` for one chunk of samples (None where ``stop`` ended it)."""
    steps = chain.walk(z)
    L, B = len(chain), z.shape[0]
    r0 = torch.full((B,), math.inf, dtype=z.dtype, device=z.device)
    hidden = []  # per hidden layer: (margin m, row norm g, |slope| s, jump) (B, n_l), for the bound past r0
    for i, layer, J, _ in affine_pieces(chain, [s.pattern for s in steps[:-1]], B, dtype=z.dtype, device=z.device):
        if stop is not None and stop():
            return None
        p = steps[i].pre
        if i == L - 1:
            break
        act, on = layer.act, steps[i].pattern
        slope = act.branch_slope(on, like=p)
        if act.kinked:  # the units whose slope changes at 0 (a Parallel's identity part does not)
            m, g = p.abs(), J.norm(dim=2)
            jump = (act.branch_slope(torch.ones_like(on), like=p) - act.branch_slope(torch.zeros_like(on), like=p)).abs()
            ratio = torch.where((g > 0) & (jump > 0), m / g.clamp(min=1e-300), torch.full_like(m, math.inf))
            r0 = torch.minimum(r0, ratio.amin(1))
        else:
            m = g = jump = torch.zeros_like(p)
        hidden.append((m, g, slope.abs(), jump))
    eq, _ = chain.output_act.pinned_rows(p, y=steps[-1].out)
    if observed is not None:
        eq &= observed.to(eq.device)
    S = torch.linalg.svdvals(J * eq[:, :, None].to(J.dtype))  # (B, min(n, k)), descending
    k = J.shape[2]
    full = (S.shape[1] == k) & (S[:, -1] > rank_rtol * S[:, 0]) & (S[:, 0] > 0)
    sigma = S[:, -1] - 4 * torch.finfo(S.dtype).eps * math.sqrt(J.shape[1]) * S[:, 0]  # a floor under rounding
    r = torch.where(full & (sigma > 0), r0, torch.zeros_like(r0))
    go = (r > 0) & torch.isfinite(r)
    if go.any() and all(b is not None for b in bounds):
        r[go] = _past_region(hidden, bounds, eq, sigma, r[go], go)
    return r


def _past_region(hidden: list, bounds: list, eq: torch.Tensor, sigma: torch.Tensor, r0: torch.Tensor,
                 go: torch.Tensor) -> torch.Tensor:
    """The largest ``R >= r0`` (per sample ``go``) with ``sigma R > ||e_E(R)||``: the bracket doubles
    while the test holds, then bisection; every value returned passed the test (or is ``r0``)."""
    hidden = [tuple(t[go] for t in h) for h in hidden]
    eq, sigma = eq[go], sigma[go]

    def holds(t: torch.Tensor) -> torch.Tensor:
        e = torch.zeros_like(hidden[0][0])  # layer 0's pre-activation is exactly affine in z
        for (m, g, s, jump), A in zip(hidden, bounds):
            e = A.matvec(jump * (g * t[:, None] + e - m).clamp(min=0) + s * e)
        dev = torch.linalg.vector_norm(e * eq.to(e.dtype), dim=1)
        return sigma * t > dev

    lo, hi = r0.clone(), 2 * r0
    grow = torch.ones_like(lo, dtype=torch.bool)
    for _ in range(_GROW):  # lo passes (r0 trivially: e = 0 there); hi is the next try
        ok = holds(hi) & grow
        lo = torch.where(ok, hi, lo)
        grow &= ok
        if not grow.any():
            break
        hi = torch.where(ok, 2 * hi, hi)
    for _ in range(_BISECT):
        mid = (lo + hi) / 2
        ok = holds(mid)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    return lo
