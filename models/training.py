"""Lightning modules that train the shipped generators: a GAN (non-saturating loss, manual
optimisation with two optimisers) and a VAE (Gaussian decoder, analytic KL)."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from .registry import SPECS, build


class GANModule(L.LightningModule):
    """Generator and discriminator of model ``name``; one D step then one G step per batch."""

    def __init__(self, name: str, lr: float = 2e-4, beta1: float = 0.5, label_smoothing: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator, self.discriminator = build(name)
        self.latent_dim = SPECS[name].latent_dim

    def configure_optimizers(self):
        betas = (self.hparams.beta1, 0.999)
        return [torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)]

    def training_step(self, batch, batch_idx):
        x, _ = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(x.shape[0], self.latent_dim, device=x.device)  # seeded by seed_everything
        fake = self.generator(z)
        real_t = torch.full((x.shape[0],), 1.0 - self.hparams.label_smoothing, device=x.device)
        zeros = torch.zeros(x.shape[0], device=x.device)
        loss_d = (F.binary_cross_entropy_with_logits(self.discriminator(x), real_t)
                  + F.binary_cross_entropy_with_logits(self.discriminator(fake.detach()), zeros))
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(self.discriminator(fake), torch.ones_like(zeros))
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
