"""Module-scoped AWS stand-in for end-to-end jobs (each job runs once per module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import AWS, REGION, set_fake_aws


@pytest.fixture(scope="module")
def e2e_aws(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AWS]:
    import uuid

    import boto3

    with pytest.MonkeyPatch.context() as mp:
        set_fake_aws(mp, tmp_path_factory.mktemp("e2e-env"), moto_url)
        mp.setenv("SAGETRACK_EXIT_TIMEOUT", "10")
        bucket = f"e2e-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=bucket)
        yield AWS(url=moto_url, bucket=bucket, s3=s3)


def local_session(aws: AWS, work_dir: Path) -> Any:
    import boto3

    from sagetrack.local import LocalProcessSession

    return LocalProcessSession(boto_session=boto3.Session(region_name=REGION),
                               default_bucket=aws.bucket, work_dir=str(work_dir),
                               stop_grace_seconds=20)


@pytest.fixture(autouse=True)
def fake_aws(e2e_aws: AWS) -> None:
    """Here the module-scoped environment of ``e2e_aws`` is the fake AWS (overrides the root)."""
