"""Move job data between ``s3://`` / ``file://`` locations and the local job directories.

All S3 traffic goes through one client made from the session's boto session, so an explicit
``s3_endpoint_url`` (or ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` in the environment,
which botocore reads itself) is honoured, e.g. for a moto server.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlparse

from sagetrack.local.errors import LocalModeError

__all__ = ["Storage", "join_uri", "local_path_from_file_uri", "split_s3_uri"]

_MAX_WORKERS = 8


def split_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``("bucket", "key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise LocalModeError(f"Expected an s3://bucket/key URI, received {uri!r}.")
    return parsed.netloc, parsed.path.lstrip("/")


def local_path_from_file_uri(uri: str) -> str:
    """Return the absolute local path named by a ``file://`` URI."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise LocalModeError(f"Expected a file:// URI, received {uri!r}.")
    path = unquote(parsed.path)
    if parsed.netloc and parsed.netloc != "localhost":
        # file://relative/dir is a common typo for file:///abs/dir; read it as a path.
        path = parsed.netloc + path
    return os.path.abspath(path)


def join_uri(base: str, *parts: str) -> str:
    """Join URI path parts with single slashes (``s3://b/p`` + ``a/b`` -> ``s3://b/p/a/b``)."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def _inside(path: str, directory: str) -> bool:
    real_dir = os.path.realpath(directory)
    return os.path.commonpath([real_dir, os.path.realpath(path)]) == real_dir


def _files_under(directory: str) -> list[str]:
    """Relative paths of all regular files below ``directory``, sorted."""
    found: list[str] = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            found.append(os.path.relpath(os.path.join(root, name), directory))
    return sorted(found)


class Storage:
    """Downloads and uploads for one session (``s3://`` through boto3, ``file://`` by copy)."""

    def __init__(self, boto_session: Any, endpoint_url: str | None = None) -> None:
        self._boto_session = boto_session
        self._endpoint_url = endpoint_url
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """The boto3 S3 client (created on first use; boto3 clients are thread-safe)."""
        with self._lock:  # creating clients from one boto3 session is not thread-safe
            if self._client is None:
                self._client = self._boto_session.client(
                    "s3",
                    region_name=self._boto_session.region_name,
                    endpoint_url=self._endpoint_url,
                )
            return self._client

    # ------------------------------------------------------------------ download
    def download(self, uri: str, target: str, shard: tuple[int, int] | None = None) -> int:
        """Fill ``target`` from a prefix / object (``s3://``) or a dir / file (``file://``).

        ``shard=(index, count)`` keeps every ``count``-th file starting at ``index``
        (``ShardedByS3Key``). Returns the number of files written.
        """
        os.makedirs(target, exist_ok=True)
        if uri.startswith("s3://"):
            return self._download_s3(uri, target, shard)
        if uri.startswith("file://"):
            return self._download_file_uri(uri, target, shard)
        raise LocalModeError(
            f"Cannot download {uri!r}: only s3:// and file:// locations are supported."
        )

    def _download_s3(self, uri: str, target: str, shard: tuple[int, int] | None) -> int:
        bucket, prefix = split_s3_uri(uri)
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []) or []:
                key = str(obj["Key"])
                if not key.endswith("/"):
                    keys.append(key)
        if not keys:
            raise LocalModeError(
                f"Data download failed: no S3 objects found under {uri!r}. "
                "Check the bucket and prefix (and the S3 endpoint this session uses)."
            )
        keys.sort()
        if shard is not None:
            keys = keys[shard[0] :: shard[1]]
        jobs: list[tuple[str, str]] = []
        for key in keys:
            rel = key[len(prefix) :].lstrip("/") or os.path.basename(key)
            dest = os.path.join(target, rel)
            if not _inside(dest, target):
                raise LocalModeError(
                    f"Refusing to download s3://{bucket}/{key}: it would land outside {target}."
                )
            jobs.append((key, dest))

        def fetch(job: tuple[str, str]) -> None:
            key, dest = job
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            self.client.download_file(bucket, key, dest)

        self._parallel(fetch, jobs)
        return len(jobs)

    def _download_file_uri(self, uri: str, target: str, shard: tuple[int, int] | None) -> int:
        src = local_path_from_file_uri(uri)
        if os.path.isfile(src):
            shutil.copy2(src, os.path.join(target, os.path.basename(src)))
            return 1
        if not os.path.isdir(src):
            raise LocalModeError(f"Data copy failed: {uri!r} ({src}) does not exist.")
        files = _files_under(src)
        if shard is not None:
            files = files[shard[0] :: shard[1]]
        for rel in files:
            dest = os.path.join(target, rel)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.join(src, rel), dest)
        return len(files)

    # ------------------------------------------------------------------ upload
    def upload_file(self, path: str, uri: str, kms_key_id: str | None = None) -> None:
        """Copy one local file to ``uri`` (an ``s3://`` key or a ``file://`` path)."""
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            extra: dict[str, str] = {}
            if kms_key_id:
                extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
            self.client.upload_file(path, bucket, key, ExtraArgs=extra or None)
        elif uri.startswith("file://"):
            dest = local_path_from_file_uri(uri)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(path, dest)
        else:
            raise LocalModeError(
                f"Cannot upload to {uri!r}: only s3:// and file:// locations are supported."
            )

    def sync_up(
        self,
        directory: str,
        uri: str,
        seen: dict[str, tuple[int, int]],
        kms_key_id: str | None = None,
    ) -> int:
        """Upload files of ``directory`` that changed since the last call (tracked in ``seen``).

        Deleted local files are left in place remotely, as SageMaker's checkpoint sync does.
        Returns the number of files uploaded.
        """
        if not os.path.isdir(directory):
            return 0
        todo: list[tuple[str, tuple[int, int]]] = []
        for rel in _files_under(directory):
            try:
                st = os.stat(os.path.join(directory, rel))
            except FileNotFoundError:  # removed while we walked
                continue
            sig = (st.st_size, st.st_mtime_ns)
            if seen.get(rel) != sig:
                todo.append((rel, sig))

        done: list[tuple[str, tuple[int, int]]] = []

        def push(item: tuple[str, tuple[int, int]]) -> None:
            rel, _sig = item
            try:
                self.upload_file(
                    os.path.join(directory, rel),
                    join_uri(uri, rel.replace(os.sep, "/")),
                    kms_key_id,
                )
            except FileNotFoundError:  # a temporary file renamed away meanwhile
                return
            done.append(item)

        self._parallel(push, todo)
        for rel, sig in done:
            seen[rel] = sig
        return len(done)

    @staticmethod
    def _parallel(fn: Any, items: Iterable[Any]) -> None:
        items = list(items)
        if len(items) <= 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
            for _ in pool.map(fn, items):
                pass
