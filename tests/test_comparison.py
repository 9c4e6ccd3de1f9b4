"""The Lightning comparison module: a Trainer's test loop inverts each batch with each method,
logs the epoch metrics, keeps one row per sample and method, and predict returns the results."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ganinvert as gi
from ganinvert.comparison import InversionComparison

from .conftest import latents, random_mlp


def _trainer(**kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, **kw)


@pytest.fixture
def setup():
    G = random_mlp([6, 30, 80])
    z = latents(20, 6)
    with torch.no_grad():
        x = G(z)
    return G, x, z


def test_test_loop_logs_each_methods_metrics_over_all_batches(setup):
    G, x, z = setup
    module = InversionComparison(G, {"layerwise": "layerwise", "adam": gi.Adam(steps=30, lr=0.05)})
    (res,) = _trainer(inference_mode=False).test(module, DataLoader(TensorDataset(x, z), batch_size=8),
                                                 verbose=False)
    assert res["layerwise/exact_rate"] == 1.0 and res["layerwise/success@1e-05"] == 1.0
    assert res["layerwise/median_latent_rel_err"] < 1e-10
    assert res["adam/exact_rate"] == 0.0 and res["adam/success@1e-05"] == 0.0  # 30 steps cannot reach 1e-5
    assert 0 < res["adam/median_output_rel_err"] < 1
    rows = module.sample_rows  # 20 samples in batches 8, 8, 4 (the tail is kept), 2 methods
    assert len(rows) == 40 and sorted(r["index"] for r in rows if r["method"] == "adam") == list(range(20))
    assert {r["status"] for r in rows if r["method"] == "layerwise"} == {"EXACT"}


def test_predict_returns_results_with_the_true_latents(setup):
    G, x, z = setup
    module = InversionComparison(G, {"layerwise": gi.Layerwise()})
    batches = _trainer().predict(module, DataLoader(TensorDataset(x), batch_size=16))
    zs = torch.cat([b["layerwise"].z for b in batches])
    torch.testing.assert_close(zs, z, rtol=0, atol=1e-9)


def test_adam_under_inference_mode_says_how_to_fix_it(setup):
    G, x, _ = setup
    module = InversionComparison(G, {"adam": gi.Adam(steps=5)})
    with pytest.raises(gi.InvalidInputError, match="inference_mode=False"):
        _trainer(inference_mode=True).test(module, DataLoader(TensorDataset(x), batch_size=8), verbose=False)


def test_bad_arguments_are_typed_errors(setup):
    G, _, _ = setup
    with pytest.raises(gi.InvalidInputError, match="at least one inverter"):
        InversionComparison(G, {})
    with pytest.raises(gi.InvalidInputError, match="nn.Module"):
        InversionComparison(object(), {"layerwise": "layerwise"})
