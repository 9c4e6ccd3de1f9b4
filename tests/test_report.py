"""inspect(): widths, ratios and the exact-alone verdict per layer, on known architectures."""

from ganinvert import models
import ganinvert as gi

from .conftest import random_mlp


def test_random_relu_net_expanding_twice_is_exact_alone():
    rep = gi.inspect(random_mlp([20, 100, 500]))
    assert [(r.in_dim, r.out_dim) for r in rep.layers] == [(20, 100), (100, 500)]
    assert rep.exact_alone and rep.layers[1].expansion == 5.0


def test_contracting_and_weakly_expanding_layers_are_named():
    rep = gi.inspect(random_mlp([6, 40, 30, 50]))
    assert [r.exact_alone for r in rep.layers] == [True, False, False]
    assert "contracts 40 -> 30" in rep.layers[1].note and "1.67x" in rep.layers[2].note
    assert "method='auto'" in str(rep)


def test_shipped_dcgan_last_layer_contracts():
    m = models.load("dcgan")
    rep = gi.inspect(m.generator, latent_shape=(m.latent_dim,))
    assert rep.out_shape == (1, 28, 28) and not rep.exact_alone
    assert rep.layers[-1].out_dim == 784 and rep.layers[-1].in_dim > 784
    assert "ConvTranspose2d" in {r.operator for r in rep.layers}


def test_the_report_says_what_exact_and_the_radius_certify():
    """The status semantics, where a user reads them first: EXACT is global, EXACT_NONUNIQUE carries
    a radius on piecewise-linear generators and none on smooth hidden activations."""
    pl = gi.inspect(random_mlp([6, 40, 30, 50]))
    assert pl.local_radius and "EXACT means z is the only pre-image" in str(pl)
    assert "within which no other latent gives G(z)" in str(pl)
    smooth = gi.inspect(random_mlp([6, 40, 50], act="tanh"))
    assert not smooth.local_radius and "0 here: a hidden activation is not piecewise linear" in str(smooth)
