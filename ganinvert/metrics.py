"""Per-sample quality of an inversion and its summary over a batch: the figures the inversion
literature reports (latent relative error and success at thresholds of it), output error, PSNR
and SSIM (torchmetrics), the EXACT rate and time per sample. Used by the Hydra app and by the
Lightning comparison module alike."""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .result import InversionResult

THRESHOLDS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
"""Latent relative errors at which a sample counts as recovered (``success@t``)."""


def _ssim(xh: torch.Tensor, x: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-sample SSIM for ``(B, C, H, W)`` images; nan where an image is too small for the
    11 x 11 window (vector outputs such as the random nets' ``1 x 1 x n``)."""
    if x.dim() != 4 or min(x.shape[-2:]) < 11:
        return torch.full((x.shape[0],), float("nan"))
    return torch.stack([structural_similarity_index_measure(xh[i:i + 1].float(), x[i:i + 1].float(),
                                                            data_range=data_range) for i in range(x.shape[0])]).cpu()


def sample_metrics(result: InversionResult, x: torch.Tensor, z_star: torch.Tensor | None = None, *,
                   data_range: float | None = None) -> dict[str, torch.Tensor]:
    """Per-sample metrics of a batched ``result`` for observations ``x`` ``(B, *out)``.

    Returns CPU float tensors ``(B,)``: ``output_rel_err`` (``||G(z) - x|| / ||x||``), ``psnr``,
    ``ssim`` (nan for non-image outputs) and, when the true latents ``z_star`` are given,
    ``latent_rel_err`` (``||z - z*|| / ||z*||``). ``data_range`` defaults to ``x.max() - x.min()``.
    """
    B = x.shape[0]
    if data_range is None:
        data_range = float(x.max() - x.min()) or 1.0
    xh, xf = result.x_hat.reshape(B, -1), x.reshape(B, -1).to(result.x_hat.dtype)
    m = {"output_rel_err": ((xh - xf).norm(dim=1) / xf.norm(dim=1).clamp(min=1e-300)).double().cpu(),
         "psnr": torch.stack([peak_signal_noise_ratio(result.x_hat[i:i + 1].float(), x[i:i + 1].float(),
                                                      data_range=data_range) for i in range(B)]).double().cpu(),
         "ssim": _ssim(result.x_hat, x, data_range).double()}
    if z_star is not None:
        zs = z_star.reshape(B, -1).to(device=result.z.device, dtype=result.z.dtype)
        m["latent_rel_err"] = ((result.z.reshape(B, -1) - zs).norm(dim=1) / zs.norm(dim=1)).double().cpu()
    return m


def summarize(result: InversionResult, metrics: dict[str, torch.Tensor], *,
              thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, float | int | dict]:
    """One batch's summary: rates, medians of every per-sample metric, ``success@t`` (when the
    latent error is known), seconds and ms per sample, and the status counts."""
    B = len(result.status)
    s = {"samples": B, "seconds": result.timings["total"], "ms_per_sample": 1e3 * result.timings["total"] / B,
         "exact_rate": result.exact.float().mean().item(), "solved_rate": result.solved.float().mean().item(),
         "counts": result.counts()}
    for key, v in metrics.items():
        finite = v[~v.isnan()]
        s[f"median_{key}"] = finite.median().item() if finite.numel() else math.nan
    if "latent_rel_err" in metrics:
        for t in thresholds:
            s[f"success@{t:g}"] = (metrics["latent_rel_err"] <= t).float().mean().item()
    return s
