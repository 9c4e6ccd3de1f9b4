"""``method="auto"``, the default: at every moment a pixel-space fit at least as good as Adam's
after the same time, and the exact, certified answer wherever one can be found (docs/design.md
§3.6). Its stages, each stopped by the budget's time limit:

1. **The cheap exact check**: the layer-wise pass with its least-squares fast path only, no LP
   (``Layerwise(lp=False)``). On x = G(z*) with expanding layers it certifies z = z* at once.
   Where a layer's pinned rows overdetermine its input, it proves x out of range (a real digit
   under a decoder whose every output row is an equation).
   Where it pinned the last layer's input (x is exactly in that layer's range), LM runs at once
   on the layers below against that input (:meth:`Auto._below_anchor`).
2. **The pixel fit** for every sample still open: L-BFGS on ``||G(z) - x||^2``
   (:func:`~ganinvert.search.fit.fit_pixels`) from a draw of the prior, plus the projected
   layer-wise estimate where x was proven out of range. It runs until it plateaus (``plateau``)
   or for ``fit_steps`` iterations. Every 25 iterations a sample within ``early`` gets LM from
   where its fit is (:class:`~ganinvert.search.fit.EarlyLM`): under deep output saturation the
   fit of an ``x = G(z*)`` creeps, and LM gets into the basin from there (docs/design.md §3.7).
3. **The decision**: a sample not proven out of range takes the exact route in full when its fit
   came within ``near`` of x (relative residual), or when the cheap check pinned the last layer's
   input (x is exactly in that layer's range).
   - The exact route is :mod:`~ganinvert.inverters.exact`: the layer-wise pass with its LPs,
     Levenberg-Marquardt from the fit's end and other starts, the pattern descent, kicks. Its
     answer is certified.
   - A sample whose fit stays further away is most likely not near the range; there the LPs and
     searches (seconds per sample) would only prove it.
   - Measured on 16 real held-out digits per shipped generator, the fit of a real digit ends at a
     relative residual of 4e-2 or more (``dcgan``; 1e-1 or more on ``mlp_gan``, 2e-1 on
     ``mnist_mlp``). The fit of an x = G(z*) is within 1.3e-2 after a quarter of Adam's time,
     also on generators whose last layer is scaled x3 to saturate.
4. **The projection** for every sample still without ``G(z) = x``: ``fit_restarts`` random draws,
   each fitted the same way, kept where better. A sample it brings within ``near`` gets the exact
   route in full.
5. **The far samples** get the exact route's pass, and a search cut to the work of ``share`` of
   one pixel fit (counted in passes through the chain, not seconds: an answer never depends on the
   machine's speed). A sample whose last layer the pass's LP pins to one point is searched in full.
   Status APPROXIMATE with the residual; the message says why (the proof, the distance, or that
   the exact searches found nothing).
"""

from __future__ import annotations

import copy
import logging
import math

import torch

from ..budget import Budget, unlimited
from ..chain import Chain
from ..errors import InvalidInputError
from ..linearize import piecewise_linear
from ..search.lm import levenberg_marquardt
from ..search.fit import EarlyLM, fit_pixels
from ..streams import SeedStream
from .adam import Adam
from .base import Inverter, RawSolution
from .exact import ExactRoute, certify_along
from .layerwise import Layerwise

logger = logging.getLogger(__name__)

#: the cost model of :meth:`Auto._lp_first`: Newton steps of the interior-point LP (measured: 29-35
#: on the paper's decoder), and forward-pass equivalents per L-BFGS iteration (about 4 loss and
#: gradient evaluations per iteration, each a forward and a backward pass of about twice its cost)
_IPM_ITERATIONS, _FIT_PASSES = 30, 12

_PROVEN = "x is outside the generator's range (proven at its last layer: no input of that layer fits x)"


class Auto(ExactRoute, Inverter):
    """The cheap exact check, the pixel fit, the exact route for samples near the range, the
    projection for the rest (see the module doc).

    Args:
        layerwise: the exact route's first stage and the certifier (default ``Layerwise()``); its
            fast path alone (``lp=False``) is the cheap check.
        starts: Levenberg-Marquardt starts per open sample (the pixel fit's end, ``z = 0``, then
            random draws of ``N(0, adam.init_std^2 I)``), tried in turn while it is open.
        lm_steps: Jacobians per Levenberg-Marquardt run.
        adam: the exact route's search where hidden activations are not piecewise linear (default
            ``Adam(steps=300, lr=0.05, restarts=4, loss="preactivation", polish=200, seed=seed)``;
            its first restart starts at the pixel fit's end); its ``init_std`` scales the random
            starts of LM and of the projection.
        pattern_seeds: LM end points per open sample the pattern descent starts from, closest
            fit first (each costs a whole descent; kicks then go on from these; 0: none).
        pattern_rounds: pattern LPs per descent (each flips the walls that block it).
        kicks: rounds of kick-and-descend (by LM) for the samples still open.
        kick_scale: the kick's size relative to ``||z|| / sqrt(k)``.
        seed: the random streams of the LM starts, the default Adam's starts, the kicks and the
            projection's starts.
        near: the pixel fit's relative residual up to which a sample takes the exact route.
        fit_steps: L-BFGS iterations of the pixel fit, and of each start of the projection.
        fit_restarts: random starts of the projection.
        plateau: a fit stops once its loss falls by less than this fraction per 25 L-BFGS
            iterations (a real image's fit has converged long before ``fit_steps``).
        share: the far samples' exact route searches with the work of this fraction of one
            pixel fit (:meth:`_cut`; 0: no exact route; ``math.inf``: the search in full, the
            exhaustive search for an ``x = G(z*)`` whose fit stalls far away, at the cost of real
            images' time).
        early: during the pixel fit, a sample whose relative residual has come within this (and
            has halved since its last try) gets ``early_steps`` Levenberg-Marquardt Jacobians from
            where its fit is, and stops at ``G(z) = x`` (0: never; piecewise-linear hidden
            activations only). Under deep output saturation the fit creeps (docs/design.md §3.7).
        early_steps: Jacobians per early try.
    """

    name = "auto"

    def __init__(self, *, layerwise: Layerwise | None = None, starts: int = 8, lm_steps: int = 100,
                 adam: Adam | None = None, pattern_seeds: int = 0, pattern_rounds: int = 30, kicks: int = 12,
                 kick_scale: float = 0.3, seed: int = 0, near: float = 0.02, fit_steps: int = 300,
                 fit_restarts: int = 1, plateau: float = 1e-2, share: float = 0.4, early: float = 0.5,
                 early_steps: int = 60) -> None:
        if (starts < 1 or lm_steps < 1 or pattern_seeds < 0 or pattern_rounds < 1 or kicks < 0
                or not kick_scale > 0 or not near >= 0 or fit_steps < 0 or fit_restarts < 0
                or not 0 <= plateau < 1 or not share >= 0 or not early >= 0 or early_steps < 1):
            raise InvalidInputError(f"Expected starts >= 1, lm_steps >= 1, pattern_seeds >= 0, pattern_rounds >= 1, "
                                    f"kicks >= 0, kick_scale > 0, near >= 0, fit_steps >= 0, fit_restarts >= 0, "
                                    f"0 <= plateau < 1, share >= 0, early >= 0, early_steps >= 1, "
                                    f"Got: starts={starts}, lm_steps={lm_steps}, pattern_seeds={pattern_seeds}, "
                                    f"pattern_rounds={pattern_rounds}, kicks={kicks}, kick_scale={kick_scale}, "
                                    f"near={near}, fit_steps={fit_steps}, fit_restarts={fit_restarts}, "
                                    f"plateau={plateau} (in [0, 1)), share={share} (>= 0), early={early}, "
                                    f"early_steps={early_steps}")
        self.starts, self.lm_steps, self.pattern_seeds = int(starts), int(lm_steps), int(pattern_seeds)
        self.layerwise = layerwise or Layerwise()
        self.adam = adam or Adam(steps=300, lr=0.05, restarts=4, loss="preactivation", polish=200,
                                 seed=seed)
        self.pattern_rounds, self.kicks = int(pattern_rounds), int(kicks)
        self.kick_scale, self.seed = float(kick_scale), int(seed)
        self.near, self.fit_steps, self.fit_restarts = float(near), int(fit_steps), int(fit_restarts)
        self.plateau, self.share = float(plateau), float(share)
        self.early, self.early_steps = float(early), int(early_steps)

    def without_chain(self) -> Adam:
        """On a generator that could not be converted (a black box): the best search that needs
        only gradients, Adam from 4 random starts x 300 steps, then 200 L-BFGS iterations from the
        best, every sample its own problem (its answers are never certified)."""
        return Adam(steps=300, lr=0.05, restarts=4, polish=200, seed=self.seed)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        budget = budget or unlimited()
        raw = self._quick().solve_or_skip(chain, x, rtol=rtol, budget=budget)
        res = chain.relative_residual(raw.z, x).cpu()
        proven = (res > rtol) & raw.infeasible & ~raw.failed  # least squares proved x out of range
        budget.finished(int((res <= rtol).sum()))
        todo = (res > rtol).nonzero().flatten()
        if todo.numel() == 0:
            return raw
        L = len(chain)
        pinned = raw.anchors.level[todo] < L if raw.anchors is not None else torch.zeros(todo.numel(), dtype=torch.bool)
        pinned &= ~proven[todo]
        if pinned.any() and piecewise_linear(chain):
            self._below_anchor(chain, x, raw, todo[pinned], rtol=rtol, budget=budget)
        route = torch.zeros(x.shape[0], dtype=torch.long)  # 1: near, the exact route in full; 2: far, cut
        route[todo[pinned]] = 1  # x is exactly in the last layer's range: no real image gets there
        fitted = torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
        rest = todo[~pinned]
        searched = torch.zeros(x.shape[0], dtype=torch.bool)
        first = rest[~proven[rest]]
        if first.numel() and self._lp_first(chain) and not budget.expired:  # the exact route, its LP deciding
            route[first], searched[first] = 1, True
            proven[first] = self._exact(chain, x, raw, first, rtol=rtol, budget=budget)
            rest = rest[chain.relative_residual(raw.z[rest.to(x.device)], x[rest.to(x.device)]).cpu() > rtol]
        if rest.numel():
            before = chain.relative_residual(raw.z[rest.to(x.device)], x[rest.to(x.device)]).cpu()
            fitted[rest] = self._fit(chain, x, raw, rest, proven, before, rtol=rtol, budget=budget)
            route[rest[(fitted[rest] <= self.near) & ~proven[rest]]] = 1
        near = ((route == 1) & ~searched).nonzero().flatten()
        if near.numel() and not budget.expired:
            proven[near] = self._exact(chain, x, raw, near, rtol=rtol, budget=budget)
        left = todo[chain.relative_residual(raw.z[todo.to(x.device)], x[todo.to(x.device)]).cpu() > rtol]
        if left.numel() == 0:
            return raw
        self._project(chain, x, raw, left, proven=proven[left], budget=budget)
        far = left[(route[left] == 0) & ~proven[left]]
        late = far[chain.relative_residual(raw.z[far.to(x.device)], x[far.to(x.device)]).cpu() <= self.near
                   ] if far.numel() else far
        if late.numel() and not budget.expired:  # a restart of the projection came near: the exact route in full
            route[late] = 1
            proven[late] = self._exact(chain, x, raw, late, rtol=rtol, budget=budget)
        far = far[route[far] == 0]
        if far.numel() and not budget.expired and self.share > 0:  # the exact route, its search cut to a share
            route[far] = 2
            proven[far] = self._exact(chain, x, raw, far, rtol=rtol, budget=budget, share=self.share)
        res = chain.relative_residual(raw.z, x).cpu()
        left = left[res[left] > rtol]
        self._explain(raw, left, res, proven=proven, route=route, fitted=fitted)
        budget.finished(left.numel())
        return raw

    def _lp_fits(self, chain: Chain) -> float:
        """The last layer's LP in pixel fits (``inf`` past the LP's size limits), estimated in
        multiply-adds: about ``_IPM_ITERATIONS`` Newton steps of ``n k^2`` (its normal matrix),
        against ``fit_steps`` L-BFGS iterations of about ``_FIT_PASSES`` passes through the chain's
        dense layers. The paper's 20-60-784 decoder: 0.5; a 64-256-256-784 MLP GAN: 1.5; a
        convolutional last layer: ``inf``."""
        last, lw = chain.layers[-1], self.layerwise
        n, k = last.op.out_dim, last.op.in_dim
        if k > lw.max_lp_dim or n * k > lw.max_dense_entries:
            return math.inf
        return _IPM_ITERATIONS * n * k * k / max(1, self.fit_steps * _FIT_PASSES * chain.dense_macs)

    def _lp_first(self, chain: Chain) -> bool:
        """True where the exact route's pass costs less than the pixel fit it would follow
        (:meth:`_lp_fits`), so it runs first: its LP then decides. A sample whose last layer has no
        pre-image is proven out of range and gets the fit; one whose last layer has one (x exactly
        in that layer's range) is searched in full from the LP's answer."""
        n, k = chain.layers[-1].op.out_dim, chain.layers[-1].op.in_dim
        return piecewise_linear(chain) and n >= k and self._lp_fits(chain) <= 1

    def _quick(self) -> Layerwise:
        """The layer-wise pass's fast path alone (least squares, no LP): the cheap exact check."""
        lw = self.layerwise
        return Layerwise(solver=lw.solver, rank_rtol=lw.rank_rtol, layer_rtol=lw.layer_rtol,
                         max_dense_entries=lw.max_dense_entries, max_lp_dim=lw.max_lp_dim, lp=False)

    def _fit(self, chain: Chain, x: torch.Tensor, raw: RawSolution, todo: torch.Tensor, proven: torch.Tensor,
             before: torch.Tensor, *, rtol: float, budget: Budget) -> torch.Tensor:
        """Stage 2 for the samples ``todo``: the pixel fit from a draw of the prior (the same for
        every sample; ``z = 0`` is a stationary point of bias-free ReLU generators), and from the projected
        layer-wise estimate where x was proven out of range; adopted where it fits better than
        ``before`` (their relative residuals now). Returns their relative residuals after it
        ``(len(todo),)``."""
        t = todo.to(x.device)
        draw = self.adam.init_std * SeedStream(self.seed, "auto: pixel fit", like=x).randn(1, chain.in_dim)
        starts = draw.expand(todo.numel(), -1)[None]
        if proven[todo].any():  # and the projected estimate (its units at the kinks of u >= 0 have no gradient)
            starts = torch.cat([torch.where(proven[todo].to(x.device)[:, None], raw.z[t], draw)[None], starts])
        budget.stage("auto: pixel fit (L-BFGS)")
        early = self._early_lm(chain, x[t], proven[todo], starts.shape[0], rtol=rtol, budget=budget)
        fit = fit_pixels(chain, x[t], starts, iters=self.fit_steps, budget=budget, ftol=self.plateau, every=early)
        z, after = fit.z, fit.residual.cpu()
        lm = early.solved.view(-1, todo.numel()).any(0) if early is not None else torch.zeros_like(proven[todo])
        won = (after < before).nonzero().flatten()
        raw.adopt(todo[won], z[won.to(x.device)],
                  methods=[f"{raw.methods[i]}>lbfgs" if proven[i] else "lbfgs>lm" if lm[j] else "lbfgs"
                           for j, i in zip(won.tolist(), todo[won].tolist())],
                  messages=[raw.messages[i] if proven[i] else "" for i in todo[won].tolist()])
        raw.infeasible[todo[won]] = proven[todo[won]]  # the proof stands, whatever latent fits best
        logger.info("auto: pixel fit of %d samples, median relative residual %.2e; %d within near=%g",
                    todo.numel(), after.median().item(), int((after <= self.near).sum()), self.near)
        return torch.minimum(before, after)

    def _below_anchor(self, chain: Chain, x: torch.Tensor, raw: RawSolution, rows: torch.Tensor, *, rtol: float,
                      budget: Budget) -> None:
        """For the samples ``rows`` whose last layer the cheap check pinned (its input is known
        exactly): Levenberg-Marquardt below that layer against its recovered input, from the
        check's own estimate, ``z = 0`` and random draws, before any fit or LP. On ``mlp_gan``
        (64-256-256-784) the search below the pinned second hidden layer solves at once what the
        pixel fit and the square layer's LP took seconds to reach (docs/design.md §3.7). Answers
        are adopted where they fit better; the exact route then polishes and certifies them."""
        budget.stage("auto: Levenberg-Marquardt below the pinned layer")
        t = rows.to(x.device)
        z, tags = self._anchored(chain, raw, rows, raw.z[t], x[t], rtol=rtol,
                                 have_seed=torch.ones(rows.numel(), dtype=torch.bool), budget=budget, lm_only=True,
                                 first="lm(layer-wise start)")
        before = chain.relative_residual(raw.z[t], x[t]).cpu()
        better = (chain.relative_residual(z, x[t]).cpu() < before).nonzero().flatten()
        raw.adopt(rows[better], z[better.to(x.device)],
                  methods=[f"{raw.methods[rows[j]]}>{tags[j]}" if tags[j] else raw.methods[rows[j]] for j in better.tolist()],
                  messages=[""] * better.numel())

    def _early_lm(self, chain: Chain, x: torch.Tensor, proven: torch.Tensor, S: int, *, rtol: float,
                  budget: Budget) -> "EarlyLM | None":
        """The pixel fit's hook for ``S`` starts of the samples ``x`` (None where it has none: ``early=0``,
        or no regions for LM to walk): the last start (the draw) of each sample not ``proven`` out."""
        if not self.early > 0 or not piecewise_linear(chain):
            return None
        tryable = torch.zeros(S, x.shape[0], dtype=torch.bool)
        tryable[-1] = ~proven
        return EarlyLM(chain, x.repeat(S, 1), tryable.flatten(), near=self.early, steps=self.early_steps,
                        rtol=rtol, budget=budget)

    def _exact(self, chain: Chain, x: torch.Tensor, raw: RawSolution, rows: torch.Tensor, *, rtol: float,
               budget: Budget, share: float | None = None) -> torch.Tensor:
        """Stage 3 for the samples ``rows`` near the range: the layer-wise pass with its LPs, then
        the searches (LM's first start: the fit's end) for those it leaves open, each answer kept
        where it fits better than the fit; the solved ones certified. With ``share`` (far samples)
        the pass and the searches are cut to that share of a pixel fit's work (:meth:`_lp_fits`,
        :meth:`_cut`), the searches except where the pass pinned the last layer. Returns ``(len(rows),)`` bool: proven out of range by the
        pass's LP."""
        t, k, dev = rows.to(x.device), chain.in_dim, x.device
        xs, zfit = x[t], raw.z[t].clone()
        have = chain.relative_residual(zfit, xs).cpu()
        found = have <= rtol
        proven = torch.zeros(rows.numel(), dtype=torch.bool)
        ambiguous = torch.zeros(rows.numel(), dtype=torch.bool)
        if found.any() and piecewise_linear(chain):  # inside the right region LM's next step is exact: z* to float64
            f = found.nonzero().flatten()
            sol = levenberg_marquardt(chain, zfit[f.to(dev)], xs[f.to(dev)], rtol=rtol, steps=self.lm_steps,
                                      budget=budget)
            better = (sol.residual.cpu() < have[f]).nonzero().flatten()
            raw.z[rows[f[better]].to(dev)] = sol.z[better.to(dev)]
            for i in rows[f[better]].tolist():
                raw.methods[i] = f"{raw.methods[i]}>lm"
        open_ = (~found).nonzero().flatten()
        budget.finished(int(found.sum()))  # the searches count what they solve
        if open_.numel():
            # a far sample's LP only where it costs at most its share of a fit (on mlp_gan, 1.5 fits:
            # real digits' LPs took the default left alone from 2x to 5x Adam's time)
            lw = self.layerwise if share is None or self._lp_fits(chain) <= share else self._quick()
            sub = lw.solve_or_skip(chain, xs[open_.to(dev)], rtol=rtol, budget=budget)
            res = chain.relative_residual(sub.z, xs[open_.to(dev)]).cpu()
            proven[open_] = (res > rtol) & sub.infeasible & ~sub.failed
            budget.finished(int((res <= rtol).sum()))
            won = (res < have[open_]).nonzero().flatten()
            first = ["lbfgs>lm" if "lbfgs" in raw.methods[i] else "lm(layer-wise start)" for i in rows[open_].tolist()]
            for j in won.tolist():
                first[j] = "lm(layer-wise start)"
            raw.scatter(rows[open_[won]], sub.take(won))  # the pass's own answer, certificates and all
            have[open_[won]] = res[won]
            go = ((res > rtol) & ~proven[open_]).nonzero().flatten()
            # a sample whose last layer the LP pinned to one point (x is exactly in that layer's
            # range: no real image gets there) is searched in full, the others of a far route in part
            pinned = sub.anchors.level[go] < len(chain) if sub.anchors is not None else torch.zeros_like(go, dtype=torch.bool)
            for part, route in ((go[pinned], self), (go[~pinned], self if share is None else self._cut(chain, share))):
                if part.numel() and not budget.expired:
                    ambiguous[open_[part]] = route._search_open(chain, raw, sub, rows[open_], part,
                                                                raw.z[rows[open_].to(dev)], xs[open_.to(dev)], have[open_],
                                                                [first[j] for j in part.tolist()], rtol=rtol, budget=budget)
        res = chain.relative_residual(raw.z[t], xs).cpu()
        solved = ((res <= rtol) & ~ambiguous & ~raw.unique[rows].all(1)).nonzero().flatten()
        budget.stage("auto: certifying uniqueness")
        if solved.numel() and not budget.expired:  # out of time: not certified
            raw.unique[rows[solved]] = certify_along(chain, raw.z[rows[solved].to(dev)], rtol=rtol,
                                                     layerwise=self.layerwise)
        return proven

    def _cut(self, chain: Chain, share: float) -> "Auto":
        """The search of a far sample: the work of ``share`` of one pixel fit (``fit_steps``
        iterations of about ``_FIT_PASSES`` passes through the chain), counted in passes, not
        seconds, so that an answer never depends on the machine's speed: Levenberg-Marquardt from
        the first start for ``share * fit_steps * _FIT_PASSES / k`` Jacobians (each pushes ``k``
        directions), no kicks; where hidden activations are smooth, Adam's restarts with their
        steps and polish cut to the share. ``share = inf``: the search in full."""
        if math.isinf(share):
            return self
        passes = share * self.fit_steps * _FIT_PASSES
        cut = copy.copy(self)
        cut.starts, cut.kicks, cut.lm_steps = 1, 0, max(1, int(passes // chain.in_dim))
        cut.adam = copy.copy(self.adam)
        cut.adam.steps = max(1, int(passes // (3 * self.adam.restarts)))
        cut.adam.polish = int(share * self.adam.polish) if share < 1 else self.adam.polish
        return cut

    def _search_open(self, chain: Chain, raw: RawSolution, sub: RawSolution, rows: torch.Tensor, go: torch.Tensor,
                     z0: torch.Tensor, xs: torch.Tensor, have: torch.Tensor, first: list[str], *, rtol: float,
                     budget: Budget) -> torch.Tensor:
        """The searches for ``sub``'s samples ``go`` (rows ``rows[go]`` of ``raw``), LM first from
        ``z0[go]`` (the better of the fit's end and the pass's answer, tagged ``first[j]`` in the
        method path); adopted where they fit better than ``have``. Returns ``(len(go),)``
        bool: the pass proved the sample's anchor layer ambiguous (never ``z = z*``)."""
        dev = xs.device
        z, tags = self._anchored(chain, sub, go, z0[go.to(dev)], xs[go.to(dev)], rtol=rtol,
                                 have_seed=torch.ones(go.numel(), dtype=torch.bool), budget=budget)
        tags = [t.replace("lbfgs>lm", first[j], 1) if t.startswith("lbfgs>lm") else t for j, t in enumerate(tags)]
        best = chain.relative_residual(z, xs[go.to(dev)]).cpu()
        better = (best < have[go]).nonzero().flatten()
        raw.adopt(rows[go[better]], z[better.to(dev)],
                  methods=[f"{sub.methods[go[j]]}>{tags[j]}" if tags[j] else sub.methods[go[j]] for j in better.tolist()],
                  messages=[f"{tags[j] or 'layerwise'} answer ({sub.messages[go[j]] or 'layer-wise pass not exact'})"
                            for j in better.tolist()])
        return sub.anchors.ambiguous[go] if sub.anchors is not None else torch.zeros(go.numel(), dtype=torch.bool)

    def _project(self, chain: Chain, x: torch.Tensor, raw: RawSolution, rows: torch.Tensor, *,
                 proven: torch.Tensor, budget: Budget) -> None:
        """Stage 4 for the samples ``rows`` left without ``G(z) = x``: ``fit_restarts`` random
        draws, the pixel fit from each, kept where one fits better than the sample's latent."""
        if self.fit_restarts == 0 or budget.expired:
            return
        t, k = rows.to(x.device), chain.in_dim
        before = chain.relative_residual(raw.z[t], x[t]).cpu()
        draws = self.adam.init_std * SeedStream(self.seed, "auto: projection starts", like=x).randn(self.fit_restarts, k)
        starts = draws[:, None].expand(-1, rows.numel(), -1)
        budget.stage(f"auto: projection (L-BFGS from {self.fit_restarts} random starts)")
        fit = fit_pixels(chain, x[t], starts, iters=self.fit_steps, budget=budget, ftol=self.plateau)
        won = (fit.residual.cpu() < before).nonzero().flatten()
        raw.z[rows[won].to(x.device)] = fit.z[won.to(x.device)]
        raw.unique[rows[won]] = False
        for j in won.tolist():
            raw.methods[rows[j]] = f"{raw.methods[rows[j]]}>lbfgs(random start)"
        raw.infeasible[rows] = proven  # the proof stands; the messages say it

    def _explain(self, raw: RawSolution, rows: torch.Tensor, res: torch.Tensor, *, proven: torch.Tensor,
                 route: torch.Tensor, fitted: torch.Tensor) -> None:
        """The samples ``rows`` end APPROXIMATE: each message says why no exact answer (the proof,
        the exact route's search in full or cut to a share) and how it was fitted."""
        for i in rows.tolist():
            if proven[i]:
                why = _PROVEN
            elif route[i] == 1:
                why = "the exact searches found no G(z) = x (x is not proven out of range)"
            else:
                why = (f"x is not near the generator's range (the pixel fit's relative residual {fitted[i].item():.2e} > "
                       f"near={self.near:g})" + (f"; the exact route's pass and a search of {self.share:.2g} of a pixel fit's work "
                                                 "found no G(z) = x" if route[i] == 2 else ""))
            raw.messages[i] = (f"{why}; fitted by L-BFGS (the pixel fit, then random starts: {self.fit_restarts}), "
                               f"relative residual {res[i]:.2e}")
        raw.infeasible[rows] = False  # a proof goes into the message; the status is APPROXIMATE
        raw.failed[rows] = False
