"""The baseline users compare against: Adam on ``||G(z) - x||^2`` with random restarts
(Bora et al. 2017, "CSGM"), batched. It cannot certify uniqueness, so its best case is
EXACT_NONUNIQUE."""

from __future__ import annotations

import torch

from ..chain import Chain
from ..errors import InvalidInputError
from .base import Inverter, RawSolution


class Adam(Inverter):
    """Latent optimisation with Adam.

    Args:
        steps: Adam steps per restart.
        lr: learning rate.
        restarts: random starts per sample; the lowest loss over all starts and steps is kept.
        init_std: standard deviation of the Gaussian starts.
        seed: seed of the starts (a fresh ``torch.Generator``; the global RNG is untouched).
    """

    name = "adam"

    def __init__(self, *, steps: int = 1000, lr: float = 0.05, restarts: int = 1,
                 init_std: float = 1.0, seed: int = 0) -> None:
        if steps < 1 or restarts < 1 or not lr > 0 or not init_std > 0:
            raise InvalidInputError(f"Expected steps >= 1, restarts >= 1, lr > 0, init_std > 0, Got: "
                                    f"steps={steps}, restarts={restarts}, lr={lr}, init_std={init_std}")
        self.steps, self.lr, self.restarts = int(steps), float(lr), int(restarts)
        self.init_std, self.seed = float(init_std), int(seed)

    def solve(self, chain: Chain, x: torch.Tensor, *, rtol: float) -> RawSolution:
        B, k = x.shape[0], chain.in_dim
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best_z = torch.zeros(B, k, dtype=x.dtype, device=x.device)
        best = torch.full((B,), float("inf"), dtype=x.dtype, device=x.device)
        for _ in range(self.restarts):
            z = (self.init_std * torch.randn(B, k, generator=gen, dtype=x.dtype, device=x.device)).requires_grad_()
            opt = torch.optim.Adam([z], lr=self.lr)
            for _ in range(self.steps + 1):
                loss = ((chain.forward_all(z)[-1] - x) ** 2).sum(1)  # (B,)
                with torch.no_grad():
                    better = loss < best
                    best = torch.where(better, loss, best)
                    best_z[better] = z[better]
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
        L = len(chain)
        return RawSolution(z=best_z.detach(), layer_residuals=torch.full((B, L), float("nan"), dtype=torch.float64),
                           unique=torch.zeros(B, L, dtype=torch.bool), methods=["adam"] * B,
                           messages=[""] * B, infeasible=torch.zeros(B, dtype=torch.bool),
                           failed=torch.zeros(B, dtype=torch.bool))
