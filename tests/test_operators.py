import pytest
import torch

from ganinvert.errors import LayerTooLargeError
from ganinvert.operators import Composed, Conv2d, ConvTranspose2d, Dense, Diagonal, compose

G = torch.Generator().manual_seed(0)


def _rand(*shape):
    return torch.randn(*shape, generator=G, dtype=torch.float64)


CONVS = [
    ConvTranspose2d(_rand(6, 4, 4, 4), in_shape=(6, 3, 3), stride=2, padding=1, output_padding=1,
                    dilation=1, groups=1),
    ConvTranspose2d(_rand(4, 2, 3, 3), in_shape=(4, 5, 5), stride=1, padding=0, output_padding=0,
                    dilation=2, groups=2),
    Conv2d(_rand(5, 3, 3, 3), in_shape=(3, 8, 8), stride=2, padding=1, dilation=1, groups=1),
]


@pytest.mark.parametrize("op", CONVS, ids=lambda o: type(o).__name__)
def test_dense_matches_matvec(op):
    u = _rand(2, op.in_dim)
    torch.testing.assert_close(u @ op.dense().T, op.matvec(u), rtol=1e-12, atol=1e-12)


def test_compose_fuses_dense_and_diagonal_into_one_matrix():
    W, d = _rand(5, 3), _rand(5)
    op = compose(Dense(W), Diagonal(d))
    assert isinstance(op, Dense)
    u = _rand(4, 3)
    torch.testing.assert_close(op.matvec(u), (u @ W.T) * d)


def test_compose_keeps_convolutions_matrix_free():
    op = compose(CONVS[0], Diagonal(_rand(*CONVS[0].out_shape)))
    assert isinstance(op, Composed)
    u = _rand(2, op.in_dim)
    torch.testing.assert_close(op.matvec(u), CONVS[0].matvec(u) * op.second.scale.reshape(-1))
    torch.testing.assert_close(u @ op.dense().T, op.matvec(u), rtol=1e-12, atol=1e-12)


def test_dense_refuses_matrices_over_the_limit():
    with pytest.raises(LayerTooLargeError, match="max_dense_entries|over the limit"):
        CONVS[0].dense(max_entries=100)
