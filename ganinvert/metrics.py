"""Per-sample quality of an inversion and its summary over a data set: the figures the inversion
literature reports (latent relative error and success at thresholds of it), output error, PSNR
and SSIM (torchmetrics), the EXACT rate and time per sample.

The one place both apps (the Hydra invert app and the Lightning comparison) build their rows and
summaries: :func:`sample_metrics` per sample, :func:`columns` as tensors that can be gathered
across processes, :func:`sample_rows` for CSV files, :func:`summarize` over any number of
batches, with the statistic in each name (``median_psnr``, ``exact_rate``, ``success@1e-05``),
and :func:`table` to print summaries."""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .result import InversionResult, Status
from .tolerances import relative_residual

THRESHOLDS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
"""Latent relative errors at which a sample counts as recovered (``success@t``)."""


def _ssim(xh: torch.Tensor, x: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-sample SSIM for ``(B, C, H, W)`` images; nan where an image is too small for the
    11 x 11 window (vector outputs such as the random nets' ``1 x 1 x n``)."""
    if x.dim() != 4 or min(x.shape[-2:]) < 11:
        return torch.full((x.shape[0],), float("nan"))
    return structural_similarity_index_measure(xh.float(), x.float(), data_range=data_range, reduction="none").cpu()


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
    per_sample = tuple(range(1, x.dim()))  # PSNR over each sample's own pixels: (B,)
    m = {"output_rel_err": relative_residual(xh, xf).double().cpu(),
         "psnr": peak_signal_noise_ratio(result.x_hat.float(), x.float(), data_range=data_range, reduction="none",
                                         dim=per_sample).double().cpu(),
         "ssim": _ssim(result.x_hat, x, data_range).double()}
    if z_star is not None:
        zs = z_star.reshape(B, -1).to(device=result.z.device, dtype=result.z.dtype)
        m["latent_rel_err"] = ((result.z.reshape(B, -1) - zs).norm(dim=1) / zs.norm(dim=1)).double().cpu()
    return m


def columns(result: InversionResult, metrics: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One batch's per-sample columns, each a CPU tensor ``(B,)``: ``status`` (the
    :class:`~ganinvert.Status` codes), ``ms`` (the batch's time shared evenly), ``residual``,
    ``unique_radius`` (where the result has one) and the ``metrics`` of :func:`sample_metrics`.
    Numbers only, so processes can gather them."""
    B = len(result.status)
    radius = {} if result.unique_radius is None else {"unique_radius": result.unique_radius.double().cpu()}
    return {"status": torch.tensor([int(s) for s in result.status], dtype=torch.long),
            "ms": torch.full((B,), 1e3 * result.timings["total"] / B, dtype=torch.float64),
            "residual": result.residual.double().cpu(), **radius, **metrics}


def sample_rows(result: InversionResult, cols: dict[str, torch.Tensor], *, start: int = 0,
                **context) -> list[dict]:
    """One dict per sample (a CSV row): ``context`` (e.g. ``data=``, ``method=``), ``index``
    (from ``start``), the status name, the solver path, then every numeric column."""
    return [{**context, "index": start + i, "status": result.status[i].name, "method_path": result.methods[i],
             **{key: v[i].item() for key, v in cols.items() if key != "status"}} for i in range(len(result.status))]


def summarize(cols: dict[str, torch.Tensor], *, thresholds: tuple[float, ...] = THRESHOLDS) -> dict[str, float | int | dict]:
    """Summary of per-sample ``cols`` (:func:`columns`, one batch or several concatenated):
    ``samples``, ``seconds``, ``ms_per_sample`` (mean), ``exact_rate``, ``solved_rate``, the status
    ``counts``, ``median_<column>`` of every other column (nan-ignoring), ``radius_rate`` (share of
    the samples with ``G(z) = x`` whose certified uniqueness radius is positive) and, when the
    latent error is known, ``success@t`` (share with latent relative error <= t)."""
    status, ms = cols["status"], cols["ms"].double()
    s = {"samples": int(status.numel()), "seconds": ms.sum().item() / 1e3, "ms_per_sample": ms.mean().item(),
         "exact_rate": (status == Status.EXACT).double().mean().item(),
         "solved_rate": ((status == Status.EXACT) | (status == Status.EXACT_NONUNIQUE)).double().mean().item(),
         "counts": {st.name: int((status == st).sum()) for st in Status}}
    for key, v in cols.items():
        if key in ("status", "ms"):
            continue
        finite = v[~v.isnan()]
        s[f"median_{key}"] = finite.median().item() if finite.numel() else math.nan
    if "unique_radius" in cols:
        solved = (status == Status.EXACT) | (status == Status.EXACT_NONUNIQUE)
        s["radius_rate"] = (cols["unique_radius"][solved] > 0).double().mean().item() if solved.any() else math.nan
    if "latent_rel_err" in cols:
        for t in thresholds:
            s[f"success@{t:g}"] = (cols["latent_rel_err"] <= t).double().mean().item()
    return s


def table(summaries: dict[str, dict]) -> str:
    """A text table of ``{"data/method": summary}`` (:func:`summarize`'s keys)."""
    lines = [f"{'data/method':<22} {'EXACT':>7} {'G(z)=x':>7} {'success@1e-3':>12} {'median lat.err':>14} "
             f"{'median PSNR':>11} {'ms/sample':>10}"]
    cells = (("exact_rate", 7, ".1%"), ("solved_rate", 7, ".1%"), ("success@0.001", 12, ".1%"),
             ("median_latent_rel_err", 14, ".1e"), ("median_psnr", 11, ".1f"), ("ms_per_sample", 10, ".2f"))
    for key, s in summaries.items():
        # "-" where a figure does not exist (real digits have no latent error)
        row = [format(v, fmt).rjust(width) if not math.isnan(v := s.get(name, math.nan)) else "-".rjust(width)
               for name, width, fmt in cells]
        lines.append(f"{key:<22} " + " ".join(row))
    return "\n".join(lines)
