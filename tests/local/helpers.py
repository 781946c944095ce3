"""Helpers shared by the sagetrack.local tests."""

from __future__ import annotations

import contextlib
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import REGION, ROLE

__all__ = ["REGION", "ROLE", "local_aws_env", "make_estimator", "s3_keys", "tar_members",
           "write_source"]


def write_source(directory: Path, script: str, extra: dict[str, str] | None = None) -> Path:
    """Write ``train.py`` (dedented) and ``extra`` files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.py").write_text(textwrap.dedent(script))
    for name, text in (extra or {}).items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def make_estimator(session: Any, source_dir: Path, **kwargs: Any) -> Any:
    """The real ``sagemaker.tensorflow.TensorFlow`` estimator in local mode."""
    from sagemaker.tensorflow import TensorFlow

    kwargs.setdefault("instance_type", "local")
    kwargs.setdefault("instance_count", 1)
    return TensorFlow(
        entry_point="train.py",
        source_dir=str(source_dir),
        role=ROLE,
        framework_version="2.16",
        py_version="py310",
        sagemaker_session=session,
        **kwargs,
    )


def s3_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``."""
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def tar_members(s3: Any, bucket: str, key: str, tmp: Path) -> dict[str, bytes]:
    """Names and contents of the regular files inside an S3 ``.tar.gz``."""
    path = tmp / f"{uuid.uuid4().hex}.tar.gz"
    s3.download_file(bucket, key, str(path))
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@contextlib.contextmanager
def local_aws_env(moto: dict[str, str]) -> Iterator[None]:
    """Fake credentials, us-east-1, SDK telemetry off, every AWS client on the moto server."""
    from tests.support.aws import set_fake_aws

    with pytest.MonkeyPatch.context() as mp:
        set_fake_aws(mp, Path(moto["config"]).parent, moto["endpoint"])
        yield
