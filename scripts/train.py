"""Train a shipped generator from scratch with Lightning and export its weights.

    python scripts/train.py model=dcgan [model.train.max_epochs=5] [data.root=...]

The Hydra entry point of :func:`ganinvert.app.train.run`.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from ganinvert.app.train import run


@hydra.main(config_path="../conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = run(cfg, out_dir=hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    print(f"{cfg.model.name}: {out['minutes']:.1f} min, exported {out['export']}, {out['metrics']}")


if __name__ == "__main__":
    main()
