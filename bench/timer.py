"""The one timer every benchmark uses: the best of a few calls (the least disturbed by other work
on a shared machine). Not a benchmark itself, hence no `bench_` prefix (`make bench` runs those)."""

from __future__ import annotations

import time


def best_of(fn, repeat: int, *, warmup: bool = False) -> float:
    """Seconds of the fastest of `repeat` calls of `fn()` (after one untimed call with `warmup`)."""
    if warmup:
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
