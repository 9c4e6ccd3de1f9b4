"""Known answers of the per-sample metrics and their batch summary."""

import math

import pytest
import torch

import ganinvert as gi
from ganinvert.metrics import columns, sample_metrics, sample_rows, summarize, table

from .conftest import latents, random_mlp


@pytest.fixture
def exact():
    """A random net, six latents, their images and the (exact) inversion of them."""
    G = random_mlp([5, 20, 60])
    z = latents(6, 5)
    with torch.no_grad():
        x = G(z)
    return G, z, x, gi.invert(G, x)


def test_metrics_of_a_known_perturbation(exact):
    _, z, x, r = exact
    r.z[1] = 1.05 * z[1]  # sample 1: latent error exactly 5%
    m = sample_metrics(r, x, z, data_range=1.0)
    torch.testing.assert_close(m["latent_rel_err"][1], torch.tensor(0.05, dtype=torch.float64))
    assert (m["latent_rel_err"][[0, 2, 3, 4, 5]] < 1e-12).all() and m["ssim"].isnan().all()  # 1-d outputs: no SSIM
    x_noisy = x.clone()
    x_noisy[0] += 0.01  # MSE 1e-4 at data range 1 -> PSNR 40 dB
    m = sample_metrics(r, x_noisy, z, data_range=1.0)
    assert abs(m["psnr"][0].item() - 40.0) < 1e-3
    s = summarize(columns(r, m))
    assert s["samples"] == 6 and s["success@0.01"] == 5 / 6 and s["success@0.1"] == 1.0
    assert s["exact_rate"] == 1.0 and s["counts"]["EXACT"] == 6 and math.isnan(s["median_ssim"])


def test_summary_over_batches_is_the_summary_of_their_samples(exact):
    # the Lightning app summarises concatenated per-batch columns, the Hydra app one batch: same numbers
    G, z, x, r = exact
    whole = columns(r, sample_metrics(r, x, z, data_range=1.0))
    halves = [columns(s, sample_metrics(s, x[i:i + 3], z[i:i + 3], data_range=1.0))
              for i, s in ((0, gi.invert(G, x[:3])), (3, gi.invert(G, x[3:])))]
    joined = summarize({k: torch.cat([h[k] for h in halves]) for k in whole})
    one = summarize(whole)
    for key in ("samples", "exact_rate", "solved_rate", "success@1e-05"):
        assert joined[key] == one[key], key
    assert abs(joined["median_latent_rel_err"] - one["median_latent_rel_err"]) < 1e-12
    assert joined["counts"] == one["counts"] == {**{s.name: 0 for s in gi.Status}, "EXACT": 6}
    assert set(one) >= {"median_output_rel_err", "median_psnr", "median_residual", "ms_per_sample"}
    assert not any(k in one for k in ("output_rel_err", "psnr", "mean_psnr"))  # every statistic is named
    rows = sample_rows(r, whole, start=10, data="generated", method="layerwise")
    assert [row["index"] for row in rows] == list(range(10, 16)) and rows[0]["status"] == "EXACT"
    assert rows[0]["data"] == "generated" and rows[0]["method_path"] == r.methods[0]
    assert "generated/layerwise" in table({"generated/layerwise": one}) and "100.0%" in table({"a/b": one})
