import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ganinvert as gi
from ganinvert import activations as acts
from ganinvert.converters import DEFAULT_CONVERTERS, Affine
from ganinvert.operators import Diagonal

from .conftest import DCGANish, latents, random_mlp


def _bn1d(n):
    bn = nn.BatchNorm1d(n)
    g = torch.Generator().manual_seed(3)
    bn.running_mean.copy_(torch.randn(n, generator=g))
    bn.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return bn


def _prelu(n):
    m = nn.PReLU(n)
    with torch.no_grad():
        m.weight.copy_(torch.linspace(0.1, 0.4, n))
    return m


# One generator per registry entry: each must round-trip chain(z) == module(z).
ROUND_TRIPS = {
    nn.Linear: lambda: nn.Sequential(nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 30)),
    nn.Conv2d: lambda: nn.Sequential(nn.Linear(6, 2 * 8 * 8), nn.Unflatten(1, (2, 8, 8)), nn.ReLU(),
                                     nn.Conv2d(2, 3, 3, stride=1, padding=1), nn.Sigmoid()),
    nn.ConvTranspose2d: lambda: DCGANish(),
    nn.BatchNorm1d: lambda: nn.Sequential(nn.Linear(6, 20), _bn1d(20), nn.LeakyReLU(0.1), nn.Linear(20, 25)),
    nn.BatchNorm2d: lambda: DCGANish(),
    nn.ReLU: lambda: nn.Sequential(nn.Linear(6, 20), nn.ReLU()),
    nn.LeakyReLU: lambda: nn.Sequential(nn.Linear(6, 20), nn.LeakyReLU(0.3)),
    nn.Tanh: lambda: nn.Sequential(nn.Linear(6, 20), nn.Tanh()),
    nn.Sigmoid: lambda: nn.Sequential(nn.Linear(6, 20), nn.Sigmoid()),
    nn.Identity: lambda: nn.Sequential(nn.Linear(6, 20), nn.Identity(), nn.ReLU()),
    nn.Dropout: lambda: nn.Sequential(nn.Linear(6, 20), nn.Dropout(0.5), nn.ReLU()),
    nn.Dropout1d: lambda: nn.Sequential(nn.Linear(6, 20), nn.Unflatten(1, (4, 5)), nn.Dropout1d(0.5),
                                        nn.Flatten(), nn.ReLU()),
    nn.Dropout2d: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.Dropout2d(),
                                        nn.ReLU()),
    nn.Flatten: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(), nn.Flatten()),
    nn.Unflatten: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.Tanh()),
    nn.Upsample: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.Upsample(scale_factor=2),
                                       nn.Conv2d(2, 2, 3, padding=1), nn.LeakyReLU(0.2),
                                       nn.Upsample(scale_factor=3, mode="bilinear"), nn.Conv2d(2, 1, 3), nn.Tanh()),
    nn.Hardtanh: lambda: nn.Sequential(nn.Linear(6, 20), nn.Hardtanh(-0.5, 0.7), nn.Linear(20, 30), nn.ReLU6()),
    nn.PReLU: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), _prelu(2),
                                    nn.Conv2d(2, 2, 3), nn.Flatten(), _prelu(1)),
    nn.ELU: lambda: nn.Sequential(nn.Linear(6, 20), nn.ELU(0.7), nn.Linear(20, 30)),
    nn.Softplus: lambda: nn.Sequential(nn.Linear(6, 20), nn.Softplus(2.0, threshold=1.0), nn.Linear(20, 30)),
    nn.AvgPool1d: lambda: nn.Sequential(nn.Linear(6, 40), nn.Unflatten(1, (2, 20)), nn.AvgPool1d(2), nn.ReLU()),
    nn.AvgPool2d: lambda: nn.Sequential(nn.Linear(6, 128), nn.Unflatten(1, (2, 8, 8)), nn.ReLU(),
                                        nn.AvgPool2d(2), nn.Conv2d(2, 1, 3, padding=1)),
    nn.AdaptiveAvgPool2d: lambda: nn.Sequential(nn.Linear(6, 72), nn.Unflatten(1, (2, 6, 6)),
                                                nn.AdaptiveAvgPool2d(4), nn.LeakyReLU(0.2)),
    nn.PixelShuffle: lambda: nn.Sequential(nn.Linear(6, 64), nn.Unflatten(1, (16, 2, 2)), nn.ReLU(),
                                           nn.PixelShuffle(2), nn.Conv2d(4, 1, 3, padding=1), nn.Tanh()),
    nn.PixelUnshuffle: lambda: nn.Sequential(nn.Linear(6, 64), nn.Unflatten(1, (1, 8, 8)), nn.PixelUnshuffle(2),
                                             nn.ReLU()),
    nn.ZeroPad2d: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.ZeroPad2d((1, 0, 2, 1)),
                                        nn.Conv2d(2, 1, 3), nn.ReLU()),
    nn.ReflectionPad2d: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(),
                                              nn.ReflectionPad2d(1), nn.Conv2d(2, 1, 3)),
    nn.ReplicationPad2d: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(),
                                               nn.ReplicationPad2d(1), nn.Conv2d(2, 1, 3)),
    nn.modules.padding._ConstantPadNd: lambda: nn.Sequential(nn.Linear(6, 32), nn.Unflatten(1, (2, 4, 4)),
                                                             nn.ConstantPad2d(1, 0.5), nn.Conv2d(2, 1, 3), nn.ReLU()),
}


def test_every_registry_entry_has_a_round_trip():
    assert set(ROUND_TRIPS) == set(DEFAULT_CONVERTERS)


@pytest.mark.parametrize("kind", list(ROUND_TRIPS), ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(kind, dtype):
    module = ROUND_TRIPS[kind]().to(dtype).eval()
    chain = gi.to_chain(module)  # checks chain(z) == module(z) itself; check again explicitly
    z = torch.randn(5, *chain.in_shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    want = module(z.to(dtype)).double()
    torch.testing.assert_close(chain(z), want, rtol=1e-4 if dtype == torch.float32 else 1e-10,
                               atol=1e-4 if dtype == torch.float32 else 1e-10)


def test_activation_after_activation_gets_an_identity_map():
    module = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Sigmoid()).double().eval()
    chain = gi.to_chain(module)
    assert [type(l.act) for l in chain.layers] == [acts.ReLU, acts.Sigmoid]
    assert isinstance(chain.layers[1].op, Diagonal)


def test_dcgan_latent_shape_and_folded_layers():
    chain = gi.to_chain(DCGANish(nz=8).eval())
    assert chain.in_shape == (8, 1, 1)  # the DCGAN convention, found by probing
    assert gi.to_chain(DCGANish(nz=8).eval(), latent_shape=(8,)).in_shape == (8,)
    assert chain.out_shape == (3, 16, 16)
    assert [type(layer.act) for layer in chain.layers] == [acts.ReLU, acts.ReLU, acts.Tanh]


def test_latent_shape_inferred_as_c11_for_a_bare_conv_transpose_stack():
    module = nn.Sequential(nn.ConvTranspose2d(5, 3, 4), nn.ReLU()).eval()
    assert gi.to_chain(module).in_shape == (5, 1, 1)


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(4, 12), nn.Linear(12, 24), nn.Linear(24, 32), nn.Linear(32, 48)

    def forward(self, z):
        h = F.leaky_relu(self.a(z), 0.2)
        h = torch.relu(self.b(h))
        h = torch.sigmoid(self.c(h)).view(-1, 2, 4, 4).reshape(z.shape[0], -1)
        return F.tanh(self.d(h)).view(-1, 3, 4, 4)


def test_functional_activations_and_view_are_traced():
    chain = gi.to_chain(Functional().double().eval())
    assert [a.act for a in chain.layers] == [acts.LeakyReLU(0.2), acts.ReLU(), acts.Sigmoid(), acts.Tanh()]
    assert chain.out_shape == (3, 4, 4)


def test_unsupported_layer_names_path_type_and_hint():
    module = nn.Sequential(nn.Linear(4, 8), nn.GELU()).eval()
    with pytest.raises(gi.UnsupportedLayerError, match=r"module '1' of type GELU .*converters="):
        gi.to_chain(module)


def test_user_converter_extends_the_registry_per_call():
    class Scale(nn.Module):
        def __init__(self, s):
            super().__init__()
            self.s = s

        def forward(self, x):
            return torch.einsum("bi,->bi", x, torch.tensor(self.s, dtype=x.dtype))

    def convert_scale(m, in_shape):
        return [Affine(Diagonal(torch.full(in_shape, float(m.s), dtype=torch.float64)),
                       torch.zeros(in_shape[0], dtype=torch.float64))]

    module = nn.Sequential(nn.Linear(4, 10), Scale(3.0), nn.ReLU()).double().eval()
    with pytest.raises(gi.UnsupportedLayerError):
        gi.to_chain(module)  # Scale traces into an einsum nobody converts
    chain = gi.to_chain(module, converters={Scale: convert_scale})
    z = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(chain(z), module(z))


def test_training_mode_batchnorm_is_an_error_naming_the_module():
    module = DCGANish()  # freshly built modules are in training mode
    with pytest.raises(gi.TrainingModeError, match=r"module 'main.1' \(BatchNorm2d\).*\.eval\(\)"):
        gi.to_chain(module)


def test_batchnorm_without_running_stats_is_refused():
    module = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8, track_running_stats=False)).eval()
    with pytest.raises(gi.UnsupportedLayerError, match="track_running_stats=False"):
        gi.to_chain(module)


def test_linear_after_an_unflattened_tensor_gets_a_hint():
    module = nn.Sequential(nn.Linear(4, 8), nn.Unflatten(1, (2, 4)), nn.Linear(4, 4)).eval()
    with pytest.raises(gi.UnsupportedLayerError, match="Flatten"):
        gi.to_chain(module)


def test_a_wrong_converter_is_caught_by_the_chain_check():
    class Scale(nn.Module):
        def forward(self, x):
            return x * 3.0

    def buggy(m, in_shape):  # forgets the factor 3
        return [Affine(Diagonal(torch.ones(in_shape, dtype=torch.float64)),
                       torch.zeros(in_shape[0], dtype=torch.float64))]

    module = nn.Sequential(nn.Linear(4, 10), Scale(), nn.ReLU()).double().eval()
    with pytest.raises(gi.ChainMismatchError, match=r"does not reproduce Sequential: max \|chain\(z\) - module\(z\)\|"):
        gi.to_chain(module, converters={Scale: buggy})
    gi.to_chain(module, converters={Scale: buggy}, check=False)  # the check is what caught it


def test_a_module_that_runs_on_no_latent_shape_keeps_the_underlying_error():
    G = nn.Sequential(nn.Linear(5, 10), nn.ReLU(), nn.Linear(11, 3)).double().eval()  # 10 != 11
    with pytest.raises(gi.ShapeMismatchError, match=r"could not run Sequential on latents of shape \[\(3, 5\)\]; "
                                                    r"on \(3, 5\): RuntimeError: mat1 and mat2.*latent_shape") as e:
        gi.to_chain(G)
    assert isinstance(e.value.__cause__, RuntimeError)


class _VAE(nn.Module):
    """A VAE exposing its decoder as a method, as most VAE code does."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.enc = nn.Linear(40, 8)
        self.dec = random_mlp((5, 20, 40), act="relu", out_act="tanh", seed=seed)

    def decode(self, z):
        return self.dec(z)


def _decode_with(model, z):
    return model(z)


_GLOBAL_VAE = _VAE(seed=3).double().eval()


def _decode_global(z):
    return _GLOBAL_VAE.decode(z)


@pytest.mark.parametrize("kind", ["bound method", "partial", "function using a global"])
def test_any_callable_z_to_x_is_traced_with_the_modules_it_reaches_and_inverts_exactly(kind):
    vae = _GLOBAL_VAE
    fn = {"bound method": vae.decode, "partial": functools.partial(_decode_with, vae.dec),
          "function using a global": _decode_global}[kind]
    z = latents(3, 5, seed=4)
    res = gi.invert(fn, fn(z).detach())
    assert [s.name for s in res.status] == ["EXACT"] * 3
    assert (res.z - z).abs().max() <= 1e-9


def test_a_callable_that_runs_no_module_is_refused_with_the_fix():
    with pytest.raises(gi.UnsupportedLayerError, match=r"Got: .*<lambda>, which reaches none\. Fix: pass the generator"):
        gi.to_chain(lambda z: torch.sin(z))


def test_a_user_converter_takes_precedence_over_the_built_in_one():
    calls = []

    def mine(m, in_shape):
        calls.append(type(m).__name__)
        return DEFAULT_CONVERTERS[nn.Linear](m, in_shape)

    G = random_mlp((5, 20, 40), seed=5)
    gi.to_chain(G, converters={nn.Linear: mine})
    assert calls == ["Linear", "Linear"]
