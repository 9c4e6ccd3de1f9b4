import numpy as np
import torch

from ganinvert.models.quality import DigitClassifier, _frechet


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
