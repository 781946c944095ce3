"""Exception safety for everything that runs inside the user's training process.

Every callback hook and container entry point is wrapped with :func:`safe`: an internal
error becomes one :class:`TrackingWarning` per function (and a log line), never an
exception in ``model.fit``. With ``SAGETRACK_STRICT=1`` (the test suite's mode) errors
propagate so tests see them.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..errors import TrackingWarning
from .config import strict_mode

__all__ = ["SAFE_ATTR", "safe"]

log = logging.getLogger("sagetrack")
F = TypeVar("F", bound=Callable[..., Any])
SAFE_ATTR = "__sagetrack_safe__"
_warned: set[str] = set()
errors_swallowed = 0


def safe(fn: F) -> F:
    """Run ``fn``; on an internal error warn once and return None (raise in strict mode)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global errors_swallowed
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if strict_mode():
                raise
            errors_swallowed += 1
            name = getattr(fn, "__qualname__", repr(fn))
            if name not in _warned:
                _warned.add(name)
                msg = (f"sagetrack: internal error in {name} ({type(exc).__name__}: {exc}); "
                       "tracking continues where it can, training is unaffected.")
                log.warning(msg, exc_info=True)
                warnings.warn(msg, TrackingWarning, stacklevel=2)
            return None

    setattr(wrapper, SAFE_ATTR, True)
    return cast(F, wrapper)
