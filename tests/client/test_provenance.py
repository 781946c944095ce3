"""Git state, diffs and data fingerprints, captured from real repositories and buckets."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from sagetrack.client import provenance
from sagetrack.client.provenance import code_tarball_info, fingerprint_channel, git_info
from tests.support.repo import git


def test_clean_repo(git_repo: Path):
    info, diff = git_info(str(git_repo / "src"))
    head = git(git_repo, "rev-parse", "HEAD").strip()
    assert info["git"] is True
    assert info["commit"] == head
    assert info["branch"] == "main"
    assert info["remote"] == "https://git.example.com/team/proj.git"  # credentials stripped
    assert info["dirty"] is False
    assert diff == ""


def test_dirty_repo_diff_includes_untracked_text_under_source_dir_redacted(git_repo: Path):
    (git_repo / "src" / "train.py").write_text("print('training v2')\n")
    (git_repo / "src" / "helper.py").write_text("X = 1\n")
    (git_repo / "src" / ".env").write_text("DB_PASSWORD=hunter2hunter2\n")
    (git_repo / "src" / "blob.bin").write_bytes(b"\0\1\2" * 10)
    (git_repo / "outside.txt").write_text("not under source dir\n")
    info, diff = git_info(str(git_repo / "src"))
    assert info["dirty"] is True
    assert "-print('training')" in diff and "+print('training v2')" in diff
    assert "+X = 1" in diff
    assert "Binary untracked file src/blob.bin" in diff
    assert "outside.txt" not in diff
    assert "hunter2hunter2" not in diff and "DB_PASSWORD=[REDACTED]" in diff
    assert info["diff_chars"] == len(diff)


def test_huge_diff_is_capped_with_a_marker(git_repo: Path, monkeypatch):
    monkeypatch.setattr(provenance, "DIFF_LIMIT", 1000)
    (git_repo / "src" / "train.py").write_text("x = 1\n" * 2000)
    info, diff = git_info(str(git_repo / "src"))
    assert info["diff_truncated"] is True
    total = info["diff_chars"]
    assert diff.endswith(f"[sagetrack: diff truncated at 1000 characters of {total}]\n")


def test_folder_outside_git_is_recorded_not_an_error(tmp_path: Path):
    (tmp_path / "train.py").write_text("pass\n")
    info, diff = git_info(str(tmp_path))
    assert info["git"] is False and "error" not in info
    assert diff == ""


def test_s3_fingerprint_counts_paginates_and_changes_with_content(aws):
    for i in range(1005):  # more than one ListObjectsV2 page
        aws.s3.put_object(Bucket=aws.bucket, Key=f"data/train/part-{i:05d}", Body=b"x" * (i % 7))
    aws.s3.put_object(Bucket=aws.bucket, Key="data/val/other", Body=b"zz")
    uri = f"s3://{aws.bucket}/data/train"
    first = fingerprint_channel(aws.s3, uri)
    assert first["objects"] == 1005
    assert first["bytes"] == sum(i % 7 for i in range(1005))
    assert fingerprint_channel(aws.s3, uri)["sha256"] == first["sha256"]
    aws.s3.put_object(Bucket=aws.bucket, Key="data/train/part-00003", Body=b"changed")
    changed = fingerprint_channel(aws.s3, uri)
    assert changed["sha256"] != first["sha256"] and changed["objects"] == 1005


def test_s3_fingerprint_uses_version_ids_when_versioned(aws):
    aws.s3.put_bucket_versioning(Bucket=aws.bucket,
                                 VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_object(Bucket=aws.bucket, Key="d/a", Body=b"same")
    first = fingerprint_channel(aws.s3, f"s3://{aws.bucket}/d/")
    aws.s3.put_object(Bucket=aws.bucket, Key="d/a", Body=b"same")  # same bytes, new version
    second = fingerprint_channel(aws.s3, f"s3://{aws.bucket}/d/")
    assert first["versioned"] and first["objects"] == second["objects"] == 1
    assert first["sha256"] != second["sha256"]


def test_file_fingerprint_and_errors(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.npz").write_bytes(b"abc")
    (tmp_path / "d" / "sub").mkdir()
    (tmp_path / "d" / "sub" / "b").write_bytes(b"defg")
    fp = fingerprint_channel(None, f"file://{tmp_path / 'd'}")
    assert (fp["objects"], fp["bytes"], fp["method"]) == (2, 7, "content")
    (tmp_path / "d" / "a.npz").write_bytes(b"abd")
    assert fingerprint_channel(None, f"file://{tmp_path / 'd'}")["sha256"] != fp["sha256"]
    missing = fingerprint_channel(None, f"file://{tmp_path / 'nope'}")
    assert "does not exist" in missing["error"]


def test_tarball_hashes_are_the_same_from_the_local_copy_or_a_download(aws, tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "code" / "train.py", arcname="train.py")
    data = buf.getvalue()
    aws.s3.put_object(Bucket=aws.bucket, Key="src/sourcedir.tar.gz", Body=data)
    uri = f"s3://{aws.bucket}/src/sourcedir.tar.gz"
    downloaded = code_tarball_info(aws.s3, uri)
    assert downloaded == code_tarball_info(aws.s3, uri, local_copy=data)
    assert downloaded["sha256"] == hashlib.sha256(data).hexdigest()
    assert downloaded["files"] == ["train.py"]
    # a copy that does not match the uploaded object is not trusted
    assert code_tarball_info(aws.s3, uri, local_copy=data + b"x") == downloaded


def test_git_capture_never_takes_the_index_lock(git_repo: Path):
    """``git status`` refreshes .git/index under .git/index.lock when a tracked file was
    touched; the SDK tars the same folder meanwhile. Capture leaves the index alone."""
    import os

    index = git_repo / ".git" / "index"
    train = git_repo / "src" / "train.py"
    later = train.stat().st_mtime_ns + 5_000_000_000
    os.utime(train, ns=(later, later))  # same content, new stat data: the index is stale
    before = index.stat()
    info, _ = git_info(str(git_repo / "src"))
    after = index.stat()
    assert info["dirty"] is False  # the touched file has the committed content
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not (git_repo / ".git" / "index.lock").exists()
    git(git_repo, "status", "--porcelain")  # what a plain git status would have done
    refreshed = index.stat()
    assert (refreshed.st_ino, refreshed.st_mtime_ns) != (before.st_ino, before.st_mtime_ns)


def test_content_hash_leaves_out_vcs_internals_and_caches(aws):
    def tarball(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    code = {"train.py": b"print('hi')\n", "lib/util.py": b"X = 1\n"}
    noise = {".git/HEAD": b"ref: refs/heads/main\n", ".git/index": b"DIRC...",
             "lib/__pycache__/util.cpython-311.pyc": b"\0", "lib/util.pyc": b"\0",
             ".ipynb_checkpoints/train-checkpoint.py": b"old", ".DS_Store": b"\0"}
    hashes = []
    for i, members in enumerate((code, {**code, **noise})):
        aws.s3.put_object(Bucket=aws.bucket, Key=f"t{i}.tar.gz", Body=tarball(members))
        hashes.append(code_tarball_info(aws.s3, f"s3://{aws.bucket}/t{i}.tar.gz"))
    assert hashes[0]["content_sha256"] == hashes[1]["content_sha256"]
    assert hashes[1]["files"] == ["lib/util.py", "train.py"]
    assert hashes[0]["sha256"] != hashes[1]["sha256"]  # the archive itself differs
