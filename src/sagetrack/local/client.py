"""A process-backed stand-in for the boto3 SageMaker client (training-job calls only)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

from sagetrack.local.errors import LocalJobApiError, UnsupportedLocalFeatureError
from sagetrack.local.runner import JobOptions, LocalTrainingJob
from sagetrack.local.state import read_state, state_path

__all__ = ["LocalProcessSagemakerClient", "registered_jobs"]

# Jobs started in this process, whichever session started them: a new session object in
# the same process (e.g. ``TensorFlow.attach``) finds them here.
_REGISTRY: dict[str, LocalTrainingJob] = {}
_REGISTRY_LOCK = threading.Lock()


def registered_jobs() -> list[LocalTrainingJob]:
    """Every job started in this process (running or finished)."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


class LocalProcessSagemakerClient:
    """Implements the SageMaker client calls ``Estimator.fit/attach/model_data`` make.

    ``create_training_job`` takes the exact request the SDK built and runs it with
    :class:`~sagetrack.local.runner.LocalTrainingJob`; the other calls report on those jobs.
    Any other SageMaker API raises :class:`~sagetrack.local.UnsupportedLocalFeatureError`.
    """

    def __init__(self, options_factory: Callable[[], JobOptions]) -> None:
        self._options_factory = options_factory
        self._options: JobOptions | None = None

    @property
    def options(self) -> JobOptions:
        """The session's job options (built on first use)."""
        if self._options is None:
            self._options = self._options_factory()
        return self._options

    # ------------------------------------------------------------------ jobs
    def create_training_job(self, **request: Any) -> dict[str, Any]:
        """Start a training job from a ``CreateTrainingJob`` request; returns its ARN."""
        name = check_job_name(request.get("TrainingJobName"), "CreateTrainingJob")
        options = self._options_factory()  # fresh credentials for every job
        self._options = options
        with _REGISTRY_LOCK:
            if name in _REGISTRY or os.path.exists(state_path(options.work_dir, name)):
                raise LocalJobApiError(
                    "ResourceInUse",
                    f"Training job names must be unique within an AWS account and region, and "
                    f"a training job with this name already exists ({name}). Pass a new "
                    "job_name to fit(), or leave it out to get a generated one.",
                    "CreateTrainingJob",
                )
            job = LocalTrainingJob(request, options)
            _REGISTRY[name] = job
        try:
            job.start()
        except BaseException:
            with _REGISTRY_LOCK:
                _REGISTRY.pop(name, None)
            raise
        return {"TrainingJobArn": job.arn}

    def get_job(self, name: str, operation: str = "DescribeTrainingJob") -> LocalTrainingJob:
        """The job called ``name``: from this process, else from the work dir's state file."""
        name = check_job_name(name, operation)
        with _REGISTRY_LOCK:
            job = _REGISTRY.get(name)
        if job is not None:
            return job
        state = read_state(self.options.work_dir, name)
        if state is None:
            raise LocalJobApiError(
                "ValidationException",
                f"Requested resource not found: training job {name!r} is unknown to this "
                f"process and has no state file in {self.options.work_dir}/jobs. Use a "
                "LocalProcessSession with the same work_dir as the session that ran it.",
                operation,
            )
        return LocalTrainingJob.from_state(state, self.options)

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        """``DescribeTrainingJob``: status, times, artifacts and the original request."""
        return self.get_job(TrainingJobName).describe()

    def stop_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        """``StopTrainingJob``: SIGTERM to the job's process groups, SIGKILL after the grace."""
        job = self.get_job(TrainingJobName, "StopTrainingJob")
        if not job.owned:
            if job.is_done():
                return {}
            raise LocalJobApiError(
                "ValidationException",
                f"Training job {TrainingJobName!r} runs in another process (pid "
                f"{job.owner_pid}); stop it from there (or send SIGTERM to that process).",
                "StopTrainingJob",
            )
        job.stop()
        return {}

    def list_training_jobs(self, **kwargs: Any) -> dict[str, Any]:
        """``ListTrainingJobs`` over the jobs of this process and the session's work dir."""
        jobs: dict[str, dict[str, Any]] = {}
        jobs_dir = os.path.join(self.options.work_dir, "jobs")
        if os.path.isdir(jobs_dir):
            for entry in sorted(os.listdir(jobs_dir)):
                if entry.endswith(".json"):
                    name = entry[: -len(".json")]
                    try:
                        jobs[name] = self.get_job(name).describe()
                    except (LocalJobApiError, ValueError, KeyError):
                        continue
        for job in registered_jobs():
            jobs[job.name] = job.describe()
        contains = kwargs.get("NameContains")
        status = kwargs.get("StatusEquals")
        summaries = [
            {
                "TrainingJobName": d["TrainingJobName"],
                "TrainingJobArn": d["TrainingJobArn"],
                "CreationTime": d["CreationTime"],
                "TrainingEndTime": d.get("TrainingEndTime"),
                "LastModifiedTime": d["LastModifiedTime"],
                "TrainingJobStatus": d["TrainingJobStatus"],
            }
            for d in jobs.values()
            if (not contains or contains in d["TrainingJobName"])
            and (not status or status == d["TrainingJobStatus"])
        ]
        summaries.sort(key=lambda d: d["CreationTime"], reverse=True)
        limit = kwargs.get("MaxResults")
        if limit:
            summaries = summaries[: int(limit)]
        for summary in summaries:
            if summary["TrainingEndTime"] is None:
                del summary["TrainingEndTime"]
        return {"TrainingJobSummaries": summaries}

    def list_tags(self, ResourceArn: str, **_kwargs: Any) -> dict[str, Any]:
        """``ListTags`` for a local training job ARN (the request's tags)."""
        name = ResourceArn.rsplit("/", 1)[-1]
        for job in registered_jobs():
            if job.arn == ResourceArn or job.name.lower() == name:
                return {"Tags": job.tags()}
        try:
            return {"Tags": self.get_job(name, "ListTags").tags()}
        except LocalJobApiError:
            return {"Tags": []}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise _UnsupportedOperation(
            f"LocalProcessSession's process-backed SageMaker client does not implement "
            f"{name!r}; it runs training jobs only (create/describe/stop/list training jobs, "
            "list_tags). Use a regular sagemaker.Session for other SageMaker APIs."
        )


#: SageMaker's rule for training job names (CreateTrainingJob API reference)
_JOB_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def check_job_name(name: Any, operation: str) -> str:
    """``name`` when SageMaker would accept it as a training job name (1-63 letters, digits
    and hyphens, starting with a letter or digit); the API's ValidationException otherwise.
    A job's folder and state file are named after it, so this also keeps them inside the
    session's work folder."""
    if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
        raise LocalJobApiError(
            "ValidationException",
            f"1 validation error detected: Value {name!r} at 'trainingJobName' failed to "
            "satisfy constraint: Member must satisfy regular expression pattern: "
            "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            operation,
        )
    return name


class _UnsupportedOperation(UnsupportedLocalFeatureError, AttributeError):
    """An API the local client does not implement (also an ``AttributeError``)."""

