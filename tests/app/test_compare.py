"""The compare app: the Lightning comparison over a data set, and the trainer/ config group."""

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir

from ganinvert.app import compare
from ganinvert.metrics import table

ROOT = Path(__file__).resolve().parents[2]

TRAINERS = sorted(p.stem for p in (ROOT / "conf" / "trainer").glob("*.yaml"))


def _cfg(overrides, name="compare"):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("app", ["compare", "train"])
def test_every_trainer_option_composes_and_builds_a_trainer(app, trainer, tmp_path):
    cfg = _cfg([f"trainer={trainer}"] + (["export_dir=" + str(tmp_path)] if app == "train" else []), name=app)
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    kw = dict(cfg.trainer)
    if kw.get("strategy") == "ddp":  # building (not launching) a 2-process CPU DDP trainer
        kw.update(accelerator="cpu", devices=2)
    t = L.Trainer(logger=False, default_root_dir=str(tmp_path), **kw)
    assert t.num_devices == kw["devices"]


def test_compare_runs_each_method_over_each_data_set(tmp_path):
    cfg = _cfg(["model=random_relu", "model.latent_dim=5", "model.widths=[20,60]", "data=[generated]",
                "data.generated.n=10", "inverter=[layerwise,adam,hybrid]", "inverter.adam.steps=20",
                "batch_size=4", "trainer.enable_progress_bar=false"])
    out = compare.run(cfg, tmp_path)
    saved = json.loads((tmp_path / "compare.json").read_text())
    res = saved["results"]["generated"]
    assert res["layerwise/exact_rate"] == 1.0 and res["hybrid/exact_rate"] == 1.0
    assert res["adam/success@1e-05"] == 0.0 and saved["world_size"] == 1
    assert out["results"].keys() == saved["results"].keys()
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert len(rows) == 10 * 3 and {r["method"] for r in rows} == {"layerwise", "adam", "hybrid"}
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").exists()
    assert "generated/layerwise" in table(compare.summaries(out))
