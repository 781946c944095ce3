"""Checking out the code a run ran: hostile tarballs cannot write outside the target folder."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from sagetrack._tar import ArchiveTooLarge, extract
from sagetrack.client.checkout import checkout
from sagetrack.client.staging import BOOTSTRAP_NAMES, RUNTIME_PACKAGE
from sagetrack.store.reader import Store


def tarball(*members: tuple[str, str, bytes | str]) -> bytes:
    """A gzipped tar of (name, kind, content): kind "file" (content: bytes), "exe",
    "dir", "sym" or "hard" (content: the link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind in ("file", "exe"):
                assert isinstance(content, bytes)
                info.size, info.mode = len(content), 0o755 if kind == "exe" else 0o644
                tar.addfile(info, io.BytesIO(content))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "hard": tarfile.LNKTYPE}[kind]
            info.linkname = str(content)
            tar.addfile(info)
    return buffer.getvalue()


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() or p.is_symlink())


HOSTILE = tarball(
    ("train.py", "exe", b"print('hi')\n"),
    ("lib/util.py", "file", b"X = 1\n"),
    (f"{RUNTIME_PACKAGE}/container/bootstrap.py", "file", b"# ours\n"),
    ("sitecustomize.py", "file", b"# ours\n"),
    ("/tmp/absolute.txt", "file", b"x"),
    ("../climb.txt", "file", b"x"),
    ("lib/../../climb2.txt", "file", b"x"),
    ("to-etc", "sym", "/etc/passwd"),
    ("to-parent", "sym", "../../outside"),
    ("copy-of-train", "hard", "train.py"),
    ("./", "dir", ""),
)


def test_extract_writes_only_safe_members_inside_the_target(tmp_path):
    target = tmp_path / "a" / "code"
    done = extract(HOSTILE, target, skip_top=BOOTSTRAP_NAMES)
    assert done.written == ["train.py", "lib/util.py"]
    assert done.skipped == ["/tmp/absolute.txt", "../climb.txt", "lib/../../climb2.txt",
                            "to-etc", "to-parent", "copy-of-train"]
    assert files_under(tmp_path) == ["a/code/lib/util.py", "a/code/train.py"]
    assert (target / "train.py").stat().st_mode & 0o777 == 0o755
    assert (target / "lib" / "util.py").stat().st_mode & 0o777 == 0o644


def test_extract_never_writes_through_a_symlink_planted_in_the_target(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "code"
    target.mkdir()
    (target / "planted").symlink_to(outside)
    (target / "planted-file").symlink_to(outside / "victim.txt")
    done = extract(tarball(("planted/x.py", "file", b"x"), ("planted-file", "file", b"x"),
                           ("planted", "dir", ""), ("ok.py", "file", b"ok")), target)
    assert done.written == ["ok.py"]
    assert done.skipped == ["planted/x.py", "planted-file", "planted"]
    assert list(outside.iterdir()) == []


def test_extract_with_links_keeps_only_links_that_stay_inside(tmp_path):
    target = tmp_path / "root" / "code"
    done = extract(tarball(
        ("train.py", "file", b"print('hi')\n"),
        ("alias.py", "sym", "train.py"),
        ("sub/up.py", "sym", "../train.py"),
        ("here", "sym", "."),
        ("out", "sym", "here/.."),  # inside as written, outside through the link "here"
        ("escape", "sym", "../.."),
        ("hard.py", "hard", "train.py"),
        ("hard-out", "hard", "../train.py"),
        ("here/via-link.py", "file", b"x"),  # would write through the link "here"
    ), target, links=True)
    assert done.written == ["train.py", "hard.py"]
    assert done.skipped == ["out", "escape", "hard-out", "here/via-link.py"]
    assert (target / "alias.py").read_text() == "print('hi')\n"
    assert (target / "sub" / "up.py").read_text() == "print('hi')\n"
    assert (target / "hard.py").read_text() == "print('hi')\n"
    assert not (target / "hard.py").is_symlink()
    assert files_under(tmp_path / "root") == [
        "code/alias.py", "code/hard.py", "code/here", "code/sub/up.py", "code/train.py"]


def test_extract_bounds_members_and_bytes(tmp_path):
    four = tarball(*[(f"f{i}", "file", b"1234") for i in range(4)])
    with pytest.raises(ArchiveTooLarge, match="more than 3 members"):
        extract(four, tmp_path / "a", max_members=3)
    with pytest.raises(ArchiveTooLarge, match="more than 15 bytes"):
        extract(four, tmp_path / "b", max_bytes=15)
    assert extract(four, tmp_path / "c", max_members=4, max_bytes=16).written == [
        "f0", "f1", "f2", "f3"]
    (tmp_path / "archive.tar.gz").write_bytes(four)  # a path works as well as bytes
    assert len(extract(tmp_path / "archive.tar.gz", tmp_path / "d").written) == 4


def test_checkout_of_a_hostile_tarball_lists_what_it_left_out(tmp_path):
    code = tmp_path / "sourcedir.tar.gz"
    code.write_bytes(HOSTILE)
    run_dir = tmp_path / "store" / "exp" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "format": "sagetrack/1", "run_id": "run-1", "experiment": "exp",
        "params": {"epochs": 2}, "inputs": {},
        "code": {"entry_point": "train.py", "tarball": {
            "uri": f"file://{code}", "sha256": hashlib.sha256(HOSTILE).hexdigest()}}}))
    (run_dir / "status.json").write_text(json.dumps({"format": "sagetrack/1",
                                                     "run_id": "run-1", "status": "completed"}))
    target = checkout(Store(str(tmp_path / "store")).run("run-1"), tmp_path / "work")
    assert files_under(target / "code") == ["lib/util.py", "train.py"]
    readme = (target / "README.md").read_text()
    assert "not extracted (links or unsafe paths): /tmp/absolute.txt, ../climb.txt" in readme
    assert not (tmp_path / "climb.txt").exists() and not (tmp_path / "climb2.txt").exists()
    assert json.loads((target / "hyperparameters.json").read_text()) == {"epochs": 2}
