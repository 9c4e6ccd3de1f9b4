"""What every inverter shares: its raw output and how statuses are assigned from it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..budget import Budget
from ..chain import Chain
from ..result import Status


@dataclass
class Anchors:
    """How far down the layer-wise pass pinned each sample exactly. Layers ``level..L-1`` all
    have single-point pre-images, so the output of layer ``level - 1`` is known exactly (the
    target given to that layer); a search for ``G(z) = x`` need only reach it with the layers
    below (``level == L``: nothing below ``x`` is pinned; ``0``: ``z`` itself is).

    Attributes:
        level: ``(B,)`` long.
        targets: ``level -> (rows (b,) long, y (b, n_level-1))``, the pinned outputs.
        ambiguous: ``(B,)`` bool: layer ``level - 1`` solved cleanly and its pre-image of that
            exact output is *not* a point, so no latent found later can be certified ``z = z*``.
    """

    level: torch.Tensor
    targets: dict[int, tuple[torch.Tensor, torch.Tensor]]
    ambiguous: torch.Tensor

    def target(self, level: int, rows: torch.Tensor) -> torch.Tensor:
        """The pinned outputs of the samples ``rows`` (all at ``level``), ``(b, n)``."""
        idx, y = self.targets[level]
        where = torch.full((int(self.level.numel()),), -1, dtype=torch.long)
        where[idx.cpu()] = torch.arange(idx.numel())
        return y[where[rows.cpu()].to(y.device)]


@dataclass
class RawSolution:
    """An inverter's answer for the valid samples, float64, before statuses are assigned.

    Attributes:
        z: ``(B, k)`` flat latents.
        layer_residuals: ``(B, L)`` per-layer constraint violation (nan where not measured).
        unique: ``(B, L)`` bool, each layer's pre-image certified to be a point.
        methods: per sample, the solver path: each layer's solver joined by ``/``, first layer
            first, then each later stage after ``>`` (e.g. ``"lstsq/ipm>lm>pattern+2 kicks@2>adam"``;
            ``@l``: the stage searched below layer ``l``'s pinned output, ``+n kicks``: after ``n``
            kicks).
        messages: per sample, solver messages ("" when none).
        infeasible: ``(B,)`` bool, x provably outside the range of the last layer.
        failed: ``(B,)`` bool, a solver broke down.
        bound: ``(B,)`` certified bound on ``||z - z*||_2`` (nan where none), or None.
        anchors: the layer-wise pass's pinned targets (:class:`Anchors`), or None; for the
            search that follows it, not carried by :meth:`scatter`.
    """

    z: torch.Tensor
    layer_residuals: torch.Tensor
    unique: torch.Tensor
    methods: list[str]
    messages: list[str]
    infeasible: torch.Tensor
    failed: torch.Tensor
    bound: torch.Tensor | None = None
    anchors: Anchors | None = None

    @classmethod
    def of(cls, z: torch.Tensor, n_layers: int, *, method: str = "") -> "RawSolution":
        """The solution holding latents ``z`` (B, k) and nothing else yet: no layer measured or
        certified, nothing flagged, ``method`` as every sample's path."""
        B = z.shape[0]
        return cls(z=z, layer_residuals=torch.full((B, n_layers), float("nan"), dtype=torch.float64),
                   unique=torch.zeros(B, n_layers, dtype=torch.bool), methods=[method] * B, messages=[""] * B,
                   infeasible=torch.zeros(B, dtype=torch.bool), failed=torch.zeros(B, dtype=torch.bool))

    @classmethod
    def empty(cls, batch: int, n_layers: int, latent_dim: int, *, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None, method: str = "") -> "RawSolution":
        """An empty batch to fill (zero latents), e.g. with :meth:`scatter`."""
        return cls.of(torch.zeros(batch, latent_dim, dtype=dtype, device=device), n_layers, method=method)

    def take(self, idx: torch.Tensor) -> "RawSolution":
        """The samples ``idx`` (long, any device) as a batch of their own (anchors not carried)."""
        rows = idx.cpu()
        return RawSolution(z=self.z[idx.to(self.z.device)], layer_residuals=self.layer_residuals[rows],
                           unique=self.unique[rows], methods=[self.methods[i] for i in rows.tolist()],
                           messages=[self.messages[i] for i in rows.tolist()], infeasible=self.infeasible[rows],
                           failed=self.failed[rows], bound=None if self.bound is None else self.bound[rows])

    def scatter(self, idx: torch.Tensor, sub: "RawSolution") -> None:
        """Write a sub-batch's results into some rows of this batch.

        Args:
            idx: ``(b,)`` long, the rows (on any device).
            sub: the sub-batch's solution, ``b`` samples, latents on this batch's device.
        """
        rows = idx.cpu()
        self.z[idx.to(self.z.device)] = sub.z
        self.layer_residuals[rows], self.unique[rows] = sub.layer_residuals.cpu(), sub.unique.cpu()
        self.infeasible[rows], self.failed[rows] = sub.infeasible.cpu(), sub.failed.cpu()
        if sub.bound is not None:
            if self.bound is None:
                self.bound = torch.full((self.z.shape[0],), float("nan"), dtype=torch.float64)
            self.bound[rows] = sub.bound.cpu().to(self.bound.dtype)
        for j, i in enumerate(rows.tolist()):
            self.methods[i], self.messages[i] = sub.methods[j], sub.messages[j]

    def adopt(self, idx: torch.Tensor, z: torch.Tensor, *, methods: list[str], messages: list[str]) -> None:
        """Some samples take latents found by a later stage. The earlier stage's certificates,
        bounds and flags were about the old latents: they are cleared (a stage that can certify
        the new ones does so after); its per-layer residuals stay as the record of that stage.

        Args:
            idx: ``(b,)`` long, the rows taking new latents.
            z: ``(b, k)`` the new latents.
            methods, messages: per row, its new solver path and message.
        """
        rows = idx.cpu()
        self.z[idx.to(self.z.device)] = z
        self.unique[rows] = False
        self.failed[rows] = self.infeasible[rows] = False
        if self.bound is not None:
            self.bound[rows] = float("nan")
        for j, i in enumerate(rows.tolist()):
            self.methods[i], self.messages[i] = methods[j], messages[j]


class Inverter:
    """Base class. A subclass sets ``name`` and implements :meth:`solve`; options are
    constructor keywords, validated there."""

    name = "inverter"
    #: how far observations may leave the output activation's range and still be valid input
    #: (the noise level of a noisy fit; exact methods take values in the range only)
    output_slack: float = 0.0
    #: ``ord`` of :func:`torch.linalg.vector_norm` of the fit's misfit, reported per sample as
    #: ``fit_residual``; None for inverters that do not minimise a norm of their own
    fit_order: float | None = None
    #: for ``invert(differentiable=True)``: a layer-LP solver on the autograd graph whose own
    #: differentiation gives the gradient (:mod:`ganinvert.gradients`), or None for the native
    #: implicit derivative
    lp_layer = None
    #: the inverter reads the chain's layers (LPs, regions, the output activation's rows); False:
    #: it needs only the generator's output and gradients, so any differentiable generator will
    #: do (:class:`~ganinvert.blackbox.BlackBox`)
    needs_chain: bool = True
    #: ``invert`` certifies what this inverter's answers prove past its own certificates: the
    #: uniqueness radius and the global MILP (:mod:`ganinvert.radius`, :mod:`ganinvert.lp.milp`).
    #: False for the baselines, whose results and times are what a user of the plain method gets
    certifies: bool = True

    def without_chain(self) -> "Inverter | None":
        """What this inverter runs on a generator that could not be converted to a chain: itself
        when it needs none, else its search that needs only gradients, or None when it has none
        (the exact layer-wise methods)."""
        return None if self.needs_chain else self

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        """Invert ``chain`` (float64, on x's device) at observations ``x`` (B, n) float64, within
        ``budget``'s time limit when given (:mod:`ganinvert.budget`). ``chain`` is a
        :class:`~ganinvert.blackbox.BlackBox` where :attr:`needs_chain` is False."""
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({opts})"


def assign_status(raw: RawSolution, residual: torch.Tensor, *, rtol: float, invalid: list[str] | None = None,
                  layers: bool = True) -> tuple[list[Status], list[str]]:
    """Statuses from the verified forward residual: never EXACT without ``G(z) = x`` *and* a
    single-point certificate for every layer. ``invalid``: per sample, why it is INVALID ("" when
    it is valid input); ``layers``: the generator has layers to name in a message (not a black box)."""
    statuses, messages = [], []
    unique_all = raw.unique.all(dim=1).tolist()
    for i, (res, msg) in enumerate(zip(residual.tolist(), raw.messages)):
        if invalid is not None and invalid[i]:
            st, msg = Status.INVALID, invalid[i]
        elif raw.failed[i]:
            st = Status.FAILED
        elif res <= rtol:
            st = Status.EXACT if unique_all[i] else Status.EXACT_NONUNIQUE
            if st is Status.EXACT_NONUNIQUE and not msg and layers:
                layers = [j for j, u in enumerate(raw.unique[i].tolist()) if not u]
                msg = f"pre-image of layer(s) {layers} is not certified to be a single point"
        elif raw.infeasible[i]:
            st = Status.INFEASIBLE
        else:
            st = Status.APPROXIMATE
            msg = msg or f"relative residual {res:.2e} > rtol {rtol:.1e}"
        statuses.append(st)
        messages.append(msg)
    return statuses, messages
