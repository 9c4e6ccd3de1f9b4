"""``invert``: validate at the boundary, adapt the generator, dispatch, report per sample."""

from __future__ import annotations

import logging
import math
import time
from typing import Mapping, Sequence

import torch
from torch import nn

from .activations import Identity
from .adapters import Converter, to_chain
from .chain import Chain, Layer
from .errors import InvalidInputError, InversionError, ShapeMismatchError
from .inverters import INVERTERS, Auto, Inverter, Noisy
from .operators import Dense
from .inverters.base import RawSolution, assign_status
from .result import InversionResult, Status

logger = logging.getLogger(__name__)


def default_rtol(dtype: torch.dtype) -> float:
    """Relative residual tolerance ``||G(z) - x|| / ||x||`` that counts as ``G(z) = x``: the
    observation cannot be more exact than its own dtype."""
    return {torch.float64: 1e-6, torch.float32: 1e-4}.get(dtype, 1e-2)


def _resolve_method(method: str | Inverter) -> Inverter:
    if isinstance(method, Inverter):
        return method
    if isinstance(method, str) and method in INVERTERS:
        return INVERTERS[method]()
    raise InvalidInputError(f"unknown method {method!r}; Expected one of {sorted(INVERTERS)} "
                            "or an Inverter instance such as ganinvert.Layerwise(solver='highs')")


def _measured(chain: Chain, M: object) -> Chain:
    """``chain`` followed by the measurement ``M`` (m, n) as one more layer with no activation:
    ``y = M G(z)``. The generator's own output activation becomes a hidden one, so the
    activation-pattern LP covers it."""
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
    W = M.detach().to(dtype=chain.dtype, device=chain.device)
    last = Layer(Dense(W), torch.zeros(W.shape[0], dtype=W.dtype, device=W.device), Identity(), (W.shape[0],))
    return Chain(chain.layers + (last,), chain.in_shape)


def _batch(x: object, out_shape: tuple[int, ...]) -> tuple[torch.Tensor, bool]:
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


def _invalid_samples(chain: Chain, x: torch.Tensor, rtol: float, *, slack: float = 0.0) -> list[str]:
    """Per sample ``x`` (B, n) float64: "" when valid, else what is wrong and how to fix it.
    ``slack``: how far values may leave the output activation's range (the noise level)."""
    act = chain.layers[-1].act
    finite = torch.isfinite(x).all(1)
    scale = torch.where(finite, x.abs().amax(1), torch.zeros_like(x[:, 0]))
    tol = (rtol * scale.clamp(min=1.0))[:, None] + slack
    x0 = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    bad_range, empty = act.out_of_range(x0, tol=tol), act.uninformative(x0)
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


def _mask(mask: object, out_shape: tuple[int, ...], B: int, device) -> torch.Tensor:
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
    mask = mask.reshape(B, -1).to(device)
    if not mask.any(1).all():
        raise InvalidInputError("Expected: every sample's mask to observe at least one pixel, Got: an "
                                f"all-False mask for sample {int((~mask.any(1)).nonzero()[0])}")
    return mask


def _solve_masked(inverter: Inverter, chain: Chain, x: torch.Tensor, mask: torch.Tensor, rtol: float) -> RawSolution:
    """Solve each group of samples sharing a mask on the chain restricted to its observed rows."""
    patterns, group = torch.unique(mask, dim=0, return_inverse=True)
    out = RawSolution.empty(x.shape[0], len(chain), chain.in_dim, dtype=x.dtype, device=x.device)
    for g in range(patterns.shape[0]):
        rows = (group == g).nonzero().flatten()
        cols = patterns[g].nonzero().flatten()
        out.scatter(rows, inverter.solve(chain.observe(cols), x[rows][:, cols], rtol=rtol))
    return out


def invert(generator: nn.Module | Chain, x: torch.Tensor, *, method: str | Inverter = "layerwise",
           mask: torch.Tensor | None = None, measurement: torch.Tensor | None = None,
           norm: str | None = None, noise: float | None = None,
           rtol: float | None = None, latent_shape: Sequence[int] | None = None,
           converters: Mapping[type, Converter] | None = None, check_chain: bool = True,
           throw: bool = False, seed: int = 0) -> InversionResult:
    """Find latents ``z`` with ``generator(z) = x``, certifying uniqueness where possible.

    Args:
        generator: an ``nn.Module`` in eval mode (see :func:`ganinvert.to_chain`) or a ``Chain``
            (convert once with ``to_chain`` when inverting many batches).
        x: observations ``(B, *out)`` or one ``(*out)``, any float dtype, any device.
        method: ``"layerwise"`` (exact, default), ``"adam"`` (baseline), or an inverter
            instance carrying options, e.g. ``ganinvert.Layerwise(solver="highs")``.
        mask: partial observations (inpainting): bool, True where a pixel is observed, shaped
            like one output (shared by the batch) or ``(B, *out)``. Unobserved pixels of ``x``
            are ignored (they may hold anything, NaN included); residuals are measured on the
            observed ones. A row selection commutes with the activations, so the exact methods
            apply unchanged to the observed rows.
        measurement: compressed sensing: a dense ``M`` (m, n), n the generator's flat output
            size, and observations ``x = M G(z)`` shaped ``(B, m)``. ``M`` does not commute with
            the activations, so the layer-wise LP does not apply; the default method becomes
            ``"auto"`` (Adam + L-BFGS seeds, then the activation-pattern LP over all layers as the
            polish, with ``M`` as the last, linear layer). Answers are at best EXACT_NONUNIQUE
            when ``m < n``. ``x_hat`` is the image ``G(z)``; ``residual`` is measured on ``x``.
        norm, noise: noisy observations: ``norm="linf"`` (the l_inf LP per layer with the
            threshold schedule), ``"l1"`` (the "relax" LP per layer) or ``"l2"`` (least squares
            on the active set), ``noise`` the l_inf noise level of x (None: estimated from x as
            the threshold where the last layer's l_inf LP turns feasible, found by bisection:
            a lower bound on the true level). Shorthand for ``method=ganinvert.Noisy(...)``;
            results then carry ``fit_residual``, the achieved ``||G(z) - x||`` in the chosen
            norm, and ``bound``, the certified latent error where the theory gives one (linf/l2
            with ``noise`` given).
        rtol: ``||G(z) - x|| / ||x||`` that counts as exact; default 1e-6 for float64 x,
            1e-4 for float32, 1e-2 for half precision.
        latent_shape: per-sample latent shape when it cannot be inferred.
        converters: extra module converters for :func:`ganinvert.to_chain`.
        check_chain: verify the chain against the module on random latents.
        throw: raise :class:`InversionError` unless every sample has ``G(z) = x``.
        seed: seed of the chain check.

    Returns:
        :class:`InversionResult` with ``z`` and ``x_hat`` in x's dtype and device.

    Raises:
        InvalidInputError, ShapeMismatchError: bad ``x`` or options (a bad *sample* instead
            gets status INVALID). Adapter errors from :func:`ganinvert.to_chain`.
    """
    t0 = time.perf_counter()
    if norm is not None or noise is not None:
        if not (isinstance(method, str) and method == "layerwise"):
            raise InvalidInputError(f"Expected: norm=/noise= with the default method (they select the noisy "
                                    f"layer-wise LP), Got: method={method!r}. Hint: pass "
                                    "method=ganinvert.Noisy(norm=..., noise=...) or drop method")
        method = Noisy(norm=norm or "linf", noise=noise)
    if measurement is not None:
        if mask is not None or norm is not None or noise is not None:
            raise InvalidInputError("Expected: measurement= alone, Got: measurement= with mask=/norm=/noise=. "
                                    "Fix: fold a mask into M (keep its observed rows)")
        if isinstance(method, str) and method == "layerwise":
            method = Auto()
    inverter = _resolve_method(method)
    if rtol is not None and not 0 < rtol < 1:
        raise InvalidInputError(f"Expected 0 < rtol < 1, Got: rtol={rtol}")
    chain = to_chain(generator, latent_shape=latent_shape, converters=converters,
                     check=check_chain, seed=seed)
    image_chain = chain
    if measurement is not None:
        chain = _measured(chain, measurement)  # converted to float64 with the rest below
    xb, batched = _batch(x, chain.out_shape)
    rtol = default_rtol(x.dtype) if rtol is None else float(rtol)
    chain = chain.to(dtype=torch.float64, device=x.device)
    x64 = xb.detach().to(torch.float64).reshape(xb.shape[0], -1)  # (B, n)
    obs = None if mask is None else _mask(mask, chain.out_shape, x64.shape[0], x.device)
    if obs is not None:  # what is not observed is not data: zero it so validation ignores it
        x64 = torch.where(obs, x64, torch.zeros_like(x64))
    t_adapt = time.perf_counter()

    slack = 0.0  # noisy observations leave the output range by up to the noise (any: estimated)
    if isinstance(inverter, Noisy):
        slack = math.inf if inverter.noise is None else inverter.noise
    reasons = _invalid_samples(chain, x64, rtol, slack=slack)
    valid = torch.tensor([not r for r in reasons], device=x.device)
    B, L = x64.shape[0], len(chain)
    z = torch.zeros(B, chain.in_dim, dtype=torch.float64, device=x.device)
    residual = torch.full((B,), float("nan"), dtype=torch.float64)
    layer_res = torch.full((B, L), float("nan"), dtype=torch.float64)
    unique = torch.zeros(B, L, dtype=torch.bool)
    status, methods, messages = [Status.INVALID] * B, ["none"] * B, list(reasons)
    bound = torch.full((B,), float("nan"), dtype=torch.float64)
    fit_residual = None
    raw: RawSolution | None = None
    idx = valid.nonzero().flatten()
    if idx.numel():
        raw = (inverter.solve(chain, x64[idx], rtol=rtol) if obs is None
               else _solve_masked(inverter, chain, x64[idx], obs[idx], rtol))
        z[idx] = raw.z
        if raw.bound is not None:
            bound[idx.cpu()] = raw.bound.cpu()
    t_solve = time.perf_counter()

    with torch.no_grad():
        outs = chain.forward_all(z)
        x_hat64 = outs[-1]  # (B, n): one forward pass for x_hat and the residuals
    if raw is not None:
        diff = x_hat64[idx] - x64[idx] if obs is None else (x_hat64[idx] - x64[idx]) * obs[idx]
        res = (diff.norm(dim=1)
               / x64[idx].norm(dim=1).clamp(min=torch.finfo(torch.float64).tiny)).cpu()
        st, msg = assign_status(raw, res, rtol=rtol)
        cpu_idx = idx.cpu()
        residual[cpu_idx], layer_res[cpu_idx], unique[cpu_idx] = res, raw.layer_residuals, raw.unique
        if isinstance(inverter, Noisy):  # the misfit in the norm the fit minimised
            fit_residual = torch.full((B,), float("nan"), dtype=torch.float64)
            fit_residual[cpu_idx] = torch.linalg.vector_norm(diff, ord=inverter.order, dim=1).cpu()
        for j, i in enumerate(idx.tolist()):
            status[i], methods[i], messages[i] = st[j], raw.methods[j], msg[j]
    if measurement is not None:  # the image, not its measurements
        x_hat64, chain = outs[-2], image_chain
    x_hat = x_hat64.reshape(B, *chain.out_shape).to(x.dtype)
    z_out = z.reshape(B, *chain.in_shape).to(x.dtype)
    result = InversionResult(
        z=z_out if batched else z_out[0], x_hat=x_hat if batched else x_hat[0], status=status,
        residual=residual, layer_residuals=layer_res, unique=unique, methods=methods,
        messages=messages, method=inverter.name, batched=batched, bound=bound, fit_residual=fit_residual,
        timings={"adapt": t_adapt - t0, "solve": t_solve - t_adapt, "total": time.perf_counter() - t0})
    logger.info("%s", result.summary())
    if throw and not all(s.solved for s in status):
        bad = [i for i, s in enumerate(status) if not s.solved]
        raise InversionError(f"{len(bad)} of {B} samples not inverted exactly ({result.counts()}); "
                             f"first: sample {bad[0]}: {status[bad[0]].name}: {messages[bad[0]]}")
    return result
