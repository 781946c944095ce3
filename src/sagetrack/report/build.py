"""Generate, publish and keep regenerating the report of a store."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from ..api import Store
from ..errors import ConfigurationError
from .site import SiteResult, generate
from .target import MAX_EXPIRES, Target

__all__ = ["build", "parse_expires", "publish", "watch"]

DEFAULT_OUTPUT = "sagetrack-report"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _store(store: Store | str) -> Store:
    return Store(store) if isinstance(store, str) else store


def parse_expires(value: str | int) -> int:
    """Seconds from ``3600``, ``"90m"``, ``"12h"`` or ``"7d"`` (at most 7 days, as S3
    allows for a presigned URL)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", str(value))
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"] if match else 0
    if not 1 <= seconds <= MAX_EXPIRES:
        raise ConfigurationError(
            "Invalid expiry of the shared link: give seconds or a number with s, m, h or d, "
            f"from 1 s to 7d (S3's limit for presigned URLs). Received: {value!r}")
    return seconds


def build(store: Store | str, output: str | Path = DEFAULT_OUTPUT, *,
          experiments: Sequence[str] | None = None) -> SiteResult:
    """Write the report of ``store`` (a :class:`sagetrack.Store` or its URI) into the
    folder ``output``; open ``result.url`` (``file://.../index.html``) in a browser."""
    return generate(_store(store), Target.folder(output), experiments=experiments)


def publish(store: Store | str, *, experiments: Sequence[str] | None = None,
            expires: int | str = MAX_EXPIRES) -> SiteResult:
    """Write the report beside the records, in ``<store>/_site/``. For an S3 store,
    ``result.url`` is a presigned URL of the site, valid ``expires`` (seconds, or
    ``"12h"``, ``"7d"``); for a folder, the ``file://`` URL of its ``index.html``."""
    opened = _store(store)
    return generate(opened, Target.beside(opened), experiments=experiments, share=True,
                    expires=parse_expires(expires))


def watch(store: Store | str, *, output: str | Path | None = DEFAULT_OUTPUT,
          experiments: Sequence[str] | None = None, interval: float = 15.0,
          expires: int | str = MAX_EXPIRES,
          on_update: Callable[[SiteResult], None] | None = None,
          stop: threading.Event | None = None) -> None:
    """Regenerate the report every ``interval`` seconds until ``stop`` is set (or
    Ctrl-C), rewriting only what changed; ``output=None`` publishes beside the records.
    The pages reload their data on the same interval. ``on_update`` gets each result."""
    if not interval > 0:
        raise ConfigurationError(f"Invalid --interval: expected seconds > 0. Received: "
                                 f"{interval!r}")
    opened = _store(store)
    target = Target.beside(opened) if output is None else Target.folder(output)
    seconds = parse_expires(expires)
    stop = stop or threading.Event()
    first = True
    while True:
        # the index is brought up to date once; runs that settle meanwhile are few
        result = generate(opened, target, experiments=experiments, watch=interval,
                          share=output is None, resign=first, expires=seconds,
                          update_index=first)
        first = False
        if on_update is not None:
            on_update(result)
        if stop.wait(interval):
            return
