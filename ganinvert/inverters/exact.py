"""The exact route of ``method="auto"`` (docs/design.md §3.2, §3.3), for the samples whose pixel fit
came near the range: stopping per sample at the first answer with ``G(z) = x``,

1. the layer-wise pass (certified least squares, then the layer LP). It also records each
   sample's *anchor*: how far down every layer had a single-point pre-image, and the exact output
   of the layer where that stopped (:class:`~ganinvert.inverters.base.Anchors`). The search below
   runs only on the layers under the anchor, against that output (a 64-256-256-784 MLP GAN is
   searched as 64-256-256 against its recovered second hidden layer, below the Tanh);
2. for the samples it leaves without ``G(z) = x``, Levenberg-Marquardt on the last
   pre-activation (:func:`~ganinvert.search.lm.levenberg_marquardt`), from up to ``starts``
   starts in waves of doubling size while the sample is open, each wave one batch: the better
   of the pixel fit's end and the pass's answer, ``z = 0``, then random draws. Measured on the
   shipped DCGAN, LM replaced Adam (4 restarts x 300 steps + 200 L-BFGS) as the seed stage: 50 of
   50 samples solved at 0.34 s each, where Adam's seeds and the pattern descent solved 44% at 8.6 s;
3. with ``pattern_seeds`` (default 0), the activation-pattern descent
   (:func:`~ganinvert.search.pattern.solve_pattern_lp`) from the LM end points, closest first;
4. then ``kicks`` rounds of iterated local search: each open sample's best search ends are moved
   by Gaussian noise of ``kick_scale * ||z|| / sqrt(k)`` and LM runs again from there, all kicks
   of a round one batch. Measured on the paper's decoder (the 176 of 255 open samples one LM
   descent leaves open): a kicked LM descent reached ``G(z) = x`` on 22%, a kicked pattern descent
   on 24% at 2.4 times the time, a fresh random start on 31% of the easier samples before it.
   Without the pattern waves the decoder's default (1000 samples) took 10.2 s instead of 11.3 s
   and solved 999 instead of 998.

An answer is certified by :func:`certify_along`: walking down the generator from ``G(z)``, every
layer's pre-image of its true output must be a single point, and then ``z = z*``; otherwise the
status is EXACT_NONUNIQUE (``G(z) = x``, ``z`` maybe not ``z*``). A sample whose anchor layer was
proven ambiguous skips that check. Generators with non-piecewise-linear hidden activations have no
regions to walk: there stage 2 is Adam's restarts (``adam``) and its best restart is kept. Every
stage stops at the budget's time limit.
"""

from __future__ import annotations

import logging

import torch

from ..backward import BackwardPass
from ..budget import Budget
from ..chain import Chain
from ..linearize import piecewise_linear
from ..search.lm import levenberg_marquardt
from ..search.pattern import kick, solve_pattern_lp
from ..streams import SeedStream
from .base import RawSolution
from .layerwise import Layerwise

logger = logging.getLogger(__name__)


def certify_along(chain: Chain, z: torch.Tensor, *, rtol: float, layerwise: Layerwise) -> torch.Tensor:
    """``(B, L)`` bool: layer ``i``'s pre-image of its output at ``z`` is the single point it was
    given (tested at that point, :meth:`Layerwise.certify_layer`: no LP has to find it first). All True proves that ``z`` is the only latent with this ``G(z)``; when some layer
    cannot be checked (see :class:`Layerwise`'s size limits) nothing is solved and all is False."""
    B, L = z.shape[0], len(chain)
    unique = torch.zeros(B, L, dtype=torch.bool)
    for layer in chain.layers:
        n, k = layer.op.out_dim, layer.op.in_dim
        if n * k > layerwise.max_dense_entries or (k > layerwise.max_lp_dim and n < k):
            return unique  # a layer too large to check, or contracting past the LP limit: z = z* is out of reach
    with torch.no_grad():
        outs = chain.forward_all(z)
    ins = [z, *outs[:-1]]  # each layer's known input

    def step(i: int, A: torch.Tensor, y: torch.Tensor, rows: torch.Tensor):
        u = ins[i][rows.to(z.device)]
        unique[rows.cpu(), i] = layerwise.certify_layer(chain, i, A, y, u, rtol=rtol).cpu()
        return u, torch.ones(rows.numel(), dtype=torch.bool, device=u.device)  # every layer at its known target

    BackwardPass(chain, max_dense_entries=layerwise.max_dense_entries).run(outs[-1], step, targets=outs)
    return unique


#: an LM descent from any start but the first (random draws, kicks) stops once its misfit fell by
#: less than this fraction over a window of Jacobians (``search.lm._WINDOW``): most of them land in
#: a local minimum
_STALL = 0.1
#: and the first start's descent, once its misfit fell by less than this fraction over a window:
#: it starts where the fit or the pass left off, so it is given longer. On the paper's decoder
#: (the 129 samples the LP pass leaves open) this took its time from 1.08 s to 0.65 s and lost 1
#: of 38 solved samples (to the kicks); dcgan_odd x2 and x3 and mlp_gan x3 solved as many
_FIRST_STALL = 0.01
#: stall windows (``search.lm._WINDOW``) after which a random start's or a kick's descent stops
#: (``levenberg_marquardt(looks=)``), whatever its progress: a round of kicks lasts as long as its
#: slowest descent, and a round's cost hardly depends on its rows (on the paper's decoder 14-15 ms
#: per Jacobian for 56 rows or 216). There the cap (12 Jacobians) took the 255 hard samples from
#: 6.2-7.7 s to 5.2-6.7 s, all solved. (While LM weighted saturated pixels' rows by Tanh's slope,
#: their descents crept, and a cap for them too cost mlp_gan x3 and dcgan_odd x2 a sample each)
_LOOKS = 6
#: kicks per search end in one round, at most (round n kicks each end 2^(n-1) times)
_KICK_WIDTH = 4
#: the search ends of a sample that are kicked: its best (by residual)
_KICK_SEEDS = 2

#: the tag of an answer from LM start w: the pixel fit's end, z = 0, a random draw
_LM_TAGS = ("lbfgs>lm", "lm(zero start)", "lm(random start)")


def _waves(S: int) -> list[torch.Tensor]:
    """LM's starts ``0..S-1`` in waves of doubling size (1, 1, 2, 4, ...): a sample's later starts
    run only if its earlier ones failed, and each wave is one batch."""
    out, w = [], 0
    while w < S:
        n = max(1, w)
        out.append(torch.arange(w, min(S, w + n)))
        w += n
    return out


class _Record:
    """The search's best answer per sample so far: ``z`` (B, k), its ``residual`` (B,) and the
    ``tags`` of the stage that found it; samples solved are counted on the budget's bar."""

    def __init__(self, z0: torch.Tensor, rtol: float, budget: Budget) -> None:
        self.z, self.rtol, self.budget = z0.clone(), rtol, budget
        self.residual = torch.full((z0.shape[0],), float("inf"), dtype=z0.dtype)
        self.tags = [""] * z0.shape[0]

    @property
    def open(self) -> torch.Tensor:
        """``(B,)`` bool: no ``G(z) = x`` yet."""
        return self.residual > self.rtol

    def take(self, cand: torch.Tensor, res: torch.Tensor, rows: torch.Tensor, label) -> None:
        """Candidates ``cand`` (b, k) with residuals ``res`` (b,) for ``rows`` (start ``r // B`` of
        sample ``r % B``), kept where they beat the sample's best; ``label(start)`` tags them."""
        B = self.z.shape[0]
        was = int((self.residual <= self.rtol).sum())
        for j, r in enumerate(rows.tolist()):
            i = r % B
            if res[j] < self.residual[i]:
                self.residual[i], self.z[i], self.tags[i] = res[j], cand[j], label(r // B)
        self.budget.finished(int((self.residual <= self.rtol).sum()) - was)


class ExactRoute:
    """Stages 2-4 above, as methods of :class:`~ganinvert.inverters.auto.Auto` (which holds their
    options: ``starts``, ``lm_steps``, ``adam``, ``pattern_seeds``, ``pattern_rounds``, ``kicks``,
    ``kick_scale``, ``seed``)."""

    def _search(self, chain: Chain, z0: torch.Tensor, x: torch.Tensor, *, rtol: float,
                have_seed: torch.Tensor, budget: Budget, lm_only: bool = False, first: str = _LM_TAGS[0]
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Stages 2-4 for the open samples (stage 2 alone with ``lm_only``): best ``z`` (B, k), its
        residual (B,), a tag each (``first``: the tag of an answer from the first start ``z0``)."""
        rec = _Record(z0, rtol, budget)
        if not piecewise_linear(chain):  # no activation regions to walk: Adam's restarts are the search
            ends = self.adam.endpoints(chain, x, z0=z0, budget=budget)
            k = chain.in_dim
            res = chain.relative_residual(ends.reshape(-1, k), x.repeat(ends.shape[0], 1)).cpu()
            rec.take(ends.reshape(-1, k), res, torch.arange(ends.shape[0] * x.shape[0]), lambda s: "adam")
            return rec.z, rec.residual, rec.tags
        at, res0 = self._lm_waves(chain, z0, x, rec, have_seed, first=first)
        if lm_only:
            return rec.z, rec.residual, rec.tags
        self._pattern_waves(chain, x, rec, at, res0)
        self._kick_rounds(chain, x, rec, at)
        return rec.z, rec.residual, rec.tags

    def _lm_waves(self, chain: Chain, z0: torch.Tensor, x: torch.Tensor, rec: _Record,
                  have_seed: torch.Tensor, first: str = _LM_TAGS[0]) -> tuple[torch.Tensor, torch.Tensor]:
        """Levenberg-Marquardt from ``z0`` (the first start), then, for the samples still open, from
        ``z = 0`` and random draws in waves of doubling size (:func:`_waves`), each wave one batch (a
        sample's starts stop once one of them reaches ``G(z) = x``). Returns every start's end
        ``(S * B, k)`` (nan: not started; row ``w * B + i`` is start ``w`` of sample ``i``) and its
        residual ``(S * B,)``."""
        B, k, dev, S, budget = x.shape[0], chain.in_dim, x.device, self.starts, rec.budget
        at = torch.full((S * B, k), float("nan"), dtype=x.dtype, device=dev)  # each start's end: pattern seeds
        res0 = torch.full((S * B,), float("inf"), dtype=x.dtype)  # and its residual (inf: not started)
        starts = SeedStream(self.seed, "auto: LM starts", like=x).randn(S, k)  # start w: the same for every sample
        starts[1:2] = 0  # start 1: z = 0
        for wave, ws in enumerate(_waves(S)):
            opened = rec.open & (have_seed if wave == 0 else torch.ones_like(have_seed))
            if not opened.any() or budget.expired:
                continue
            rows = (ws[:, None] * B + opened.nonzero().flatten()[None]).flatten()  # start w of sample i: w * B + i
            w, i = rows // B, rows % B
            start = torch.where((w == 0)[:, None].to(dev), z0[i.to(dev)],
                                self.adam.init_std * starts[w.to(dev)])
            budget.stage("auto: Levenberg-Marquardt from the first start" if wave == 0
                         else f"auto: Levenberg-Marquardt from starts {int(ws[0]) + 1}-{int(ws[-1]) + 1} of {S}")
            sol = levenberg_marquardt(chain, start, x[i.to(dev)], rtol=rec.rtol, steps=self.lm_steps,
                                      budget=budget, group=i.to(dev), stall=_FIRST_STALL if wave == 0 else _STALL,
                                      looks=None if wave == 0 else _LOOKS)
            rec.take(sol.z, sol.residual.cpu(), rows, lambda s: first if s == 0 else _LM_TAGS[min(s, 2)])
            at[rows.to(dev)], res0[rows] = sol.z, sol.residual.cpu()
        return at, res0

    def _pattern_waves(self, chain: Chain, x: torch.Tensor, rec: _Record, at: torch.Tensor,
                       res0: torch.Tensor) -> None:
        """The pattern descent from each open sample's closest LM ends, ``pattern_seeds`` waves;
        ``at`` takes the descents' ends (the kicks go on from them)."""
        B, dev, S = x.shape[0], x.device, self.starts
        order = res0.view(S, B).argsort(0)  # per sample, its LM ends from the closest fit
        xs = x.repeat(S, 1)
        for w in range(min(S, self.pattern_seeds)):
            rows = order[w] * B + torch.arange(B)
            rows = rows[rec.open & res0[rows].isfinite()]
            if rows.numel() == 0 or rec.budget.expired:
                break
            rec.budget.stage(f"auto: pattern LP from LM end {w + 1}")
            sol = solve_pattern_lp(chain, at[rows.to(dev)], xs[rows.to(dev)], rtol=rec.rtol,
                                   rounds=self.pattern_rounds, budget=rec.budget)
            rec.take(sol.z, sol.residual.cpu(), rows, lambda s: "lm>pattern")
            at[rows.to(dev)] = sol.z
            logger.info("auto: after pattern wave %d, %d of %d samples open", w + 1, int(rec.open.sum()), B)

    def _kick_rounds(self, chain: Chain, x: torch.Tensor, rec: _Record, at: torch.Tensor) -> None:
        """``kicks`` rounds of iterated local search for the samples still open: each one's
        ``_KICK_SEEDS`` best search ends are moved by Gaussian noise (:func:`~ganinvert.search.pattern.kick`,
        ``kick_scale``) and Levenberg-Marquardt runs from there; an end moves on to its best kicked
        descent where that fits better. Round ``n`` kicks every such end ``min(2^(n-1), _KICK_WIDTH)``
        times, all of them one batch (a sample's kicks stop once one reaches ``G(z) = x``): a call's
        overhead is shared by its rows (on the paper's decoder a row's Jacobian and its steps took
        1.7 ms in a call of 8 rows, 0.8 ms in one of 128). Round ``n``'s kicks of end ``w`` are the
        same draws for every sample."""
        B, k, dev, S = x.shape[0], chain.in_dim, x.device, self.starts
        draws = SeedStream(self.seed, "auto: kicks", like=x)
        res = chain.relative_residual(at.nan_to_num(), x.repeat(S, 1)).cpu()
        started = ~at.isnan().any(1).cpu()
        for n in range(1, self.kicks + 1):
            c = min(2 ** (n - 1), _KICK_WIDTH)
            noise = draws.randn(c, S, k)  # round n's kicks of each end w, drawn whoever is still open
            ok = (rec.open.repeat(S) & started).view(S, B)
            rank = torch.where(ok, res.view(S, B), torch.full_like(res.view(S, B), float("inf"))).argsort(0).argsort(0)
            seeds = (ok & (rank < _KICK_SEEDS)).flatten().nonzero().flatten()  # each sample's best ends
            if seeds.numel() == 0 or rec.budget.expired:
                break
            rec.budget.stage(f"auto: kick {n} of {self.kicks}")
            seed = seeds.repeat(c)  # row j: copy j // len(seeds) of seed seeds[j % len(seeds)]
            copy = torch.arange(c).repeat_interleave(seeds.numel())
            z = kick(at[seed.to(dev)], noise[copy.to(dev), (seed // B).to(dev)], scale=self.kick_scale)
            sol = levenberg_marquardt(chain, z, x[(seed % B).to(dev)], rtol=rec.rtol, steps=self.lm_steps,
                                      budget=rec.budget, group=(seed % B).to(dev), stall=_STALL, looks=_LOOKS)
            now = sol.residual.cpu()
            rec.take(sol.z, now, seed, lambda s, n=n: f"lm+{n} kicks")
            best, which = now.view(c, -1).min(0)  # per seed, its best kicked descent
            moved = best < res[seeds]
            at[seeds[moved].to(dev)] = sol.z.view(c, -1, k)[which[moved].to(dev), moved.nonzero().flatten().to(dev)]
            res[seeds[moved]] = best[moved]
            logger.info("auto: after kick %d (%d descents), %d of %d samples open", n, seed.numel(),
                        int(rec.open.sum()), B)

    def _anchored(self, chain: Chain, raw: RawSolution, todo: torch.Tensor, z0: torch.Tensor, x: torch.Tensor,
                  *, rtol: float, have_seed: torch.Tensor, budget: Budget,
                  lm_only: bool = False, first: str = _LM_TAGS[0]) -> tuple[torch.Tensor, list[str]]:
        """The search for the open samples ``todo``, each below its anchor: where the layer-wise
        pass pinned the output of layer ``level - 1`` exactly (every layer above has a
        single-point pre-image), only layers ``0..level-1`` are searched, with that output as
        the target. The layers above then add nothing to find (on a 64-256-256-784 MLP GAN the
        search runs on 64-256-256 against the recovered second hidden layer instead of through
        the Tanh: 20 of 20 samples solved where the whole chain solved 0 of 10). A tag ``...@l`` in
        the method path says the search ran below layer ``l``'s pinned output."""
        L = len(chain)
        level = raw.anchors.level[todo] if raw.anchors is not None else torch.full((todo.numel(),), L)
        z, tags = z0.clone(), [""] * todo.numel()
        for lvl in sorted(set(level.tolist()), reverse=True):
            sel = (level == lvl).nonzero().flatten()
            if lvl == 0:  # z itself is pinned: nothing left to search
                continue
            if lvl == L:
                sub, y = chain, x[sel.to(x.device)]
            else:
                sub, y = Chain(chain.layers[:lvl], chain.in_shape), raw.anchors.target(lvl, todo[sel]).to(x.device)
            zs, _, found = self._search(sub, z0[sel.to(x.device)], y, rtol=rtol, have_seed=have_seed[sel],
                                        budget=budget, lm_only=lm_only, first=first)
            z[sel.to(x.device)] = zs
            for j, i in enumerate(sel.tolist()):
                tags[i] = found[j] if lvl == L or not found[j] else f"{found[j]}@{lvl}"
        return z, tags
