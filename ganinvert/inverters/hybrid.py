"""Inverters built on others: an encoder's single forward pass, and the hybrid of the exact
layer-wise LP with Adam for the samples the LP does not solve."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..budget import Budget
from ..chain import Chain
from ..errors import InvalidInputError
from .adam import Adam
from .base import Inverter, RawSolution
from .layerwise import Layerwise


class Encoder(Inverter):
    """``z = encoder(x)`` (the mean when the encoder returns ``(mean, log-variance)``), as VAEs
    come with one. One forward pass; uniqueness is never certified.

    Args:
        encoder: module mapping images ``(B, *out)`` to ``(B, k)`` or a tuple whose first item is.
    """

    name = "encoder"
    certifies = False  # a baseline: one pass of the encoder, as a user of it gets
    needs_chain = False

    def __init__(self, *, encoder: nn.Module) -> None:
        if not isinstance(encoder, nn.Module):
            raise InvalidInputError(f"Expected: encoder as a torch.nn.Module, Got: {type(encoder).__name__}")
        self.encoder = encoder

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        enc = copy.deepcopy(self.encoder).to(dtype=x.dtype, device=x.device).eval()
        with torch.no_grad():
            out = enc(x.reshape(x.shape[0], *chain.out_shape))
        z = (out[0] if isinstance(out, (tuple, list)) else out).reshape(x.shape[0], -1)
        if z.shape[1] != chain.in_dim:
            raise InvalidInputError(f"encoder returns {z.shape[1]} latents per sample, Expected: {chain.in_dim}")
        return RawSolution.of(z, len(chain), method=self.name)


class Hybrid(Inverter):
    """The layer-wise LP where it solves ``G(z) = x``; elsewhere Adam started from the layer-wise
    estimate (kept only where it fits better). Certified samples keep their EXACT status.

    Args:
        layerwise: the exact stage (default ``Layerwise()``).
        adam: the refinement stage (default ``Adam(steps=300, lr=0.05, restarts=8)``: the first
            restart starts at the layer-wise estimate, the others at random, so a poor LP point
            (an observation outside the range) cannot do worse than Adam from random starts).
        seed: the default Adam's random starts.
    """

    name = "hybrid"

    def __init__(self, *, layerwise: Layerwise | None = None, adam: Adam | None = None, seed: int = 0) -> None:
        self.layerwise = layerwise or Layerwise()
        self.adam = adam or Adam(steps=300, lr=0.05, restarts=8, seed=seed)

    def without_chain(self) -> Adam:
        """On a generator with no chain, the refinement stage alone."""
        return self.adam

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float, budget: Budget | None = None) -> RawSolution:
        raw = self.layerwise.solve(chain, x, rtol=rtol, budget=budget)
        res = chain.relative_residual(raw.z, x).cpu()
        todo = ((res > rtol) | raw.failed).nonzero().flatten()
        if todo.numel() == 0:
            return raw
        dev_idx = todo.to(x.device)
        refined = self.adam.solve(chain, x[dev_idx], rtol=rtol, z0=raw.z[dev_idx], budget=budget).z
        better = (chain.relative_residual(refined, x[dev_idx]).cpu() < res[todo])
        won = todo[better]
        raw.adopt(won, refined[better.to(refined.device)], methods=[f"{raw.methods[i]}>adam" for i in won.tolist()],
                  messages=[f"refined by Adam from the layer-wise estimate ({raw.messages[i] or 'not exact'})"
                            for i in won.tolist()])
        return raw
