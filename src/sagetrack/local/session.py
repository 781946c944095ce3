"""``LocalProcessSession``: SageMaker local mode without Docker.

The SDK builds the real ``CreateTrainingJob`` request (code uploaded to S3 as usual, or kept
in a local folder by an offline session); the session's process-backed client runs it with
the ``sagemaker-training`` toolkit in local subprocesses, and ``fit(wait=True)`` streams
their output live.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from sagetrack import settings
from sagetrack._imds import sdk_import
from sagetrack.local import offline as _offline
from sagetrack.local import sdk_hooks
from sagetrack.local.client import LocalProcessSagemakerClient
from sagetrack.local.errors import LocalJobInterrupted, LocalModeError
from sagetrack.local.runner import JobOptions, LocalTrainingJob
from sagetrack.local.storage import Storage

with sdk_import():  # no futile credential look-up at the SDK's import (see sagetrack._imds)
    from sagemaker.local import LocalSession

__all__ = ["LocalProcessSession", "default_work_dir"]

_POLL_SECONDS = 0.2


def default_work_dir() -> str:
    """``$SAGETRACK_HOME/local`` (``~/.sagetrack/local``): stable and durable, so later
    sessions find earlier jobs, and an offline session's code tarballs outlive reboots."""
    return str(Path(settings.HOME.get()).expanduser() / "local")


class LocalProcessSession(LocalSession):  # type: ignore[misc]
    """A ``LocalSession`` whose training jobs run as local processes (no Docker).

    Use it with ``instance_type="local"`` (or ``"local_gpu"``) on any framework estimator.
    The request the SDK builds is laid out as the container contract under ``work_dir``
    and executed by the ``sagemaker-training`` toolkit, one process per host; artifacts,
    checkpoints and ``DescribeTrainingJob`` behave as on SageMaker.

    Args:
        boto_session: boto3 session for S3 and credentials (default: a new ``boto3.Session``).
        default_bucket: bucket for code and output when the estimator names none.
        s3_endpoint_url: S3 endpoint for this session and its jobs (``AWS_ENDPOINT_URL``
            in the environment is honoured too).
        work_dir: where job state, logs, the per-host base dirs and an offline session's
            local bucket go (default :func:`default_work_dir`).
        install_requirements: install the code's ``requirements.txt`` into an isolated
            virtualenv per host (default ``False``: nothing is installed, with a notice).
        keep_work_dir: keep the per-host base dirs after the job (for debugging).
        sagemaker_config: SDK config dict, as for ``sagemaker.Session``.
        default_bucket_prefix: key prefix within ``default_bucket`` (or the local bucket).
        stop_grace_seconds: time between SIGTERM and SIGKILL on a stop (SageMaker: 120).
        checkpoint_sync_seconds: how often checkpoints are uploaded while a job runs.
        offline: ``True``: never contact AWS; code and output go to ``<work_dir>/bucket``
            instead of the default bucket. ``False``: the SDK's default bucket, as with any
            session. ``None`` (default): offline when no bucket or endpoint is given and
            this machine has no AWS credentials configured and is not an EC2 instance.
    """

    #: the SDK hooks (:mod:`sagetrack.local.sdk_hooks`) recognise the session by this
    local_process_session = True

    def __init__(
        self,
        boto_session: Any = None,
        default_bucket: str | None = None,
        s3_endpoint_url: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        install_requirements: bool = False,
        keep_work_dir: bool = False,
        sagemaker_config: dict[str, Any] | None = None,
        *,
        default_bucket_prefix: str | None = None,
        stop_grace_seconds: float = 120.0,
        checkpoint_sync_seconds: float = 10.0,
        offline: bool | None = None,
    ) -> None:
        if stop_grace_seconds < 0 or checkpoint_sync_seconds <= 0:
            raise ValueError(
                "stop_grace_seconds must be >= 0 and checkpoint_sync_seconds > 0; received "
                f"{stop_grace_seconds!r} and {checkpoint_sync_seconds!r}."
            )
        if offline not in (None, True, False):
            raise ValueError(
                f"offline must be True, False or None (decide from the credentials); "
                f"received offline={offline!r}."
            )
        # LocalSession uses ``boto_session.resource`` directly when an endpoint is given, so
        # it needs a real session object (it fails on ``None``).
        boto_session = boto_session or boto3.DEFAULT_SESSION or boto3.Session()
        self.offline = _offline.decide_offline(
            offline, boto_session=boto_session, default_bucket=default_bucket,
            s3_endpoint_url=s3_endpoint_url,
        )
        if self.offline:
            boto_session = _offline_boto_session(boto_session)
        self.work_dir = os.path.abspath(os.fspath(work_dir)) if work_dir else default_work_dir()
        #: the folder an offline session keeps code and output in (``None`` when online)
        self.local_bucket: str | None = (
            os.path.join(self.work_dir, "bucket") if self.offline else None
        )
        self.install_requirements = bool(install_requirements)
        self.keep_work_dir = bool(keep_work_dir)
        self.stop_grace_seconds = float(stop_grace_seconds)
        self.checkpoint_sync_seconds = float(checkpoint_sync_seconds)
        super().__init__(
            boto_session=boto_session,
            default_bucket=default_bucket,
            s3_endpoint_url=s3_endpoint_url,
            disable_local_code=True,
            sagemaker_config=sagemaker_config,
            default_bucket_prefix=default_bucket_prefix,
        )
        # The code must go to a tarball (sagemaker_submit_directory=s3://... or file://...),
        # as on SageMaker: force ``local.local_code`` off even when ~/.sagemaker/config.yaml
        # has no "local" section.
        current: Any = getattr(self, "config", None)
        config: dict[str, Any] = dict(current) if current else {}
        config["local"] = {**(config.get("local") or {}), "local_code": False}
        self.config = config
        if self.offline:  # nothing to report to, and each attempt would print a traceback
            self.sagemaker_config = _offline.telemetry_off(getattr(self, "sagemaker_config", None))
        self.storage = Storage(self.boto_session, s3_endpoint_url)
        self.sagemaker_client = LocalProcessSagemakerClient(self._job_options)
        sdk_hooks.install()

    def default_bucket(self) -> str:
        """The default bucket; an offline session has none (it uses :attr:`local_bucket`)."""
        if not self.offline:
            from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

            try:
                return str(super().default_bucket())
            except (EndpointConnectionError, ConnectTimeoutError) as exc:
                raise LocalModeError(
                    f"Could not reach AWS to find the default bucket ({exc}). Without "
                    "network, pass LocalProcessSession(offline=True) to keep code and output "
                    f"under {os.path.join(self.work_dir, 'bucket')}, and file:// inputs."
                ) from exc
        if self._default_bucket_name_override:
            return str(self._default_bucket_name_override)  # named, not checked: no network
        raise LocalModeError(
            "This LocalProcessSession is offline, so it has no S3 bucket: the code and "
            f"output of its jobs go to {self.local_bucket}. Pass S3 locations explicitly "
            "(output_path='s3://...', code_location='s3://...') with AWS credentials, or "
            "LocalProcessSession(offline=False) to use the SDK's default bucket."
        )

    # ------------------------------------------------------------------ job options
    def _job_options(self) -> JobOptions:
        return JobOptions(
            work_dir=self.work_dir,
            storage=self.storage,
            region=str(self.boto_region_name),
            child_env=self._child_env(),
            install_requirements=self.install_requirements,
            keep_work_dir=self.keep_work_dir,
            stop_grace_seconds=self.stop_grace_seconds,
            checkpoint_sync_seconds=self.checkpoint_sync_seconds,
        )

    def _child_env(self) -> dict[str, str | None]:
        """Region, credentials and S3 endpoint the job's processes get (``None`` = unset)."""
        region = str(self.boto_region_name)
        env: dict[str, str | None] = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        credentials = self.boto_session.get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            env["AWS_ACCESS_KEY_ID"] = frozen.access_key
            env["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            env["AWS_SESSION_TOKEN"] = frozen.token or None
            env["AWS_SECURITY_TOKEN"] = None
        if self.s3_endpoint_url:
            env["S3_ENDPOINT_URL"] = self.s3_endpoint_url  # read by the toolkit
            env["AWS_ENDPOINT_URL_S3"] = os.environ.get(
                "AWS_ENDPOINT_URL_S3", self.s3_endpoint_url
            )
        return env

    def _job(self, job_name: str) -> LocalTrainingJob:
        client = self.sagemaker_client
        assert isinstance(client, LocalProcessSagemakerClient)
        return client.get_job(job_name)

    # ------------------------------------------------------------------ waiting and logs
    def logs_for_job(  # type: ignore[override]
        self,
        job_name: str,
        wait: bool = False,
        poll: float = 10,
        log_type: Any = "All",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Print the job's stdout/stderr (live until it ends when ``wait``).

        Raises ``sagemaker.exceptions.UnexpectedStatusException`` when waiting on a job that
        fails, as on SageMaker. Ctrl-C while waiting stops the job (SIGTERM to its
        processes, SIGKILL after the grace period; Ctrl-C again kills at once).
        """
        show = log_type not in ("None", "Rules", False, None)
        job = self._job(job_name)
        tail = _LogTail(job.log_path)
        deadline = time.monotonic() + timeout if timeout else None
        try:
            while True:
                if not job.owned:
                    job = self._job(job_name)
                done = job.is_done()
                if show:
                    tail.pump(final=done)
                if done or not wait:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                if job.owned:
                    job.wait(_POLL_SECONDS)
                else:
                    time.sleep(_POLL_SECONDS)
        except KeyboardInterrupt as interrupt:
            if isinstance(interrupt, LocalJobInterrupted) or not job.owned:
                raise
            self._stop_on_interrupt(job, tail if show else None)
            raise LocalJobInterrupted(
                f"Interrupted while waiting for training job {job.name}; the job was "
                f"stopped (status {job.status})."
            ) from interrupt
        desc = job.describe()
        if wait and job.is_done():
            _check_job_status(job_name, desc)
            if show and desc.get("TrainingTimeInSeconds") is not None:
                count = int(desc.get("ResourceConfig", {}).get("InstanceCount", 1))
                print("Training seconds:", desc["TrainingTimeInSeconds"] * count)
                print("Billable seconds:", desc["BillableTimeInSeconds"] * count)
        return desc

    def wait_for_job(self, job: str, poll: float = 5) -> dict[str, Any]:  # type: ignore[override]
        """Wait for a training job to end; raises ``UnexpectedStatusException`` on failure."""
        return self.logs_for_job(job, wait=True, poll=poll, log_type="None")

    def _stop_on_interrupt(self, job: LocalTrainingJob, tail: _LogTail | None) -> None:
        if not job.owned or job.is_done():
            return
        print(
            f"\nStopping training job {job.name}: SIGTERM sent to its processes "
            f"(SIGKILL after {self.stop_grace_seconds:g}s; press Ctrl-C again to kill now).",
            file=sys.stderr,
        )
        job.stop()
        try:
            while not job.wait(_POLL_SECONDS):
                if tail is not None:
                    tail.pump()
        except KeyboardInterrupt:
            job.kill_now()
            job.wait(30)
        if tail is not None:
            tail.pump(final=True)


class _LogTail:
    """Copies new complete lines of a growing log file to ``sys.stdout``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._pending = b""

    def pump(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self._pending + data
        if final:
            complete, self._pending = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            complete, self._pending = data[:cut], data[cut:]
        if complete:
            out = sys.stdout  # looked up now: notebooks and capsys replace it
            out.write(complete.decode("utf-8", "replace"))
            out.flush()


def _check_job_status(job_name: str, desc: dict[str, Any]) -> None:
    from sagemaker.session import _check_job_status as sdk_check

    sdk_check(job_name, desc, "TrainingJobStatus")


def _offline_boto_session(boto_session: Any) -> Any:
    """``boto_session`` ready for offline use: a region (the SDK needs one), and no futile
    instance-metadata look-up when it has no credentials."""
    if not _offline.credentials_configured(boto_session):
        _offline.skip_metadata_lookup(boto_session)
    if boto_session.region_name is None:
        boto_session._session.set_config_variable("region", _offline.DEFAULT_REGION)
    return boto_session
