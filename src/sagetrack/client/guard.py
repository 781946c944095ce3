"""Tracking never breaks ``fit()``: each tracking step on the client runs through :func:`attempt`.

A step that fails becomes one :class:`~sagetrack.errors.TrackingWarning` and a log line
naming it, and :func:`attempt` returns None; the job is launched as if untracked. In test
mode (``SAGETRACK_STRICT=1``) the error is raised instead. Only :class:`SkipLaunch`
(``fit(skip_if_done=True)`` returns a completed run instead of launching) always passes:
the user's arguments are checked before any of this runs (validation.py), so at ``fit()``
even a :class:`~sagetrack.errors.ConfigurationError` is a tracking failure.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from .. import settings
from ..errors import TrackingWarning

__all__ = ["SkipLaunch", "attempt", "warn"]

log = logging.getLogger("sagetrack")

T = TypeVar("T")


class SkipLaunch(Exception):
    """Carries the completed identical run out of the SDK's ``fit()`` (``skip_if_done``).

    An Exception, not a BaseException: the SDK's telemetry wrapper around ``fit`` returns
    from ``finally`` and so swallows anything that is not an Exception."""

    def __init__(self, run: Any) -> None:
        super().__init__(run.id)
        self.run = run


def warn(message: str, stacklevel: int = 2) -> None:
    """Log ``message`` and issue it as a TrackingWarning."""
    log.warning(message)
    warnings.warn(message, TrackingWarning, stacklevel=stacklevel + 1)


def attempt(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``fn(*args, **kwargs)``, or None after a TrackingWarning saying sagetrack could not
    ``what``."""
    try:
        return fn(*args, **kwargs)
    except SkipLaunch:
        raise
    except Exception as exc:
        if settings.STRICT.get():
            raise
        warn(f"sagetrack could not {what} ({type(exc).__name__}: {exc}); the job is not "
             f"affected. Unsent records are kept under {settings.unsent_dir()}.", stacklevel=3)
        return None
