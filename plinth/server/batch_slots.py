"""How many batch lines may generate at once: many while the server has no interactive traffic, few
while it has.

The scheduler already puts batch requests behind interactive ones (admission, token budget, preemption,
and batch decodes sit out the steps that prefill an interactive prompt). What it cannot reorder is the
server's own Python work: every batch line in flight is a stream the event loop serves each engine step
(detokenizing, queues, the route's accumulation), and every one of them is a row of each decode step.
Profiled with a 1M-parameter model, that per-stream work is what an interactive first token waits
behind. So while an interactive stream runs -- and for ``quiet_s`` after the last one ended, since
interactive traffic comes in bursts of requests one after another -- lines that finish are replaced only
up to the lower ``busy`` limit; lines already generating finish undisturbed (a line cut off would be
wasted work)::

    slots = LineSlots(max_lines=16, busy_lines=4, quiet_s=metrics.interactive_quiet_s)
    async with slots.hold():
        await run_one_line()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

__all__ = ["LineSlots"]

QUIET_S = 1.0  # interactive traffic counts as present until this long after its last stream ended
_RECHECK_S = 0.1  # a waiting line re-reads the interactive load this often (it changes with no event here)


class LineSlots:
    def __init__(self, max_lines: int, busy_lines: int, quiet_s: Callable[[], float]) -> None:
        self.max_lines, self.busy_lines = max_lines, min(busy_lines, max_lines)
        self.quiet_s = quiet_s
        self.used = 0
        self._freed = asyncio.Event()

    def limit(self) -> int:
        """The lines that may generate now."""
        return self.busy_lines if self.quiet_s() < QUIET_S else self.max_lines

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a free slot under the current limit and hold it for the body."""
        while self.used >= self.limit():
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), _RECHECK_S)
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1
            self._freed.set()
