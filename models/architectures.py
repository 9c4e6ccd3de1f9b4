"""Generator, encoder and discriminator architectures, written the way published ones are
(classes with ``forward``, BatchNorm where customary). Every generator converts with
``ganinvert.to_chain``; the shipped weights live beside this file."""

from __future__ import annotations

import torch
from torch import nn


class MLPGenerator(nn.Module):
    """``mnist_mlp``: ReLU MLP whose every layer expands >= 2x (20-128-256-784), Sigmoid
    output in [0, 1]: the shape the exact layer-wise method suits. BatchNorm1d after each
    hidden Linear keeps GAN training from collapsing (without it, 150 epochs on the 4,000
    shipped digits gave only "1"s); in eval mode it folds into the Linear."""

    def __init__(self, latent_dim: int = 20, hidden: tuple[int, ...] = (128, 256), out_dim: int = 784):
        super().__init__()
        dims = (latent_dim, *hidden)
        layers: list[nn.Module] = []
        for k, n in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(k, n), nn.BatchNorm1d(n), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], out_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.out(self.body(z))).view(-1, 1, 28, 28)


class LeakyMLPGenerator(nn.Module):
    """``mnist_mlp_leaky``: the community MLP GAN generator (LeakyReLU 0.2, BatchNorm1d after
    every hidden Linear but the first, Tanh output in [-1, 1])."""

    def __init__(self, latent_dim: int = 64, hidden: tuple[int, ...] = (128, 256, 512), out_dim: int = 784):
        super().__init__()

        def block(k: int, n: int, norm: bool) -> list[nn.Module]:
            return [nn.Linear(k, n), *( [nn.BatchNorm1d(n)] if norm else []), nn.LeakyReLU(0.2, inplace=True)]

        dims = (latent_dim, *hidden)
        self.model = nn.Sequential(
            *[m for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])) for m in block(k, n, norm=i > 0)],
            nn.Linear(dims[-1], out_dim), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        img = self.model(z)
        return img.view(img.size(0), 1, 28, 28)


class DCGANGenerator(nn.Module):
    """``dcgan``: DCGAN generator for 28x28 (ConvTranspose2d + BatchNorm2d + ReLU, Tanh)."""

    def __init__(self, latent_dim: int = 32, ngf: int = 32):
        super().__init__()
        self.latent_dim = latent_dim
        self.main = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, ngf * 2, 7, 1, 0, bias=False),  # 7x7
            nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # 14x14
            nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False),  # 28x28
            nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(-1, self.latent_dim, 1, 1))


class TutorialMLPGenerator(nn.Module):
    """``mlp_gan``: the classic tutorial MNIST GAN generator, ``Sequential(Linear(64, 256), ReLU,
    Linear(256, 256), ReLU, Linear(256, 784), Tanh)``: no BatchNorm and two equal hidden widths,
    so the middle layer (256 -> 256) cannot pin its input on its own."""

    def __init__(self, latent_dim: int = 64, hidden: int = 256, out_dim: int = 784):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, out_dim), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class OddDCGANGenerator(nn.Module):
    """``dcgan_odd``: the other common 28x28 DCGAN layout (latent as ``(C, 1, 1)``, 3x3 and 4x4
    kernels, odd sizes): 64x1x1 -> 256x3x3 -> 128x6x6 -> 64x13x13 -> 1x28x28, ConvTranspose2d +
    BatchNorm2d + ReLU blocks and a Tanh output. Its last layer contracts (10816 -> 784)."""

    def __init__(self, latent_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.latent_dim = latent_dim

        def block(k: int, n: int, kernel: int, stride: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(k, n, kernel, stride), nn.BatchNorm2d(n), nn.ReLU(True)]

        self.main = nn.Sequential(*block(latent_dim, hidden * 4, 3, 2),  # 3x3
                                  *block(hidden * 4, hidden * 2, 4, 1),  # 6x6
                                  *block(hidden * 2, hidden, 3, 2),  # 13x13
                                  nn.ConvTranspose2d(hidden, 1, 4, 2), nn.Tanh())  # 28x28

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(-1, self.latent_dim, 1, 1))


class UpsampleDCGANGenerator(nn.Module):
    """``dcgan_upsample``: the DCGAN of the popular PyTorch GAN collections: Linear -> view ->
    BatchNorm2d -> (Upsample x2 -> Conv2d 3x3 -> BatchNorm2d(eps 0.8) -> LeakyReLU 0.2) twice ->
    Conv2d 3x3 -> Tanh, at 28x28 (7 -> 14 -> 28)."""

    def __init__(self, latent_dim: int = 32, ngf: int = 32):
        super().__init__()
        self.ngf = ngf
        self.l1 = nn.Linear(latent_dim, 2 * ngf * 7 * 7)
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ngf, 2 * ngf, 3, stride=1, padding=1),
            nn.BatchNorm2d(2 * ngf, 0.8), nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2), nn.Conv2d(2 * ngf, ngf, 3, stride=1, padding=1),
            nn.BatchNorm2d(ngf, 0.8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, 1, 3, stride=1, padding=1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.l1(z)
        return self.conv_blocks(out.view(out.shape[0], 2 * self.ngf, 7, 7))


class ConditionalMLPGenerator(nn.Module):
    """``cgan_mlp``: the label-conditional MLP GAN of the popular collections: the label's
    embedding concatenated with the noise, LeakyReLU 0.2 blocks with BatchNorm1d(eps 0.8) after
    every hidden Linear but the first, Tanh; ``forward(noise, labels)``."""

    def __init__(self, latent_dim: int = 32, n_classes: int = 10, hidden: tuple[int, ...] = (128, 256, 512)):
        super().__init__()
        self.label_emb = nn.Embedding(n_classes, n_classes)
        dims = (latent_dim + n_classes, *hidden)
        layers: list[nn.Module] = []
        for i, (k, n) in enumerate(zip(dims[:-1], dims[1:])):
            layers += [nn.Linear(k, n), *([nn.BatchNorm1d(n, 0.8)] if i else []), nn.LeakyReLU(0.2, inplace=True)]
        self.model = nn.Sequential(*layers, nn.Linear(dims[-1], 784), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        return img.view(img.size(0), 1, 28, 28)


class VAEDecoder(nn.Module):
    """The paper's decoders: bias-free Linear layers with the activation after *every* layer
    (ReLU for 20-60-784, LeakyReLU(0.1) for 20-200-500-784), output viewed as 28x28."""

    def __init__(self, dims: tuple[int, ...] = (20, 60, 784), negative_slope: float | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        for k, n in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(k, n, bias=False),
                       nn.ReLU() if negative_slope is None else nn.LeakyReLU(negative_slope)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 28, 28)


class VAEEncoder(nn.Module):
    """The paper's encoder: 784 -> 400 -> (mean, log-variance); ``mean`` is the baseline
    'encoder inverter'."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent_dim)
        self.fc22 = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc21(h), self.fc22(h)


class MLPDiscriminator(nn.Module):
    def __init__(self, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        dims = (784, *hidden)
        layers: list[nn.Module] = []
        for k, n in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(k, n), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(0.3)]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.reshape(x.shape[0], -1)).squeeze(1)  # logits (B,)


class DCGANDiscriminator(nn.Module):
    def __init__(self, ndf: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),  # 14x14
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),  # 7x7
            nn.Flatten(), nn.Linear(ndf * 2 * 7 * 7, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ConditionalMLPDiscriminator(nn.Module):
    """The conditional discriminator of the same collections: the image and the label's embedding
    concatenated, then an MLP; ``forward(x, labels)``."""

    def __init__(self, n_classes: int = 10, hidden: tuple[int, ...] = (512, 256)):
        super().__init__()
        self.label_emb = nn.Embedding(n_classes, n_classes)
        self.net = MLPDiscriminator(hidden)
        self.net.net[0] = nn.Linear(784 + n_classes, hidden[0])

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net.net(torch.cat((x.reshape(x.shape[0], -1), self.label_emb(labels)), -1)).squeeze(1)
