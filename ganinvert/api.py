"""``invert``: validate at the boundary, adapt the generator, dispatch, report per sample."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

from .adapters import Converter, to_chain
from .blackbox import Generator, black_box
from .budget import Budget
from .certificates import certify_answers
from .chain import Chain
from .conditions import (
    ConditionsResult,
    each_condition,
    invert_candidates,
    point_to_cond,
)
from .defaults import DEFAULT_METHOD, choose_inverter, for_precision, left_to_us
from .errors import (
    InvalidInputError,
    InversionError,
    ShapeMismatchError,
    SolverError,
    UnsupportedLayerError,
)
from .gradients import attach
from .inverters import Inverter
from .inverters.base import RawSolution, assign_status
from .observations import as_batch, invalid_samples, measured_chain, observed_mask
from .result import InversionResult, Status
from .tolerances import relative_residual, tolerance

logger = logging.getLogger(__name__)


def default_rtol(dtype: torch.dtype) -> float:
    """Relative residual tolerance ``||G(z) - x|| / ||x||`` that counts as ``G(z) = x``: the
    observation cannot be more exact than its own dtype (:mod:`ganinvert.tolerances`)."""
    return tolerance(dtype).residual


def _solve_masked(inverter: Inverter, chain: Generator, x: torch.Tensor, mask: torch.Tensor, rtol: float,
                  budget: Budget) -> RawSolution:
    """Solve each group of samples sharing a mask on the chain restricted to its observed rows."""
    patterns, group = torch.unique(mask, dim=0, return_inverse=True)
    out = RawSolution.empty(x.shape[0], len(chain), chain.in_dim, dtype=x.dtype, device=x.device)
    for g in range(patterns.shape[0]):
        rows = (group == g).nonzero().flatten()
        cols = patterns[g].nonzero().flatten()
        out.scatter(rows, inverter.solve(chain.observe(cols), x[rows][:, cols], rtol=rtol, budget=budget))
    return out


def invert(generator: nn.Module | Chain, x: torch.Tensor, *, method: str | Inverter = DEFAULT_METHOD,
           cond: torch.Tensor | Sequence[torch.Tensor] | None = None,
           mask: torch.Tensor | None = None, measurement: torch.Tensor | None = None,
           norm: str | None = None, noise: float | None = None,
           rtol: float | None = None, latent_shape: Sequence[int] | None = None,
           converters: Mapping[type, Converter] | None = None, check_chain: bool = True,
           throw: bool = False, seed: int = 0, time_limit: float | None = None,
           progress: bool | None = None, differentiable: bool = False, radius: bool = True,
           milp_seconds: float | None = None) -> InversionResult:
    """Find latents ``z`` with ``generator(z) = x``, certifying uniqueness where possible.

    Args:
        generator: an ``nn.Module`` in eval mode, any callable ``z -> x`` such as ``vae.decode``
            (see :func:`ganinvert.to_chain`), or a ``Chain`` (convert once with ``to_chain`` when
            inverting many batches).
        x: observations ``(B, *out)`` or one ``(*out)``, any float dtype, any device: the inversion
            runs on the generator's device (x is moved there, with a logged note) and the results
            come back on x's.
        method: ``"auto"`` (default: the layer-wise pass, then the exact searches for the samples
            it leaves open, and for observations it proves outside the range the projection onto
            it), ``"layerwise"`` (the layer-wise pass alone), ``"adam"`` (the baseline), ... (the
            names of :data:`ganinvert.INVERTERS`), or an inverter instance carrying options, e.g.
            ``ganinvert.Layerwise(solver="highs")``. ``auto`` costs what ``layerwise`` costs on
            samples the layer-wise pass certifies.
        cond: a conditional generator's other inputs, ``G(z, *cond)``: a tensor or a tuple of
            tensors, batch first (one row per sample, or one row for all). The batch is split by
            condition; with it fixed, whatever the generator computes from it alone (a label's
            embedding, its concatenation with ``z``) is a constant of the chain, and the exact
            engine runs as on an unconditional generator (:mod:`ganinvert.conditions`). For an
            unknown condition see :func:`invert_conditions`.
        mask: partial observations (inpainting): bool, True where a pixel is observed, shaped
            like one output (shared by the batch) or ``(B, *out)``. Unobserved pixels of ``x``
            are ignored (they may hold anything, NaN included); residuals are measured on the
            observed ones. A row selection commutes with the activations, so the exact methods
            apply unchanged to the observed rows.
        measurement: compressed sensing: a dense ``M`` (m, n), n the generator's flat output
            size, and observations ``x = M G(z)`` shaped ``(B, m)``. ``M`` does not commute with
            the activations, so the layer-wise pass alone rarely applies; ``"auto"`` (the default)
            runs its searches with ``M`` as the last, linear layer. Answers are at best
            EXACT_NONUNIQUE when ``m < n``. ``x_hat`` is the image ``G(z)``; ``residual`` is measured on ``x``.
        norm, noise: noisy observations: ``norm="linf"`` (the l_inf LP per layer with the
            threshold schedule), ``"l1"`` (the "relax" LP per layer) or ``"l2"`` (least squares
            on the active set), ``noise`` the l_inf noise level of x (None: estimated from x as
            the threshold where the last layer's l_inf LP turns feasible, found by bisection:
            a lower bound on the true level). Shorthand for ``method=ganinvert.Noisy(...)``;
            results then carry ``fit_residual``, the achieved ``||G(z) - x||`` in the chosen
            norm, and ``bound``, the certified latent error where the theory gives one (linf/l2
            with ``noise`` given).
        rtol: ``||G(z) - x|| / ||x||`` that counts as exact; default 1e-6 for float64 x,
            1e-4 for float32, 1e-2 for half precision.
        latent_shape: per-sample latent shape when it cannot be inferred.
        converters: extra module converters for :func:`ganinvert.to_chain`.
        check_chain: verify the chain against the module on random latents.
        throw: raise :class:`InversionError` unless every sample has ``G(z) = x``
            (:class:`SolverError`, a subclass, when a solver broke down on some sample).
        seed: seed of every random stream: the chain check's latents, and the starts of an inverter
            named by a string (``method="adam"``, ``"auto"``...; an inverter instance keeps the
            seed it was built with).
        time_limit: seconds for the whole call, or None. The inverter's loops stop at the limit
            (within one LP round); samples still without ``G(z) = x`` come back with their best
            ``z``, status APPROXIMATE and a message naming the limit (:mod:`ganinvert.budget`).
        progress: a progress bar on stderr (never stdout); None shows it only when stderr is a
            terminal.
        differentiable: ``z`` and ``x_hat`` carry autograd graphs to ``x`` and to the generator's
            parameters (:mod:`ganinvert.gradients`). Samples with ``G(z) = x``: the weighted
            least-squares solution of every layer's active equations at the latent found,
            chained from the last layer to the first (on EXACT samples the certified answer; its
            gradient the exact derivative of the answer map). Others: the least-squares
            projection of x onto the image of z's activation region (a convex QP there, at least
            as close to x as z; ``z`` itself where z minimises the misfit in its region), with the
            derivative of its active set. ``result.differentiable``
            marks the samples with a gradient; one reaching any other sample raises
            :class:`NotDifferentiableError`. Not with ``measurement=``, and not under
            ``torch.func`` transforms (``vmap``, ``grad``): the solvers branch on values.
        radius: certify what the layer-wise pass could not, for the samples with ``G(z) = x`` that are
            not EXACT: ``result.unique_radius`` (:mod:`ganinvert.radius`; the chain's Jacobian at
            each, in float64: about 2 ms/sample on a 64-256-256-784 MLP, 0.15 s on a DCGAN on 2 CPU
            cores), and, on ReLU chains with at most 32 hidden units, global uniqueness by a MILP
            (:mod:`ganinvert.lp.milp`, up to 2 s per sample, within ``time_limit``), which makes a
            sample EXACT or names a second pre-image. False skips both (radius 0); the baselines
            (Adam, GD, the encoder) never run them, so their times stay the plain method's.
        milp_seconds: the global MILP's time per sample. None: 2 s, and only on ReLU chains of at
            most 32 hidden units, where it pays. A number: up to that per sample on any ReLU
            chain (the paper's 20-60-784 decoder at 30 s: 2 of 12 sparse digits certified), within
            ``time_limit``.

    Returns:
        :class:`InversionResult` with ``z`` and ``x_hat`` in x's dtype and device.

    Raises:
        InvalidInputError, ShapeMismatchError: bad ``x`` or options (a bad *sample* instead
            gets status INVALID). Adapter errors from :func:`ganinvert.to_chain`.
        InversionError, SolverError: with ``throw=True`` only.
    """
    # torch has no public test for "inside vmap/grad"; this private one exists since torch 2.0
    if differentiable and getattr(torch._C, "_are_functorch_transforms_active", lambda: False)():
        raise InvalidInputError("Expected: invert(differentiable=True) outside torch.func transforms, Got: a call "
                                "under vmap/grad/jacrev. The solvers branch on the data, so they cannot be "
                                "vmapped; Fix: loop over the batch, or use torch.autograd on the result")
    if cond is not None:
        result = each_condition(invert, generator, x, cond, method=method, mask=mask, measurement=measurement,
                                norm=norm, noise=noise, rtol=rtol, latent_shape=latent_shape, converters=converters,
                                check_chain=check_chain, seed=seed, time_limit=time_limit, progress=progress,
                                differentiable=differentiable, radius=radius, milp_seconds=milp_seconds)
        if throw:
            _throw(result)
        return result
    t0 = time.perf_counter()
    budget = Budget(time_limit=time_limit, progress=progress)  # the clock starts with the call
    try:
        result = _invert(generator, x, budget, t0, method=method, mask=mask, measurement=measurement, norm=norm,
                         noise=noise, rtol=rtol, latent_shape=latent_shape, converters=converters,
                         check_chain=check_chain, seed=seed, differentiable=differentiable, radius=radius,
                         milp_seconds=milp_seconds)
    finally:
        budget.close()
    result.timings.update({f"stage: {k}": v for k, v in budget.seconds.items() if k != "invert"})
    logger.info("%s", result.summary())
    if throw:
        _throw(result)
    return result


def _invert(generator, x, budget: Budget, t0: float, **options) -> InversionResult:
    """:func:`invert`'s three steps, timed."""
    job = _prepare(generator, x, **options)
    t_adapt = time.perf_counter()
    budget.set_total(job.x.shape[0])
    raw = _solve(job, budget)
    graph = _differentiate(job, raw) if job.graph_chain is not None else None
    t_solve = time.perf_counter()
    result = _report(job, raw, budget, timings={"adapt": t_adapt - t0, "solve": t_solve - t_adapt})
    if graph is not None:
        z, defined = graph
        result.z = z.reshape(-1, *job.image_chain.in_shape).to(dtype=job.dtype, device=job.out_device)
        result.x_hat = job.graph_chain.forward(z).to(dtype=job.dtype, device=job.out_device)
        result.differentiable = defined
        if not job.batched:  # differentiable stays (1,), like residual and status
            result.z, result.x_hat = result.z[0], result.x_hat[0]
    result.timings["total"] = time.perf_counter() - t0
    return result


@dataclass(frozen=True)
class _Job:
    """What :func:`invert` validated: the inverter, the chain it solves (the generator, with the
    measurement as a last layer under ``measurement=``) and the generator's own, the observations
    ``(B, n)`` in float64 on their device (unobserved pixels zeroed), the observed mask, per sample
    why it is INVALID ("" when valid), and the caller's dtype and batch layout."""

    inverter: Inverter
    chain: Generator
    image_chain: Generator
    x: torch.Tensor
    observed: torch.Tensor | None
    invalid: list[str]
    rtol: float
    dtype: torch.dtype
    batched: bool
    measured: bool
    out_device: torch.device  # x's, where the results go
    note: str  # what every valid sample's message starts with ("" for none)
    graph_chain: Chain | None = None  # differentiable=True: the chain and x on the autograd graph
    x_graph: torch.Tensor | None = None
    radius: bool = True  # compute the certified uniqueness radius
    milp_seconds: float | None = None  # the global MILP's time per sample (None: the default's gate)

    @property
    def valid(self) -> torch.Tensor:
        """``(B,)`` bool on the CPU: samples with no reason to be INVALID."""
        return torch.tensor([not r for r in self.invalid], dtype=torch.bool)


def _prepare(generator, x, *, method, mask, measurement, norm, noise, rtol, latent_shape, converters,
             check_chain, seed, differentiable, radius, milp_seconds) -> _Job:
    """Options and validation: a bad call raises, a bad sample gets its reason."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidInputError(f"Expected: seed as an int in [0, 2**63), Got: {seed!r}")
    inverter = choose_inverter(method, norm=norm, noise=noise, measurement=measurement, mask=mask, seed=seed)
    if milp_seconds is not None and (isinstance(milp_seconds, bool) or not isinstance(milp_seconds, (int, float))
                                     or not 0 < milp_seconds < math.inf):
        raise InvalidInputError(f"Expected milp_seconds as seconds > 0 (or None for the default), Got: {milp_seconds!r}")
    if rtol is not None and not 0 < rtol < 1:
        raise InvalidInputError(f"Expected 0 < rtol < 1, Got: rtol={rtol}")
    if differentiable and measurement is not None:
        raise InvalidInputError("Expected: differentiable=True without measurement=, Got: both. A measurement "
                                "mixes the pixels, so no layer's active equations pin its input; Fix: invert "
                                "without differentiable=True")
    try:
        image_chain, inverter, adapted = _adapt(generator, inverter, latent_shape=latent_shape, converters=converters,
                                                check_chain=check_chain, seed=seed, differentiable=differentiable)
    except ShapeMismatchError as e:
        point_to_cond(generator, x, e)
        raise
    chain = image_chain if measurement is None else measured_chain(image_chain, measurement)
    xb, batched = as_batch(x, chain.out_shape)
    inverter, note = for_precision(inverter, image_chain, generator, x, seed=seed,
                                   default=left_to_us(method, norm=norm, noise=noise, measurement=measurement))
    note = "; ".join(n for n in (adapted, note) if n)
    rtol = default_rtol(x.dtype) if rtol is None else float(rtol)
    device = chain.device  # the generator's device governs; results go back to x's
    if x.device != device:
        logger.info("x is on %s and the generator on %s: inverting on %s", x.device, device, device)
        xb = xb.to(device)
    graph_chain = chain.to(dtype=torch.float64) if differentiable else None
    chain = (graph_chain or chain.to(dtype=torch.float64)).detach()  # what the solvers work on
    x_graph = xb.to(torch.float64).reshape(xb.shape[0], -1) if differentiable else None
    x64 = xb.detach().to(torch.float64).reshape(xb.shape[0], -1)  # (B, n)
    obs = None if mask is None else observed_mask(mask, chain.out_shape, x64.shape[0], device)
    if obs is not None:  # what is not observed is not data: zero it so validation ignores it
        x64 = torch.where(obs, x64, torch.zeros_like(x64))
    invalid = invalid_samples(chain, x64, rtol, slack=inverter.output_slack)
    if obs is not None:  # a sample whose mask hides every pixel has nothing to invert: its own status
        invalid = [r if seen else "its mask observes no pixel; Expected at least one True per sample's mask"
                   for r, seen in zip(invalid, obs.any(1).tolist())]
    return _Job(inverter, chain, image_chain, x64, obs, invalid, rtol, x.dtype, batched, measurement is not None,
                x.device, note, graph_chain, x_graph, bool(radius), milp_seconds)


def _adapt(generator, inverter: Inverter, *, latent_shape, converters, check_chain, seed,
           differentiable) -> tuple[Generator, Inverter, str]:
    """The generator as a chain, or, where no converter knows one of its operations, as a
    :class:`~ganinvert.blackbox.BlackBox` for the inverter's search that needs only gradients
    (:meth:`~ganinvert.Inverter.without_chain`). Returns the generator, the inverter and the note
    each sample's message starts with ("" for a chain)."""
    try:
        return to_chain(generator, latent_shape=latent_shape, converters=converters, check=check_chain, seed=seed,
                        differentiable=differentiable), inverter, ""
    except UnsupportedLayerError as e:
        search = inverter.without_chain()
        if search is None or differentiable:
            needs = ("differentiable=True differentiates the layers' active sets" if differentiable
                     else f"method {inverter.name!r} solves the layers' LPs")
            raise UnsupportedLayerError(f"Expected: a generator whose every operation converts to a chain ({needs}), "
                                        f"Got: {str(e).rstrip('.')}. Fix: method='adam', 'gd' or the default "
                                        "'auto' invert any differentiable generator, without a certificate") from e
        box = black_box(generator, why=str(e), latent_shape=latent_shape)
        note = f"not certifiable: {str(e).rstrip('.')}; inverted by {search.name} on gradients alone"
        logger.info("%s", note)
        return box, search, note


def _differentiate(job: _Job, raw: RawSolution) -> tuple[torch.Tensor, torch.Tensor]:
    """``differentiable=True``: :func:`ganinvert.gradients.attach` on the valid samples."""
    return attach(job.graph_chain, job.x_graph, job.x, raw.z, observed=job.observed, valid=job.valid,
                           invalid=job.invalid, rtol=job.rtol, lp_layer=job.inverter.lp_layer)


def _solve(job: _Job, budget: Budget) -> RawSolution:
    """The inverter on the valid samples; INVALID ones keep a zero latent and their reason."""
    B, x = job.x.shape[0], job.x
    out = RawSolution.empty(B, len(job.chain), job.chain.in_dim, device=x.device, method="none")
    out.messages = list(job.invalid)
    idx = job.valid.nonzero().flatten().to(x.device)
    if idx.numel():
        raw = (job.inverter.solve(job.chain, x[idx], rtol=job.rtol, budget=budget) if job.observed is None
               else _solve_masked(job.inverter, job.chain, x[idx], job.observed[idx], job.rtol, budget))
        out.scatter(idx, raw)
    return out


def _report(job: _Job, raw: RawSolution, budget: Budget, *, timings: dict[str, float]) -> InversionResult:
    """``G(z)`` checked against ``x`` (observed pixels), a status per sample, in the caller's dtype."""
    B, x = job.x.shape[0], job.x
    with torch.no_grad():
        outs = job.chain.forward_all(raw.z)
    valid = job.valid
    nan = torch.full((B,), float("nan"), dtype=torch.float64)
    residual = torch.where(valid, relative_residual(outs[-1], x, observed=job.observed).cpu(), nan)
    status, messages = assign_status(raw, residual, rtol=job.rtol, invalid=job.invalid, layers=job.chain.certifiable)
    if job.note:
        messages = [m if job.invalid[i] else f"{job.note}; {m}" if m else job.note for i, m in enumerate(messages)]
    if budget.stopped_in is not None:  # the limit, not the method, left these samples open
        for i, s in enumerate(status):
            if s is Status.APPROXIMATE:
                messages[i] = f"{budget.message()}; {messages[i]}"
    fit_residual = None
    if job.inverter.fit_order is not None:  # the misfit in the norm the fit minimised
        diff = outs[-1] - x if job.observed is None else (outs[-1] - x) * job.observed  # (B, n)
        fit = torch.linalg.vector_norm(diff, ord=job.inverter.fit_order, dim=1).cpu()
        fit_residual = torch.where(valid, fit, nan)
    radius = certify_answers(job.chain, raw.z, x, status, messages, raw.methods, observed=job.observed, rtol=job.rtol,
                             note=job.note, budget=budget, enabled=job.radius and job.inverter.certifies,
                             milp_seconds=job.milp_seconds)
    x_hat = outs[-2] if job.measured else outs[-1]  # measured: the image G(z), not its measurements
    x_hat = x_hat.reshape(B, *job.image_chain.out_shape).to(dtype=job.dtype, device=job.out_device)
    z = raw.z.reshape(B, *job.image_chain.in_shape).to(dtype=job.dtype, device=job.out_device)
    one = (lambda t: t) if job.batched else (lambda t: t[0])
    return InversionResult(z=one(z), x_hat=one(x_hat), status=status, residual=residual,
                           layer_residuals=raw.layer_residuals, unique=raw.unique, methods=raw.methods,
                           messages=messages, method=job.inverter.name, batched=job.batched,
                           bound=nan.clone() if raw.bound is None else raw.bound, fit_residual=fit_residual,
                           timings=timings, unique_radius=radius)


def _throw(result: InversionResult) -> None:
    """``throw=True``: :class:`SolverError` when a solver broke down on some sample, else
    :class:`InversionError` when some sample has no ``G(z) = x``."""
    bad = [i for i, s in enumerate(result.status) if not s.solved]
    if not bad:
        return
    failed = [i for i in bad if result.status[i] is Status.FAILED]
    first = failed[0] if failed else bad[0]
    error = SolverError if failed else InversionError
    raise error(f"{len(bad)} of {len(result.status)} samples not inverted exactly ({result.counts()}); "
                f"first: sample {first}: {result.status[first].name}: {result.messages[first]}")


def invert_conditions(generator: nn.Module, x: torch.Tensor, candidates: torch.Tensor | Sequence[torch.Tensor], *,
                      time_limit: float | None = None, **options) -> ConditionsResult:
    """Which of the ``candidates`` conditions explain each image of ``x`` (:mod:`ganinvert.conditions`):
    :func:`invert` with ``cond=`` each candidate in turn, the time limit shared among them."""
    return invert_candidates(invert, generator, x, candidates, time_limit=time_limit, **options)
