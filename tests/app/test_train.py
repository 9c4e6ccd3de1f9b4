"""Every model config composes, and each LightningModule trains a step (fast_dev_run)."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ganinvert.app import train
from ganinvert.models.registry import SPECS

ROOT = Path(__file__).resolve().parents[2]


def _cfg(name, tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[f"model={name}", f"export_dir={tmp_path}",
                                                        "trainer.enable_progress_bar=false"])


def test_every_shipped_model_has_a_config():
    assert set(SPECS) <= {p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")}


@pytest.mark.parametrize("name", list(SPECS))
def test_fast_dev_run_trains_one_step_and_changes_the_weights(name, tmp_path):
    cfg = _cfg(name, tmp_path)
    assert cfg.model.name == name and cfg.model.kind == SPECS[name].kind
    out = train.run(cfg, out_dir=tmp_path, fast_dev_run=1)
    metrics = out["metrics"]
    key = "loss_g" if SPECS[name].kind == "gan" else "loss"
    assert any(k.startswith(key) for k in metrics) and all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert not (tmp_path / f"{name}.pt").exists()  # fast_dev_run exports nothing
