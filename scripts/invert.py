"""Invert shipped (or random) generators with several methods and compare them.

    python scripts/invert.py model=mnist_mlp
    python scripts/invert.py model=vae_relu_20_60_784 'inverter=[layerwise,encoder,hybrid]'
    python scripts/invert.py -m model=random_relu model.latent_dim=10,20,40 data=[generated]

The Hydra entry point of :func:`ganinvert.app.invert.run`, which writes metrics.json,
samples.csv, reconstructions.png and latents.pt into the run directory.
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

from ganinvert.app.invert import run
from ganinvert.metrics import table


@hydra.main(config_path="../conf", config_name="invert", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    if cfg.threads:  # per process: each sweep job is its own process
        torch.set_num_threads(cfg.threads)
    metrics = run(cfg, out)
    print(f"{cfg.model.name}: results in {out}\n{table(metrics['results'])}")


if __name__ == "__main__":
    main()
