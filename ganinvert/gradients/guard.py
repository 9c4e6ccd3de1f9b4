"""The answer map's value and where it has a derivative, and the refusal to backpropagate into a
sample without one (:class:`~ganinvert.errors.NotDifferentiableError`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import NotDifferentiableError


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
