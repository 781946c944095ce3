"""Thread helpers shared by the client and the container (standard library only)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["map_io", "signals_blocked"]

A = TypeVar("A")
B = TypeVar("B")

#: items done in turn first, to see whether the work waits or computes
PROBE = 8


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Start threads inside this block: they inherit a mask that blocks SIGTERM and SIGINT,
    so the kernel delivers those signals to the main thread, where Python runs handlers.
    A stop (SIGTERM) or Ctrl-C then interrupts the script's sleep or I/O exactly as it
    would without sagetrack's threads."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def map_io(fn: Callable[[A], B], items: Iterable[A], *, workers: int,
           waits: bool = False) -> list[B]:
    """``fn`` over ``items`` (work that reads or writes files), results in order.

    With ``waits`` (the network: S3) on ``workers`` threads. Else the first few are done
    in turn and timed: when they mostly computed (a local disk), the rest are done in
    turn too, since threads would only share one interpreter and add switching; when they
    mostly waited (a network-mounted folder), the rest go to ``workers`` threads."""
    todo = list(items)
    out: list[B] = []
    if not waits:
        probe = todo[:PROBE]
        wall, cpu = time.perf_counter(), time.process_time()
        out = [fn(item) for item in probe]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        todo = todo[len(probe):]
        if not todo or wall < 2 * cpu + 0.001 * len(probe):  # CPU-bound: keep going
            return out + [fn(item) for item in todo]
    if len(todo) < 2:
        return out + [fn(item) for item in todo]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return out + list(pool.map(fn, todo))
