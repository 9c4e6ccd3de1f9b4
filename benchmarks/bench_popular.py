"""Generators as the popular public PyTorch GAN collections write them (docs/design.md §3b),
rebuilt here from their descriptions with seeded weights and BatchNorm statistics from a
train-mode pass: is each accepted by the default ``invert``, how (chain or black box), and how
close it gets to x = G(z*) against Adam with 4 restarts given the same wall time.

    python benchmarks/bench_popular.py [--samples 8] [--time-limit 45] [--seed 0] [--saturate 3] [--only ...]

``--saturate k`` scales the last layer's weight and bias by k (the saturation stress family: a
Tanh output driven into its tails, as generators trained to convergence are); the row then also
gives the share of deeply saturated pixels, |x| > 1 - 1e-5.

Prints one row per architecture: how invert took it, G(z) = x (relative residual <= 1e-6) out
of the samples, the median relative output error and seconds, for the default and for Adam.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import ganinvert as gi
from ganinvert import models


def _labels(G: nn.Module, n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """A conditional generator's labels (its ``label_emb``), none for the others."""
    emb = getattr(G, "label_emb", None)
    return () if emb is None else (torch.randint(0, emb.num_embeddings, (n,), generator=torch.Generator().manual_seed(seed)),)


def _bn_stats(G: nn.Module, nz: int, seed: int) -> nn.Module:
    """BatchNorm running statistics from a train-mode pass, as a trained generator has them."""
    G.train()
    with torch.no_grad():
        G(torch.randn(256, nz, generator=torch.Generator().manual_seed(seed + 100)), *_labels(G, 256, seed))
    return G.eval().double()


class MLPGAN(nn.Module):
    def __init__(self, nz=100):
        super().__init__()

        def block(i, o, norm=True):
            return [nn.Linear(i, o)] + ([nn.BatchNorm1d(o, 0.8)] if norm else []) + [nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*block(nz, 128, norm=False), *block(128, 256), *block(256, 512),
                                   *block(512, 1024), nn.Linear(1024, 784), nn.Tanh())

    def forward(self, z):
        return self.model(z).view(z.shape[0], 1, 28, 28)


class UpsampleDCGAN(nn.Module):
    def __init__(self, nz=100, lead_bn=True):
        super().__init__()
        self.l1 = nn.Linear(nz, 128 * 7 * 7)
        self.conv = nn.Sequential(*([nn.BatchNorm2d(128)] if lead_bn else []), nn.Upsample(scale_factor=2),
                                  nn.Conv2d(128, 128, 3, padding=1), nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2),
                                  nn.Upsample(scale_factor=2), nn.Conv2d(128, 64, 3, padding=1),
                                  nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2), nn.Conv2d(64, 1, 3, padding=1), nn.Tanh())

    def forward(self, z):
        return self.conv(self.l1(z).view(z.shape[0], 128, 7, 7))


class SNGANCNN(nn.Module):
    def __init__(self, nz=128):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(nn.ConvTranspose2d(nz, 256, 4, 1, 0), nn.BatchNorm2d(256), nn.ReLU(),
                                  nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
                                  nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.ConvTranspose2d(64, 3, 3, 1, 1), nn.Tanh())

    def forward(self, z, *args):
        return self.main(z.view(-1, self.nz, 1, 1))


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.residual = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Upsample(scale_factor=2),
                                      nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                      nn.Conv2d(c, c, 3, padding=1))
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c, c, 1))

    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


class SNGANResNet(nn.Module):
    def __init__(self, nz=128, c=64):
        super().__init__()
        self.c = c
        self.l1 = nn.Linear(nz, 4 * 4 * c)
        self.blocks = nn.Sequential(ResBlock(c), ResBlock(c), ResBlock(c))
        self.out = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, 3, 3, padding=1), nn.Tanh())

    def forward(self, z):
        return self.out(self.blocks(self.l1(z).view(-1, self.c, 4, 4)))


class PixelNorm(nn.Module):
    def forward(self, x):
        return x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


class EqualConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x * (2 / (self.in_channels * self.kernel_size[0] ** 2)) ** 0.5)


class PGGANish(nn.Module):
    def __init__(self, nz=64):
        super().__init__()
        self.nz = nz
        self.first = nn.Sequential(nn.ConvTranspose2d(nz, 64, 4), nn.LeakyReLU(0.2), PixelNorm())
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), EqualConv(64, 32, 3, padding=1), nn.LeakyReLU(0.2),
                                PixelNorm(), nn.Upsample(scale_factor=2), EqualConv(32, 16, 3, padding=1),
                                nn.LeakyReLU(0.2), PixelNorm(), EqualConv(16, 1, 1))

    def forward(self, z):
        return self.up(self.first(PixelNorm()(z.view(-1, self.nz, 1, 1))))


class CondMLPGAN(nn.Module):
    """Label-conditional: the label's embedding concatenated with the noise."""

    def __init__(self, nz=100, n_classes=10):
        super().__init__()
        self.label_emb = nn.Embedding(n_classes, n_classes)

        def block(i, o, norm=True):
            return [nn.Linear(i, o)] + ([nn.BatchNorm1d(o, 0.8)] if norm else []) + [nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*block(nz + n_classes, 128, norm=False), *block(128, 256), *block(256, 512),
                                   *block(512, 1024), nn.Linear(1024, 784), nn.Tanh())

    def forward(self, noise, labels):
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        return self.model(gen_input).view(gen_input.size(0), 1, 28, 28)


def silu_mlp(nz=64):
    return nn.Sequential(nn.Linear(nz, 256), nn.SiLU(), nn.Linear(256, 512), nn.SiLU(), nn.Linear(512, 784), nn.Tanh())


ARCHITECTURES = {
    "mlp_gan_bn": (lambda: MLPGAN(), 100),
    "cgan_mlp_labels": (lambda: CondMLPGAN(), 100),
    "dcgan_upsample": (lambda: UpsampleDCGAN(), 100),
    "dcgan_upsample_no_lead_bn": (lambda: UpsampleDCGAN(lead_bn=False), 100),
    "sngan_cnn_args": (lambda: SNGANCNN(), 128),
    "sngan_resnet": (lambda c=64: SNGANResNet(c=c), 128),
    "pggan_pixelnorm": (lambda: PGGANish(), 64),
    "silu_mlp": (silu_mlp, 64),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=45.0)
    ap.add_argument("--only", nargs="+", default=list(ARCHITECTURES))
    ap.add_argument("--seed", type=int, default=0, help="other weights and latents for every architecture")
    ap.add_argument("--resnet-channels", type=int, default=64, help="the SNGAN ResNet's width (SNGAN's own: 256)")
    ap.add_argument("--saturate", type=float, default=1.0, help="scale the last layer's weight and bias by this")
    ap.add_argument("--shipped", nargs="*", default=[], help="shipped (trained) generators to run instead, e.g. mlp_gan")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64, {args.samples} samples x = G(z*), "
          f"default invert with time_limit={args.time_limit:g}, Adam 4 restarts for the same wall time")
    print(f"{'architecture':<27} {'taken as':<10} {'default G=x':>11} {'med err':>8} {'s':>6} "
          f"{'adam4 G=x':>9} {'med err':>8} {'s':>6}")
    for name in args.shipped or args.only:
        seed = (list(ARCHITECTURES).index(name) if name in ARCHITECTURES else 0) + 1000 * args.seed
        if args.shipped:  # trained: its own BatchNorm statistics
            m = models.load(name)
            G, nz = m.generator.double().eval(), m.latent_dim
        else:
            build, nz = ARCHITECTURES[name]
            torch.manual_seed(seed)  # the same weights whichever are run
            G = _bn_stats(build(args.resnet_channels) if name == "sngan_resnet" else build(), nz, seed)
        last = [m for m in G.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))][-1]
        with torch.no_grad():
            last.weight.mul_(args.saturate)
            if last.bias is not None:  # a DCGAN's last layer often has none
                last.bias.mul_(args.saturate)
        z = torch.randn(args.samples, nz, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
        y = _labels(G, args.samples, seed + 2)
        cond = y or None
        with torch.no_grad():
            x = G(z, *y)
        taken = "chain" if gi.inspect(G, cond=cond).not_converted == "" else "black box"
        t = time.perf_counter()
        r = gi.invert(G, x, cond=cond, time_limit=args.time_limit)
        t_default = time.perf_counter() - t
        t = time.perf_counter()
        a = gi.invert(G, x, cond=cond, method=gi.Adam(restarts=4, steps=100000), time_limit=t_default)
        t_adam = time.perf_counter() - t
        deep = (x.abs() > 1 - 1e-5).double().mean().item()
        print(f"{name:<27} {taken:<10} {int(r.solved.sum()):>7}/{args.samples:<3} {r.residual.median():8.1e} "
              f"{t_default:6.1f} {int(a.solved.sum()):>5}/{args.samples:<3} {a.residual.median():8.1e} {t_adam:6.1f}"
              f"  {deep:5.1%} deep")


if __name__ == "__main__":
    main()
