"""Run one CreateTrainingJob request as local processes through the real ``sagemaker-training``.

A :class:`LocalTrainingJob` lays the request out as the container contract in one base dir
per host (``SAGEMAKER_BASE_DIR``), fills the channels and checkpoints, starts one toolkit
process per host in its own process group, streams their output to a log file, and after
they exit uploads ``model.tar.gz`` / ``output.tar.gz`` and the checkpoints, as SageMaker does.

The steps live in their own modules: :mod:`~sagetrack.local.validation` (the request),
:mod:`~sagetrack.local.hosts` (the base dirs), :mod:`~sagetrack.local.artifacts` (data in
and out), :mod:`~sagetrack.local.processes` (the processes) and
:mod:`~sagetrack.local.state` (the state file other sessions read).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from sagetrack.local import contract, diagnostics, hosts, processes
from sagetrack.local import state as statefile
from sagetrack.local.artifacts import Artifacts
from sagetrack.local.hosts import Host
from sagetrack.local.state import TERMINAL_STATUSES
from sagetrack.local.storage import Storage
from sagetrack.local.validation import check_request

__all__ = ["TERMINAL_STATUSES", "JobOptions", "LocalTrainingJob"]

_FAILURE_REASON_MAX = 1024


@dataclass
class JobOptions:
    """Settings a session passes to each of its jobs."""

    work_dir: str
    storage: Storage
    region: str
    child_env: dict[str, str | None] = field(default_factory=dict)
    install_requirements: bool = False
    keep_work_dir: bool = False
    stop_grace_seconds: float = 120.0
    checkpoint_sync_seconds: float = 10.0


class LocalTrainingJob:
    """One training job: its request, its status, and (when owned) its processes."""

    def __init__(
        self, request: Mapping[str, Any], options: JobOptions, *, owned: bool = True
    ) -> None:
        self.request: dict[str, Any] = copy.deepcopy(dict(request))
        self.options = options
        self.name = str(self.request["TrainingJobName"])
        self.arn = _job_arn(self.name, options.region, self.request.get("RoleArn", ""))
        self.owned = owned
        self.owner_pid = os.getpid()
        self.status = "InProgress"
        self.secondary_status = "Starting"
        self.transitions: list[dict[str, Any]] = []
        self.failure_reason: str | None = None
        self.model_artifacts: str | None = None
        self.creation_time = _now()
        self.last_modified = self.creation_time
        self.start_time: datetime | None = None
        self.end_time: datetime | None = None
        self.job_dir: str | None = None
        self.hosts: list[Host] = []
        self.distribution: str | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stop_secondary = "Stopped"
        self._done = threading.Event()
        self._log: IO[bytes] | None = None
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._training_over = threading.Event()
        self._ps_configs: dict[str, dict[str, Any]] = {}
        self._artifacts = Artifacts(self.request, options.storage, self._log_line)
        self._caller_env = dict(os.environ)  # the environment at fit() time
        if owned:
            self.distribution = check_request(self.request)

    # ------------------------------------------------------------------ paths
    @property
    def log_path(self) -> str:
        """The job's combined stdout/stderr log (kept after the job)."""
        return os.path.join(self.options.work_dir, "jobs", f"{self.name}.log")

    @property
    def state_path(self) -> str:
        """The JSON state file other sessions read to find this job."""
        return statefile.state_path(self.options.work_dir, self.name)

    # ------------------------------------------------------------------ public API
    def start(self) -> None:
        """Start the job in a background thread (it keeps the interpreter alive until done)."""
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        _ = self.options.storage.client  # resolve the S3 endpoint now, in the caller's thread
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed at the end of _run
        self._add_transition("Starting", "Launching requested ML instances")
        self._thread = threading.Thread(
            target=self._run, name=f"sagetrack-local-{self.name}", daemon=False
        )
        self._thread.start()

    def is_done(self) -> bool:
        """Whether the job reached a terminal status (and its uploads finished)."""
        if self.owned:
            return self._done.is_set()
        return self.status in TERMINAL_STATUSES

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends; returns whether it did within ``timeout`` seconds."""
        return self._done.wait(timeout)

    def stop(self, secondary_status: str = "Stopped") -> None:
        """Request a stop: SIGTERM to every host's process group, SIGKILL after the grace."""
        with self._lock:
            if self.is_done() or self._stop.is_set():
                return
            self._stop_secondary = secondary_status
            self._stop.set()
            self.status = "Stopping"
            self._add_transition("Stopping", "Stopping the training job")

    def kill_now(self) -> None:
        """SIGKILL every process of the job at once (a second Ctrl-C)."""
        processes.kill_now(self.hosts)

    def describe(self) -> dict[str, Any]:
        """A ``DescribeTrainingJob`` response for this job."""
        with self._lock:
            desc: dict[str, Any] = {
                k: copy.deepcopy(v) for k, v in self.request.items() if k != "Tags"
            }
            desc["TrainingJobName"] = self.name
            desc["TrainingJobArn"] = self.arn
            desc["TrainingJobStatus"] = self.status
            desc["SecondaryStatus"] = self.secondary_status
            desc["CreationTime"] = self.creation_time
            desc["LastModifiedTime"] = self.last_modified
            desc["SecondaryStatusTransitions"] = copy.deepcopy(self.transitions)
            algo = desc.setdefault("AlgorithmSpecification", {})
            algo.setdefault("TrainingInputMode", "File")
            output = desc.setdefault("OutputDataConfig", {})
            output.setdefault("KmsKeyId", "")
            output.setdefault("S3OutputPath", "")
            resource = desc.setdefault("ResourceConfig", {})
            resource.setdefault("InstanceCount", 1)
            resource.setdefault("InstanceType", "local")
            resource.setdefault("VolumeSizeInGB", 30)
            desc.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
            desc.setdefault("HyperParameters", {})
            desc.setdefault("InputDataConfig", [])
            desc.setdefault("EnableNetworkIsolation", False)
            desc.setdefault("EnableInterContainerTrafficEncryption", False)
            desc.setdefault("EnableManagedSpotTraining", False)
            if self.start_time:
                desc["TrainingStartTime"] = self.start_time
            if self.end_time:
                desc["TrainingEndTime"] = self.end_time
                if self.start_time:
                    seconds = max(0, int((self.end_time - self.start_time).total_seconds()))
                    desc["TrainingTimeInSeconds"] = seconds
                    desc["BillableTimeInSeconds"] = seconds
            if self.failure_reason:
                desc["FailureReason"] = self.failure_reason
            if self.model_artifacts:
                desc["ModelArtifacts"] = {"S3ModelArtifacts": self.model_artifacts}
            return desc

    def tags(self) -> list[dict[str, str]]:
        """The request's tags."""
        return list(self.request.get("Tags") or [])

    # ------------------------------------------------------------------ state file
    def to_state(self) -> dict[str, Any]:
        """JSON-safe state for the work dir's ``jobs/<name>.json``."""
        with self._lock:
            return statefile.to_state(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], options: JobOptions) -> LocalTrainingJob:
        """Rebuild a (not owned, read-only) job from its state file."""
        job = cls(state["request"], options, owned=False)
        job.refresh_from_state(state)
        return job

    def refresh_from_state(self, state: Mapping[str, Any]) -> None:
        """Update a not-owned job from a freshly read state file."""
        with self._lock:
            statefile.apply_state(self, state)

    def _save_state(self) -> None:
        statefile.write_state(self.state_path, self.to_state())

    # ------------------------------------------------------------------ status
    def _add_transition(self, secondary: str, message: str) -> None:
        with self._lock:
            now = _now()
            if self.transitions and "EndTime" not in self.transitions[-1]:
                self.transitions[-1]["EndTime"] = now
            self.transitions.append(
                {"Status": secondary, "StartTime": now, "StatusMessage": message}
            )
            self.secondary_status = secondary
            self.last_modified = now
            self._save_state()
        self._log_line(f"{now.strftime('%Y-%m-%d %H:%M:%S')} {secondary} - {message}")

    def _log_line(self, text: str, prefix: str = "") -> None:
        data = (prefix + text.rstrip("\n") + "\n").encode("utf-8", "replace")
        with self._log_lock:
            if self._log is not None and not self._log.closed:
                self._log.write(data)
                self._log.flush()

    # ------------------------------------------------------------------ the run
    def _run(self) -> None:
        failure: str | None = None
        prepared = False
        try:
            self._prepare()
            prepared = True
            if not self._stop.is_set():
                self._add_transition("Downloading", "Downloading input data")
                self._artifacts.download_inputs(self.hosts)
                self._artifacts.prepare_code(self.hosts)
                self._artifacts.restore_checkpoints(self.hosts)
            if not self._stop.is_set():
                with self._lock:
                    self.start_time = _now()
                self._add_transition(
                    "Training", "Training image download completed. Training in progress."
                )
                failure = self._launch_and_wait()
        except Exception as exc:  # the job fails; the caller sees it in FailureReason
            failure = f"ClientError: {exc}"
            self._log_line(f"[sagetrack.local] {failure}")
        finally:
            self._finish(failure, prepared)

    def _prepare(self) -> None:
        """Create the job dir and one base dir per host, with its Python and environment."""
        runs = os.path.join(self.options.work_dir, "runs")
        os.makedirs(runs, exist_ok=True)
        self.job_dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=runs)
        self._log_line(f"[sagetrack.local] job directory: {self.job_dir}")
        resource = self.request.get("ResourceConfig") or {}
        names = contract.host_names(int(resource.get("InstanceCount", 1)))
        tf_configs, self._ps_configs = hosts.tf_configs(self.distribution, names)
        for index, name in enumerate(names):
            host = hosts.lay_out_host(self.request, self.job_dir, names, index)
            if self.options.install_requirements:
                host.python = hosts.make_venv(self.job_dir, name, self._log_line)
            host.env = hosts.host_env(
                self.request,
                host,
                caller_env=self._caller_env,
                child_env=self.options.child_env,
                job_name=self.name,
                job_arn=self.arn,
                install_requirements=self.options.install_requirements,
                tf_config=tf_configs.get(name),
            )
            self.hosts.append(host)

    def _launch_and_wait(self) -> str | None:
        """Run the hosts' processes (syncing checkpoints meanwhile); the failure, if any."""
        supervisor = processes.Supervisor(self.name, self.hosts, self._log_line, self._stop)
        supervisor.start(self._ps_configs)
        syncer = None
        if self.request.get("CheckpointConfig"):
            syncer = threading.Thread(
                target=self._periodic_checkpoint_sync, name=f"{self.name}-ckpt", daemon=True
            )
            syncer.start()
        stopping = self.request.get("StoppingCondition") or {}
        try:
            return supervisor.wait(
                self.options.stop_grace_seconds,
                float(stopping.get("MaxRuntimeInSeconds") or 0) or None,
                on_max_runtime=lambda: self.stop("MaxRuntimeExceeded"),
            )
        finally:
            self._training_over.set()
            if syncer is not None:
                syncer.join()

    def _periodic_checkpoint_sync(self) -> None:
        while not self._training_over.wait(self.options.checkpoint_sync_seconds):
            try:
                self._artifacts.sync_checkpoints(self.hosts)
            except Exception as exc:  # retried at the next tick and at the end
                self._log_line(f"[sagetrack.local] checkpoint sync failed (will retry): {exc}")

    def _finish(self, failure: str | None, prepared: bool) -> None:
        try:
            self._finalize(failure, prepared)
        finally:
            with self._log_lock:
                if self._log is not None:
                    self._log.close()
            if self.job_dir and not self.options.keep_work_dir:
                shutil.rmtree(self.job_dir, ignore_errors=True)
            self._done.set()

    def _finalize(self, failure: str | None, prepared: bool) -> None:
        processes.kill_leftovers(self.hosts)  # after an error while starting some hosts
        stopped = self._stop.is_set()
        status = "Stopped" if stopped else ("Failed" if failure else "Completed")
        try:
            if prepared:
                self._add_transition("Uploading", "Uploading generated training model")
                self._upload(include_model=status != "Failed")
        except Exception as exc:
            if status == "Completed":
                status = "Failed"
                failure = f"ClientError: uploading the job's output failed: {exc}"
            self._log_line(f"[sagetrack.local] uploading the job's output failed: {exc}")
        hint = None
        if status == "Failed":
            hint = diagnostics.failure_hint(failure or "", self.request)
            if hint:
                self._log_line(f"[sagetrack.local] {hint}")
        with self._lock:
            self.end_time = _now()
            if self.start_time is None:
                self.start_time = self.end_time
            if status == "Failed":
                self.failure_reason = diagnostics.with_hint(
                    failure or "AlgorithmError", hint, _FAILURE_REASON_MAX
                )
                self.model_artifacts = None
            self.status = status
        final_secondary = self._stop_secondary if status == "Stopped" else status
        message = {
            "Completed": "Training job completed",
            "Failed": f"Training job failed: {self.failure_reason}",
            "Stopped": "Training job stopped"
            if final_secondary == "Stopped"
            else "Training job stopped: it exceeded MaxRuntimeInSeconds",
        }[status]
        self._add_transition(final_secondary, message.splitlines()[0])
        with self._lock:
            self.transitions[-1]["EndTime"] = self.end_time
            self._save_state()

    def _upload(self, include_model: bool) -> None:
        """The last checkpoints, then the model (unless the job failed) and the output."""
        assert self.job_dir is not None
        self._artifacts.sync_checkpoints(self.hosts)
        staging = os.path.join(self.job_dir, "artifacts")
        if include_model:
            self.model_artifacts = self._artifacts.upload_model(self.hosts, self.name, staging)
        self._artifacts.upload_output(self.hosts, self.name, staging)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _job_arn(name: str, region: str, role_arn: str) -> str:
    parts = str(role_arn).split(":")
    partition = parts[1] if len(parts) > 4 and parts[1] else "aws"
    account = parts[4] if len(parts) > 4 and parts[4] else "000000000000"
    return f"arn:{partition}:sagemaker:{region}:{account}:training-job/{name.lower()}"
