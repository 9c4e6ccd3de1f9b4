"""The descent through activation regions: the true pattern gives the true latent, and the
wall-flipping descent repairs a wrong seed without ever raising the misfit; kicks move trapped seeds."""

import torch

from ganinvert.search.pattern import kick_descent, solve_pattern_lp

from ..conftest import latents
from ..conftest import pattern_setup as _setup


def test_true_pattern_gives_the_true_latent():
    chain, z, x = _setup()
    sol = solve_pattern_lp(chain, torch.zeros_like(z), x, rtol=1e-9, rounds=1, patterns=chain.patterns(z))
    assert (sol.residual <= 1e-9).all()
    torch.testing.assert_close(sol.z, z, rtol=0, atol=1e-7)


def test_descent_repairs_a_perturbed_seed():
    chain, z, x = _setup(n=40)
    z0 = z + 0.05 * latents(*z.shape, seed=3)
    one = solve_pattern_lp(chain, z0, x, rtol=1e-8, rounds=1)
    many = solve_pattern_lp(chain, z0, x, rtol=1e-8, rounds=6)
    assert (many.residual <= 1e-8).sum() > (one.residual <= 1e-8).sum()
    assert (many.residual <= 1e-8).float().mean() >= 0.9


def test_flipping_the_blocking_walls_never_raises_the_misfit():
    # from far-off seeds, the l_inf misfit of round r + 1 is at most that of round r: the new
    # region's closure holds the old optimum (a re-read pattern would not promise this)
    chain, z, x = _setup(n=30)
    z0 = latents(*z.shape, seed=4)
    prev = None
    for r in range(1, 7):
        sol = solve_pattern_lp(chain, z0, x, rtol=1e-8, rounds=r, stall=100)
        ran = sol.rounds == r  # seeds still descending at round r
        if prev is not None:
            assert (sol.misfit[ran] <= prev[ran] * (1 + 1e-6) + 1e-9).all()
        prev = sol.misfit
    assert (prev[torch.isfinite(prev)] > 1e-6).any()  # some seeds did have walls to cross


def test_an_empty_batch_gives_an_empty_answer():
    chain, z, x = _setup(n=3)
    sol = solve_pattern_lp(chain, z[:0], x[:0], rtol=1e-8)
    assert sol.z.shape == (0, 6) and sol.residual.shape == (0,)


def test_a_group_stops_once_one_of_its_seeds_is_solved():
    # seed 0 of each sample is the true pattern (solved in one LP), seed 1 a far-off one: with
    # groups the far seeds stop after that round, without they go on descending
    chain, z, x = _setup(n=5)
    far = latents(*z.shape, seed=9)
    z0, xs = torch.cat([z, far]), torch.cat([x, x])
    group = torch.arange(5).repeat(2)
    alone = solve_pattern_lp(chain, z0, xs, rtol=1e-9, rounds=5, stall=100)
    grouped = solve_pattern_lp(chain, z0, xs, rtol=1e-9, rounds=5, stall=100, group=group)
    assert (grouped.residual[:5] <= 1e-9).all()
    assert (grouped.rounds[5:] == 1).all() and (alone.rounds[5:] > 1).any()


def test_a_kick_moves_the_seed_by_its_scale_and_descends_from_there():
    # a zero kick is the plain descent; a kick of scale s moves each seed by s ||z|| / sqrt(k) ||noise||
    chain, z, x = _setup(n=8)
    z0 = z + 0.05 * latents(*z.shape, seed=3)
    noise = latents(*z.shape, seed=5)
    still = kick_descent(chain, z0, x, torch.zeros_like(noise), scale=0.3, rtol=1e-8, rounds=3)
    plain = solve_pattern_lp(chain, z0, x, rtol=1e-8, rounds=3)
    torch.testing.assert_close(still.z, plain.z)
    moved = kick_descent(chain, z0, x, noise, scale=0.3, rtol=1e-8, rounds=1, budget=None)
    start = z0 + 0.3 * z0.norm(dim=1, keepdim=True) / z0.shape[1] ** 0.5 * noise
    torch.testing.assert_close(moved.z, solve_pattern_lp(chain, start, x, rtol=1e-8, rounds=1).z)
    assert (moved.z - plain.z).norm(dim=1).min() > 0  # every seed went somewhere else
