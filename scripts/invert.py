"""Invert shipped (or random) generators with several methods and compare them.

    python scripts/invert.py model=mnist_mlp
    python scripts/invert.py model=vae_relu_20_60_784 'inverter=[layerwise,encoder,hybrid]'
    python scripts/invert.py -m model=random_relu model.latent_dim=10,20,40 data=[generated]

``run(cfg, out_dir)`` does the work (tests call it) and writes metrics.json, samples.csv,
reconstructions.png and latents.pt into the run directory; ``main`` is the Hydra wrapper.
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
from importlib.metadata import version
from pathlib import Path

import hydra
import matplotlib
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import ganinvert as gi
import models
from ganinvert.metrics import sample_metrics, summarize
from ganinvert.nets import random_mlp
from models.data import load_mnist

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)
DATA_SEED_OFFSET = 1_000_003


def build_generator(cfg: DictConfig) -> tuple[torch.nn.Module, int, tuple[float, float], torch.nn.Module | None]:
    """(generator in float64, latent dim, pixel range, encoder or None) for ``cfg.model``."""
    if cfg.model.get("kind") == "random":
        dims = (cfg.model.latent_dim, *cfg.model.widths)
        G = random_mlp(dims, act=cfg.model.act, seed=cfg.model.seed)
        view = torch.nn.Unflatten(1, (1, 1, dims[-1]))  # image-shaped output, like the shipped ones
        return torch.nn.Sequential(G, view).eval(), cfg.model.latent_dim, (0.0, float("inf")), None
    m = models.load(cfg.model.name)
    enc = None if m.encoder is None else m.encoder.double()
    return m.generator.double().eval(), m.latent_dim, m.pixel_range, enc


def observations(cfg: DictConfig, G, latent_dim: int, pixel_range) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    out = {}
    # A stream of its own: inverters seeded with cfg.seed must not start from the z* it drew.
    g = torch.Generator().manual_seed(DATA_SEED_OFFSET + cfg.seed)
    if "generated" in cfg.data:
        z = torch.randn(cfg.data.generated.n, latent_dim, generator=g, dtype=torch.float64)
        with torch.no_grad():
            x = G(z)
        if cfg.data.generated.noise:
            x = x + cfg.data.generated.noise * torch.randn(x.shape, generator=g, dtype=torch.float64)
        out["generated"] = (x, z)
    if "mnist" in cfg.data and cfg.model.get("kind") != "random":
        x, _ = load_mnist(root=cfg.data.mnist.root, split="held_out",
                          pixel_range="tanh" if pixel_range[0] < 0 else "unit")
        pick = torch.linspace(0, len(x) - 1, min(cfg.data.mnist.n, len(x))).long()  # every class
        out["mnist"] = (x[pick].double(), None)
    return out


def inverters(cfg: DictConfig, encoder) -> dict[str, gi.Inverter]:
    invs = {}
    for name, node in cfg.inverter.items():
        if name == "encoder":
            if encoder is None:
                log.warning("model %s ships no encoder: inverter 'encoder' skipped", cfg.model.name)
                continue
            invs[name] = instantiate(node)(encoder=encoder)
        else:
            invs[name] = instantiate(node)
    return invs


def run(cfg: DictConfig, out_dir: str | Path) -> dict:
    """Compare ``cfg.inverter`` methods on ``cfg.data`` for ``cfg.model``; returns metrics.json's content."""
    out_dir = Path(out_dir)
    done = out_dir / "metrics.json"
    if done.exists() and not cfg.get("overwrite", False):  # a re-run sweep skips finished jobs
        log.info("%s exists: run already finished, skipped (overwrite=true to redo)", done)
        return json.loads(done.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    G, k, pixel_range, encoder = build_generator(cfg)
    chain = gi.to_chain(G, latent_shape=(k,))
    data, invs = observations(cfg, G, k, pixel_range), inverters(cfg, encoder)
    rows, summary, latents, shown = [], {}, {}, {}
    for dname, (x, z) in data.items():
        x = x.reshape(x.shape[0], *chain.out_shape)
        data_range = float(x.max() - x.min()) or 1.0
        cols = torch.linspace(0, x.shape[0] - 1, min(cfg.show, x.shape[0])).long()  # spread over the batch
        shown[dname] = {"target": x[cols]}
        for mname, inv in invs.items():
            r = gi.invert(chain, x, method=inv)
            sm = sample_metrics(r, x, z, data_range=data_range)
            B = x.shape[0]
            s = summarize(r, sm)
            summary[f"{dname}/{mname}"] = s
            latents[f"{dname}/{mname}"] = r.z.detach().cpu()
            shown[dname][mname] = r.x_hat[cols]
            for i in range(B):
                rows.append({"data": dname, "method": mname, "index": i, "status": r.status[i].name,
                             "method_path": r.methods[i], "residual": r.residual[i].item(),
                             **{key: v[i].item() for key, v in sm.items()}})
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip() or "unknown"
    metrics = {"model": cfg.model.name, "seed": cfg.seed, "ganinvert": version("ganinvert"), "git_commit": commit,
               "config": OmegaConf.to_container(cfg, resolve=True), "results": summary}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out_dir / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    torch.save({"z_star": {d: z for d, (_, z) in data.items() if z is not None}, "z": latents}, out_dir / "latents.pt")
    _picture(shown, pixel_range, out_dir / "reconstructions.png")
    return metrics


def _picture(shown: dict, pixel_range, path: Path) -> None:
    lo, hi = pixel_range
    panels = [(d, name, imgs) for d, per in shown.items() for name, imgs in per.items()]
    ncol = max(imgs.shape[0] for *_, imgs in panels)
    fig, axes = plt.subplots(len(panels), ncol, figsize=(1.1 * ncol + 1.6, 1.15 * len(panels)), squeeze=False)
    for r, (d, name, imgs) in enumerate(panels):
        for c in range(ncol):
            ax = axes[r][c]
            ax.axis("off")
            if c < imgs.shape[0]:
                img = imgs[c].detach().float().reshape(-1, imgs.shape[-1]).cpu()
                ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi != float("inf") else None)
        axes[r][0].text(-0.08, 0.5, f"{d}\n{name}", transform=axes[r][0].transAxes, ha="right", va="center",
                        fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(metrics: dict) -> str:
    lines = [f"{'data/method':<22} {'EXACT':>7} {'G(z)=x':>7} {'lat.err':>9} {'PSNR':>6} {'ms/sample':>10}"]
    for key, s in metrics["results"].items():
        lat = s.get("median_latent_rel_err", float("nan"))
        lines.append(f"{key:<22} {s['exact_rate']:7.1%} {s['solved_rate']:7.1%} {lat:9.1e} "
                     f"{s['median_psnr']:6.1f} {s['ms_per_sample']:10.2f}")
    return "\n".join(lines)


@hydra.main(config_path="../conf", config_name="invert", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    if cfg.threads:  # per process: each sweep job is its own process
        torch.set_num_threads(cfg.threads)
    metrics = run(cfg, out)
    print(f"{cfg.model.name}: results in {out}\n{table(metrics)}")


if __name__ == "__main__":
    main()
