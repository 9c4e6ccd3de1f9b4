"""The comparison under Lightning: :class:`ganinvert.comparison.InversionComparison` in a
``lightning.Trainer`` (progress bar, CSV logger, one or many devices), over the same models,
inverters and data as the invert app (``scripts/compare.py`` is its Hydra entry point).

``run`` writes into the run directory: ``compare.json`` (per data set, each method's summary),
``samples.csv`` (one row per sample and method; ``samples.rank<r>.csv`` per process under DDP)
and Lightning's CSV logs under ``logs/``.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from .. import __version__
from ..adapters import to_chain
from ..comparison import InversionComparison
from .config import build_generator, inverters, n_classes, observations

log = logging.getLogger(__name__)


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Run the comparison; returns compare.json's content (this process's view under DDP; rank 0
    writes the file). Summaries are over every process's samples, counted once each (the samples
    DDP's sampler repeats to split a data set evenly are dropped); samples.csv is per process."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_classes(cfg):
        raise ValueError(f"model {cfg.model.name} is label-conditional: the Lightning comparison inverts G(z) only; "
                         "run scripts/invert.py, which passes each digit's label as cond=")
    G, k, pixel_range, encoder = build_generator(cfg)
    data = observations(cfg, G, k, pixel_range)
    module = InversionComparison(G, inverters(cfg, encoder), latent_shape=(k,))
    # inference_mode=False: the optimisation baselines follow gradients inside test_step.
    trainer = L.Trainer(logger=CSVLogger(out_dir, name="logs"), inference_mode=False,
                        **OmegaConf.to_container(cfg.trainer, resolve=True))
    results, rows, out_shape = {}, [], to_chain(G, latent_shape=(k,)).out_shape
    for dname, (x, z, mask, *_) in data.items():
        if mask is not None:
            raise ValueError(f"data.{dname}.observed < 1: the Lightning comparison inverts whole images only; "
                             "invert partial observations with the invert app, ganinvert.app.invert.run")
        x = x.reshape(x.shape[0], *out_shape)
        ds = TensorDataset(x) if z is None else TensorDataset(x, z)
        (results[dname],) = trainer.test(module, DataLoader(ds, batch_size=cfg.batch_size), verbose=False)
        rows += [{"data": dname, **row} for row in module.sample_rows]
    out = {"model": cfg.model.name, "seed": cfg.seed, "ganinvert": __version__,
           "world_size": trainer.world_size, "rank": trainer.global_rank, "results": results}
    name = "samples.csv" if trainer.world_size == 1 else f"samples.rank{trainer.global_rank}.csv"
    with open(out_dir / name, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    if trainer.global_rank == 0:
        (out_dir / "compare.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def summaries(out: dict) -> dict[str, dict]:
    """``{"data/method": summary}`` from compare.json's per data set ``"method/metric"`` keys,
    the shape :func:`ganinvert.metrics.table` prints."""
    flat = {}
    for dname, res in out["results"].items():
        for key, v in res.items():
            method, metric = key.split("/", 1)
            flat.setdefault(f"{dname}/{method}", {})[metric] = v
    return flat
