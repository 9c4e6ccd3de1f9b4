"""Typed errors. Each class also inherits the matching builtin, so callers may catch either
(``except ganinvert.ShapeMismatchError`` or ``except ValueError``)."""

from __future__ import annotations


class GanInvertError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(GanInvertError, ValueError):
    """The observation (or an option) is not something the inverter can work with."""


class ShapeMismatchError(InvalidInputError):
    """A tensor's shape differs from the one the generator or option requires."""


class UnsupportedLayerError(GanInvertError, TypeError):
    """The generator holds a layer or operation that no registered converter handles."""


class TrainingModeError(GanInvertError, RuntimeError):
    """A mode-dependent submodule (BatchNorm, Dropout) is in training mode."""


class ChainMismatchError(GanInvertError, RuntimeError):
    """The layer chain built from a module does not reproduce the module's output."""


class LayerTooLargeError(GanInvertError, MemoryError):
    """A layer is too large to be materialised as the dense matrix its solver needs."""


class InversionError(GanInvertError, RuntimeError):
    """Raised by ``invert(..., throw=True)`` when some sample has no ``G(z) = x``."""


class SolverError(InversionError):
    """Raised by ``invert(..., throw=True)`` when a solver broke down on some sample (its status
    FAILED); without ``throw`` the status alone reports it."""


class NotDifferentiableError(GanInvertError, RuntimeError):
    """A gradient reached a sample of ``invert(..., differentiable=True)`` whose answer is not
    locally a function of ``x`` (``result.differentiable`` False): the backward pass refuses
    rather than return a wrong gradient."""
