"""The record schema ``sagetrack/1``: every file name, reserved prefix, status and shape.

Writers (the client at ``fit()``, the container) and readers take names from here, and
the reader checks every record it parses against the shapes below
(:mod:`sagetrack.store.parse`). Only the standard library: this module ships to the
training container. ``docs/record-format.md`` documents the same names; a test keeps the
two in step. Shapes are ``TypedDict``\\ s with every key optional (records written by other
versions may lack any key); row shapes name their required keys in a base class.

Layout::

    <store>/<experiment>/<run id>/run.json        RunDoc         launch record (client)
                                 /code.diff       text           uncommitted diff (client)
                                 /status.json     StatusDoc      status snapshot
                                 /environment.json EnvironmentDoc chief's environment
                                 /hosts/<host>.json EnvironmentDoc each host's environment
                                 /metrics.jsonl   EpochRow       one line per epoch
                                 /steps.jsonl     StepRow        log_metrics() / output rows
                                 /batches/<epoch>-<attempt>-<chunk>.jsonl  BatchRow
                                 /model.json      ModelDoc       files under SM_MODEL_DIR
                                 /job.json        JobDoc         job outcome seen by the client
    <store>/_launch/<experiment>/<name>.json      RunDoc         launch template (tuner, pipeline)
    <store>/_identity/<hash>/<experiment>/<run id>.json  IdentityMarker
    <store>/_index/<experiment>/runs.jsonl.gz     IndexHeader, then RunsIndexLine
    <store>/_index/<experiment>/metrics.jsonl.gz  IndexHeader, then MetricsIndexLine
    <store>/_site/                                reserved (a static report)
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = [
    "BATCHES_DIR",
    "BATCH_CHUNK_ROWS",
    "COMPLETED",
    "DIFF_FILE",
    "ENVIRONMENT_FILE",
    "FAILED",
    "FORMAT",
    "HOSTS_DIR",
    "IDENTITY_PREFIX",
    "INDEX_FORMAT",
    "INDEX_METRICS_FILE",
    "INDEX_PREFIX",
    "INDEX_RUNS_FILE",
    "JOB_FILE",
    "JOB_STATUSES",
    "JOB_TERMINAL",
    "LAUNCHED",
    "LAUNCH_PREFIX",
    "METRICS_FILE",
    "MODEL_FILE",
    "RESERVED_PREFIXES",
    "RUNNING",
    "RUN_FILE",
    "RUN_FILES",
    "RUN_STATUSES",
    "SITE_PREFIX",
    "STATUS_FILE",
    "STEPS_FILE",
    "STOPPED",
    "TERMINAL",
    "UNKNOWN",
    "batch_file",
    "host_file",
    "run_status",
    "status_disagreement",
]

FORMAT = "sagetrack/1"

# -- files of a run ------------------------------------------------------------------------
RUN_FILE = "run.json"
DIFF_FILE = "code.diff"
STATUS_FILE = "status.json"
ENVIRONMENT_FILE = "environment.json"
METRICS_FILE = "metrics.jsonl"
STEPS_FILE = "steps.jsonl"
MODEL_FILE = "model.json"
JOB_FILE = "job.json"
HOSTS_DIR = "hosts"
BATCHES_DIR = "batches"

RUN_FILES = {
    "run": RUN_FILE,
    "diff": DIFF_FILE,
    "status": STATUS_FILE,
    "environment": ENVIRONMENT_FILE,
    "metrics": METRICS_FILE,
    "steps": STEPS_FILE,
    "model": MODEL_FILE,
    "job": JOB_FILE,
}

#: rows per every-N-batches file: a flush rewrites one chunk, never a whole long epoch
BATCH_CHUNK_ROWS = 1000


def batch_file(epoch: int, attempt: int, chunk: int) -> str:
    """The series that holds chunk ``chunk`` (from 0) of ``epoch``'s batch rows recorded
    by ``attempt`` (a restarted job never overwrites an earlier attempt's rows)."""
    return f"{BATCHES_DIR}/{epoch:06d}-{attempt:03d}-{chunk:05d}.jsonl"


def host_file(host: str) -> str:
    """The environment record of one host (``algo-1``, ...)."""
    return f"{HOSTS_DIR}/{host}.json"


# -- reserved top-level prefixes (never experiments) ---------------------------------------
LAUNCH_PREFIX = "_launch"
INDEX_PREFIX = "_index"
IDENTITY_PREFIX = "_identity"
SITE_PREFIX = "_site"
RESERVED_PREFIXES = (LAUNCH_PREFIX, INDEX_PREFIX, IDENTITY_PREFIX, SITE_PREFIX)

INDEX_FORMAT = "sagetrack-index/1"
INDEX_RUNS_FILE = "runs.jsonl.gz"
INDEX_METRICS_FILE = "metrics.jsonl.gz"

# -- statuses ------------------------------------------------------------------------------
RunStatus = Literal["launched", "running", "completed", "failed", "stopped"]
LAUNCHED: RunStatus = "launched"
RUNNING: RunStatus = "running"
COMPLETED: RunStatus = "completed"
FAILED: RunStatus = "failed"
STOPPED: RunStatus = "stopped"
RUN_STATUSES: tuple[RunStatus, ...] = (LAUNCHED, RUNNING, COMPLETED, FAILED, STOPPED)
TERMINAL: tuple[RunStatus, ...] = (COMPLETED, FAILED, STOPPED)
#: what a reader calls a run with neither a status nor a launch record
UNKNOWN = "unknown"

#: SageMaker's TrainingJobStatus, as ``job.json`` records it
JobStatus = Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"]
JOB_STATUSES: tuple[JobStatus, ...] = ("InProgress", "Completed", "Failed", "Stopping",
                                       "Stopped")
JOB_TERMINAL: tuple[JobStatus, ...] = ("Completed", "Failed", "Stopped")
#: the run status each SageMaker job status means
JOB_TO_RUN_STATUS: dict[JobStatus, RunStatus] = {
    "InProgress": RUNNING, "Stopping": RUNNING, "Completed": COMPLETED, "Failed": FAILED,
    "Stopped": STOPPED}


def run_status(recorded: str | None, job_status: str | None, launched: bool) -> str:
    """A run's status: the ended job's status as SageMaker reports it (the job's own
    truth: a job can fail after its script completed, e.g. uploading the model), else the
    final recorded status, else the recorded one, else ``launched`` when there is a launch
    record, else ``unknown``. :func:`status_disagreement` says when the two differ."""
    if job_status in JOB_TERMINAL:
        return JOB_TO_RUN_STATUS[job_status]  # type: ignore[index]
    if recorded in TERMINAL:
        return str(recorded)
    return recorded or (LAUNCHED if launched else UNKNOWN)


def status_disagreement(recorded: str | None, job_status: str | None) -> str | None:
    """A sentence when the container's final status and SageMaker's differ, else None."""
    if recorded in TERMINAL and job_status in JOB_TERMINAL \
            and JOB_TO_RUN_STATUS[job_status] != recorded:  # type: ignore[index]
        return (f"status.json records {recorded!r} but SageMaker reports the job "
                f"{job_status!r}; the run reads as {JOB_TO_RUN_STATUS[job_status]!r}"  # type: ignore[index]
                " (SageMaker's outcome of the whole job)")
    return None


# -- shapes --------------------------------------------------------------------------------
#: a value shown as recorded (SDK pipeline variables are recorded as strings)
Scalar = str | int | float | bool | None


class TarballDoc(TypedDict, total=False):
    """``run.json`` ``code.tarball``: the code tarball SageMaker ran."""

    uri: str | None
    bytes: int
    etag: str
    sha256: str | None
    content_sha256: str
    files: list[str]
    file_count: int
    note: str
    error: str


class CodeDoc(TypedDict, total=False):
    """``run.json`` ``code``: git state and code tarball at ``fit()``."""

    entry_point: str | None
    source_dir: str | None
    dependencies: list[str]
    git_config: dict[str, Any] | None
    tarball: TarballDoc | None
    git: bool | None
    root: str
    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    changed_files: list[str]
    diff_chars: int
    diff_sha256: str | None
    diff_file: str | None
    diff_truncated: bool
    error: str


class ChannelDoc(TypedDict, total=False):
    """``run.json`` ``inputs.<channel>``: the channel's URI and data fingerprint."""

    uri: str | None
    data_type: str | None
    objects: int
    bytes: int
    sha256: str | None
    versioned: bool
    manifest: bool
    method: str
    note: str
    error: str


class JobConfigDoc(TypedDict, total=False):
    """``run.json`` ``job``: image, instances and settings of the training job."""

    image_uri: str | None
    instance_type: Scalar
    instance_count: Scalar
    volume_size: Scalar
    max_run: Scalar
    framework_version: str | None
    py_version: str | None
    distribution: dict[str, Any] | None
    use_spot_instances: bool
    max_wait: Scalar
    checkpoint_s3_uri: Scalar
    checkpoint_local_path: Scalar
    output_path: str | None
    role: Scalar
    region: str | None
    enable_network_isolation: bool
    environment: dict[str, Any]
    metric_definitions: list[dict[str, Any]] | None
    base_job_name: str | None


class ArtifactsDoc(TypedDict, total=False):
    """``run.json`` ``artifacts``: where SageMaker puts the job's outputs."""

    code: str | None
    model: str | None
    output: str | None


class TrackingDoc(TypedDict, total=False):
    """``run.json`` ``tracking``: the store and tracking settings."""

    uri: str
    track_batches: int


class ReproducesDoc(TypedDict, total=False):
    """``run.json`` ``reproduces``: the run a reproduction repeats."""

    run_id: str
    experiment: str
    tracking_uri: str | None
    content_sha256: str | None
    code: CodeDoc
    overrides: list[str]
    data_changed: dict[str, str]


class RunDoc(TypedDict, total=False):
    """``run.json`` (and ``_launch/<experiment>/<name>.json``): the launch record."""

    format: str
    run_id: str
    experiment: str
    created: str
    user: str | None
    client_host: str | None
    sagetrack_version: str | None
    sagemaker_sdk_version: str | None
    params: dict[str, Any]
    sagemaker_params: dict[str, Any]
    code: CodeDoc
    inputs: dict[str, ChannelDoc]
    job: JobConfigDoc
    artifacts: ArtifactsDoc
    tracking: TrackingDoc
    reproduces: ReproducesDoc | None
    pending: list[str] | None
    launch_template: str


class FailureDoc(TypedDict, total=False):
    """``status.json`` ``failure``: the exception that ended a failed run."""

    type: str
    message: str
    traceback: str


class StatusDoc(TypedDict, total=False):
    """``status.json``: the status snapshot, replaced whole on every change."""

    format: str
    run_id: str
    experiment: str
    status: RunStatus
    started: str | None
    updated: str | None
    ended: str | None
    attempt: int
    last_epoch: int | None
    model_params: int | None
    metrics: dict[str, float]
    fits: list[dict[str, Any]]
    restarts: list[str]
    failure: FailureDoc | None


class JobDoc(TypedDict, total=False):
    """``job.json``: the job's outcome as the client saw it."""

    format: str
    recorded: str
    status: JobStatus
    stage: str
    secondary_status: str | None
    failure_reason: str | None
    model_artifacts: str | None
    training_start: str | None
    training_end: str | None
    billable_seconds: int | None
    training_seconds: int | None


class EnvironmentDoc(TypedDict, total=False):
    """``environment.json`` and ``hosts/<host>.json``: one process's environment."""

    host: str
    hosts: list[str]
    host_count: int
    chief: bool
    rank: int | None
    python: str
    python_implementation: str
    platform: str
    executable: str
    argv: list[str]
    tensorflow: str | None
    keras: str | None
    keras_flavour: str
    cpu_count: int | None
    gpu_count: int
    environment_variables: dict[str, str]
    packages: list[str]


class ModelFileDoc(TypedDict, total=False):
    """``model.json`` ``files[]``: one file saved under ``SM_MODEL_DIR``."""

    path: str
    bytes: int
    sha256: str


class ModelDoc(TypedDict, total=False):
    """``model.json``: the files saved under ``SM_MODEL_DIR``."""

    format: str
    model_dir: str
    files: list[ModelFileDoc]
    total_bytes: int


class _EpochKey(TypedDict):
    epoch: int


class EpochRow(_EpochKey, total=False):
    """A ``metrics.jsonl`` line: one finished epoch (``epoch`` counts from 1)."""

    time: str
    duration_s: float | None
    metrics: dict[str, float]
    fit: int
    attempt: int


class _StepKey(TypedDict):
    step: int


class StepRow(_StepKey, total=False):
    """A ``steps.jsonl`` line: one ``log_metrics()`` call or one value matched on an
    output line. ``seq`` numbers the rows in the order they were recorded (rows written
    without it numbered output values per metric; see
    ``sagetrack.store.metrics.step_table``)."""

    time: str
    metrics: dict[str, float]
    source: str
    attempt: int
    seq: int


class _BatchKey(TypedDict):
    epoch: int
    batch: int
    step: int


class BatchRow(_BatchKey, total=False):
    """A ``batches/*.jsonl`` line: every N training batches (``time``: Unix seconds)."""

    time: float
    metrics: dict[str, float]
    attempt: int


class IdentityMarker(TypedDict, total=False):
    """``_identity/<hash>/<experiment>/<run id>.json``: a launch of some work."""

    run_id: str
    created: str


class IndexHeader(TypedDict, total=False):
    """First line of each run index object."""

    format: str
    experiment: str
    updated: str
    runs: int


class _IndexKey(TypedDict):
    id: str


class RunsIndexLine(_IndexKey, total=False):
    """A ``runs.jsonl.gz`` line: a settled run's records and best metrics."""

    record: RunDoc
    status: StatusDoc
    job: JobDoc
    best: dict[str, float]


class MetricsIndexLine(_IndexKey, total=False):
    """A ``metrics.jsonl.gz`` line: a settled run's epoch rows, column by column."""

    epoch: list[int | None]
    fit: list[int]
    duration_s: list[float | None]
    metrics: dict[str, list[float | None]]
