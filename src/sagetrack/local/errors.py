"""Errors raised by :mod:`sagetrack.local`."""

from __future__ import annotations

from botocore.exceptions import ClientError

from sagetrack.errors import SagetrackError

__all__ = [
    "LocalJobApiError",
    "LocalJobInterrupted",
    "LocalModeError",
    "UnsupportedLocalFeatureError",
]


class LocalModeError(SagetrackError):
    """A local training job could not be prepared, run or reported."""


class UnsupportedLocalFeatureError(LocalModeError, ValueError):
    """The training request uses a SageMaker feature local processes cannot reproduce."""


class LocalJobApiError(LocalModeError, ClientError):  # type: ignore[misc]
    """An API-level error shaped like botocore's ``ClientError`` (e.g. unknown job name).

    Code that catches ``botocore.exceptions.ClientError`` around SageMaker calls keeps
    working unchanged with :class:`~sagetrack.local.LocalProcessSession`.
    """

    def __init__(self, code: str, message: str, operation: str) -> None:
        ClientError.__init__(
            self,
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {}},
            operation,
        )


class LocalJobInterrupted(LocalModeError, KeyboardInterrupt):
    """Ctrl-C while waiting on a job: the job was stopped, then this is raised.

    It is a ``KeyboardInterrupt`` (``except KeyboardInterrupt`` catches it) that is also an
    ``Exception``, because ``Estimator.fit``'s telemetry wrapper swallows bare
    ``BaseException``s (``return`` inside ``finally``) and ``fit`` would return normally.
    """
