"""What ``invert`` is given, checked at the boundary: the observations as a batch, a mask, a
measurement matrix, and per sample the reason it is INVALID (with the fix), so that a bad sample
gets a status and never costs the others their results."""

from __future__ import annotations

import math

import torch

from .blackbox import Generator
from .errors import InvalidInputError, ShapeMismatchError
from .tolerances import target_scale


def measured_chain(chain: Generator, M: object) -> Generator:
    """``chain`` followed by the measurement ``M`` (m, n): ``y = M G(z)``, validated here."""
    n = math.prod(chain.out_shape)
    if not isinstance(M, torch.Tensor) or M.dim() != 2 or not M.is_floating_point():
        got = f"{type(M).__name__} of shape {tuple(M.shape)}" if isinstance(M, torch.Tensor) else type(M).__name__
        raise InvalidInputError(f"Expected: measurement as a 2-D float tensor (m, {n}), Got: {got}")
    if M.shape[1] != n:
        raise ShapeMismatchError(f"Expected: measurement with {n} columns (one per output entry of the "
                                 f"generator, {chain.out_shape}), Got: shape {tuple(M.shape)}. Fix: flatten "
                                 "the image the way torch.flatten does and build M as (m, n)")
    if not torch.isfinite(M).all():
        raise InvalidInputError("Expected: a finite measurement matrix, Got: NaN/Inf entries")
    return chain.measured(M.detach().to(dtype=chain.dtype, device=chain.device))


def as_batch(x: object, out_shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
    """``x`` as ``(B, *out_shape)`` plus whether it had a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"Expected: x as a torch.Tensor of shape (B, {', '.join(map(str, out_shape))}), "
                                f"Got: {type(x).__name__}. Hint: torch.as_tensor(x, dtype=torch.float32)")
    if not x.is_floating_point():
        raise InvalidInputError(f"Expected: a floating-point x, Got: {x.dtype}. Hint: for 8-bit images "
                                "use x.float() / 255 (then rescale to the generator's output range)")
    shape = tuple(x.shape)
    if shape == out_shape:
        return x.unsqueeze(0), False
    if len(shape) == len(out_shape) + 1 and shape[1:] == out_shape:
        if shape[0] == 0:
            raise InvalidInputError("Expected at least one sample, Got: an empty batch of shape "
                                    f"{shape}")
        return x, True
    hint = ""
    if math.prod(shape[1:]) == math.prod(out_shape) or math.prod(shape) == math.prod(out_shape):
        hint = f" Hint: reshape with x.view(-1, {', '.join(map(str, out_shape))})."
    expected = ", ".join(map(str, out_shape))
    raise ShapeMismatchError(f"Expected: ({expected}) or (B, {expected}) for this generator, "
                             f"Got: {shape} ({x.dim()} dims).{hint}")


def invalid_samples(chain: Generator, x: torch.Tensor, rtol: float, *, slack: float = 0.0) -> list[str]:
    """Per sample ``x`` (B, n) float64: "" when valid, else what is wrong and how to fix it.
    ``slack``: how far values may leave the output activation's range (the noise level); a
    generator whose output activation is unknown (a black box) bounds nothing."""
    act = chain.output_act
    finite = torch.isfinite(x).all(1)
    x0 = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    tol = rtol * target_scale(x0, keepdim=True) + slack
    no = torch.zeros_like(finite)
    bad_range, empty = (no, no) if act is None else (act.out_of_range(x0, tol=tol), act.uninformative(x0))
    reasons = []
    for i in range(x.shape[0]):
        if not finite[i]:
            n_bad = int((~torch.isfinite(x[i])).sum())
            reasons.append(f"x has {n_bad} NaN/Inf values; Expected finite values")
        elif bad_range[i]:
            reasons.append(f"x has values in [{x[i].min().item():.4g}, {x[i].max().item():.4g}] but "
                           f"the generator's output activation ({act!r}) only produces "
                           f"{act.range_hint()}" + (f" (noise level {slack:g} allowed). Hint: pass a larger "
                                                    "noise=, or noise=None to estimate it" if slack else ""))
        elif empty[i]:
            reasons.append(act.uninformative_reason)
        else:
            reasons.append("")
    return reasons


def observed_mask(mask: object, out_shape: tuple[int, ...], B: int, device) -> torch.Tensor:
    """``mask`` as ``(B, n)`` bool on ``device``; True marks an observed pixel."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = type(mask).__name__ if not isinstance(mask, torch.Tensor) else f"a {mask.dtype} tensor"
        raise InvalidInputError(f"Expected: mask as a bool tensor (True = observed pixel), Got: {got}. "
                                "Hint: mask = observed > 0 or torch.as_tensor(m, dtype=torch.bool)")
    shape = tuple(mask.shape)
    if shape == out_shape:
        mask = mask.unsqueeze(0).expand(B, *out_shape)
    elif shape != (B, *out_shape):
        raise ShapeMismatchError(f"Expected: mask of shape {out_shape} (one for the batch) or {(B, *out_shape)}, "
                                 f"Got: {shape}")
    return mask.reshape(B, -1).to(device)
