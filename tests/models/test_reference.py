import pytest
import torch

from ganinvert.models.reference import paper_decoder


def test_paper_decoder_refuses_a_foreign_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc1.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(KeyError, match=r"lacks \['fc3.weight', 'fc4.weight'\]"):
        paper_decoder(path)


def test_paper_decoder_shapes(reference_decoder):
    z = torch.zeros(3, 20, dtype=torch.float64)
    assert reference_decoder(z).shape == (3, 784)
