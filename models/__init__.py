"""Shipped MNIST generators: ``ganinvert.models.load("mnist_mlp")`` returns an eval-mode generator with
its latent dimension and pixel range. See each ``<name>.md`` card for how it was trained."""

from .registry import SPECS, Loaded, build, load, save

__all__ = ["SPECS", "Loaded", "build", "load", "save"]
