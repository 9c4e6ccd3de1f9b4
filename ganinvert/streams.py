"""Random draws that belong to the seed, not to a sample's place in a batch.

An inverter's random starts, kicks and redraws are drawn for *start number r* (or kick round n),
the same for every sample, from a stream keyed on ``(seed, purpose)`` only. So a sample gets the
same draws, hence the same answer and status, whether it is inverted alone or at any position
of any batch (one stream drawn row by row would hand sample 2 of a batch other starts than it
gets alone), the same seed gives the same bits, and the answer stays a continuous function of x
(starts keyed on x's values would jump under any perturbation of it, and break gradients).
What varies between a sample's starts is the start number: each sample still sees ``R``
independent random starts.
"""

from __future__ import annotations

import hashlib

import torch


class SeedStream:
    """Draws keyed on ``(seed, purpose)``, consumed in the same order whatever the batch.

    Args:
        seed: the caller's seed.
        purpose: separates the streams of different uses of one seed.
        like: the tensor whose dtype and device the draws take.
    """

    def __init__(self, seed: int, purpose: str, *, like: torch.Tensor) -> None:
        key = int.from_bytes(hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest(), "little") >> 1
        self._gen = torch.Generator().manual_seed(key)
        self.dtype, self.device = like.dtype, like.device

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal draws (drawn on the CPU, so every device gets the same numbers)."""
        return torch.randn(shape, generator=self._gen, dtype=torch.float64).to(dtype=self.dtype, device=self.device)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform draws on [0, 1)."""
        return torch.rand(shape, generator=self._gen, dtype=torch.float64).to(dtype=self.dtype, device=self.device)
