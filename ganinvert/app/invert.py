"""The main job: invert a generator's observations with several methods and compare them.
``run(cfg, out_dir)`` writes metrics.json, samples.csv, reconstructions.png and latents.pt into
the run directory (``scripts/invert.py`` is its Hydra entry point)."""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import subprocess
from importlib.metadata import version
from pathlib import Path

import matplotlib
import torch
from omegaconf import DictConfig, OmegaConf

from ..adapters import Conditioned, to_chain
from ..api import invert
from ..blackbox import black_box
from ..errors import UnsupportedLayerError
from ..metrics import columns, sample_metrics, sample_rows, summarize
from .config import build_generator, inverters, n_classes, observations
from .images import write_reconstructions

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Compare ``cfg.inverter`` methods on ``cfg.data`` for ``cfg.model``; returns metrics.json's content."""
    out_dir = Path(out_dir)
    done = out_dir / "metrics.json"
    if done.exists() and not cfg.get("overwrite", False):  # a re-run sweep skips finished jobs
        log.info("%s exists: run already finished, skipped (overwrite=true to redo)", done)
        return json.loads(done.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    G, k, pixel_range, encoder = build_generator(cfg)
    data, invs = observations(cfg, G, k, pixel_range), inverters(cfg, encoder)
    one = G if not n_classes(cfg) else Conditioned(G, (torch.zeros(1, dtype=torch.long),))  # its shapes
    try:
        chain = to_chain(one, latent_shape=(k,))
    except UnsupportedLayerError as e:  # every method inverts the module itself, none certifies
        log.warning("%s is not certifiable (%s): inverted as a black box", cfg.model.name, e)
        chain = black_box(one, why=str(e), latent_shape=(k,))
    target = chain if chain.certifiable and not n_classes(cfg) else G  # converted once where it can be
    n = math.prod(chain.out_shape)
    for dname in [d for d, o in data.items() if o.x[0].numel() != n]:
        log.warning("data set %s has %d pixels per image and %s draws %d: skipped", dname, data[dname][0][0].numel(),
                    cfg.model.name, n)
        del data[dname]
    rows, summary, latents, shown = [], {}, {}, {}
    for dname, (x, z, mask, cond, files) in data.items():
        x = x.reshape(x.shape[0], *chain.out_shape)
        mask = None if mask is None else mask.reshape(x.shape)
        data_range = float(x.max() - x.min()) or 1.0
        cols = torch.linspace(0, x.shape[0] - 1, min(cfg.show, x.shape[0])).long()  # spread over the batch
        shown[dname] = {"target": x[cols]}
        for mname, inv in invs.items():
            # with a mask the inverters see the observed pixels only; the metrics compare G(z) with
            # the whole truth x, the unobserved pixels included (what inpainting is judged by)
            r = invert(target, x, method=inv, cond=cond, mask=mask, time_limit=cfg.get("time_limit"),
                       progress=cfg.get("progress"))
            per_sample = columns(r, sample_metrics(r, x, z, data_range=data_range))
            summary[f"{dname}/{mname}"] = summarize(per_sample)
            rows += sample_rows(r, per_sample, data=dname, method=mname)
            for row, f in zip(rows[len(rows) - len(r.status):], files or [], strict=False):
                row["file"] = str(f)  # your own images: which file each row is
            latents[f"{dname}/{mname}"] = r.z.detach().cpu()
            shown[dname][mname] = r.x_hat[cols]
            if files is not None:  # your own images: the reconstructions go beside them
                spec = cfg.data.images
                written = write_reconstructions(r.x_hat, files, pixel_range=pixel_range, tag=f"{cfg.model.name}-{mname}",
                                                out=spec.get("out"), invert_colors=bool(spec.get("invert_colors", False)))
                log.info("%s: %d reconstructions written, e.g. %s", mname, len(written), written[0])
    commit = source_commit()
    metrics = {"model": cfg.model.name, "seed": cfg.seed, "ganinvert": version("ganinvert"), "git_commit": commit,
               "config": OmegaConf.to_container(cfg, resolve=True), "results": summary}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out_dir / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    torch.save({"z_star": {d: o.z for d, o in data.items() if o.z is not None}, "z": latents}, out_dir / "latents.pt")
    picture(shown, pixel_range, out_dir / "reconstructions.png")
    return metrics


@functools.cache
def source_commit() -> str:
    """The commit of the code this process runs, read once, at its first run: a sweep's jobs all
    run the code imported at its start, whatever is committed meanwhile; ``-dirty`` when the
    tree had uncommitted changes, ``unknown`` outside a git checkout."""
    here = Path(__file__).resolve().parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=here).stdout.strip()
    if not head:
        return "unknown"
    clean = subprocess.run(["git", "diff", "--quiet", "HEAD"], capture_output=True, cwd=here).returncode == 0
    return head if clean else f"{head}-dirty"


def picture(shown: dict, pixel_range, path: Path) -> None:
    """One row per data set's targets and per method's reconstructions of them."""
    lo, hi = pixel_range
    panels = [(d, name, imgs) for d, per in shown.items() for name, imgs in per.items()]
    ncol = max(imgs.shape[0] for *_, imgs in panels)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(1.1 * ncol + 1.6, 1.15 * len(panels)), squeeze=False)
    for r, (d, name, imgs) in enumerate(panels):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if c < imgs.shape[0]:
                img = imgs[c].detach().float().reshape(-1, imgs.shape[-1]).cpu().numpy()
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi != float("inf") else None)
        axes[r][0].text(-0.08, 0.5, f"{d}\n{name}", transform=axes[r][0].transAxes, ha="right", va="center",
                        fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
