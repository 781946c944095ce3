"""Thread helpers shared by the client and the container (standard library only)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

__all__ = ["signals_blocked"]


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
