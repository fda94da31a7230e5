"""Reconnect delays: exponential back-off with full jitter.

When a worker drains or dies, every agent it held reconnects at once. A fixed delay (or
exponential without jitter) brings them back in synchronized waves; drawing the delay
uniformly from [0, min(cap, base * 2**attempt)] spreads them over the whole window, which is
the variant that keeps total reconnect work lowest ("full jitter").
"""
from __future__ import annotations

import random
from typing import Callable


def backoff_delay(attempt: int, base: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before reconnect attempt number `attempt` (0 for the first retry).
    `rand` returns a float in [0, 1); tests pass a fixed one."""
    if attempt < 0 or base <= 0 or cap < base:
        raise ValueError("need attempt >= 0 and 0 < base <= cap")
    # 2**attempt overflows float range long after the cap is reached; stop doubling there.
    ceiling = cap if attempt >= 64 else min(cap, base * 2 ** attempt)
    return rand() * ceiling
