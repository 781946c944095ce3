"""Real git repositories for provenance tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity (tests make real repositories)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout


def make_repo(root: Path) -> Path:
    """A real git repository with one commit and a remote URL carrying credentials."""
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://alice:s3cretTok3n@git.example.com/team/proj.git")
    (repo / "src").mkdir()
    (repo / "src" / "train.py").write_text("print('training')\n")
    (repo / "README.md").write_text("project\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo
