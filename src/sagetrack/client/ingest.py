"""Bring a job's records into the store from its ``output.tar.gz``.

Inside the container sagetrack always keeps a local copy of the run under
``SM_OUTPUT_DATA_DIR/sagetrack``, which SageMaker uploads as ``output.tar.gz`` when the
job ends. When the container could not reach the store (network isolation, a denied or
missing bucket, an outage), that copy completes the record: ``fit(wait=True)`` ingests it
automatically, and ``sagetrack ingest JOB`` does it later.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any
from urllib.parse import urlparse

from ..errors import RecordNotFound, StoreError
from ..store.backends import Backend
from ..store.layout import validate_experiment, validate_run_id
from ..store.schema import STATUS_FILE, TERMINAL

__all__ = ["ingest_job", "output_archive_uri"]

_PREFIX = "sagetrack/"


def output_archive_uri(description: dict[str, Any]) -> str:
    """``<S3OutputPath>/<job>/output/output.tar.gz`` from a DescribeTrainingJob result."""
    base = str(description["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
    return f"{base}/{description['TrainingJobName']}/output/output.tar.gz"


def _read(uri: str, s3_client: Any) -> bytes:
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        try:
            body: bytes = s3_client.get_object(Bucket=parsed.netloc,
                                               Key=parsed.path.lstrip("/"))["Body"].read()
        except Exception as exc:
            raise RecordNotFound(f"Cannot read the job's output archive {uri}: {exc}") from exc
        return body
    path = parsed.path if parsed.scheme == "file" else uri
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise RecordNotFound(f"Cannot read the job's output archive {uri}: {exc}") from exc


def ingest_job(job_name: str, store: Backend, *, sagemaker_client: Any, s3_client: Any,
               overwrite_terminal: bool = False) -> list[str]:
    """Copy the run records found in the job's output archive into ``store``.

    Records already in the store with a final status are kept unless
    ``overwrite_terminal``; everything else is written. Returns the keys written.
    """
    validate_run_id(job_name)
    description = sagemaker_client.describe_training_job(TrainingJobName=job_name)
    archive = _read(output_archive_uri(description), s3_client)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            return _copy_records(tar, job_name, store, overwrite_terminal)
    except tarfile.TarError as exc:
        raise StoreError(f"The output archive of {job_name} is not a tar file: {exc}") from exc


def _copy_records(tar: tarfile.TarFile, job_name: str, store: Backend,
                  overwrite_terminal: bool) -> list[str]:
    written: list[str] = []
    for member in tar.getmembers():
        name = member.name.removeprefix("./")
        if not member.isfile() or not name.startswith(_PREFIX):
            continue
        key = name[len(_PREFIX):]
        parts = key.split("/")
        if len(parts) < 3 or parts[1] != job_name:
            continue
        validate_experiment(parts[0])
        if parts[-1] == STATUS_FILE and not overwrite_terminal and _terminal(store, key):
            continue
        fh = tar.extractfile(member)
        if fh is None:
            continue
        store.put(key, fh.read())
        written.append(key)
    return written


def _terminal(store: Backend, key: str) -> bool:
    import json

    try:
        status = json.loads(store.get(key)).get("status")
    except (RecordNotFound, ValueError):
        return False
    return status in TERMINAL
