"""The GAN recipe's pieces: the discriminator's input translation and the R1 penalty."""

import torch

from ganinvert.models.training import r1_penalty, translate


def test_translate_moves_each_image_by_a_whole_pixel_offset_and_fills_the_background():
    torch.manual_seed(0)
    x = torch.full((200, 1, 28, 28), -1.0)  # tanh range: background -1
    x[:, 0, 10, 12] = 1.0
    out = translate(x, 2, -1.0)
    lit = (out > 0).nonzero()
    assert lit.shape[0] == 200 and (out[out <= 0] == -1.0).all()  # one pixel each, the rest background
    dy, dx = lit[:, 2] - 10, lit[:, 3] - 12
    assert dy.abs().max() == 2 and dx.abs().max() == 2  # offsets in [-2, 2], the extremes reached
    assert len(set(zip(dy.tolist(), dx.tolist()))) == 25  # every offset drawn
    assert torch.equal(translate(x, 0, -1.0), x)


def test_translate_is_differentiable_in_the_image():
    torch.manual_seed(1)
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    translate(x, 2, 0.0).sum().backward()
    # each input pixel reaches the output at most once: gradient 1 where kept, 0 where pushed out
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0} and x.grad.sum() > 4 * 24 * 24 - 1


def test_r1_penalty_of_a_linear_discriminator_is_half_gamma_times_its_squared_weight_norm():
    w = torch.randn(784, generator=torch.Generator().manual_seed(0))
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    d = x.flatten(1) @ w
    assert torch.allclose(r1_penalty(d, x, 10.0), 5.0 * w.square().sum())
