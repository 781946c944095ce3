"""Where a report goes: a folder of its own, or ``<store>/_site/`` beside the records.

A folder given with ``-o DIR`` is written directly (atomically, file by file). A site
published beside the records is written through the store's backend, like records: the
same credentials, encryption and redaction, except ``share.html`` (see :meth:`Target.put`).
On S3, :meth:`Target.url` gives presigned URLs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from .. import settings
from .._version import __version__
from ..api import Store
from ..errors import ConfigurationError, RecordNotFound
from ..store.backends import LocalBackend, S3Backend
from ..store.schema import SITE_PREFIX

__all__ = ["MANIFEST", "MAX_EXPIRES", "REPORT_FORMAT", "SHARE", "Folder", "Target",
           "content_type"]

REPORT_FORMAT = "sagetrack-report/1"
MANIFEST = "manifest.json"
SHARE = "share.html"
#: the longest a presigned URL can live (SigV4)
MAX_EXPIRES = 7 * 24 * 3600
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
          "css": "text/css; charset=utf-8", "json": "application/json"}


def content_type(path: str) -> str:
    """The MIME type a browser needs for a site file."""
    return _TYPES.get(path.rsplit(".", 1)[-1], "text/plain; charset=utf-8")


class Files(Protocol):
    """What a target writes through: a store backend, or a :class:`Folder`."""

    uri: str

    def get(self, key: str) -> bytes: ...

    def put_redacted(self, key: str, data: bytes, content_type: str = "") -> None: ...

    def exists(self, key: str) -> bool: ...


class Folder(LocalBackend):
    """A plain folder of its own, written as a folder store writes (each file to a
    temporary name, then renamed into place: a page open in a browser never reads half a
    file)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigurationError(f"The report's output must be a folder; {self.root} is a "
                                     "file. Pass another -o DIR.")


class Target:
    """A site's location: ``files`` to write through, and a key ``prefix`` in them."""

    def __init__(self, files: Files, prefix: str = "") -> None:
        self.files = files
        self.prefix = prefix.strip("/")

    @classmethod
    def folder(cls, path: str | Path) -> Target:
        """A folder of its own (created when written)."""
        return cls(Folder(path))

    @classmethod
    def beside(cls, store: Store) -> Target:
        """``<store>/_site/``: S3 writes use ``$SAGETRACK_KMS_KEY_ID`` like records do."""
        backend = store.backend
        if isinstance(backend, S3Backend):
            return cls(S3Backend(backend.bucket, backend.prefix, client=backend.client,
                                 kms_key_id=settings.KMS_KEY_ID.get() or None), SITE_PREFIX)
        if isinstance(backend, LocalBackend):
            return cls(backend, SITE_PREFIX)
        raise ConfigurationError(f"Cannot publish a report to {store.uri}: an S3 or folder "
                                 "store is needed. Pass -o DIR instead.")

    @property
    def s3(self) -> bool:
        return isinstance(self.files, S3Backend)

    @property
    def location(self) -> str:
        return f"{self.files.uri}/{self.prefix}".rstrip("/")

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def manifest(self) -> dict[str, Any] | None:
        """The manifest of the site already there (None: none, unreadable, or written by
        another version of sagetrack)."""
        try:
            doc = json.loads(self.files.get(self.key(MANIFEST)))
        except (RecordNotFound, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("format") != REPORT_FORMAT or \
                doc.get("sagetrack") != __version__ or not isinstance(doc.get("files"), dict):
            return None
        return doc

    def present(self, path: str) -> bool:
        """Whether a file the manifest lists is there (checked in folders; on S3 the
        manifest is trusted, a HEAD per file would cost more than writing)."""
        return self.s3 or self.files.exists(self.key(path))

    def put(self, path: str, data: bytes) -> None:
        """Write one file as it is: the site's data come from records as the reader gives
        them, redacted (``Run.read``); text redaction of the scripts could only break them
        (and ``share.html``'s presigned URLs)."""
        self.files.put_redacted(self.key(path), data, content_type(path))

    def _s3_key(self, path: str) -> str:
        assert isinstance(self.files, S3Backend)
        return f"{self.files.prefix}/{self.key(path)}".lstrip("/")

    @functools.cached_property
    def _signer(self) -> Any:
        """An S3 client that signs URLs with SigV4 in the bucket's own region (what every
        region accepts; a URL signed for another region is refused)."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        assert isinstance(self.files, S3Backend)
        client = self.files.client
        try:
            meta = client.head_bucket(Bucket=self.files.bucket)["ResponseMetadata"]
        except ClientError as exc:  # a refused HEAD still names the region
            meta = exc.response.get("ResponseMetadata", {})
        except BotoCoreError:
            meta = {}
        region = meta.get("HTTPHeaders", {}).get("x-amz-bucket-region") or \
            client.meta.region_name
        endpoint = client.meta.endpoint_url  # kept for S3-compatible stores only
        aws = (urlparse(endpoint).hostname or "").endswith(".amazonaws.com")
        return boto3.session.Session().client(
            "s3", region_name=region, endpoint_url=None if aws else endpoint,
            config=Config(signature_version="s3v4"))

    def url(self, path: str, expires: int = MAX_EXPIRES) -> str:
        """``file://`` URL of a file in a folder; presigned GET URL of an S3 object (with
        the content type its name calls for, whatever the object was stored with, and
        ``no-cache``: a live report's files change under the same URL)."""
        if isinstance(self.files, S3Backend):
            return str(self._signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.files.bucket, "Key": self._s3_key(path),
                                      "ResponseContentType": content_type(path),
                                      "ResponseCacheControl": "no-cache"},
                ExpiresIn=expires))
        return (Path(self.files.uri) / self.key(path)).as_uri()
