"""Known answers of the per-sample metrics and their batch summary."""

import math

import torch

import ganinvert as gi
from ganinvert.metrics import sample_metrics, summarize

from .conftest import latents, random_mlp


def test_metrics_of_a_known_perturbation():
    G = random_mlp([5, 20, 60])
    z = latents(4, 5)
    with torch.no_grad():
        x = G(z)
    r = gi.invert(G, x)
    r.z[1] = 1.05 * z[1]  # sample 1: latent error exactly 5%
    m = sample_metrics(r, x, z, data_range=1.0)
    torch.testing.assert_close(m["latent_rel_err"][1], torch.tensor(0.05, dtype=torch.float64))
    assert (m["latent_rel_err"][[0, 2, 3]] < 1e-12).all() and m["ssim"].isnan().all()  # 1-d outputs: no SSIM
    x_noisy = x.clone()
    x_noisy[0] += 0.01  # MSE 1e-4 at data range 1 -> PSNR 40 dB
    m = sample_metrics(r, x_noisy, z, data_range=1.0)
    assert abs(m["psnr"][0].item() - 40.0) < 1e-3
    s = summarize(r, m)
    assert s["samples"] == 4 and s["success@0.01"] == 0.75 and s["success@0.1"] == 1.0
    assert s["exact_rate"] == 1.0 and s["counts"]["EXACT"] == 4 and math.isnan(s["median_ssim"])
