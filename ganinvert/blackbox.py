"""A generator known only through its forward pass: what the gradient searches need, nothing more.

Every inverter reads a generator through one small protocol, which a converted
:class:`~ganinvert.chain.Chain` and a :class:`BlackBox` both satisfy: ``in_shape``, ``in_dim``,
``out_shape``, ``dtype``, ``device``, ``output(z)`` (the flat image, on the autograd graph),
``forward_all(z)``, ``relative_residual(z, x)``, ``observe(index)`` (partial observations),
``measured(M)`` (compressed sensing), ``output_act`` (the output activation whose range bounds
valid observations, None when unknown) and ``certifiable`` (whether exact structure was
extracted). An inverter says whether it needs more (:attr:`ganinvert.Inverter.needs_chain`: the
layers themselves, for the LPs and the region searches). A generator the adapters cannot convert
(an operation no converter knows, data-dependent control flow) is still inverted by the methods
that need only gradients, and its answers are never certified: :attr:`BlackBox.why` names the
operation that kept it from being a chain.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import torch
from torch import nn

from .adapters import CallableGenerator, check_eval_mode, checked_latent_shape, latent_shape_candidates, probe
from .chain import Chain
from .errors import ShapeMismatchError
from .tolerances import relative_residual

logger = logging.getLogger(__name__)


class BlackBox:
    """``z -> x`` through the module itself: flat ``(B, in_dim) -> (B, n)``.

    Args:
        module: the generator (its own dtype and device: float64 latents are cast to them and
            the image cast back).
        in_shape, out_shape: per-sample latent and image shapes.
        why: what kept the generator from being converted (the adapter's message).
        index: the flat output entries observed (None: all).
        measurement: ``M`` (m, n) applied to the (observed) image, or None.
    """

    certifiable = False
    output_act = None

    def __init__(self, module: Callable, *, in_shape: tuple[int, ...], out_shape: tuple[int, ...], why: str,
                 dtype: torch.dtype, device: torch.device, index: torch.Tensor | None = None,
                 measurement: torch.Tensor | None = None) -> None:
        self.module, self.in_shape, self.image_shape, self.why = module, tuple(in_shape), tuple(out_shape), why
        self.module_dtype, self.device = dtype, device
        self.index, self.measurement = index, measurement

    dtype = torch.float64  # what the solvers see: the image comes back in float64

    @property
    def in_dim(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Per-sample shape of what is observed: the image, its observed entries, or ``M G(z)``."""
        if self.measurement is not None:
            return (self.measurement.shape[0],)
        return self.image_shape if self.index is None else (int(self.index.numel()),)

    def __len__(self) -> int:
        return 1  # one opaque layer (RawSolution's per-layer records)

    def image(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` flat ``(B, n)`` in float64, for flat (or shaped) ``z``."""
        zz = z.reshape(z.shape[0], *self.in_shape).to(dtype=self.module_dtype, device=self.device)
        return self.module(zz).reshape(z.shape[0], -1).to(torch.float64)

    def forward_all(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``[image]``, or ``[image, M image]`` under a measurement (as a chain with ``M`` as its
        last layer would give), the image restricted to the observed entries."""
        x = self.image(z)
        if self.index is not None:
            x = x[:, self.index]
        return [x] if self.measurement is None else [x, x @ self.measurement.T]

    def output(self, z: torch.Tensor) -> torch.Tensor:
        """What is observed of ``G(z)``: ``(B, *)`` flat."""
        return self.forward_all(z)[-1]

    def relative_residual(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``||G(z) - x|| / ||x||`` per sample (:func:`~ganinvert.tolerances.relative_residual`)."""
        with torch.no_grad():
            return relative_residual(self.output(z), x)

    def _with(self, *, index: torch.Tensor | None, measurement: torch.Tensor | None) -> "BlackBox":
        return BlackBox(self.module, in_shape=self.in_shape, out_shape=self.image_shape, why=self.why,
                        dtype=self.module_dtype, device=self.device, index=index, measurement=measurement)

    def observe(self, index: torch.Tensor) -> "BlackBox":
        """Only the flat output entries ``index`` are observed (partial observations)."""
        return self._with(index=index.to(self.device), measurement=self.measurement)

    def measured(self, M: torch.Tensor) -> "BlackBox":
        """``M G(z)`` is observed (compressed sensing): ``M`` (m, n), float64."""
        return self._with(index=self.index, measurement=M)

    def to(self, dtype: torch.dtype | None = None, device=None) -> "BlackBox":
        """The module keeps its own dtype and device: itself."""
        return self

    def detach(self) -> "BlackBox":
        return self

    def describe(self) -> str:
        return (f"BlackBox: latent {self.in_shape} -> image {self.image_shape}, gradients only "
                f"(not converted: {self.why})")


#: what the inverters read a generator through (the module doc's protocol)
Generator = Chain | BlackBox


def black_box(generator: nn.Module | Callable, *, why: str, latent_shape: Sequence[int] | None = None) -> BlackBox:
    """``generator`` as a :class:`BlackBox`: its latent shape (given, or from its first Linear or
    convolution, each candidate tried on a probe batch) and its image shape (from that probe).

    Raises:
        TrainingModeError: a module whose output depends on the batch.
        ShapeMismatchError: no latent shape runs; the message asks for ``latent_shape=``.
    """
    module = generator if isinstance(generator, nn.Module) else CallableGenerator(generator)
    check_eval_mode(module)
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    shapes = ([checked_latent_shape(latent_shape)] if latent_shape is not None
              else latent_shape_candidates(module.modules()))
    gen = torch.Generator().manual_seed(0)
    for shape in shapes:
        z = torch.randn(2, *shape, generator=gen).to(dtype=dtype, device=device)
        if probe(module, z) is None:
            with torch.no_grad():
                out = module(z)
            box = BlackBox(module, in_shape=shape, out_shape=tuple(out.shape[1:]), why=why, dtype=dtype,
                           device=device)
            logger.debug("%s", box.describe())
            return box
    raise ShapeMismatchError(f"Expected: a latent shape the generator runs on, Got: "
                             f"{'latent_shape=' + str(tuple(latent_shape)) if latent_shape else 'none inferred'} "
                             f"(tried {shapes or 'no candidate: no Linear or convolution found'}). Hint: pass "
                             f"latent_shape=(...), the per-sample shape of z")
