"""Extract a tar archive without letting it write outside the target folder.

:func:`extract` refuses what :func:`tarfile.TarFile.extractall` would let through:

* a member named with an absolute path, a ``..`` component or a NUL is not extracted;
* a link (symbolic or hard) is not extracted unless ``links=True``, and then only a
  relative symbolic link that stays inside the target, or a hard link to a file extracted
  before it (written as a copy);
* no member is written through a symbolic link, whether the archive created it or it was
  in the target before;
* an archive of more than ``max_members`` members or ``max_bytes`` of file content raises
  :class:`ArchiveTooLarge` (a :class:`tarfile.TarError`).

Files are written with mode 0755 when the archive marks any execute bit, else 0644.
Standard library only.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MAX_BYTES", "MAX_MEMBERS", "ArchiveTooLarge", "Extracted", "extract",
           "member_name"]

MAX_MEMBERS = 100_000
MAX_BYTES = 4 * 1024**3


class ArchiveTooLarge(tarfile.TarError):
    """The archive holds more members or bytes than the extraction allows."""


@dataclass
class Extracted:
    """What :func:`extract` did: files written and members left out, in archive order."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def member_name(name: str) -> str | None:
    """``name`` relative to the target (``./`` and empty parts dropped), or None when it is
    absolute, climbs with ``..``, holds a NUL, or names the target itself."""
    if not name or name.startswith("/") or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _through_link(target: Path, parts: list[str]) -> bool:
    """Whether any existing component of ``target/parts`` is a symbolic link."""
    path = target
    for part in parts:
        path = path / part
        if path.is_symlink():
            return True
        if not path.exists():
            return False
    return False


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> None:
    source = tar.extractfile(member)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o755 if member.mode & 0o111 else 0o644
    # O_NOFOLLOW: a link created at this path after the check above is not followed
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                 mode)
    with os.fdopen(fd, "wb") as out:
        if source is not None:
            shutil.copyfileobj(source, out, 1 << 20)
    path.chmod(mode)


def _link_inside(root: Path, name: str, link: str) -> bool:
    """Whether a symbolic link ``name -> link`` points inside ``root``, both as written and
    through the links already there."""
    if not link or link.startswith("/") or "\0" in link:
        return False
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    if lexical == ".." or lexical.startswith("../"):
        return False
    real = Path(os.path.realpath(root.joinpath(*posixpath.dirname(name).split("/"), link)))
    return real.is_relative_to(root.resolve())


def extract(archive: bytes | str | os.PathLike[str], target: str | os.PathLike[str], *,
            skip_top: frozenset[str] = frozenset(), links: bool = False,
            max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES) -> Extracted:
    """Extract ``archive`` (its bytes, or a path) into ``target`` (created if missing).

    Members whose first path component is in ``skip_top`` are passed over silently; unsafe
    members are listed in ``skipped``. Raises :class:`tarfile.TarError` for an archive that
    cannot be read or is too large, :class:`OSError` when a file cannot be written.
    """
    root = Path(target)
    root.mkdir(parents=True, exist_ok=True)
    done = Extracted()
    written: dict[str, Path] = {}
    members = total = 0
    name, fileobj = (None, io.BytesIO(archive)) if isinstance(archive, bytes) else (archive, None)
    with tarfile.open(name, "r:*", fileobj) as tar:
        for member in tar:
            members += 1
            if members > max_members:
                raise ArchiveTooLarge(f"more than {max_members} members")
            name = member_name(member.name)
            if name is None:
                if not (member.isdir() and set(member.name.split("/")) <= {"", "."}):
                    done.skipped.append(member.name)  # not the target folder itself ("./")
                continue
            parts = name.split("/")
            if parts[0] in skip_top:
                continue
            path = root.joinpath(*parts)
            if _through_link(root, parts[:-1]) or (path.is_symlink() and not member.isdir()):
                done.skipped.append(name)
            elif member.isdir():
                if _through_link(root, parts):
                    done.skipped.append(name)
                else:
                    path.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                total += member.size
                if total > max_bytes:
                    raise ArchiveTooLarge(f"more than {max_bytes} bytes of files")
                _write(tar, member, path)
                written[name] = path
                done.written.append(name)
            elif links and member.issym() and _link_inside(root, name, member.linkname):
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    done.skipped.append(name)
                else:
                    os.symlink(member.linkname, path)
            elif links and member.islnk() and member_name(member.linkname) in written:
                original = written[str(member_name(member.linkname))]
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(original, path, follow_symlinks=False)
                path.chmod(original.stat().st_mode & 0o777)
                written[name] = path
                done.written.append(name)
            else:
                done.skipped.append(name)
    return done
