"""Latent optimisation baselines: minimise ``||G(z) - x||^2 (+ penalty ||z||^2)`` from random
starts, the method users compare against (Bora et al. 2017, "CSGM"; Huang, Hand, Heckel,
Voroninski 2018 for plain gradient descent with the negation check). One loop serves both:

- restarts run as one ``(B * R)`` batch; the lowest loss over all restarts and steps is kept;
- ``box``: latent box ``|z_i| <= box`` with stochastic clipping (Lipton & Tripathi 2017):
  coordinates that leave it are redrawn uniformly inside;
- ``negation_check``: at every step, ``-z`` replaces ``z`` where it fits better;
- ``polish``: L-BFGS from the best points, every sample its own problem (:mod:`ganinvert.search.lbfgs`);
- samples are processed in chunks of at most ``max_rows`` rows (samples x restarts), so memory
  stays bounded and no tail batch is dropped;
- ``loss="preactivation"``: instead of ``||G(z) - x||^2``, the squared distance of the last
  layer's pre-activation to the interval the observation allows (``= x`` on a positive ReLU
  pixel, ``<= 0`` on a zero one; the activation's :meth:`bounds`). Same minimisers on realizable
  data, but a positive pixel whose pre-activation went negative still has a gradient; measured on
  the paper's decoder, it makes Adam's endpoints better seeds for the pattern LP (12% of seeds
  reach ``G(z) = x`` against 9%). ``endpoints`` returns every restart's point, not just the best.

They cannot certify uniqueness, so their best status is EXACT_NONUNIQUE.
"""

from __future__ import annotations

import logging
import math

import torch

from ..budget import Budget, unlimited
from ..chain import Chain
from ..errors import InvalidInputError
from ..search.lbfgs import lbfgs_rows
from ..streams import SeedStream
from .base import Inverter, RawSolution

logger = logging.getLogger(__name__)


class LatentOptimizer(Inverter):
    """Shared loop; see the module doc. Subclasses pick the optimiser and the defaults."""

    name = "latent_optimizer"
    certifies = False  # a baseline: its answers are never EXACT, and its time is the plain method's
    _optimizer = "adam"
    #: a fit in pixels takes observations off the output range (noise takes ReLU pixels below 0):
    #: its residual says how far it got, nothing makes such a sample invalid
    output_slack = math.inf

    def __init__(self, *, steps: int = 1000, lr: float = 0.05, restarts: int = 1, init_std: float = 1.0,
                 seed: int = 0, z_penalty: float = 0.0, box: float | None = None,
                 negation_check: bool = False, max_rows: int = 65536, log_every: int = 0,
                 loss: str = "output", polish: int = 0, polish_rows: int = 1024) -> None:
        if steps < 1 or restarts < 1 or not lr > 0 or not init_std > 0 or max_rows < 1:
            raise InvalidInputError(f"Expected steps >= 1, restarts >= 1, lr > 0, init_std > 0, max_rows >= 1, "
                                    f"Got: steps={steps}, restarts={restarts}, lr={lr}, init_std={init_std}, "
                                    f"max_rows={max_rows}")
        if polish < 0 or polish_rows < 1:
            raise InvalidInputError(f"Expected polish >= 0 and polish_rows >= 1, Got: polish={polish}, "
                                    f"polish_rows={polish_rows}")
        if z_penalty < 0 or (box is not None and not box > 0):
            raise InvalidInputError(f"Expected z_penalty >= 0 and box > 0 (or None), Got: z_penalty={z_penalty}, box={box}")
        self.steps, self.lr, self.restarts = int(steps), float(lr), int(restarts)
        self.init_std, self.seed, self.z_penalty = float(init_std), int(seed), float(z_penalty)
        self.box, self.negation_check = (None if box is None else float(box)), bool(negation_check)
        if loss not in ("output", "preactivation"):
            raise InvalidInputError(f"Expected loss 'output' or 'preactivation', Got: {loss!r}")
        self.max_rows, self.log_every, self.loss = int(max_rows), int(log_every), loss
        self.polish, self.polish_rows = int(polish), int(polish_rows)

    @property
    def needs_chain(self) -> bool:
        """The output fit needs only gradients; the pre-activation fit reads the last layer."""
        return self.loss == "preactivation"

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, z0: torch.Tensor | None = None,
              budget: Budget | None = None) -> RawSolution:
        """``z0`` (B, k), when given, replaces the first restart's random start (warm start)."""
        B, L = x.shape[0], len(chain)
        z, loss = self._restarts(chain, x, z0, budget)  # (R, B, k), (R, B)
        z = z[loss.argmin(0), torch.arange(B, device=x.device)]  # the restart with the lowest loss
        return RawSolution.of(z, L, method=self.name)

    def endpoints(self, chain: Chain, x: torch.Tensor, *, z0: torch.Tensor | None = None,
                  budget: Budget | None = None) -> torch.Tensor:
        """Every restart's best point, ``(R, B, k)`` (seeds for the pattern LP)."""
        return self._restarts(chain, x, z0, budget)[0]

    def _restarts(self, chain: Chain, x: torch.Tensor, z0: torch.Tensor | None,
                  budget: Budget | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if torch.is_inference_mode_enabled():
            raise InvalidInputError(
                f"Expected: autograd available for {self.name} (it follows gradients of ||G(z) - x||^2), "
                "Got: a call under torch.inference_mode(). Fix: call it outside inference mode; "
                "in Lightning, build the Trainer with inference_mode=False")
        B, k, R = x.shape[0], chain.in_dim, self.restarts
        budget = budget or unlimited()
        z = torch.empty(R, B, k, dtype=x.dtype, device=x.device)
        loss = torch.empty(R, B, dtype=x.dtype, device=x.device)
        per_chunk = max(1, self.max_rows // R)
        for s in range(0, B, per_chunk):
            warm = None if z0 is None else z0[s:s + per_chunk]
            with torch.enable_grad():  # also under an outer no_grad (Lightning's test loop)
                z[:, s:s + per_chunk], loss[:, s:s + per_chunk] = self._run(chain, x[s:s + per_chunk], warm,
                                                                             budget)
        return z, loss

    def _loss(self, chain: Chain, z: torch.Tensor, xr: torch.Tensor, rb=None) -> torch.Tensor:
        if rb is None:
            loss = ((chain.output(z) - xr) ** 2).sum(1)  # (rows,)
        else:  # distance of the last pre-activation to the interval [lo, hi] the observation allows
            loss = (rb.misfit(chain.walk(z)[-1].pre) ** 2).sum(1)
        return loss + self.z_penalty * (z ** 2).sum(1) if self.z_penalty else loss

    def _run(self, chain: Chain, x: torch.Tensor, warm: torch.Tensor | None,
             budget: Budget) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, R = x.shape[0], chain.in_dim, self.restarts
        xr = x.repeat(R, 1)  # (R*b, n): restart r of sample i is row r*b + i
        rb = chain.layers[-1].act.fit_bounds(xr) if self.loss == "preactivation" else None
        # restart r starts at the same draw for every sample; an output fit and a pre-activation fit
        # with one seed (auto's search and its refine) draw different starts
        draws = SeedStream(self.seed, f"{self.name} {self.loss}", like=x)
        z = self.init_std * draws.randn(R, k).repeat_interleave(b, dim=0)
        if self.box is not None:
            z = z.clamp(-self.box, self.box)
        if warm is not None:
            z[:b] = warm
        z.requires_grad_()
        opt = (torch.optim.Adam([z], lr=self.lr) if self._optimizer == "adam"
               else torch.optim.SGD([z], lr=self.lr))
        best = torch.full((R * b,), math.inf, dtype=x.dtype, device=x.device)
        best_z = z.detach().clone()
        budget.stage(f"{self.name} ({R} restarts)")
        for step in range(self.steps + 1):
            loss = self._loss(chain, z, xr, rb)
            with torch.no_grad():
                if self.negation_check:  # Huang et al.: the mirrored point may sit in a better basin
                    neg = self._loss(chain, -z, xr, rb)
                    flip = neg < loss
                    z[flip] = -z[flip]
                    loss = torch.where(flip, neg, loss)
                better = loss < best
                best = torch.where(better, loss, best)
                best_z[better] = z[better]
            if step == self.steps or budget.expired:
                break
            opt.zero_grad(set_to_none=True)
            if self.negation_check:  # z was flipped in place: the graph of `loss` is stale
                loss = self._loss(chain, z, xr, rb)
            loss.sum().backward()
            opt.step()
            if self.box is not None:
                with torch.no_grad():  # stochastic clipping: redraw what left the box
                    out = z.abs() > self.box
                    u = draws.rand(R, k).repeat_interleave(b, dim=0)  # this step's redraws, per restart
                    z[out] = (u[out] * 2 - 1) * self.box
            if self.log_every and step % self.log_every == 0:
                logger.info("%s step %d/%d: median loss %.3e", self.name, step, self.steps, best.median().item())
        if self.polish and not budget.expired:
            best_z, best = self._polish(chain, best_z, xr, rb, best, budget)
        return best_z.view(R, b, k), best.view(R, b)

    def _polish(self, chain: Chain, z: torch.Tensor, xr: torch.Tensor, rb, best: torch.Tensor, budget: Budget):
        """``polish`` L-BFGS iterations on the same loss from the best points, every row its own
        problem (:func:`~ganinvert.search.lbfgs.lbfgs_rows`: a sample's polish never depends on
        its batch), ``polish_rows`` rows at a time; a row keeps its polished point only where the
        loss fell."""
        budget.stage(f"{self.name} L-BFGS polish")
        for s in range(0, z.shape[0], self.polish_rows):
            sl = slice(s, s + self.polish_rows)
            rbs = None if rb is None else rb.rows(sl)

            def rows_loss(u, r, xs=xr[sl], rbs=rbs):  # the rows r of this slice, at u
                return self._loss(chain, u, xs[r], None if rbs is None else rbs.rows(r))

            v, loss = lbfgs_rows(rows_loss, z[sl], iters=self.polish, budget=budget)
            better = loss < best[sl]
            z[sl][better], best[sl][better] = v[better], loss[better]
            if budget.expired:
                break
        return z, best


class Adam(LatentOptimizer):
    """Adam on ``||G(z) - x||^2`` with restarts (CSGM). See :class:`LatentOptimizer` for options."""

    name = "adam"
    _optimizer = "adam"


class GradientDescent(LatentOptimizer):
    """Plain gradient descent with the negation check on by default (Huang et al. 2018)."""

    name = "gd"
    _optimizer = "sgd"

    def __init__(self, *, steps: int = 2000, lr: float = 0.01, negation_check: bool = True, **kw) -> None:
        super().__init__(steps=steps, lr=lr, negation_check=negation_check, **kw)
