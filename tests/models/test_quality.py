import json

import numpy as np
import pytest
import torch

from ganinvert.models.quality import DigitClassifier, _frechet, stuck_pixel_share
from ganinvert.models.registry import HERE, SPECS


def test_frechet_distance_known_answers():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2000, 4))
    assert _frechet(a, a) < 1e-4
    # same covariance, means 3 apart along one axis: distance ~ 3^2
    assert abs(_frechet(a, a + np.array([3.0, 0, 0, 0])) - 9.0) < 1e-3


def test_classifier_shapes():
    c = DigitClassifier().eval()
    x = torch.zeros(2, 1, 28, 28)
    assert c(x).shape == (2, 10) and c.features(x).shape == (2, 128)


def test_stuck_pixel_share_finds_a_dot_that_real_digits_never_have():
    real = torch.zeros(100, 1, 28, 28)
    real[:, :, 10:18, 12:16] = 1.0  # every real digit lights the centre...
    real[0, 0, 2, 2] = 1.0  # ...and 1% light (2, 2): not rare enough to count
    gen = real.clone()
    gen[:90, 0, 18, 27] = 0.9  # a collapsed output unit: on in 90% of samples
    gen[:, 0, 2, 2] = 1.0
    share, where = stuck_pixel_share(gen, real)
    assert share == pytest.approx(0.9) and where == (18, 27)
    share, _ = stuck_pixel_share(real, real)  # real digits score 0 on their own rare pixels
    assert share == 0.0


def test_shipped_cards_report_class_entropy_and_stuck_pixels_for_every_generator():
    manifest = json.loads((HERE / "manifest.json").read_text())
    for name in SPECS:
        q = manifest[name]["quality"]
        card = (HERE / f"{name}.md").read_text()
        assert f"| class-histogram entropy (1 = balanced) | {q['class_entropy']:.3f} |" in card, name
        assert "| stuck-pixel share" in card and f"{q['stuck_pixel_share']:.1%} at" in card, name
    # the main job's generator: all ten digits and no collapsed output unit (issue 16)
    q = manifest["mnist_mlp"]["quality"]
    assert q["class_entropy"] >= 0.9 and q["stuck_pixel_share"] <= 0.5
