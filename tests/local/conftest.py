"""Fixtures for sagetrack.local: fake AWS credentials and a moto server for S3.

Everything is offline: the test session's moto server on 127.0.0.1 serves S3 (and
SageMaker) to this process and to the job subprocesses through ``AWS_ENDPOINT_URL``. Module-scoped
fixtures that run a job use :func:`local_aws_env` themselves, since function-scoped
environment fixtures are not active yet when they run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local.helpers import REGION, local_aws_env


@pytest.fixture(scope="session")
def local_moto(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The session's moto server (S3 + SageMaker) and a bucket on it for these tests."""
    import boto3

    from tests.support.aws import SDK_CONFIG

    cfg = tmp_path_factory.mktemp("sdk-config") / "config.yaml"
    cfg.write_text(SDK_CONFIG)
    bucket = f"sagetrack-local-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    return {"endpoint": moto_url, "bucket": bucket, "config": str(cfg)}


@pytest.fixture(autouse=True)
def _local_aws(local_moto: dict[str, str], request: pytest.FixtureRequest) -> Iterator[None]:
    """Per test: the offline AWS environment (after any top-level environment fixture)."""
    if "fake_aws" in request.fixturenames:
        request.getfixturevalue("fake_aws")
    with local_aws_env(local_moto):
        yield


@pytest.fixture(autouse=True)
def _no_leftover_jobs() -> Iterator[None]:
    """Stop (then kill) any job a test started and left running, so no process outlives it.

    Jobs of module-scoped fixtures exist before this runs and are left to their fixture.
    """
    from sagetrack.local import registered_jobs

    before = {job.name for job in registered_jobs()}
    yield
    for job in registered_jobs():
        if job.name not in before and job.owned and not job.is_done():
            job.stop()
            if not job.wait(30):
                job.kill_now()
                job.wait(10)


@pytest.fixture
def bucket(local_moto: dict[str, str]) -> str:
    """The moto bucket the sessions use as their default bucket."""
    return local_moto["bucket"]


@pytest.fixture
def s3(local_moto: dict[str, str]) -> Any:
    """A boto3 S3 client on the moto server."""
    import boto3

    return boto3.client("s3", region_name=REGION, endpoint_url=local_moto["endpoint"])


@pytest.fixture(scope="session")
def make_session(
    local_moto: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Any]:
    """Build a ``LocalProcessSession`` on the moto server (short grace and sync intervals)."""

    def make(work_dir: Path | None = None, **kwargs: Any) -> Any:
        import boto3

        from sagetrack.local import LocalProcessSession

        kwargs.setdefault("stop_grace_seconds", 20)
        kwargs.setdefault("checkpoint_sync_seconds", 1)
        return LocalProcessSession(
            boto_session=boto3.Session(region_name=REGION),
            default_bucket=local_moto["bucket"],
            work_dir=work_dir or tmp_path_factory.mktemp("work"),
            **kwargs,
        )

    return make
