"""What only the client can see at ``fit()``: the code's version and the data's identity.

* :func:`git_info` - commit, branch, remote (credentials stripped), dirty flag and the
  uncommitted diff, including untracked text files under the source dir, redacted and
  capped with a clear marker.
* :func:`code_tarball_info` - sha256 of the ``sourcedir.tar.gz`` SageMaker will run, and a
  content hash of the user's files in it (stable across re-packing; VCS internals such as
  ``.git/`` and caches such as ``__pycache__/`` left out).
* :func:`fingerprint_channel` - a manifest fingerprint of each input channel (S3 prefix or
  ``file://`` folder): object count, total bytes, and a sha256 over keys, sizes, ETags and
  VersionIds. A listing longer than one page can wait at a
  :class:`~sagetrack.client.capture.LaunchGate` until the launch is done.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .._redact import redact_text, strip_url_credentials

if TYPE_CHECKING:
    from .capture import LaunchGate

__all__ = ["DIFF_LIMIT", "code_tarball_info", "fingerprint_channel", "git_info", "is_code"]

log = logging.getLogger("sagetrack")

DIFF_LIMIT = 1_000_000          # characters of uncommitted diff kept in a record
UNTRACKED_FILE_LIMIT = 200_000  # bytes of one untracked file included in the diff
TRUNCATED_MARKER = "\n[sagetrack: diff truncated at {limit} characters of {total}]\n"


#: git runs read-only: GIT_OPTIONAL_LOCKS=0 keeps ``git status`` from refreshing the index
#: under ``.git/index.lock`` while the SDK tars the same folder (and the diff is taken with
#: ``git diff-index``, which never writes the index)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
#: what the content hash leaves out: VCS internals and caches change without the code
#: changing (``git status`` rewrites ``.git/index``)
NOT_CODE_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints",
                           ".pytest_cache", ".mypy_cache", ".ruff_cache"})
NOT_CODE_FILES = frozenset({".DS_Store"})
NOT_CODE_SUFFIXES = (".pyc", ".pyo")


def _git(cwd: str, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60, errors="replace", env={**os.environ, **_GIT_ENV})
    if check and result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"git {' '.join(args)} failed")
    return result.stdout


def _is_text(data: bytes) -> bool:
    if b"\0" in data[:8192]:
        return False
    try:
        data[:8192].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _untracked_as_diff(top: str, source_dir: str) -> str:
    rel = os.path.relpath(source_dir, top)
    names = _git(top, "ls-files", "--others", "--exclude-standard", "-z", "--", rel).split("\0")
    parts = []
    for name in sorted(n for n in names if n):
        path = Path(top, name)
        try:
            data = path.read_bytes()[: UNTRACKED_FILE_LIMIT + 1]
        except OSError:
            continue
        if not _is_text(data):
            parts.append(f"Binary untracked file {name}\n")
            continue
        text = data[:UNTRACKED_FILE_LIMIT].decode("utf-8", errors="replace")
        lines = text.splitlines()
        body = "".join(f"+{line}\n" for line in lines)
        if len(data) > UNTRACKED_FILE_LIMIT:
            body += f"+[sagetrack: untracked file truncated at {UNTRACKED_FILE_LIMIT} bytes]\n"
        parts.append(f"diff --git a/{name} b/{name}\nnew file mode 100644\n--- /dev/null\n"
                     f"+++ b/{name}\n@@ -0,0 +1,{len(lines)} @@\n{body}")
    return "".join(parts)


def git_info(source_dir: str) -> tuple[dict[str, Any], str]:
    """Git state of ``source_dir``: (summary record, redacted uncommitted diff).

    A folder outside any git repository gives ``{"git": False}`` and an empty diff. Git
    errors (no git binary, broken repository) are recorded as ``error``, never raised.
    """
    source_dir = os.path.abspath(source_dir)
    try:
        top = _git(source_dir, "rev-parse", "--show-toplevel").strip()
    except FileNotFoundError:
        return {"git": False, "error": "git is not installed"}, ""
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        marker = next((p / ".git" for p in (Path(source_dir), *Path(source_dir).parents)
                       if (p / ".git").exists()), None)
        if "not a git repository" in str(exc) and marker is None:
            return {"git": False, "source_dir": source_dir}, ""
        if marker is not None:
            exc = RuntimeError(f"the repository at {marker.parent} is unreadable: {exc}")
        return {"git": False, "error": str(exc)[:500], "source_dir": source_dir}, ""
    info: dict[str, Any] = {"git": True, "root": top,
                            "source_dir": os.path.relpath(source_dir, top)}
    try:
        info["commit"] = _git(top, "rev-parse", "--verify", "-q", "HEAD", check=False).strip() \
            or None
        branch = _git(top, "rev-parse", "--abbrev-ref", "HEAD", check=False).strip()
        info["branch"] = None if branch in ("", "HEAD") else branch
        remote_name = _git(top, "config", "--get",
                           f"branch.{branch}.remote", check=False).strip() or "origin"
        remote = _git(top, "remote", "get-url", remote_name, check=False).strip()
        info["remote"] = strip_url_credentials(remote) if remote else None
        status = _git(top, "status", "--porcelain", "--untracked-files=all", check=False)
        info["dirty"] = bool(status.strip())
        info["changed_files"] = sorted({line[3:] for line in status.splitlines() if line})[:1000]
        # plumbing: porcelain `git diff` rewrites the index even without optional locks
        diff = _git(top, "diff-index", "-p", "--no-color", "--no-ext-diff", "--binary", "HEAD",
                    check=False) if info["commit"] else ""
        diff += _untracked_as_diff(top, source_dir)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        info["error"] = str(exc)[:500]
        return info, ""
    diff = redact_text(diff)
    total = len(diff)
    info["diff_chars"] = total
    info["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest() if diff else None
    if total > DIFF_LIMIT:
        diff = diff[:DIFF_LIMIT] + TRUNCATED_MARKER.format(limit=DIFF_LIMIT, total=total)
        info["diff_truncated"] = True
    return info, diff


def code_tarball_info(s3_client: Any, uri: str, *, exclude: frozenset[str] = frozenset(),
                      max_bytes: int = 512 * 1024 * 1024,
                      local_copy: bytes | None = None) -> dict[str, Any]:
    """sha256 of the uploaded code tarball and a content hash of its user files.

    ``exclude`` names top-level members (sagetrack's own bootstrap) left out of the
    content hash, so that two runs of the same user code compare equal. ``local_copy``,
    the bytes the SDK uploaded, spares downloading them again when the object's size
    matches.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file":  # kept in a folder by an offline local session
        data = Path(parsed.path).read_bytes()
        return {"uri": uri, "bytes": len(data), **_tarball_hashes(data, exclude)}
    head = s3_client.head_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))
    info: dict[str, Any] = {"uri": uri, "bytes": head["ContentLength"],
                            "etag": head.get("ETag", "").strip('"')}
    if head["ContentLength"] > max_bytes:
        info["sha256"] = None
        info["note"] = f"tarball larger than {max_bytes} bytes: not hashed"
        return info
    if local_copy is not None and len(local_copy) == head["ContentLength"]:
        data = local_copy
    else:
        data = s3_client.get_object(Bucket=parsed.netloc,
                                    Key=parsed.path.lstrip("/"))["Body"].read()
    info.update(_tarball_hashes(data, exclude))
    return info


def is_code(name: str) -> bool:
    """Whether tarball member ``name`` counts as code (not VCS internals or a cache)."""
    parts = name.split("/")
    return not (any(p in NOT_CODE_DIRS for p in parts[:-1]) or parts[-1] in NOT_CODE_FILES
                or parts[-1].endswith(NOT_CODE_SUFFIXES))


def _tarball_hashes(data: bytes, exclude: frozenset[str]) -> dict[str, Any]:
    import io

    content = hashlib.sha256()
    files = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            name = member.name.removeprefix("./")
            if not member.isfile() or name.split("/")[0] in exclude or not is_code(name):
                continue
            fh = tar.extractfile(member)
            digest = hashlib.sha256(fh.read() if fh else b"").hexdigest()
            content.update(f"{name}\0{digest}\n".encode())
            files.append(name)
    return {"sha256": hashlib.sha256(data).hexdigest(), "content_sha256": content.hexdigest(),
            "files": files[:2000], "file_count": len(files)}


def _fingerprint_local(path: str, content_budget: int = 1 << 30) -> dict[str, Any]:
    root = Path(path)
    if not root.exists():
        return {"error": f"{path} does not exist"}
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    total = 0
    hashed = 0
    for file in files:
        size = file.stat().st_size
        rel = file.name if root.is_file() else file.relative_to(root).as_posix()
        if hashed + size <= content_budget:
            h = hashlib.sha256()
            with file.open("rb") as fh:
                for chunk in iter(functools.partial(fh.read, 1 << 20), b""):
                    h.update(chunk)
            hashed += size
            ident = h.hexdigest()
        else:
            ident = f"mtime:{file.stat().st_mtime_ns}"
        digest.update(f"{rel}\t{size}\t{ident}\n".encode())
        total += size
    return {"objects": len(files), "bytes": total, "sha256": digest.hexdigest(),
            "method": "content" if hashed == total else "content+mtime"}


def _fingerprint_s3(s3_client: Any, uri: str, *, manifest: bool = False,
                    gate: LaunchGate | None = None) -> dict[str, Any]:
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.lstrip("/")
    versioned = False
    try:
        versioned = s3_client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    except Exception:  # no permission: ETags alone still identify content
        versioned = False
    rows: list[tuple[str, int, str, str]] = []
    if versioned:
        pages = s3_client.get_paginator("list_object_versions").paginate(
            Bucket=bucket, Prefix=prefix)
        for page in pages:
            for v in page.get("Versions", []):
                if v.get("IsLatest"):
                    rows.append((v["Key"], v["Size"], v.get("ETag", "").strip('"'),
                                 v.get("VersionId") or ""))
            if gate is not None and page.get("IsTruncated"):
                gate.wait_turn()
    else:
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix):
            for obj in page.get("Contents", []):
                rows.append((obj["Key"], obj["Size"], obj.get("ETag", "").strip('"'), ""))
            if len(rows) and len(rows) % 100_000 == 0:
                log.info("sagetrack: fingerprinting %s: %d objects so far", uri, len(rows))
            if gate is not None and page.get("IsTruncated"):
                gate.wait_turn()
    # like SageMaker's S3Prefix, every key that starts with the prefix belongs to the channel
    rows.sort()
    digest = hashlib.sha256()
    for key, size, etag, version in rows:
        digest.update(f"{key[len(prefix):]}\t{size}\t{etag}\t{version}\n".encode())
    return {"objects": len(rows), "bytes": sum(r[1] for r in rows),
            "sha256": digest.hexdigest(), "versioned": versioned,
            **({"manifest": True} if manifest else {})}


def fingerprint_channel(s3_client: Any, uri: str, data_type: str = "S3Prefix", *,
                        gate: LaunchGate | None = None) -> dict[str, Any]:
    """Fingerprint one channel; errors are recorded in the result, never raised.

    With a ``gate``, a listing longer than one page waits for it after the first page."""
    try:
        if uri.startswith("file://"):
            return {"uri": uri, **_fingerprint_local(urlparse(uri).path)}
        if uri.startswith("s3://"):
            return {"uri": uri, **_fingerprint_s3(s3_client, uri, gate=gate,
                                                  manifest=data_type != "S3Prefix")}
        return {"uri": uri, "note": "not an s3:// or file:// input: not fingerprinted"}
    except Exception as exc:
        return {"uri": uri, "error": f"{type(exc).__name__}: {exc}"[:500]}
