"""Which inverter ``invert``'s options pick: the method named or given, the noisy LP for
``norm``/``noise``, ``auto`` otherwise (the default), and for half-precision data the path that
treats its rounding as the noise it is."""

from __future__ import annotations

import inspect
import logging

import torch

from .chain import Chain
from .errors import InvalidInputError
from .inverters import INVERTERS, Auto, Inverter, Noisy

logger = logging.getLogger(__name__)


#: what ``invert(method=...)`` defaults to
DEFAULT_METHOD = "auto"


def left_to_us(method: str | Inverter, *, norm: str | None, noise: float | None, measurement: object) -> bool:
    """The caller chose no path: the default method, and no option that selects another."""
    return (isinstance(method, str) and method == DEFAULT_METHOD and norm is None and noise is None
            and measurement is None)


def choose_inverter(method: str | Inverter, *, norm: str | None, noise: float | None,
                    measurement: object, mask: object, seed: int) -> Inverter:
    """The inverter ``invert``'s options ask for: ``norm``/``noise`` select the noisy LP, and
    otherwise the default is ``auto``; an inverter named by a string takes ``seed`` (an instance
    keeps its own)."""
    if norm is not None or noise is not None:
        if not (isinstance(method, str) and method == DEFAULT_METHOD):
            raise InvalidInputError(f"Expected: norm=/noise= with the default method (they select the noisy "
                                    f"layer-wise LP), Got: method={method!r}. Hint: pass "
                                    "method=ganinvert.Noisy(norm=..., noise=...) or drop method")
        method = Noisy(norm=norm or "linf", noise=noise)
    if measurement is not None:
        if mask is not None or norm is not None or noise is not None:
            raise InvalidInputError("Expected: measurement= alone, Got: measurement= with mask=/norm=/noise=. "
                                    "Fix: fold a mask into M (keep its observed rows)")
    if isinstance(method, Inverter):
        return method
    if isinstance(method, str) and method in INVERTERS:
        cls = INVERTERS[method]
        return cls(seed=seed) if "seed" in inspect.signature(cls).parameters else cls()
    raise InvalidInputError(f"unknown method {method!r}; Expected one of {sorted(INVERTERS)} "
                            "or an Inverter instance such as ganinvert.Layerwise(solver='highs')")


_LOW_PRECISION = (torch.float16, torch.bfloat16)


def for_precision(inverter: Inverter, chain: Chain, generator: object, x: torch.Tensor, *, default: bool,
                   seed: int) -> tuple[Inverter, str]:
    """Half-precision observations or generators are not exact images of any latent: their
    rounding (relative 2^-8 in bfloat16, 2^-11 in float16, at every layer) is noise. With the
    default method they are inverted as noisy data: the l_inf LP with the level estimated where the
    output activation has its rows, else ``auto``. Returns the inverter and the note each sample's
    message starts with ("" when nothing changed)."""
    params = getattr(generator, "parameters", None)
    first = next(params(), None) if callable(params) else None
    low = [t for t in (x.dtype, None if first is None else first.dtype) if t in _LOW_PRECISION]
    act = chain.output_act
    if not low or not default or act is None:  # a black box: Adam already fits its data as noisy
        return inverter, ""
    chosen = Noisy(norm="linf") if act.noisy_rows else Auto(seed=seed)
    how = "norm='linf' (the noisy l_inf LP, noise level estimated)" if act.noisy_rows else "method='auto'"
    note = (f"{low[0]} rounding is noise (about {torch.finfo(low[0]).eps / 2:.0e} relative at every layer), so "
            f"this ran as {how}; pass method=ganinvert.Layerwise() to insist on the exact LP")
    logger.info("%s", note)
    return chosen, note
