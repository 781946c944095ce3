"""Run one CreateTrainingJob request as local processes through the real ``sagemaker-training``.

A :class:`LocalTrainingJob` lays the request out as the container contract in one base dir
per host (``SAGEMAKER_BASE_DIR``), fills the channels and checkpoints, starts one toolkit
process per host in its own process group, streams their output to a log file, and after
they exit uploads ``model.tar.gz`` / ``output.tar.gz`` and the checkpoints, as SageMaker does.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from sagetrack.local import contract
from sagetrack.local.errors import LocalModeError, UnsupportedLocalFeatureError
from sagetrack.local.storage import Storage, join_uri, local_path_from_file_uri

__all__ = [
    "TERMINAL_STATUSES",
    "JobOptions",
    "LocalTrainingJob",
    "toolkit_command",
]

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")

#: Environment variables that steer the toolkit; never inherited from the caller.
_CONTROL_VARS = frozenset(
    {
        "CURRENT_HOST",
        "SAGEMAKER_BASE_DIR",
        "SAGEMAKER_PROGRAM",
        "SAGEMAKER_SUBMIT_DIRECTORY",
        "SAGEMAKER_TRAINING_MODULE",
        "SAGEMAKER_REGION",
        "SAGEMAKER_JOB_NAME",
        "SAGEMAKER_CONTAINER_LOG_LEVEL",
        "SAGEMAKER_ENABLE_CLOUDWATCH_METRICS",
        "SAGEMAKER_S3_OUTPUT",
        "TF_CONFIG",
        "TRAINING_JOB_NAME",
        "TRAINING_JOB_ARN",
    }
)

_SKIP_INSTALL_ENV = "SAGETRACK_LOCAL_SKIP_INSTALL"
_FAILURE_REASON_MAX = 1024
_LEFTOVER_SECONDS = 2.0  # after a host's main process exits, before its group is killed
_KILL_DRAIN_SECONDS = 5.0

# Runs in the job's interpreter: optionally disables the toolkit's pip installs, then starts
# the toolkit exactly as the container's ``train`` command does.
_SHIM = r"""
import os
if os.environ.get("SAGETRACK_LOCAL_SKIP_INSTALL") == "1":
    from sagemaker_training import modules as _modules

    def _skip_requirements(path, capture_error=False):
        print(
            "[sagetrack.local] NOT installing %s/requirements.txt: install_requirements=False "
            "keeps the caller's Python environment unchanged. Pass "
            "LocalProcessSession(install_requirements=True) to install it into an isolated "
            "virtualenv for the job." % path,
            flush=True,
        )

    def _skip_install(path, capture_error=False):
        print(
            "[sagetrack.local] NOT running 'pip install .' for the package in %s "
            "(install_requirements=False); the code directory is on PYTHONPATH instead."
            % path,
            flush=True,
        )

    _modules.install_requirements = _skip_requirements
    _modules.install = _skip_install

# The framework images (TensorFlow, PyTorch) run the entry point with capture_error=True,
# which puts the script's error message into output/failure (the job's FailureReason).
from sagemaker_training import entry_point as _entry_point

_run = _entry_point.run


def _run_capturing_errors(*args, **kwargs):
    kwargs.setdefault("capture_error", True)
    return _run(*args, **kwargs)


_entry_point.run = _run_capturing_errors

# StopTrainingJob: the supervisor sends SIGTERM to the whole process group. Before the user
# process exists the toolkit just exits; afterwards it keeps relaying the user's output until
# that process has handled SIGTERM and exited (SIGKILL follows after the grace period).
import asyncio
import signal

_user_started = []
_create_subprocess_exec = asyncio.create_subprocess_exec


async def _create_and_remember(*args, **kwargs):
    proc = await _create_subprocess_exec(*args, **kwargs)
    _user_started.append(proc.pid)
    return proc


asyncio.create_subprocess_exec = _create_and_remember


def _on_sigterm(signum, frame):
    if not _user_started:
        os._exit(128 + signum)
    print("[sagetrack.local] SIGTERM: waiting for the training process to exit", flush=True)


signal.signal(signal.SIGTERM, _on_sigterm)

from sagemaker_training.cli.train import main

main()
"""

# A parameter-server task, as the SageMaker TF container starts one on every host.
_PS_SERVER = r"""
import json, os
import tensorflow as tf
cfg = json.loads(os.environ["TF_CONFIG"])
server = tf.distribute.Server(
    tf.train.ClusterSpec(cfg["cluster"]), job_name="ps", task_index=cfg["task"]["index"],
    protocol="grpc", start=True,
)
server.join()
"""


def toolkit_command(python: str) -> list[str]:
    """The command that runs the ``sagemaker-training`` toolkit for one host."""
    return [python, "-c", _SHIM]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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


@dataclass
class _Host:
    name: str
    index: int
    base_dir: str
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    extra_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exited_at: float | None = None
    killed: bool = False
    done: bool = False


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
        self.hosts: list[_Host] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stop_secondary = "Stopped"
        self._done = threading.Event()
        self._log: IO[bytes] | None = None
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ckpt_seen: dict[str, dict[str, tuple[int, int]]] = {}
        self._training_over = threading.Event()
        self.distribution: str | None = None
        self._ps_configs: dict[str, dict[str, Any]] = {}
        self._caller_env = dict(os.environ)  # the environment at fit() time
        if owned:
            self._validate()

    # ------------------------------------------------------------------ paths
    @property
    def log_path(self) -> str:
        """The job's combined stdout/stderr log (kept after the job)."""
        return os.path.join(self.options.work_dir, "jobs", f"{self.name}.log")

    @property
    def state_path(self) -> str:
        """The JSON state file other sessions read to find this job."""
        return os.path.join(self.options.work_dir, "jobs", f"{self.name}.json")

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        req = self.request
        algo = req.get("AlgorithmSpecification") or {}
        if algo.get("AlgorithmName"):
            raise UnsupportedLocalFeatureError(
                f"AlgorithmSpecification.AlgorithmName={algo['AlgorithmName']!r}: marketplace "
                "algorithms cannot run as local processes. Use a framework estimator "
                "(e.g. sagemaker.tensorflow.TensorFlow) with an entry_point."
            )
        if algo.get("ContainerEntrypoint") or algo.get("ContainerArguments"):
            raise UnsupportedLocalFeatureError(
                "container_entry_point / container_arguments replace the container's own "
                "entry point, which local processes cannot reproduce; remove them to run "
                "the sagemaker-training toolkit as the SageMaker framework images do."
            )
        resource = req.get("ResourceConfig") or {}
        if resource.get("InstanceGroups"):
            raise UnsupportedLocalFeatureError(
                "Heterogeneous clusters (instance_groups) are not supported locally; "
                "use instance_count and instance_type instead."
            )
        count = int(resource.get("InstanceCount", 1))
        if count < 1:
            raise UnsupportedLocalFeatureError(f"InstanceCount must be >= 1, received {count}.")
        hps = req.get("HyperParameters") or {}
        self.distribution = contract.distribution_kind(hps, count)
        if "sagemaker_program" not in hps:
            raise UnsupportedLocalFeatureError(
                "The request has no 'sagemaker_program' hyperparameter, so the toolkit would "
                "have no entry point to run. Pass entry_point=... to the estimator."
            )
        default_mode = algo.get("TrainingInputMode", "File")
        for channel in req.get("InputDataConfig") or []:
            name = channel.get("ChannelName")
            mode = channel.get("InputMode") or default_mode
            if mode == "Pipe":
                raise UnsupportedLocalFeatureError(
                    f"Channel {name!r} uses input_mode='Pipe', which local processes do not "
                    "support. Use 'File' (or 'FastFile', which is served as File)."
                )
            source = channel.get("DataSource") or {}
            if "S3DataSource" in source:
                s3_type = source["S3DataSource"].get("S3DataType", "S3Prefix")
                if s3_type != "S3Prefix":
                    raise UnsupportedLocalFeatureError(
                        f"Channel {name!r} has S3DataType={s3_type!r}; only 'S3Prefix' is "
                        "supported locally. Pass the data's prefix instead of a manifest."
                    )
                uri = source["S3DataSource"].get("S3Uri", "")
                if not (uri.startswith("s3://") or uri.startswith("file://")):
                    raise UnsupportedLocalFeatureError(
                        f"Channel {name!r} has S3Uri={uri!r}; expected s3:// or file://."
                    )
            elif "FileDataSource" not in source:
                raise UnsupportedLocalFeatureError(
                    f"Channel {name!r} uses {sorted(source)}; only S3 (s3://) and local "
                    "(file://) data sources are supported locally (no EFS/FSx)."
                )

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
        for host in self.hosts:
            for proc in [host.proc, *host.extra_procs]:
                if proc is not None:
                    _signal_group(proc.pid, signal.SIGKILL)
            host.killed = True

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
            return {
                "version": 1,
                "request": self.request,
                "arn": self.arn,
                "owner_pid": self.owner_pid,
                "status": self.status,
                "secondary_status": self.secondary_status,
                "failure_reason": self.failure_reason,
                "model_artifacts": self.model_artifacts,
                "creation_time": _iso(self.creation_time),
                "last_modified": _iso(self.last_modified),
                "start_time": _iso(self.start_time),
                "end_time": _iso(self.end_time),
                "transitions": [
                    {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in t.items()}
                    for t in self.transitions
                ],
            }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], options: JobOptions) -> LocalTrainingJob:
        """Rebuild a (not owned, read-only) job from its state file."""
        job = cls(state["request"], options, owned=False)
        job.refresh_from_state(state)
        return job

    def refresh_from_state(self, state: Mapping[str, Any]) -> None:
        """Update a not-owned job from a freshly read state file."""
        with self._lock:
            self.arn = str(state.get("arn") or self.arn)
            self.owner_pid = int(state.get("owner_pid") or 0)
            self.status = str(state.get("status", "InProgress"))
            self.secondary_status = str(state.get("secondary_status", ""))
            self.failure_reason = state.get("failure_reason")
            self.model_artifacts = state.get("model_artifacts")
            self.creation_time = _parse_time(state.get("creation_time")) or self.creation_time
            self.last_modified = _parse_time(state.get("last_modified")) or self.last_modified
            self.start_time = _parse_time(state.get("start_time"))
            self.end_time = _parse_time(state.get("end_time"))
            self.transitions = [
                {k: (_parse_time(v) if k.endswith("Time") else v) for k, v in t.items()}
                for t in state.get("transitions", [])
            ]
            orphaned = self.owner_pid != os.getpid() and not _pid_alive(self.owner_pid)
            if self.status not in TERMINAL_STATUSES and (
                orphaned or self.owner_pid == os.getpid()
            ):
                # The process that supervised the job is gone (or this is that process and
                # the job is not in its memory any more): it can never finish.
                self.status = "Failed"
                self.secondary_status = "Failed"
                self.failure_reason = (
                    f"InternalServerError: the process that ran this job (pid "
                    f"{self.owner_pid}) exited before the job finished."
                )

    def _save_state(self) -> None:
        state = self.to_state()
        path = self.state_path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1, default=str)
        os.replace(tmp, path)

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
                self._download_inputs()
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
        self._kill_leftovers()  # after an error while starting some hosts
        stopped = self._stop.is_set()
        status = "Stopped" if stopped else ("Failed" if failure else "Completed")
        try:
            if prepared:
                self._add_transition("Uploading", "Uploading generated training model")
                self._sync_checkpoints()
                self._upload_outputs(include_model=status != "Failed")
        except Exception as exc:
            if status == "Completed":
                status = "Failed"
                failure = f"ClientError: uploading the job's output failed: {exc}"
            self._log_line(f"[sagetrack.local] uploading the job's output failed: {exc}")
        with self._lock:
            self.end_time = _now()
            if self.start_time is None:
                self.start_time = self.end_time
            if status == "Failed":
                self.failure_reason = (failure or "AlgorithmError")[:_FAILURE_REASON_MAX]
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

    # ------------------------------------------------------------------ preparation
    def _prepare(self) -> None:
        req = self.request
        runs = os.path.join(self.options.work_dir, "runs")
        os.makedirs(runs, exist_ok=True)
        self.job_dir = tempfile.mkdtemp(prefix=f"{self.name}-", dir=runs)
        self._log_line(f"[sagetrack.local] job directory: {self.job_dir}")
        resource = req.get("ResourceConfig") or {}
        count = int(resource.get("InstanceCount", 1))
        instance_type = str(resource.get("InstanceType", "local"))
        names = contract.host_names(count)
        interface = contract.loopback_interface()
        algo = req.get("AlgorithmSpecification") or {}
        default_mode = str(algo.get("TrainingInputMode", "File"))
        input_config = contract.build_input_data_config(
            req.get("InputDataConfig") or [], default_mode
        )
        hps = dict(req.get("HyperParameters") or {})
        ckpt = req.get("CheckpointConfig") or None

        tf_configs = self._tf_configs(names)
        for index, name in enumerate(names):
            base = os.path.join(self.job_dir, name)
            host = _Host(name=name, index=index, base_dir=base)
            for sub in ("input/config", "input/data", "model", "output/data", "code"):
                os.makedirs(os.path.join(base, sub), exist_ok=True)
            config_dir = os.path.join(base, "input", "config")
            _write_json(os.path.join(config_dir, "hyperparameters.json"), hps)
            _write_json(os.path.join(config_dir, "inputdataconfig.json"), input_config)
            _write_json(
                os.path.join(config_dir, "resourceconfig.json"),
                contract.build_resource_config(name, names, instance_type, interface),
            )
            if ckpt:
                _write_json(
                    os.path.join(config_dir, "checkpointconfig.json"),
                    {"LocalPath": self._checkpoint_dir(host), "S3Path": ckpt["S3Uri"]},
                )
                os.makedirs(self._checkpoint_dir(host), exist_ok=True)
            if self.options.install_requirements:
                host.python = self._make_venv(name)
            host.env = self._host_env(host, tf_configs.get(name))
            self.hosts.append(host)

    def _checkpoint_dir(self, host: _Host) -> str:
        ckpt = self.request.get("CheckpointConfig") or {}
        local = str(ckpt.get("LocalPath") or "/opt/ml/checkpoints")
        mapped = contract.map_container_path(local, host.base_dir)
        if mapped == local:
            # A path outside /opt/ml would be shared by all hosts: keep it per host too.
            return os.path.join(host.base_dir, local.lstrip("/"))
        return mapped

    def _tf_configs(self, names: list[str]) -> dict[str, dict[str, Any]]:
        if self.distribution == contract.DIST_MWMS:
            ports = dict(zip(names, contract.free_ports(len(names)), strict=True))
            return {h: contract.build_tf_config_mwms(names, h, ports) for h in names}
        if self.distribution == contract.DIST_PS:
            all_ports = contract.free_ports(2 * len(names))
            ports = dict(zip(names, all_ports[: len(names)], strict=True))
            ps_ports = dict(zip(names, all_ports[len(names) :], strict=True))
            self._ps_configs = {
                h: contract.build_tf_config_ps(names, h, ports, ps_ports, ps_task=True)
                for h in names
            }
            return {h: contract.build_tf_config_ps(names, h, ports, ps_ports) for h in names}
        return {}

    def _make_venv(self, host_name: str) -> str:
        assert self.job_dir is not None
        venv = os.path.join(self.job_dir, "venvs", host_name)
        cmd = [sys.executable, "-m", "venv", "--system-site-packages"]
        if importlib.util.find_spec("pip") is not None:
            cmd.append("--without-pip")  # fast: pip comes from the caller's site-packages
        self._log_line(f"[sagetrack.local] creating isolated virtualenv {venv}")
        result = subprocess.run(
            [*cmd, venv], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
        if result.returncode != 0:
            raise LocalModeError(
                f"Could not create the job's virtualenv ({' '.join(cmd)} {venv}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        python = os.path.join(venv, "bin", "python")
        # `venv --system-site-packages` sees the *base* interpreter's packages; when the
        # caller itself runs in a virtualenv, make its packages visible too (after the new
        # venv's own site-packages, so what requirements.txt installs wins).
        probe = subprocess.run(
            [python, "-c", "import site; print(site.getsitepackages()[0])"],
            capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
        )
        own_site = probe.stdout.strip()
        parent_sites = [p for p in site.getsitepackages() if os.path.isdir(p)]
        with open(os.path.join(own_site, "_sagetrack_parent.pth"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(parent_sites) + "\n")
        return python

    def _host_env(self, host: _Host, tf_config: Mapping[str, Any] | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in self._caller_env.items()
            if k not in _CONTROL_VARS and not k.startswith("SM_")
        }
        network_isolation = bool(self.request.get("EnableNetworkIsolation"))
        for key, value in self.options.child_env.items():
            if network_isolation and key.startswith("AWS_") and "REGION" not in key:
                continue  # no credentials inside a network-isolated container
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        env.update({str(k): str(v) for k, v in (self.request.get("Environment") or {}).items()})
        env.setdefault("PYTHONUNBUFFERED", "1")  # as in the SageMaker framework images
        env.update(
            {
                "SAGEMAKER_BASE_DIR": host.base_dir,
                "SM_STUDIO_LOCAL_MODE": "true",
                "TRAINING_JOB_NAME": self.name,
                "TRAINING_JOB_ARN": self.arn,
                _SKIP_INSTALL_ENV: "0" if self.options.install_requirements else "1",
            }
        )
        if tf_config is not None:
            env["TF_CONFIG"] = json.dumps(tf_config)
        return env

    # ------------------------------------------------------------------ inputs
    def _download_inputs(self) -> None:
        storage = self.options.storage
        assert self.job_dir is not None
        for channel in self.request.get("InputDataConfig") or []:
            name = str(channel["ChannelName"])
            source = channel["DataSource"]
            if "S3DataSource" in source:
                uri = str(source["S3DataSource"]["S3Uri"])
                sharded = source["S3DataSource"].get("S3DataDistributionType") == "ShardedByS3Key"
            else:
                uri = str(source["FileDataSource"]["FileUri"])
                sharded = source["FileDataSource"].get("FileDataDistributionType") == (
                    "ShardedByS3Key"
                )
            targets = [os.path.join(h.base_dir, "input", "data", name) for h in self.hosts]
            if sharded and len(self.hosts) > 1:
                for i, target in enumerate(targets):
                    n = storage.download(uri, target, shard=(i, len(targets)))
                    self._log_line(f"[sagetrack.local] channel {name!r}: {n} files from {uri} "
                                   f"to {self.hosts[i].name} (sharded)")
            else:
                n = storage.download(uri, targets[0])
                for target in targets[1:]:
                    _link_tree(targets[0], target)
                self._log_line(f"[sagetrack.local] channel {name!r}: {n} files from {uri}")
        self._prepare_code()
        self._restore_checkpoints()

    def _prepare_code(self) -> None:
        """Extract the code where the toolkit cannot download it (network isolation)."""
        hps = contract.decode_hyperparameters(self.request.get("HyperParameters") or {})
        submit = hps.get("sagemaker_submit_directory")
        if not isinstance(submit, str) or submit.startswith("s3://"):
            return  # the toolkit downloads it itself, as in the container
        for host in self.hosts:
            src = contract.map_container_path(submit, host.base_dir)
            if src.startswith("file://"):
                src = local_path_from_file_uri(src)
            code_dir = os.path.join(host.base_dir, "code")
            if os.path.isdir(src):
                shutil.copytree(src, code_dir, dirs_exist_ok=True)
            elif os.path.isfile(src) and tarfile.is_tarfile(src):
                _extract_tar(src, code_dir)
            else:
                raise LocalModeError(
                    f"sagemaker_submit_directory={submit!r} was not found at {src}."
                )

    def _restore_checkpoints(self) -> None:
        ckpt = self.request.get("CheckpointConfig")
        if not ckpt:
            return
        uri = str(ckpt["S3Uri"])
        storage = self.options.storage
        for host in self.hosts:
            target = self._checkpoint_dir(host)
            try:
                n = storage.download(uri, target)
            except LocalModeError:
                n = 0  # nothing to restore yet
            if n:
                self._log_line(f"[sagetrack.local] restored {n} checkpoint files from {uri} "
                               f"to {host.name}")
            self._ckpt_seen[host.name] = _signatures(target)

    # ------------------------------------------------------------------ processes
    def _launch_and_wait(self) -> str | None:
        prefix_hosts = len(self.hosts) > 1
        for host in self.hosts:
            prefix = f"[{host.name}] " if prefix_hosts else ""
            ps_config = self._ps_configs.get(host.name)
            if ps_config is not None:
                ps_env = dict(host.env, TF_CONFIG=json.dumps(ps_config))
                ps = self._spawn([host.python, "-c", _PS_SERVER], host, ps_env)
                host.extra_procs.append(ps)
                host.readers.append(self._reader(ps, f"[{host.name}-ps] "))
            host.proc = self._spawn(toolkit_command(host.python), host, host.env)
            host.readers.append(self._reader(host.proc, prefix))
        syncer = None
        if self.request.get("CheckpointConfig"):
            syncer = threading.Thread(
                target=self._periodic_checkpoint_sync, name=f"{self.name}-ckpt", daemon=True
            )
            syncer.start()
        try:
            return self._supervise()
        finally:
            self._training_over.set()
            if syncer is not None:
                syncer.join()

    def _periodic_checkpoint_sync(self) -> None:
        while not self._training_over.wait(self.options.checkpoint_sync_seconds):
            try:
                self._sync_checkpoints()
            except Exception as exc:  # retried at the next tick and at the end
                self._log_line(f"[sagetrack.local] checkpoint sync failed (will retry): {exc}")

    def _spawn(
        self, cmd: list[str], host: _Host, env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            cwd=host.base_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: StopTrainingJob signals all of it
        )

    def _reader(self, proc: subprocess.Popen[bytes], prefix: str) -> threading.Thread:
        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace")
                self._log_line(line, prefix)
            proc.stdout.close()

        thread = threading.Thread(target=pump, name=f"{self.name}-log", daemon=True)
        thread.start()
        return thread

    def _supervise(self) -> str | None:
        grace = self.options.stop_grace_seconds
        stopping = self.request.get("StoppingCondition") or {}
        max_runtime = float(stopping.get("MaxRuntimeInSeconds") or 0) or None
        started = time.monotonic()
        term_sent: float | None = None
        failure: str | None = None
        while True:
            now = time.monotonic()
            for host in self.hosts:
                self._check_host(host, now)
                if host.done and failure is None and not self._stop.is_set():
                    assert host.proc is not None
                    if host.proc.returncode != 0:
                        failure = self._failure_reason(host)
                        if len(self.hosts) > 1:
                            self._log_line(f"[sagetrack.local] {host.name} failed; stopping "
                                           "the other hosts")
                        if term_sent is None:
                            term_sent = now
                            self._terminate_all(signal.SIGTERM)
            if all(h.done for h in self.hosts):
                break
            if max_runtime and now - started > max_runtime and not self._stop.is_set():
                self._log_line("[sagetrack.local] MaxRuntimeInSeconds exceeded; stopping")
                self.stop("MaxRuntimeExceeded")
            if self._stop.is_set() and term_sent is None:
                term_sent = now
                self._terminate_all(signal.SIGTERM)
            if term_sent is not None and now - term_sent > grace:
                self._terminate_all(signal.SIGKILL)
            time.sleep(0.1)
        for host in self.hosts:  # parameter servers and leftovers
            for proc in host.extra_procs:
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    proc.wait(timeout=_KILL_DRAIN_SECONDS)
        return failure

    def _check_host(self, host: _Host, now: float) -> None:
        proc = host.proc
        if host.done or proc is None:
            return
        if proc.poll() is None:
            return
        if host.exited_at is None:
            host.exited_at = now
        reader = host.readers[-1]
        if not reader.is_alive():
            host.done = True
            return
        waited = now - host.exited_at
        if not self._stop.is_set() and waited > _LEFTOVER_SECONDS and not host.killed:
            # The main process is gone; the container would be torn down with everything
            # still running in it.
            _signal_group(proc.pid, signal.SIGKILL)
            host.killed = True
        if host.killed and waited > _LEFTOVER_SECONDS + _KILL_DRAIN_SECONDS:
            host.done = True  # a process escaped the group but holds the pipe; give up on it

    def _kill_leftovers(self) -> None:
        for host in self.hosts:
            for proc in [host.proc, *host.extra_procs]:
                if proc is not None and proc.poll() is None:
                    _signal_group(proc.pid, signal.SIGKILL)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(timeout=_KILL_DRAIN_SECONDS)

    def _terminate_all(self, sig: int) -> None:
        for host in self.hosts:
            if host.done or host.proc is None:
                continue
            if sig == signal.SIGKILL:
                if host.killed:
                    continue
                host.killed = True
            _signal_group(host.proc.pid, sig)
            for proc in host.extra_procs:
                _signal_group(proc.pid, sig)

    def _failure_reason(self, host: _Host) -> str:
        assert host.proc is not None
        path = os.path.join(host.base_dir, "output", "failure")
        text = ""
        with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().strip()
        if not text:
            code = host.proc.returncode
            if code < 0:
                try:
                    signame = signal.Signals(-code).name
                except ValueError:
                    signame = str(-code)
                text = f"the training process on {host.name} was killed by {signame}"
            else:
                text = f"the training process on {host.name} exited with code {code}"
        prefix = f"[{host.name}] " if len(self.hosts) > 1 else ""
        return f"AlgorithmError: {prefix}{text}"

    # ------------------------------------------------------------------ outputs
    def _sync_checkpoints(self) -> None:
        ckpt = self.request.get("CheckpointConfig")
        if not ckpt:
            return
        kms = (self.request.get("OutputDataConfig") or {}).get("KmsKeyId") or None
        for host in self.hosts:
            seen = self._ckpt_seen.setdefault(host.name, {})
            self.options.storage.sync_up(
                self._checkpoint_dir(host), str(ckpt["S3Uri"]), seen, kms
            )

    def _upload_outputs(self, include_model: bool) -> None:
        assert self.job_dir is not None
        output = self.request.get("OutputDataConfig") or {}
        out_path = str(output.get("S3OutputPath") or "")
        if not out_path:
            return
        kms = output.get("KmsKeyId") or None
        dest = join_uri(out_path, self.name, "output")
        storage = self.options.storage
        staging = os.path.join(self.job_dir, "artifacts")
        os.makedirs(staging, exist_ok=True)
        if include_model:
            model_dirs = [os.path.join(h.base_dir, "model") for h in self.hosts]
            if str(output.get("CompressionType", "GZIP")).upper() == "NONE":
                seen: dict[str, tuple[int, int]] = {}
                for model_dir in model_dirs:
                    storage.sync_up(model_dir, join_uri(dest, "model"), seen, kms)
                self.model_artifacts = join_uri(dest, "model") + "/"
            else:
                tarball = os.path.join(staging, "model.tar.gz")
                _merged_tar(model_dirs, tarball)
                storage.upload_file(tarball, join_uri(dest, "model.tar.gz"), kms)
                self.model_artifacts = join_uri(dest, "model.tar.gz")
        tarball = os.path.join(staging, "output.tar.gz")
        _merged_tar([os.path.join(h.base_dir, "output", "data") for h in self.hosts], tarball)
        storage.upload_file(tarball, join_uri(dest, "output.tar.gz"), kms)
        self._log_line(f"[sagetrack.local] uploaded the job's artifacts to {dest}")


# ---------------------------------------------------------------------- helpers
def _job_arn(name: str, region: str, role_arn: str) -> str:
    parts = str(role_arn).split(":")
    partition = parts[1] if len(parts) > 4 and parts[1] else "aws"
    account = parts[4] if len(parts) > 4 and parts[4] else "000000000000"
    return f"arn:{partition}:sagemaker:{region}:{account}:training-job/{name.lower()}"


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)


def _signatures(directory: str) -> dict[str, tuple[int, int]]:
    sigs: dict[str, tuple[int, int]] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            sigs[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns)
    return sigs


def _link_tree(src: str, dst: str) -> None:
    """Replicate a downloaded channel to another host (hard links, copies as fallback)."""

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True)


def _extract_tar(tarball: str, target: str) -> None:
    with tarfile.open(tarball, "r:*") as tar:
        try:
            tar.extractall(target, filter="data")
        except TypeError:  # pragma: no cover - Python without extraction filters
            tar.extractall(target)


def _merged_tar(directories: list[str], tarball: str) -> None:
    """Tar the union of ``directories`` (later ones win on equal paths), paths relative."""
    entries: dict[str, str] = {}
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for root, dirs, files in os.walk(directory):
            for name in dirs + files:
                path = os.path.join(root, name)
                entries[os.path.relpath(path, directory)] = path
    with tarfile.open(tarball, "w:gz") as tar:
        for rel in sorted(entries):
            tar.add(entries[rel], arcname=rel, recursive=False)
