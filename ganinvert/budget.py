"""The time limit and progress bar of one :func:`ganinvert.invert` call.

An inversion's loops (the backward pass between layers, Adam between steps, L-BFGS between
groups of iterations, the pattern descent between LP rounds, ``auto`` between its seed waves
and kicks) ask :attr:`Budget.expired` before each unit of work and stop when it is true; every
sample keeps the best latent found so far. A unit in flight is not interrupted, so the limit is
kept to within one LP round. :func:`ganinvert.invert` then reports the samples still without
``G(z) = x`` as APPROXIMATE with a message naming the limit and the stage it stopped.

The bar (tqdm, on stderr only) counts samples finished; it shows by default only when stderr
is a terminal. The budget is passed down explicitly: there is no global state.
"""

from __future__ import annotations

import math
import re
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm.auto import tqdm

from .errors import InvalidInputError


class Budget:
    """A deadline and a progress bar for ``total`` samples.

    Args:
        time_limit: seconds from construction, or None for no limit.
        progress: show the bar (None: only when stderr is a terminal).
        total: samples in the batch.
        clock: seconds as a float (a test may pass its own).
    """

    def __init__(self, *, time_limit: float | None = None, progress: bool | None = None, total: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                       or not time_limit > 0 or not math.isfinite(time_limit)):
            raise InvalidInputError(f"Expected time_limit as seconds > 0 (or None for no limit), Got: {time_limit!r}")
        if progress is not None and not isinstance(progress, bool):
            raise InvalidInputError(f"Expected progress=True, False or None (a terminal decides), Got: {progress!r}")
        self.time_limit, self._clock = time_limit, clock
        self.deadline = None if time_limit is None else clock() + float(time_limit)
        self.stopped_in: str | None = None  # the stage the limit stopped, once it has
        self._stage = "invert"
        self.seconds: dict[str, float] = {}  # wall time per stage, numbers in its name folded to '#'
        self._since = clock()
        self._show = sys.stderr.isatty() if progress is None else progress
        self._bar = None
        if total:
            self.set_total(total)

    @property
    def expired(self) -> bool:
        """True once the deadline has passed; the first time, records the stage it stopped."""
        if self.deadline is None or self._clock() < self.deadline:
            return False
        if self.stopped_in is None:
            self.stopped_in = self._stage
        return True

    def left(self) -> float:
        """Seconds until the deadline (``inf`` without a limit; 0 once it has passed)."""
        return math.inf if self.deadline is None else max(0.0, self.deadline - self._clock())

    @contextmanager
    def share(self, seconds: float) -> Iterator["Budget"]:
        """Within the block the deadline comes at most ``seconds`` from now (one stage's share of
        the time); after it the call's own deadline is back, and a stop the share alone caused is
        not reported as the time limit's."""
        own = self.deadline
        cap = self._clock() + max(0.0, float(seconds))
        self.deadline = cap if own is None else min(own, cap)
        try:
            yield self
        finally:
            self.deadline = own
            if own is None or self._clock() < own:
                self.stopped_in = None

    def set_total(self, n: int) -> None:
        """Start the bar for ``n`` samples (known once the input is validated)."""
        if self._show and self._bar is None:
            self._bar = tqdm(total=int(n), file=sys.stderr, unit="sample", desc=self._stage, dynamic_ncols=True)

    def stage(self, name: str) -> None:
        """The work now running (shown on the bar, named in the limit's message, timed in
        :attr:`seconds`)."""
        self._lap()
        self._stage = name
        if self._bar is not None:
            self._bar.set_description(name, refresh=False)

    def finished(self, n: int) -> None:
        """``n`` more samples need no further work."""
        if n > 0 and self._bar is not None:
            self._bar.update(n)

    def _lap(self) -> None:
        now = self._clock()
        key = re.sub(r"\d+", "#", self._stage)
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self._since
        self._since = now

    def close(self) -> None:
        """Fill and close the bar (every sample has its answer); the last stage's time is counted."""
        self._lap()
        self._stage = "invert"
        if self._bar is not None:
            self._bar.set_description("invert", refresh=False)
            self._bar.update(max(0, self._bar.total - self._bar.n))
            self._bar.close()
            self._bar = None

    def message(self) -> str:
        """The note for samples the limit left open."""
        return (f"stopped by time_limit={self.time_limit:g}s during {self.stopped_in}: the best latent found "
                "so far")


def unlimited() -> Budget:
    """A budget with no limit and no bar (for inverters called outside :func:`ganinvert.invert`)."""
    return Budget(progress=False)
