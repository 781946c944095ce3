"""Git state, diffs and data fingerprints, captured from real repositories and buckets."""

from __future__ import annotations

from pathlib import Path

from sagetrack.client import provenance
from sagetrack.client.provenance import fingerprint_channel, git_info

from ..conftest import git


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
