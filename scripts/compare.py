"""Compare inverters over a data set with Lightning: ``ganinvert.comparison.InversionComparison``
under a ``lightning.Trainer`` (progress bar, CSV logger, one or many devices).

    python scripts/compare.py model=mnist_mlp
    python scripts/compare.py model=vae_relu_20_60_784 'inverter=[layerwise,encoder,hybrid]' data.mnist.n=1000
    python scripts/compare.py trainer=ddp trainer.accelerator=cpu trainer.devices=2

Writes into the run directory: ``compare.json`` (per data set, each method's epoch metrics),
``samples.csv`` (one row per sample and method; ``samples.rank<r>.csv`` per process under DDP)
and Lightning's CSV logs under ``logs/``. Same models, inverters and data as scripts/invert.py.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

import ganinvert as gi
from ganinvert.comparison import InversionComparison
from invert import build_generator, inverters, observations

log = logging.getLogger(__name__)


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Run the comparison; returns compare.json's content (this process's view under DDP; rank 0
    writes the file). Metrics are synchronised across processes; DDP's sampler pads a data set
    that does not split evenly by repeating samples, so use n divisible by the device count."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    G, k, pixel_range, encoder = build_generator(cfg)
    data = observations(cfg, G, k, pixel_range)
    module = InversionComparison(G, inverters(cfg, encoder), latent_shape=(k,))
    # inference_mode=False: the optimisation baselines follow gradients inside test_step.
    trainer = L.Trainer(logger=CSVLogger(out_dir, name="logs"), inference_mode=False,
                        **OmegaConf.to_container(cfg.trainer, resolve=True))
    results, rows, out_shape = {}, [], gi.to_chain(G, latent_shape=(k,)).out_shape
    for dname, (x, z) in data.items():
        x = x.reshape(x.shape[0], *out_shape)
        ds = TensorDataset(x) if z is None else TensorDataset(x, z)
        (results[dname],) = trainer.test(module, DataLoader(ds, batch_size=cfg.batch_size), verbose=False)
        rows += [{"data": dname, **row} for row in module.sample_rows]
    out = {"model": cfg.model.name, "seed": cfg.seed, "ganinvert": gi.__version__,
           "world_size": trainer.world_size, "rank": trainer.global_rank, "results": results}
    name = "samples.csv" if trainer.world_size == 1 else f"samples.rank{trainer.global_rank}.csv"
    with open(out_dir / name, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    if trainer.global_rank == 0:
        (out_dir / "compare.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


def table(out: dict) -> str:
    lines = [f"{'data/method':<22} {'EXACT':>7} {'G(z)=x':>7} {'success@1e-3':>12} {'PSNR':>6} {'ms/sample':>10}"]
    for dname, res in out["results"].items():
        for method in dict.fromkeys(key.split("/")[0] for key in res):
            v = {m: res.get(f"{method}/{m}", float("nan"))
                 for m in ("exact_rate", "solved_rate", "success@0.001", "psnr", "ms_per_sample")}
            lines.append(f"{dname + '/' + method:<22} {v['exact_rate']:7.1%} {v['solved_rate']:7.1%} "
                         f"{v['success@0.001']:12.1%} {v['psnr']:6.1f} {v['ms_per_sample']:10.2f}")
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out_dir = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    out = run(cfg, out_dir)
    if out["rank"] == 0:
        print(f"{cfg.model.name}: results in {out_dir}\n{table(out)}")


if __name__ == "__main__":
    main()
