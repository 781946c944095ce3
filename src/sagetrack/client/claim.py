"""Claiming a run id for a launch: which records a launch may write over.

A launch claims its run by writing the ``launched`` status create-only. When the run id
already has records, the launch may take them over only when their job provably never
started: the status still says ``launched`` *and* SageMaker answers "not found" for the
job. Anything else (a run that started, a status that cannot be read, a job SageMaker
knows, or SageMaker not answering) leaves the records as they are, and the launch goes
ahead untracked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from ..store.layout import dumps, run_prefix
from ..store.schema import FORMAT, LAUNCHED, STATUS_FILE
from .store_access import TrackingStore

__all__ = ["claim_run", "launched_status", "training_job_exists"]

log = logging.getLogger("sagetrack")


def launched_status(experiment: str, record: dict[str, Any]) -> bytes:
    """The ``launched`` status a launch claims its run with (unique to this launch)."""
    return dumps({
        "format": FORMAT, "run_id": record["run_id"], "experiment": experiment,
        "status": LAUNCHED, "started": None, "updated": record["created"],
        "ended": None, "attempt": 0, "last_epoch": None, "metrics": {}, "failure": None,
    })


def training_job_exists(sagemaker_client: Any, job_name: str) -> bool | None:
    """Whether SageMaker knows training job ``job_name``; None when it cannot tell."""
    from botocore.exceptions import ClientError

    try:
        sagemaker_client.describe_training_job(TrainingJobName=job_name)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = str(error.get("Message", "")).lower()
        if error.get("Code") in ("ValidationException", "ResourceNotFound") and (
                "not found" in message or "could not find" in message):
            return False
        log.info("sagetrack: DescribeTrainingJob(%s) failed: %s", job_name, exc)
        return None
    except Exception as exc:
        log.info("sagetrack: DescribeTrainingJob(%s) failed: %s", job_name, exc)
        return None
    return True


def claim_run(store: TrackingStore, experiment: str, run_id: str, status: bytes,
              job_exists: Callable[[str], bool | None]) -> str | None:
    """Claim run ``run_id`` with ``status``; None when claimed, else why its existing
    records are left alone."""
    key = f"{run_prefix(experiment, run_id)}/{STATUS_FILE}"
    if store.put(key, status, if_absent=True):
        return None
    try:
        existing: bytes | None = store.backend.get(key)
    except Exception as exc:
        log.info("sagetrack: cannot read %s: %s", key, exc)
        existing = None
    if existing == status:  # this launch's own claim, landed by a write that was retried
        return None
    try:
        state = json.loads(existing or b"").get("status")
    except (ValueError, AttributeError):
        state = None
    if state != LAUNCHED:
        return f"already has a run ({state or 'its status is unreadable'})"
    exists = job_exists(run_id)
    if exists is False:  # its launch never created the job: take it over
        store.put(key, status)
        return None
    return ("already has a launched run, and SageMaker a job of that name" if exists else
            "already has a launched run, and SageMaker could not confirm that its job never "
            "started")
