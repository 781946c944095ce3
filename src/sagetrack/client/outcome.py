"""After ``fit()``: the job's outcome in ``job.json``, and its records from its output.

:func:`record_outcome` writes what SageMaker says about the job (status, failure reason,
artifacts, times), or that ``CreateTrainingJob`` itself failed. When the job has ended
and the container's records did not reach the store (network isolation, a denied bucket),
the local copy the job uploaded in ``output.tar.gz`` is ingested (see ingest.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from ..store.layout import FORMAT, RUN_FILES, dumps, now_iso, run_prefix
from ..store.schema import JOB_TERMINAL, TERMINAL
from .guard import attempt
from .store_access import TrackingStore

__all__ = ["record_outcome", "write_job_doc"]

log = logging.getLogger("sagetrack")

_ENDED = JOB_TERMINAL


def write_job_doc(store: TrackingStore, experiment: str, run_id: str,
                  doc: dict[str, Any]) -> None:
    """Write ``job.json`` of run ``run_id``."""
    store.put(f"{run_prefix(experiment, run_id)}/{RUN_FILES['job']}",
              dumps({"format": FORMAT, "recorded": now_iso(), **doc}))


def record_outcome(job: Any, claimed: str | None, error: BaseException | None, *,
                   experiment: str, open_store: Callable[[], TrackingStore],
                   sagemaker_client: Callable[[], Any], s3_client: Callable[[], Any]) -> None:
    """Record how ``fit()`` ended: ``job`` is its latest training job (or None), ``claimed``
    the run id its launch record claimed, ``error`` what ``fit()`` raised. Nothing is
    written for a launch that claimed no run (untracked, or records left alone)."""
    if claimed is None:
        return
    if error is not None and (job is None or job.name != claimed):
        # CreateTrainingJob itself failed: the run never started
        attempt("record the launch failure", _write_launch_failure, open_store, experiment,
                claimed, error)
        return
    if job is None or job.name != claimed:
        return

    def describe() -> None:
        desc = job.describe()
        store = open_store()
        write_job_doc(store, experiment, job.name, {
            "status": desc.get("TrainingJobStatus"),
            "secondary_status": desc.get("SecondaryStatus"),
            "failure_reason": desc.get("FailureReason"),
            "model_artifacts": (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            "training_start": str(desc.get("TrainingStartTime") or "") or None,
            "training_end": str(desc.get("TrainingEndTime") or "") or None,
            "billable_seconds": desc.get("BillableTimeInSeconds"),
            "training_seconds": desc.get("TrainingTimeInSeconds"),
        })
        if desc.get("TrainingJobStatus") in _ENDED:
            _ingest_if_needed(open_store(), experiment, job.name, sagemaker_client(),
                              s3_client())

    attempt("record the job outcome", describe)


def _write_launch_failure(open_store: Callable[[], TrackingStore], experiment: str,
                          run_id: str, error: BaseException) -> None:
    write_job_doc(open_store(), experiment, run_id,
                  {"status": "Failed", "stage": "create",
                   "failure_reason": f"{type(error).__name__}: {error}"})


def _ingest_if_needed(store: TrackingStore, experiment: str, job_name: str,
                      sagemaker_client: Any, s3_client: Any) -> None:
    """Ingest the job's local copy when the container's records did not reach the store."""
    key = f"{run_prefix(experiment, job_name)}/{RUN_FILES['status']}"
    try:
        status = json.loads(store.backend.get(key)).get("status")
    except Exception:
        status = None
    if status in TERMINAL:
        return
    from .ingest import ingest_job

    written = ingest_job(job_name, store.backend, sagemaker_client=sagemaker_client,
                         s3_client=s3_client)
    if written:
        log.info("sagetrack: ingested %d records of %s from its output", len(written),
                 job_name)
