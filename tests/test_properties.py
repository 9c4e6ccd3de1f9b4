"""The guarantees, checked on generators hypothesis draws at random (tests/strategies.py): the
adapters reproduce the module (residual blocks, upsampling and conditional inputs among what is
drawn), every operator has its adjoint, EXACT means z = z* (never a false
EXACT), a solved status means G(z) = x, a sample's status does not depend on its batch, and the
same seed gives the same bits. How many generators: the hypothesis profile (conftest.py: ``ci``
by default, ``thorough`` under ``make test-all``)."""

from __future__ import annotations

import torch
from hypothesis import event, example, given, note

import ganinvert as gi
from ganinvert.result import Status

from ganinvert.adapters import Conditioned

from .strategies import LayerSpec, Spec, build, cond_of, latents_of, specs

SOLVED = (Status.EXACT, Status.EXACT_NONUNIQUE)
#: ||z - z*|| / ||z*|| that EXACT must meet, per dtype: the residual tolerance (1e-6 / 1e-4)
#: times a conditioning allowance of 1e3; a sample over it sits at another point of the pre-image
LATENT_TOL = {torch.float64: 1e-3, torch.float32: 1e-1}
CHAIN_TOL = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def _observe(spec: Spec, n: int = 3):
    """``(G, z*, x = G(z*, *cond), cond)``; ``cond`` empty unless the spec is label-conditional."""
    G = build(spec)
    z, cond = latents_of(spec, n), cond_of(spec, n)
    with torch.no_grad():
        x = G(z, *cond)
    return G, z, x, cond


def _one_condition(G, spec: Spec):
    """``G`` as a generator of z alone: a conditional one with the label of its first sample fixed."""
    return Conditioned(G, tuple(c[:1] for c in cond_of(spec, 1))) if spec.classes else G


@given(spec=specs())
def test_the_adapters_chain_equals_the_module(spec):
    G, z, _, _ = _observe(spec)
    G = _one_condition(G, spec)
    with torch.no_grad():
        x = G(z)
    chain = gi.to_chain(G, latent_shape=(spec.latent,))
    # the chain computes in float64 whatever the module's dtype: compared there
    torch.testing.assert_close(chain(z).reshape(x.shape), x.double(), **CHAIN_TOL[spec.dtype])


@given(spec=specs(dtype=torch.float64))
def test_every_operator_of_the_chain_is_the_matrix_the_solvers_read(spec):
    """The LPs and least squares read each layer as ``op.dense()``; the forward pass applies
    ``op.matvec`` matrix-free: both must be the same map."""
    chain = gi.to_chain(_one_condition(build(spec), spec), latent_shape=(spec.latent,))
    g = torch.Generator().manual_seed(spec.seed)
    for layer in chain.layers:
        op = layer.op
        u = torch.randn(2, op.in_dim, generator=g, dtype=torch.float64)
        lhs, rhs = u @ op.dense().T, op.matvec(u)
        torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10 * (1 + rhs.abs().max().item()))


#: found by the thorough profile: z -> ReLU(w z) -> Sigmoid(v h + c) in float32. A sample with
#: w z* < 0 has h = 0; recovered from the float32 image it came back as 4.5e-8, which the first
#: layer took for a positive row pinning z, so z = 2.9e-8 was called EXACT (tolerances.target_scale)
FALSE_EXACT_FLOAT32 = Spec(1, (LayerSpec("linear", 1, "relu", bias=False), LayerSpec("linear", 1, "sigmoid")),
                           torch.float32, seed=0, conv=False)
#: found by the thorough profile: z (2) -> ConvTranspose2d to 1 unit -> Tanh -> ... One equation in
#: two unknowns; the rank test on its Gram matrix a a^T passed on rounding noise and called the
#: line a point (fastpath.cholesky_full_rank's floor)
RANK_ONE_GRAM = Spec(2, (LayerSpec("convT", 1, "tanh", bias=False), LayerSpec("convT", 1, "leaky", 0.01, bias=False)),
                     torch.float32, seed=1819777004, conv=True)


@given(spec=specs())
@example(spec=FALSE_EXACT_FLOAT32)
@example(spec=RANK_ONE_GRAM)
def test_exact_means_z_is_z_star_and_solved_means_g_of_z_is_x(spec):
    """The claim the project stands on, on every status ``invert``'s default method returns."""
    G, z, x, cond = _observe(spec)
    r = gi.invert(G, x, seed=spec.seed, cond=cond or None)
    rtol = gi.default_rtol(spec.dtype)
    with torch.no_grad():
        residual = (G(r.z, *cond) - x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1).clamp(min=1e-30)
    err = (r.z - z).double().norm(dim=1) / z.double().norm(dim=1).clamp(min=1e-30)
    note(f"status {[s.name for s in r.status]}, residual {residual.tolist()}, latent error {err.tolist()}")
    for i, st in enumerate(r.status):
        event(f"status {st.name}")  # the mix, in --hypothesis-show-statistics
        if st in SOLVED:  # G(z) = x, measured by the user's own module, not our chain
            assert residual[i] <= 10 * rtol, f"sample {i}: {st.name} with ||G(z) - x|| / ||x|| = {residual[i]:.2e}"
        if st is Status.EXACT:
            assert err[i] <= LATENT_TOL[spec.dtype], f"sample {i}: false EXACT, ||z - z*|| / ||z*|| = {err[i]:.2e}"


#: found by the thorough profile: Tanh hidden layers, so auto's search is Adam's restarts; their
#: starts came from one stream for the batch, so sample 1 drew other starts in a batch than alone
#: and came back APPROXIMATE there, EXACT_NONUNIQUE alone (ganinvert.streams)
BATCH_STREAM = Spec(1, (LayerSpec("convT", 2, "leaky", 0.01, True, True, 4, 1, 0),
                        LayerSpec("conv", 3, "tanh", 0.01, True, True, 2, 2, 0),
                        LayerSpec("conv", 1, "leaky", 0.01, False, False, 2, 1, 0)), torch.float32, seed=125922, conv=True)


@given(spec=specs())
@example(spec=BATCH_STREAM)
def test_a_samples_status_does_not_depend_on_its_batch(spec):
    """Solved alone or beside others, a sample gets the same status: one sample's hard LP or
    search never changes what its neighbours are told."""
    G, _, x, cond = _observe(spec)
    together = gi.invert(G, x, seed=spec.seed, cond=cond or None).status
    alone = [gi.invert(G, x[i:i + 1], seed=spec.seed, cond=tuple(c[i:i + 1] for c in cond) or None).status[0]
             for i in range(x.shape[0])]
    assert together == alone


@given(spec=specs())
def test_the_same_seed_gives_the_same_bits(spec):
    G, _, x, cond = _observe(spec)
    first, again = gi.invert(G, x, seed=spec.seed, cond=cond or None), gi.invert(G, x, seed=spec.seed, cond=cond or None)
    assert first.status == again.status and first.methods == again.methods
    assert torch.equal(first.z, again.z)
