"""Lightning modules that train the shipped generators: a GAN (non-saturating loss, manual
optimisation with two optimisers, optional differentiable translation of the discriminator's
inputs and R1 penalty) and a VAE (Gaussian decoder, analytic KL)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from .registry import RANGES, SPECS, build


def translate(x: torch.Tensor, shift: int, background: float) -> torch.Tensor:
    """Each image of ``x`` (B, C, H, W) moved by its own random whole-pixel offset in
    ``[-shift, shift]`` along both axes, the uncovered border filled with ``background``.
    Differentiable in ``x``: the augmentation of Zhao et al. ("Differentiable Augmentation for
    Data-Efficient GAN Training", NeurIPS 2020), applied to real and generated images alike, so
    the discriminator sees more varied digits while the generator still learns unmoved ones."""
    if shift == 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x - background, (shift, shift, shift, shift))
    dy, dx = (torch.randint(0, 2 * shift + 1, (2, B, 1, 1), device=x.device))  # seeded by seed_everything
    rows = torch.arange(H, device=x.device)[None, :, None] + dy
    cols = torch.arange(W, device=x.device)[None, None, :] + dx
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded[b, :, rows.expand(B, H, W), cols.expand(B, H, W)].permute(0, 3, 1, 2) + background


def r1_penalty(d_real: torch.Tensor, x: torch.Tensor, gamma: float) -> torch.Tensor:
    """``gamma / 2 * E ||grad_x D(x)||^2`` for the discriminator's logits ``d_real`` on ``x``
    (which must require grad), with a graph for the discriminator's step."""
    grad, = torch.autograd.grad(d_real.sum(), x, create_graph=True)
    return gamma / 2 * grad.square().flatten(1).sum(1).mean()


class GANModule(L.LightningModule):
    """Generator and discriminator of model ``name``; one D step then one G step per batch.

    Args:
        augment: the largest shift of :func:`translate` on the discriminator's inputs (0: none).
            With only 4,000 training digits the discriminator memorises them and the generator
            collapses to a few modes; random shifts of both real and fake inputs counter that.
        r1: weight ``gamma`` of the R1 penalty ``gamma / 2 * ||grad_x D(x_real)||^2`` (Mescheder
            et al. 2018), which keeps the discriminator smooth on the data (0: none).
    """

    def __init__(self, name: str, lr: float = 2e-4, beta1: float = 0.5, label_smoothing: float = 0.1,
                 augment: int = 0, r1: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator, self.discriminator = build(name)
        self.latent_dim, self.n_classes = SPECS[name].latent_dim, SPECS[name].n_classes
        self.background = RANGES[SPECS[name].pixel_range][0]

    def _d(self, x: torch.Tensor, labels: tuple) -> torch.Tensor:
        return self.discriminator(translate(x, self.hparams.augment, self.background), *labels)

    def configure_optimizers(self):
        betas = (self.hparams.beta1, 0.999)
        return [torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)]

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(x.shape[0], self.latent_dim, device=x.device)  # seeded by seed_everything
        # a conditional GAN (Mirza and Osindero 2014): both nets see the label; fakes get random ones
        real_y = (y,) if self.n_classes else ()
        fake_y = (torch.randint(0, self.n_classes, y.shape, device=x.device),) if self.n_classes else ()
        fake = self.generator(z, *fake_y)
        real_t = torch.full((x.shape[0],), 1.0 - self.hparams.label_smoothing, device=x.device)
        zeros = torch.zeros(x.shape[0], device=x.device)
        if self.hparams.r1 > 0:
            x = x.detach().requires_grad_(True)
        d_real = self._d(x, real_y)
        loss_d = (F.binary_cross_entropy_with_logits(d_real, real_t)
                  + F.binary_cross_entropy_with_logits(self._d(fake.detach(), fake_y), zeros))
        if self.hparams.r1 > 0:
            loss_d = loss_d + r1_penalty(d_real, x, self.hparams.r1)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(self._d(fake, fake_y), torch.ones_like(zeros))
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self.log_dict({"loss_d": loss_d, "loss_g": loss_g}, prog_bar=True, on_step=True, on_epoch=True)


class VAEModule(L.LightningModule):
    """Encoder and decoder of model ``name``; loss = ||x - dec(z)||^2 / (2 sigma^2) + KL."""

    def __init__(self, name: str, lr: float = 1e-3, sigma: float = 0.15) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.generator, self.encoder = build(name)

    def configure_optimizers(self):
        return torch.optim.Adam([*self.generator.parameters(), *self.encoder.parameters()], lr=self.hparams.lr)

    def _loss(self, x):
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = self.generator(z)
        rec = (recon - x).square().flatten(1).sum(1).mean() / (2 * self.hparams.sigma ** 2)
        kl = (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(1)).mean()
        return rec + kl, rec, kl

    def training_step(self, batch, batch_idx):
        loss, rec, kl = self._loss(batch[0])
        self.log_dict({"loss": loss, "recon": rec, "kl": kl}, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, _, _ = self._loss(batch[0])
        self.log("val_loss", loss, prog_bar=True)


def make_module(name: str, **hparams) -> L.LightningModule:
    """The training module for shipped model ``name``."""
    return (GANModule if SPECS[name].kind == "gan" else VAEModule)(name, **hparams)
