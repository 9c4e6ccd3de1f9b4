"""Compare inverters over a data set with Lightning (see :mod:`ganinvert.app.compare`).

    python scripts/compare.py model=mnist_mlp
    python scripts/compare.py model=vae_relu_20_60_784 'inverter=[layerwise,encoder,hybrid]' data.mnist.n=1000
    python scripts/compare.py trainer=ddp trainer.accelerator=cpu trainer.devices=2

Writes compare.json, samples.csv and Lightning's CSV logs into the run directory.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ganinvert.app.compare import run, summaries
from ganinvert.metrics import table


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    out = run(cfg, out_dir)
    if out["rank"] == 0:
        print(f"{cfg.model.name}: results in {out_dir}\n{table(summaries(out))}")


if __name__ == "__main__":
    main()
