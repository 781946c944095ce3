"""Shared fixtures: fake AWS credentials, a moto server on loopback, SDK sessions.

Every test runs with fake credentials, SDK telemetry off, and ``SAGETRACK_STRICT=1`` so
that internal tracking errors raise instead of being swallowed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# the offline helpers the benchmarks use too (SDK config patch, a black-hole endpoint)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import _common

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
REGION = "us-east-1"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Launch records are written before fit() returns unless capture outlasts the launch
    # budget; tests read records right after fit(wait=False), so on a loaded machine they
    # get a budget that tiny inputs never exceed. The background path has its own tests,
    # which set the budget low on purpose.
    os.environ.setdefault("SAGETRACK_LAUNCH_BUDGET", "60")
    # The SDK re-validates its JSON-schema config on every lookup (~0.3 s each); the
    # config never changes within a test run, so validate each distinct one once.
    _common.validate_sdk_config_once()


def set_fake_aws(mp: pytest.MonkeyPatch, base: Path, endpoint: str | None = None) -> None:
    """Fake credentials, us-east-1, SDK telemetry off, test mode; AWS at ``endpoint`` (moto)
    or nowhere. Every fixture that prepares AWS for a test goes through here."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "SAGETRACK_URI",
                 "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER",
                 "SAGETRACK_KMS_KEY_ID", "TF_CONFIG"):
        mp.delenv(name, raising=False)
    config = base / "sagemaker-config.yaml"
    if not config.exists():
        config.write_text(_common.SDK_CONFIG)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
           "AWS_EC2_METADATA_DISABLED": "true",
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config), "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
           "SAGETRACK_STRICT": "1", "SAGETRACK_HOME": str(base / "sagetrack-home"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    for key, value in env.items():
        mp.setenv(key, value)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials only; nothing in a test can reach real AWS."""
    set_fake_aws(monkeypatch, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A moto server (S3, SageMaker, ...) on 127.0.0.1 for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class AWS:
    """Handles on the moto server for one test: a fresh bucket and clients."""

    url: str
    bucket: str
    s3: Any

    def sagemaker_session(self, **kwargs: Any) -> Any:
        import boto3
        import sagemaker

        return sagemaker.Session(boto_session=boto3.Session(region_name=REGION),
                                 default_bucket=self.bucket, **kwargs)

    def list_keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def upload_dir(self, folder: Path, prefix: str) -> str:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/"
                                   f"{path.relative_to(folder).as_posix()}", Body=path.read_bytes())
        return f"s3://{self.bucket}/{prefix}"


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> AWS:
    """Point every AWS client (this process and subprocesses) at moto; a fresh bucket."""
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    return AWS(url=moto_url, bucket=bucket, s3=s3)


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity (tests make real repositories)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A real git repository with one commit and a remote URL carrying credentials."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://alice:s3cretTok3n@git.example.com/team/proj.git")
    (repo / "src").mkdir()
    (repo / "src" / "train.py").write_text("print('training')\n")
    (repo / "README.md").write_text("project\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


class FaultReport:
    """Counts for the fault-injection summary line printed at the end of the run."""

    faults = 0
    trainings = 0
    trainings_failed = 0
    records_checked = 0
    records_lost = 0

    def injected(self, n: int = 1) -> None:
        FaultReport.faults += n

    def training(self, *, ok: bool) -> None:
        FaultReport.trainings += 1
        FaultReport.trainings_failed += 0 if ok else 1

    def records(self, *, expected: int, found: int) -> None:
        FaultReport.records_checked += expected
        FaultReport.records_lost += max(0, expected - found)


@pytest.fixture
def fault_report() -> FaultReport:
    """Record what a fault-injection test injected and what survived."""
    return FaultReport()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FaultReport.faults:
        r = FaultReport
        terminalreporter.write_line(
            f"fault injection: {r.faults} faults injected, {r.trainings} trainings run, "
            f"{r.trainings_failed} trainings failed, {r.records_checked} records checked, "
            f"{r.records_lost} records lost")
