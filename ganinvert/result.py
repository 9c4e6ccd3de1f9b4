"""The result of an inversion: per-sample latents, reconstructions and an honest status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType

import torch


class Status(enum.IntEnum):
    """Per-sample outcome. Each member carries the sentence a user reads."""

    EXACT = 0
    EXACT_NONUNIQUE = 1
    APPROXIMATE = 2
    INFEASIBLE = 3
    FAILED = 4
    INVALID = 5

    def __str__(self) -> str:  # "EXACT", not IntEnum's "0"
        return self.name

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    @property
    def solved(self) -> bool:
        """True when G(z) = x to tolerance (uniqueness certified or not)."""
        return self in (Status.EXACT, Status.EXACT_NONUNIQUE)


_MESSAGES = MappingProxyType({
    Status.EXACT: "G(z) = x to tolerance and z is certified to be its only pre-image (every layer's pre-image "
    "is a single point), so z = z*",
    Status.EXACT_NONUNIQUE: "G(z) = x to tolerance, but global uniqueness is not certified: another latent may "
    "map to x too, farther from z than unique_radius",
    Status.APPROXIMATE: "no exact pre-image found; z is the best estimate and residual says how far G(z) is from x",
    Status.INFEASIBLE: "x is provably outside the range of the generator's last layer",
    Status.FAILED: "a solver broke down on this sample (see messages)",
    Status.INVALID: "the observation is not valid input for this generator (see messages)",
})


@dataclass
class InversionResult:
    """What ``ganinvert.invert`` returns.

    Attributes:
        z: latents, ``(B, *latent_shape)`` (no batch dim when x had none), caller's dtype/device.
        x_hat: ``G(z)`` with the shape of ``x``.
        status: one :class:`Status` per sample.
        residual: relative residual ``||G(z) - x||_2 / ||x||_2`` per sample, float64 on CPU
            (``nan`` for INVALID samples).
        layer_residuals: ``(B, L)`` float64: per layer (index 0 = first layer), the largest
            constraint violation of the layer's solve, in pre-activation units (noisy
            inversion: the layer's thresholded l_inf misfit for linf/l2, its l_1 residual
            ``||act(A u + b) - y||_1`` for l1).
        unique: ``(B, L)`` bool: layer's pre-image certified to be a single point.
        methods: per sample, the solver path that produced z (e.g. ``"lstsq"``, ``"ipm"``).
        messages: per sample, an explanation ("" when EXACT).
        method: the inverter's name.
        bound: ``(B,)`` float64: certified bound on ``||z - z*||_2`` where the method gives one
            (noisy l_inf or l2 inversion with a known noise level), else nan.
        fit_residual: ``(B,)`` float64: ``||G(z) - x||`` in the chosen norm of a noisy fit
            (l_inf, l_1 or l2; observed pixels only under a mask; nan for INVALID samples), or
            None for the other methods.
        timings: seconds spent per phase (``"adapt"``, ``"solve"``, ``"total"``), and per stage of
            the inverter (``"stage: backward pass, layer #"``, ``"stage: auto: Levenberg-Marquardt
            from start # of #"``...: the profile, numbers folded to ``#``).
        batched: whether x had a batch dimension.
        differentiable: ``(B,)`` bool with ``invert(differentiable=True)``: the samples whose
            ``z`` has a gradient (every layer's active equations pin its input), else None.
        unique_radius: ``(B,)`` float64: a radius ``r`` such that no other latent within ``r`` of
            ``z`` (l2) maps to ``G(z)`` on the pixels that pin it (:mod:`ganinvert.radius`): ``inf``
            where ``z`` is the only pre-image (EXACT), the local certificate where ``G(z) = x``
            without a global one (EXACT_NONUNIQUE), 0 where nothing is proven (no ``G(z) = x``, a
            generator without activation regions, a rank-deficient output, out of time).
    """

    z: torch.Tensor
    x_hat: torch.Tensor
    status: list[Status]
    residual: torch.Tensor
    layer_residuals: torch.Tensor
    unique: torch.Tensor
    methods: list[str]
    messages: list[str]
    method: str
    bound: torch.Tensor | None = None
    fit_residual: torch.Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)
    batched: bool = True
    differentiable: torch.Tensor | None = None
    unique_radius: torch.Tensor | None = None

    @staticmethod
    def gather(parts: list[tuple[torch.Tensor, "InversionResult"]], batch: int) -> "InversionResult":
        """One batched result from the batched results of disjoint groups of samples: ``parts``
        ``[(index (n_g,), result)]`` covering ``0..batch-1``. Layer tables of different depths are
        padded (nan residual, not unique); timings add up."""
        first = parts[0][1]
        L = max(r.layer_residuals.shape[1] for _, r in parts)

        def rows(get, fill=None):
            if any(get(r) is None for _, r in parts):
                return None
            t0 = get(first)
            shape = (batch, *t0.shape[1:])
            out = t0.new_full(shape, fill) if fill is not None else t0.new_empty(shape)
            for idx, r in parts:
                out[idx.to(out.device)] = get(r)
            return out

        def cols(t, fill):  # pad a (n, L_g) table to L columns
            return torch.cat([t, t.new_full((t.shape[0], L - t.shape[1]), fill)], 1)

        lists = {name: [None] * batch for name in ("status", "methods", "messages")}
        timings: dict[str, float] = {}
        for idx, r in parts:
            for name, values in lists.items():
                for i, v in zip(idx.tolist(), getattr(r, name)):
                    values[i] = v
            for k, v in r.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        return InversionResult(
            z=rows(lambda r: r.z), x_hat=rows(lambda r: r.x_hat), residual=rows(lambda r: r.residual),
            layer_residuals=rows(lambda r: cols(r.layer_residuals, float("nan")), float("nan")),
            unique=rows(lambda r: cols(r.unique, False), False), bound=rows(lambda r: r.bound),
            fit_residual=rows(lambda r: r.fit_residual), differentiable=rows(lambda r: r.differentiable),
            unique_radius=rows(lambda r: r.unique_radius),
            method=first.method, timings=timings, batched=True, **lists)

    @property
    def exact(self) -> torch.Tensor:
        """Bool mask ``(B,)``: status EXACT."""
        return torch.tensor([s is Status.EXACT for s in self.status], dtype=torch.bool)

    @property
    def solved(self) -> torch.Tensor:
        """Bool mask ``(B,)``: G(z) = x to tolerance (EXACT or EXACT_NONUNIQUE)."""
        return torch.tensor([s.solved for s in self.status], dtype=torch.bool)

    def counts(self) -> dict[str, int]:
        """Number of samples per status name, every status listed."""
        return {s.name: sum(1 for t in self.status if t is s) for s in Status}

    def summary(self) -> str:
        """One line for logs: counts per status, median residual and total time."""
        counts = ", ".join(f"{k}={v}" for k, v in self.counts().items() if v)
        finite = self.residual[torch.isfinite(self.residual)]
        med = f"{finite.median().item():.2e}" if finite.numel() else "n/a"
        return (f"{self.method}: {len(self.status)} samples ({counts}); median relative residual "
                f"{med}; {self.timings.get('total', float('nan')):.3f} s")
