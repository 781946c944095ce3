"""The sagetrack exception tree.

Every error sagetrack raises on purpose derives from :class:`SagetrackError`::

    SagetrackError
    ├── ConfigurationError      bad argument or environment, raised before any AWS call
    ├── StoreError              the run store could not be read or written
    │   ├── StoreAccessDenied   missing permission, bucket missing (not retryable)
    │   └── RecordNotFound      no such run / record
    │       └── RunNotFound     unknown run id (carries close matches)
    │           └── AmbiguousRunId  a prefix of several run ids (carries them)
    └── CorruptRecord           a record exists but cannot be parsed

    TrackingWarning (a UserWarning)  tracking degraded; training and fit() carry on

Third-party errors (botocore, OSError) are mapped into these at the store boundary
with ``raise ... from exc``, so callers handle one family.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousRunId",
    "ConfigurationError",
    "CorruptRecord",
    "RecordNotFound",
    "RunNotFound",
    "SagetrackError",
    "StoreAccessDenied",
    "StoreError",
    "TrackingWarning",
]


class SagetrackError(Exception):
    """Root of every error sagetrack raises."""


class ConfigurationError(SagetrackError, ValueError):
    """An argument or setting is invalid; the message says what was received."""


class StoreError(SagetrackError):
    """The run store could not be read or written."""


class StoreAccessDenied(StoreError):
    """The store refused the request for good (permissions, missing bucket)."""


class RecordNotFound(StoreError, KeyError):
    """A record that was asked for does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class RunNotFound(RecordNotFound):
    """No run has the given id; ``suggestions`` holds close matches."""

    def __init__(self, run_id: str, suggestions: list[str] | None = None) -> None:
        self.run_id = run_id
        self.suggestions = list(suggestions or [])
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"No run with id {run_id!r} in the store.{hint}")


class AmbiguousRunId(RunNotFound):
    """No run has the given id and it is the start of several; ``candidates`` holds them."""

    def __init__(self, run_id: str, candidates: list[str]) -> None:
        self.run_id = run_id
        self.candidates = self.suggestions = list(candidates)
        shown = ", ".join(self.candidates[:5]) + (", ..." if len(self.candidates) > 5 else "")
        RecordNotFound.__init__(self, f"{run_id!r} is the start of {len(self.candidates)} run "
                                      f"ids: {shown}. Give more of the id.")


class CorruptRecord(SagetrackError):
    """A record exists but is truncated or not valid JSON."""

    def __init__(self, where: str, detail: str) -> None:
        self.where = where
        self.detail = detail
        super().__init__(f"Corrupt record {where}: {detail}")


class TrackingWarning(UserWarning):
    """Tracking degraded (store unavailable, internal error); training is unaffected."""
