"""The client's way into the tracking store.

* :func:`default_tracking_uri` - ``$SAGETRACK_URI``, else the session's default bucket;
* :func:`s3_client_of` - the S3 client of a SageMaker session (capture and reading use it);
* :func:`record_client` - a client of its own for writing records: short timeouts and
  bounded retries, so that a slow or hung store costs a launch seconds, not minutes (the
  session's client waits 60 s per attempt and retries);
* :class:`TrackingStore` - the backend opened from a URI (with ``$SAGETRACK_KMS_KEY_ID``),
  whose writes keep a local copy of what could not be written, under
  ``$SAGETRACK_HOME/unsent/<uri>/<key>``, before the error goes on.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from ..store.backends import Backend, LocalBackend, open_backend, validate_uri

__all__ = ["RECORD_CLIENT_TIMEOUTS", "TrackingStore", "default_tracking_uri", "record_client",
           "s3_client_of"]

#: the record client's connect and read timeouts (seconds) and attempts per request
RECORD_CLIENT_TIMEOUTS = {"connect_timeout": 2.0, "read_timeout": 5.0, "attempts": 2}

_client_lock = threading.Lock()


def default_tracking_uri(session: Any = None) -> str:
    """``$SAGETRACK_URI``, else ``s3://<session default bucket>/sagetrack`` (for an offline
    local session, the ``sagetrack`` folder of its local bucket)."""
    env = settings.URI.get()
    if env:
        return validate_uri(env)
    if session is None:
        from sagemaker.session import Session

        session = Session()
    local_bucket = getattr(session, "local_bucket", None)  # an offline LocalProcessSession
    if isinstance(local_bucket, str) and local_bucket:
        return f"{local_bucket.rstrip('/')}/sagetrack"
    return f"s3://{session.default_bucket()}/sagetrack"


def s3_client_of(session: Any) -> Any:
    """The session's S3 client (one is made from its boto session when it has none)."""
    client = getattr(session, "s3_client", None)
    if client is None:
        client = session.boto_session.client("s3", region_name=session.boto_region_name)
    return client


def record_client(session: Any) -> Any:
    """A new S3 client for record writes, from ``session``'s boto session (same credentials,
    region and endpoint) with :data:`RECORD_CLIENT_TIMEOUTS`."""
    from botocore.config import Config

    limits = RECORD_CLIENT_TIMEOUTS
    config = Config(connect_timeout=limits["connect_timeout"],
                    read_timeout=limits["read_timeout"],
                    retries={"total_max_attempts": int(limits["attempts"]), "mode": "standard"})
    with _client_lock:  # a boto3 session is not safe to make clients from concurrently
        return session.boto_session.client("s3", region_name=session.boto_region_name,
                                           config=config)


def _uri_folder(uri: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", uri).strip("_") or "store"


@dataclass(frozen=True)
class TrackingStore:
    """The store at ``uri``, as the estimator writes to it."""

    uri: str
    backend: Backend

    @classmethod
    def open(cls, uri: str, s3_client: Any) -> TrackingStore:
        """Open ``uri`` (``s3_client`` serves an ``s3://`` one)."""
        return cls(uri, open_backend(uri, client=s3_client if uri.startswith("s3://") else None,
                                     kms_key_id=settings.KMS_KEY_ID.get() or None))

    @property
    def unsent(self) -> Path:
        """Where this store's unsent records are kept."""
        return settings.unsent_dir() / _uri_folder(self.uri)

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write ``key``; False when ``if_absent`` and it exists. A failed write leaves a
        copy under :attr:`unsent` and raises."""
        try:
            if if_absent:
                return bool(self.backend.put_if_absent(key, data))
            self.backend.put(key, data)
            return True
        except Exception:
            self.keep({key: data})
            raise

    def keep(self, files: dict[str, bytes]) -> None:
        """Keep ``files`` (key -> bytes) under :attr:`unsent`."""
        local = LocalBackend(self.unsent)
        for key, data in files.items():
            local.put(key, data)

    def discard(self, keys: list[str]) -> None:
        """Drop the unsent copies of ``keys`` (written to the store since)."""
        for key in keys:
            (self.unsent / key).unlink(missing_ok=True)
