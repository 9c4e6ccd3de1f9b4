"""What ``invert`` certifies past the inverter's own certificates, for the answers with ``G(z) = x``
that are not EXACT: the uniqueness radius (:mod:`ganinvert.radius`, docs/design.md §3.8), then,
on ReLU chains, global uniqueness by a MILP (:mod:`ganinvert.lp.milp`, §3.9)."""

from __future__ import annotations

import math

import torch

from .blackbox import Generator
from .budget import Budget
from .lp.milp import HARD_UNITS, MAX_UNITS, MILP_SECONDS, certify_global, why_not
from .radius import unique_radius
from .result import Status


def certify_answers(chain: Generator, z: torch.Tensor, x: torch.Tensor, status: list[Status], messages: list[str],
                    methods: list[str], *, observed: torch.Tensor | None, rtol: float, note: str, budget: Budget,
                    enabled: bool = True, milp_seconds: float | None = None) -> torch.Tensor:
    """``(B,)`` float64, each answer's certified uniqueness radius: ``inf`` for EXACT, the local
    certificate for EXACT_NONUNIQUE, 0 for the rest. An answer whose radius is ``inf`` (the chain is
    one injective affine map) is EXACT. EXACT_NONUNIQUE answers whose region is injective (a
    positive radius) then get the MILP against ``x`` (B, n), which makes them EXACT or names a
    second pre-image in the message (``status``, ``messages`` and ``methods`` are updated in place;
    an EXACT message is ``note``). Nothing runs when not ``enabled`` (``invert(radius=False)``, or a
    baseline: :attr:`~ganinvert.Inverter.certifies`), on a black box, or once the time limit has
    passed; the MILP only on ReLU chains of at most ``MAX_UNITS`` hidden units for ``MILP_SECONDS``
    each, or, given ``milp_seconds``, of at most ``HARD_UNITS`` for that long each."""
    radius = torch.tensor([math.inf if s is Status.EXACT else 0.0 for s in status], dtype=torch.float64)
    rows = torch.tensor([s is Status.EXACT_NONUNIQUE for s in status], dtype=torch.bool).nonzero().flatten()
    if not rows.numel() or not enabled or not chain.certifiable:
        return radius
    if budget.expired:  # the solve used the time limit: say so where a radius would have been
        for i in rows.tolist():
            why = f"uniqueness radius not computed: time_limit={budget.time_limit:g}s was used up"
            messages[i] = f"{messages[i]}; {why}" if messages[i] else why
        return radius
    budget.stage("certified uniqueness radius")

    def pick(t: torch.Tensor | None) -> torch.Tensor | None:  # the rows being certified
        return None if t is None else t[rows.to(t.device)]

    radius[rows] = unique_radius(chain, pick(z), observed=pick(observed), stop=lambda: budget.expired)
    for i in rows[torch.isinf(radius[rows])].tolist():  # one injective affine map: unique everywhere
        status[i], messages[i] = Status.EXACT, note
        methods[i] = f"{methods[i]}>affine"
    rows = rows[(radius[rows] > 0) & torch.isfinite(radius[rows])]
    units = MAX_UNITS if milp_seconds is None else HARD_UNITS
    if not rows.numel() or why_not(chain, max_units=units) or budget.expired:
        return radius
    budget.stage("global uniqueness (MILP)")
    verdict = certify_global(chain, pick(z), pick(x), observed=pick(observed), rtol=rtol, left=budget.left,
                             seconds=milp_seconds or MILP_SECONDS)
    for j, i in enumerate(rows.tolist()):
        if verdict.unique[j]:
            status[i], messages[i], radius[i] = Status.EXACT, note, math.inf
            methods[i] = f"{methods[i]}>milp"
        elif not math.isnan(verdict.witness[j, 0].item()):
            messages[i] = verdict.messages[j]
    return radius
