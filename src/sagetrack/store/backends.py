"""Byte-level storage for run records: a local folder or an S3 prefix, same keys.

Both backends expose ``put``/``get``/``list``/``exists`` over ``/``-separated keys
relative to the store root. Local writes are atomic (temp file + ``os.replace``);
an S3 ``PutObject`` is atomic by nature. botocore errors are mapped to
:mod:`sagetrack.errors` here and nowhere else. Every write passes through
:func:`sagetrack._redact.redact_bytes`, so no record can carry a credential.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from .._redact import redact_bytes
from ..errors import ConfigurationError, RecordNotFound, StoreAccessDenied, StoreError

__all__ = ["Backend", "LocalBackend", "S3Backend", "open_backend", "validate_uri"]

#: S3 error codes after which retrying cannot help.
PERMANENT_S3_ERRORS = frozenset({
    "AccessDenied", "AllAccessDisabled", "NoSuchBucket", "InvalidAccessKeyId",
    "SignatureDoesNotMatch", "AccountProblem", "InvalidBucketName", "KMS.AccessDeniedException",
    "KMS.NotFoundException", "InvalidToken", "ExpiredToken", "UnauthorizedOperation",
})


class Backend(Protocol):
    """What the recorder and the reader need from a store location."""

    uri: str

    def put(self, key: str, data: bytes) -> None: ...

    def put_if_absent(self, key: str, data: bytes) -> bool: ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[str]: ...

    def exists(self, key: str) -> bool: ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in key:
        raise ConfigurationError(
            f"Invalid record key {key!r}: keys are relative, '/'-separated, without '.' or '..'"
            " (and without NUL characters).")
    return key


class LocalBackend:
    """A store rooted in a local folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        self._write(key, data, replace=True)

    def put_redacted(self, key: str, data: bytes, content_type: str = "") -> None:
        """Write ``data`` as it is, readable by all (a browser, a web server): content
        whose every value the caller has already redacted as data (the report's site),
        which text redaction could only break."""
        self._write(key, data, replace=True, redact=False, mode=0o644)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet (atomically); return whether written."""
        return self._write(key, data, replace=False)

    def _inside(self, path: Path) -> Path:
        """``path`` when its folder, symlinks followed, is inside the root; a write never
        follows a planted link out of the store."""
        real = path.parent.resolve()
        if real != self.root and self.root not in real.parents:
            raise StoreAccessDenied(
                f"Refusing to write {path}: its folder resolves to {real}, outside the store "
                f"{self.root} (a symbolic link inside the store points out of it).")
        return path

    def _write(self, key: str, data: bytes, *, replace: bool, redact: bool = True,
               mode: int | None = None) -> bool:
        path = self._inside(self._path(key))
        if redact:  # every local write (store, mirror, unsent copy) but put_redacted's
            data = redact_bytes(key, data)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                if mode is not None:
                    os.chmod(tmp, mode)
                if replace:
                    os.replace(tmp, path)
                elif not _link_unless_exists(tmp, path):
                    return False
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # gone already after a replace
            return True
        except PermissionError as exc:
            raise StoreAccessDenied(f"Cannot write {path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"Cannot write {path}: {exc}") from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise RecordNotFound(f"No record {key!r} under {self.root}") from exc
        except PermissionError as exc:
            raise StoreAccessDenied(f"Cannot read {path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"Cannot read {path}: {exc}") from exc

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[str]:
        """Keys under ``prefix``; with ``delimiter="/"`` only the next level (dirs end in /)."""
        base = self.root.joinpath(*[p for p in prefix.split("/") if p])
        if not base.is_dir():
            return
        if delimiter == "/":
            for entry in sorted(base.iterdir(), key=lambda p: p.name):
                if entry.name.startswith("."):
                    continue
                rel = entry.relative_to(self.root).as_posix()
                yield rel + "/" if entry.is_dir() else rel
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _link_unless_exists(tmp: str, path: Path) -> bool:
    """Give the complete file ``tmp`` the name ``path`` unless that exists (atomically)."""
    try:
        os.link(tmp, path)  # fails if the file exists: no overwrite race
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # no hard links here (FAT, some FUSE and network mounts)
        if exc.errno not in _NO_LINKS:
            raise
    try:  # claim the name, then move the complete file over the placeholder
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    os.replace(tmp, path)
    return True


_NO_LINKS = {errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS,
             errno.EMLINK, errno.EXDEV}


class S3Backend:
    """A store under ``s3://bucket/prefix``.

    ``kms_key_id`` adds ``SSEKMSKeyId`` (with ``aws:kms``) to every write; otherwise the
    bucket's default encryption applies. Objects are never written with an ACL.
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 kms_key_id: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.kms_key_id = kms_key_id
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    # Retries are the caller's business (the writer backs off itself).
                    self._client = boto3.session.Session().client(
                        "s3", config=Config(retries={"max_attempts": 2, "mode": "standard"},
                                            connect_timeout=5, read_timeout=20,
                                            max_pool_connections=32))
        return self._client

    def prepare(self) -> None:
        """Create the S3 client now (the writer does this when it starts)."""
        _ = self.client

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        self._put(key, data)

    def put_redacted(self, key: str, data: bytes, content_type: str = "") -> None:
        """Write ``data`` as it is (``content_type``: the object's): content whose every
        value the caller has already redacted as data (the report's site)."""
        self._put(key, data, redact=False, content_type=content_type)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist yet (a conditional PutObject).

        Where the store does not support conditional writes (some S3-compatible
        servers), a HEAD then a PUT: not atomic, but never overwrites a key seen there."""
        from botocore.exceptions import ClientError, ParamValidationError

        try:
            self._put(key, data, IfNoneMatch="*")
        except ParamValidationError:  # a botocore without conditional writes
            return self._put_unless_seen(key, data)
        except StoreError as exc:
            cause = exc.__cause__
            code = (cause.response.get("Error", {}).get("Code")
                    if isinstance(cause, ClientError) else None)
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            if code in ("NotImplemented", "501"):
                return self._put_unless_seen(key, data)
            raise
        return True

    def _put_unless_seen(self, key: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        self._put(key, data)
        return True

    def _put(self, key: str, data: bytes, *, redact: bool = True, content_type: str = "",
             **conditions: str) -> None:
        if redact:  # every S3 write but put_redacted's
            data = redact_bytes(key, data)
        extra: dict[str, str] = dict(conditions)
        if self.kms_key_id:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id)
        ctype = content_type or ("application/x-ndjson" if key.endswith(".jsonl") else (
            "application/json" if key.endswith(".json") else "text/plain"))
        with _mapped(f"write s3://{self.bucket}/{self._key(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   ContentType=ctype, **extra)

    def get(self, key: str) -> bytes:
        with _mapped(f"read s3://{self.bucket}/{self._key(key)}"):
            body: bytes = self.client.get_object(Bucket=self.bucket,
                                                 Key=self._key(key))["Body"].read()
            return body

    def list(self, prefix: str = "", delimiter: str | None = None) -> Iterator[str]:
        full = self._key(prefix.rstrip("/")) + "/" if prefix else (
            f"{self.prefix}/" if self.prefix else "")
        strip = len(f"{self.prefix}/") if self.prefix else 0
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        with _mapped(f"list s3://{self.bucket}/{full}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for cp in page.get("CommonPrefixes", []):
                    yield cp["Prefix"][strip:]
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]

    def exists(self, key: str) -> bool:
        try:
            with _mapped(f"head s3://{self.bucket}/{self._key(key)}"):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except RecordNotFound:
            return False
        return True


class _mapped:
    """Map botocore exceptions raised inside the block to sagetrack errors."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, StoreError):
            return
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") or (
                    status == 404 and code != "NoSuchBucket"):
                raise RecordNotFound(f"Cannot {self.what}: not found") from exc
            if code in PERMANENT_S3_ERRORS or status == 403:
                raise StoreAccessDenied(f"Cannot {self.what}: {code} ({exc})") from exc
            raise StoreError(f"Cannot {self.what}: {code or status} ({exc})") from exc
        if isinstance(exc, NoCredentialsError):
            raise StoreAccessDenied(
                f"Cannot {self.what}: no AWS credentials found. Configure credentials "
                "(e.g. AWS_PROFILE) or use a local folder as tracking_uri.") from exc
        if isinstance(exc, BotoCoreError):
            raise StoreError(f"Cannot {self.what}: {exc}") from exc


#: a local store path at most this many bytes (Linux PATH_MAX), each folder name at most 255
_PATH_MAX = 4096
_NAME_MAX = 255
#: an S3 store prefix at most this many bytes: S3 keys hold 1024, and a run's own keys below
#: the prefix (experiment, run id, file name) need up to 250
_S3_PREFIX_MAX = 770
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def validate_uri(uri: object) -> str:
    """Check a tracking URI without touching the network; return it normalised.

    ``s3://bucket/prefix`` comes back without a trailing ``/``; a local folder (a path, or
    a ``file:///absolute/path`` URL) comes back absolute, ``~`` and relative paths resolved
    against this process, so that the value means the same in another process or folder.
    Raises ConfigurationError naming the value for anything else: control characters,
    ``file://relative`` or a bare ``file://``, an ``s3://`` URI without a valid bucket or
    with ``.``/``..``/empty segments, and values too long for S3 keys or local paths.
    """
    if not isinstance(uri, str):
        raise _bad_uri(uri, f"expected a str, not {type(uri).__name__}")
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise _bad_uri(uri, "it contains a control character (NUL, newline, tab...)")
    text = uri.strip()
    if not text:
        raise _bad_uri(uri, "it is empty")
    if len(text) > _PATH_MAX:
        raise _bad_uri(uri, f"it is {len(text)} characters long")
    scheme = _SCHEME.match(text)  # one letter before ':' is a Windows drive, not a scheme
    name = scheme.group(1).lower() if scheme else ""
    if name == "s3":
        return _s3_uri(uri, text)
    if name == "file":
        return _local_path(uri, _file_url_path(uri, text))
    if scheme:
        raise _bad_uri(uri, f"scheme {name!r} is not supported")
    return _local_path(uri, text)


def _bad_uri(uri: object, reason: str) -> ConfigurationError:
    shown = repr(uri)
    if len(shown) > 200:
        shown = f"{shown[:200]}... ({len(str(uri))} characters)"
    return ConfigurationError(
        f"Invalid tracking_uri: {reason}. Use 's3://bucket/prefix' or a local folder "
        f"(a path, or file:///absolute/path). Received: tracking_uri={shown}")


def _s3_uri(uri: str, text: str) -> str:
    if not text[:5].lower() == "s3://":
        raise _bad_uri(uri, "an S3 store is written 's3://bucket/prefix'")
    bucket, _, prefix = text[5:].partition("/")
    if not bucket:
        raise _bad_uri(uri, "it names no valid bucket")
    if not _valid_bucket(bucket):
        raise _bad_uri(uri, f"it names no valid bucket: {bucket!r} breaks S3's naming rules "
                            "(3-63 lowercase letters, digits, '.' and '-')")
    if "?" in prefix or "#" in prefix:
        raise _bad_uri(uri, "its prefix contains '?' or '#'")
    prefix = prefix.rstrip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise _bad_uri(uri, "its prefix contains '.', '..' or an empty segment ('//')")
    if len(prefix.encode()) > _S3_PREFIX_MAX:
        raise _bad_uri(uri, f"its prefix is {len(prefix.encode())} bytes; S3 keys hold 1024 "
                            f"and the run's own keys need room: at most {_S3_PREFIX_MAX}")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _file_url_path(uri: str, text: str) -> str:
    from urllib.parse import unquote

    rest = text[5:]
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise _bad_uri(uri, f"a file:// URL needs an absolute path (file:///folder); "
                                f"{host!r} would be read as a host name")
        path = slash + path
    else:
        path = rest
    if not path.startswith("/"):
        raise _bad_uri(uri, "a file: URL needs an absolute path (file:///folder)")
    path = unquote(path)
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise _bad_uri(uri, "its path contains a control character")
    return path


def _local_path(uri: str, path: str) -> str:
    absolute = os.path.abspath(os.path.expanduser(path))
    size = len(os.fsencode(absolute))
    if size >= _PATH_MAX:
        raise _bad_uri(uri, f"as an absolute path it is {size} bytes; paths hold at most "
                            f"{_PATH_MAX - 1}")
    longest = max((len(os.fsencode(p)) for p in Path(absolute).parts), default=0)
    if longest > _NAME_MAX:
        raise _bad_uri(uri, f"one folder name in it is {longest} bytes; at most {_NAME_MAX}")
    return absolute


def _valid_bucket(name: str) -> bool:
    """S3's bucket naming rules (general purpose buckets)."""
    return bool(_BUCKET.fullmatch(name)) and ".." not in name and ".-" not in name \
        and "-." not in name and not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name) \
        and not name.startswith(("xn--", "sthree-")) \
        and not name.endswith(("-s3alias", "--ol-s3"))


def open_backend(uri: str, *, client: Any = None, kms_key_id: str | None = None) -> Backend:
    """Open the backend for a tracking URI (``s3://...``, ``file://...`` or a path)."""
    uri = validate_uri(uri)
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        return S3Backend(parsed.netloc, parsed.path.lstrip("/"), client=client,
                         kms_key_id=kms_key_id)
    return LocalBackend(uri)
