"""The time limit and progress bar of invert(): the limit stops the loops and names itself in the
messages of the samples it left open; the bar goes to stderr only, when asked."""

import time

import pytest
import torch

import ganinvert as gi
from ganinvert.budget import Budget
from ganinvert.errors import InvalidInputError

from .conftest import latents, random_mlp


def test_budget_expires_at_its_deadline_and_remembers_the_stage_it_stopped():
    now = [100.0]
    b = Budget(time_limit=5, progress=False, clock=lambda: now[0])
    b.stage("adam")
    assert not b.expired and b.stopped_in is None
    now[0] = 104.9
    b.stage("pattern LP")
    assert not b.expired
    now[0] = 105.0
    assert b.expired and b.stopped_in == "pattern LP"
    b.stage("kick 1")
    assert b.expired and b.stopped_in == "pattern LP"  # the first stage it stopped
    assert b.message() == "stopped by time_limit=5s during pattern LP: the best latent found so far"
    now[0] = 107.0
    b.stage("kick 2")
    b.close()
    assert b.seconds == pytest.approx({"invert": 0.0, "adam": 4.9, "pattern LP": 0.1, "kick #": 2.0})


def test_a_share_ends_one_stage_early_and_is_not_reported_as_the_time_limit():
    now = [100.0]
    b = Budget(time_limit=10, progress=False, clock=lambda: now[0])
    with b.share(2.0):
        now[0] = 101.9
        assert not b.expired
        now[0] = 102.0
        assert b.expired  # the share is over
    assert not b.expired and b.stopped_in is None and b.deadline == 110.0  # the call's own limit is back
    with b.share(50.0):  # a share never outlasts the call's limit, and that limit's stop is kept
        now[0] = 110.0
        assert b.expired
    assert b.expired and b.stopped_in is not None
    free = Budget(progress=False, clock=lambda: now[0])
    with free.share(1.0):
        now[0] = 111.0
        assert free.expired
    assert not free.expired and free.deadline is None


def test_the_lp_stops_at_the_time_limit_and_its_samples_stay_open():
    # mnist_mlp's last layer LP on real digits takes seconds; the IPM asks the limit between
    # iterations, so the pass ends there with the samples APPROXIMATE, none FAILED
    from ganinvert import models
    from ganinvert.models.data import load_mnist
    G = models.load("mnist_mlp").generator.double()
    x = load_mnist(split="held_out")[0][:4].double()
    r = gi.invert(G, x, latent_shape=(20,), method="layerwise", time_limit=0.05)
    assert all(s is gi.Status.APPROXIMATE for s in r.status)
    assert all("stopped by time_limit=0.05s" in m for m in r.messages)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "10", True])
def test_a_time_limit_must_be_positive_seconds(bad):
    with pytest.raises(InvalidInputError, match=r"Expected time_limit as seconds > 0.*Got: "):
        gi.invert(random_mlp([4, 20, 60], seed=0), torch.zeros(1, 60), time_limit=bad)


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(InvalidInputError, match=r"Expected progress=True, False or None.*Got: 'yes'"):
        gi.invert(random_mlp([4, 20, 60], seed=0), torch.zeros(1, 60), progress="yes")


def test_time_limit_stops_auto_and_keeps_each_samples_best_latent():
    # The shipped DCGAN: its last layer contracts, so every sample needs the search (about 0.06 s
    # each, 32 in 1.9 s); 0.5 s is not enough for 32 samples and the limit stops it within one step.
    from ganinvert import models
    G = models.load("dcgan").generator.double()
    z = latents(32, 32, seed=4)
    with torch.no_grad():
        x = G(z)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # torch's one-time optimizer import (~2 s)
    t = time.perf_counter()
    r = gi.invert(G, x, method=gi.Auto(kicks=50), time_limit=0.5, progress=False)
    took = time.perf_counter() - t
    assert took < 0.5 * 1.1 + 1.0  # 10% plus one LP round (generous for a loaded machine)
    open_ = [i for i, s in enumerate(r.status) if s is gi.Status.APPROXIMATE]
    assert open_, "the limit should leave some sample open on this net"
    for i in open_:
        assert r.messages[i].startswith("stopped by time_limit=0.5s during ")
        assert torch.isfinite(r.residual[i])
    for i, s in enumerate(r.status):  # solved samples carry no limit message
        if s.solved:
            assert "time_limit" not in r.messages[i]


def test_progress_bar_goes_to_stderr_only_and_only_when_asked(capfd):
    G = random_mlp([5, 30, 120], seed=1)
    x = G(latents(4, 5, seed=2)).detach()
    gi.invert(G, x, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and "4/4" in err and "sample" in err
    gi.invert(G, x, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
