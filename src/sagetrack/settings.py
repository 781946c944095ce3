"""Every ``SAGETRACK_*`` environment variable, with its type, default and meaning.

Settings are read when used (``settings.LAUNCH_BUDGET.get()``), never at import, so a
test or a notebook that sets a variable sees its effect at once. A value that cannot be
parsed falls back to the default with one log line naming the variable and the value.
Standard library only: this module ships to the training container.

The table in README "Settings" is checked against :data:`ALL` by the test suite.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

__all__ = [
    "ACTIVE_PID",
    "ALL",
    "ENABLED",
    "EXIT_TIMEOUT",
    "EXPERIMENT",
    "HOME",
    "KMS_KEY_ID",
    "LAUNCH",
    "LAUNCH_BUDGET",
    "LOCAL_SKIP_INSTALL",
    "METRICS",
    "OFFLINE",
    "STRICT",
    "TRACK_BATCHES",
    "URI",
    "Setting",
    "unsent_dir",
]

log = logging.getLogger("sagetrack")

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")


def _flag(raw: str) -> bool:
    return raw.strip().lower() in _TRUE


def _seconds(raw: str) -> float:
    value = float(raw)
    if math.isnan(value) or value < 0:
        raise ValueError("expected a number of seconds >= 0")
    return min(value, 24 * 3600.0)  # "inf": wait, within reason


def _count(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected an integer >= 0")
    return value


def _text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, how to parse it, its default and meaning."""

    name: str
    parse: Callable[[str], T]
    default: T
    meaning: str
    where: str  # "client", "container" or "both"

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """The current value (``default`` when unset, empty or unparsable)."""
        env = os.environ if environ is None else environ
        raw = env.get(self.name)
        if raw is None or not raw.strip():
            return self.default
        try:
            return self.parse(raw)
        except (TypeError, ValueError) as exc:
            log.warning("sagetrack: %s=%r is invalid (%s); using %r", self.name, raw[:100],
                        exc, self.default)
            return self.default

    def raw(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The variable's text as set (None when unset)."""
        env = os.environ if environ is None else environ
        return env.get(self.name)


URI: Setting[str] = Setting(
    "SAGETRACK_URI", _text, "",
    "Default tracking store (`s3://bucket/prefix` or a folder) for the estimator, `Store()` "
    "and the CLI; inside a job, where the container writes.", "both")
EXPERIMENT: Setting[str] = Setting(
    "SAGETRACK_EXPERIMENT", _text, "default",
    "Experiment of the run (set by the estimator for the container).", "container")
ENABLED: Setting[bool] = Setting(
    "SAGETRACK", _flag, False,
    "Turns the in-container bootstrap on (set by the estimator).", "container")
TRACK_BATCHES: Setting[int] = Setting(
    "SAGETRACK_TRACK_BATCHES", _count, 0,
    "Also record every N training batches (set by the estimator).", "container")
KMS_KEY_ID: Setting[str] = Setting(
    "SAGETRACK_KMS_KEY_ID", _text, "",
    "KMS key for server-side encryption of records written to S3.", "both")
LAUNCH: Setting[str] = Setting(
    "SAGETRACK_LAUNCH", _text, "",
    "Key of the launch template a tuner or pipeline job turns into its run record (set by "
    "the estimator).", "container")
METRICS: Setting[str] = Setting(
    "SAGETRACK_METRICS", _text, "",
    "JSON list of the user's `metric_definitions` [name, regex] pairs, split over "
    "`SAGETRACK_METRICS_0`, `_1`, ... when long (set by the estimator).", "container")
OFFLINE: Setting[bool] = Setting(
    "SAGETRACK_OFFLINE", _flag, False,
    "No network in the job (network isolation): records travel in the job's output only "
    "(set by the estimator).", "container")
STRICT: Setting[bool] = Setting(
    "SAGETRACK_STRICT", _flag, False,
    "Test mode: internal tracking errors raise instead of becoming a TrackingWarning.", "both")
LAUNCH_BUDGET: Setting[float] = Setting(
    "SAGETRACK_LAUNCH_BUDGET", _seconds, 0.5,
    "Seconds `fit()` waits for provenance capture before the job is created; the rest "
    "completes in the background.", "client")
HOME: Setting[str] = Setting(
    "SAGETRACK_HOME", _text, "~/.sagetrack",
    "sagetrack's own folder on the client: unsent records are kept in `<home>/unsent`.",
    "client")
EXIT_TIMEOUT: Setting[float] = Setting(
    "SAGETRACK_EXIT_TIMEOUT", _seconds, 20.0,
    "Seconds the training process waits at exit for records to reach the store.",
    "container")
ACTIVE_PID: Setting[str] = Setting(
    "SAGETRACK_ACTIVE_PID", _text, "",
    "Internal: the process the bootstrap is active in (child processes stay passive).",
    "container")
LOCAL_SKIP_INSTALL: Setting[bool] = Setting(
    "SAGETRACK_LOCAL_SKIP_INSTALL", _flag, False,
    "Internal, local process mode: set for each host from the session's "
    "`install_requirements` (skips `pip install -r requirements.txt`).", "container")

#: every setting, in the order the README lists them
ALL: tuple[Setting[object], ...] = (  # type: ignore[assignment]
    URI, LAUNCH_BUDGET, HOME, KMS_KEY_ID, STRICT, EXIT_TIMEOUT, ENABLED, EXPERIMENT,
    TRACK_BATCHES, LAUNCH, METRICS, OFFLINE, ACTIVE_PID, LOCAL_SKIP_INSTALL,
)


def unsent_dir() -> Path:
    """Where records that could not be written are kept (``$SAGETRACK_HOME/unsent``)."""
    return Path(HOME.get()).expanduser() / "unsent"
