"""``Inversion``: the inversion as a ``torch.nn.Module``, differentiable, for use inside models."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .api import invert
from .chain import Chain
from .errors import InvalidInputError
from .result import InversionResult


class Inversion(nn.Module):
    """``x -> invert(generator, x, differentiable=True, **options)`` as a module.

    The generator is a submodule, so its parameters are the module's: gradients of anything
    computed from the result (``res.z``, ``res.x_hat``) reach them and ``x``
    (:mod:`ganinvert.gradients` says what the gradient is, per sample). A GAN-range projection
    used as a defence is ``Inversion(G)(x).x_hat``; attacks on it get true gradients.

    A :class:`~ganinvert.Chain` passed instead of a module holds plain tensors: they are not the
    module's parameters or buffers (``.to()`` and ``state_dict`` do not see them).

    It does not work under ``torch.func`` transforms (``vmap``, ``grad``, ``jacrev``): the
    solvers branch on the data. Use ``torch.autograd`` on the result, and a loop for per-sample
    Jacobians.

    Args:
        generator: an ``nn.Module`` in eval mode, or a :class:`~ganinvert.Chain`.
        **options: keyword options of :func:`ganinvert.invert` (``method``, ``rtol``, ``mask``,
            ``time_limit``...), fixed for every call.

    Example::

        project = ganinvert.Inversion(G, method="auto")
        res = project(x)                      # an InversionResult
        loss = classifier(res.x_hat[res.differentiable]).sum()
        loss.backward()                       # gradients to x and to G's parameters
    """

    def __init__(self, generator: nn.Module | Chain, **options: Any) -> None:
        super().__init__()
        for key in ("differentiable", "throw"):
            if key in options:
                raise InvalidInputError(f"Expected: Inversion(generator, **options) without {key}=, Got: {key}="
                                        f"{options[key]!r}. The module is always differentiable and reports "
                                        f"per sample. Fix: drop {key}=, or call ganinvert.invert for that setting")
        if isinstance(generator, nn.Module):
            self.generator = generator
        else:
            self._generator = generator  # a Chain or a callable: not registered as a submodule
        self.options = dict(options)

    def forward(self, x: torch.Tensor) -> InversionResult:
        """Invert ``x`` (``(B, *out)`` or one ``(*out)``); the result's ``z`` and ``x_hat`` carry
        the autograd graph."""
        generator = self.generator if "generator" in self._modules else self._generator
        return invert(generator, x, differentiable=True, **self.options)

    def train(self, mode: bool = True) -> "Inversion":
        """Switch the module's mode, but keep the generator in eval mode: the inversion needs its
        BatchNorm statistics frozen (a generator in training mode is refused). Train a generator
        through the inversion by optimising its parameters; its mode stays eval."""
        super().train(mode)
        if "generator" in self._modules:
            self.generator.eval()
        return self

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
