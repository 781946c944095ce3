"""``sagetrack.TensorFlow``: the SDK's TensorFlow estimator, with every job tracked.

The subclass touches four SDK hooks, each documented where it is used:

* ``__init__`` validates the tracking arguments before the SDK creates a session and
  adds console ``metric_definitions`` (validation.py);
* ``_get_or_create_name``: a job name the store cannot use is launched untracked;
* ``_prepare_for_training`` (called by ``fit``, ``HyperparameterTuner`` and pipeline
  steps) adds the container bootstrap to ``dependencies`` (staging.py) and the
  ``SAGETRACK_*`` settings to ``environment`` (container_env.py), captures provenance
  beside the SDK's upload (capture.py), then writes the launch record (launch_record.py,
  launch_writer.py, claim.py);
* ``fit`` checks its arguments, passes the inputs to the launch record, records the
  outcome (outcome.py); ``skip_if_done`` returns a completed run of the same work.

Tracking never breaks or holds up ``fit()``: the launch waits at most the launch budget
(``SAGETRACK_LAUNCH_BUDGET``, at least ``FIRST_WRITE_WAIT`` for the first writes); the
rest completes in the background. A tracking failure becomes one :class:`TrackingWarning`
and a copy of the record under ``$SAGETRACK_HOME/unsent`` (guard.py, store_access.py); a
job whose records cannot be written safely is launched untracked, as the SDK would.
"""

from __future__ import annotations

import time
from typing import Any

from .. import settings
from .._imds import sdk_import
from ..errors import ConfigurationError
from ..store.layout import validate_run_id
from .capture import LaunchCapture, code_tarball_capture, input_channels
from .claim import training_job_exists
from .container_env import container_environment, template_key
from .guard import SkipLaunch, attempt, warn
from .launch_record import Reproduction, is_pipeline_session, launch_record_base
from .launch_writer import FIRST_WRITE_WAIT, UNTRACKED, Launch, LaunchRecords
from .outcome import record_outcome
from .staging import bootstrap_paths
from .store_access import TrackingStore, default_tracking_uri, record_client, s3_client_of
from .validation import (
    TrackingArguments,
    check_arguments,
    check_fit_arguments,
    check_tracking_flag,
    s3_source_note,
    with_console_metrics,
)

with sdk_import():  # no futile credential look-up at the SDK's import (see sagetrack._imds)
    from sagemaker.tensorflow import TensorFlow as _SDKTensorFlow

__all__ = ["TensorFlow"]


class TensorFlow(_SDKTensorFlow):  # type: ignore[misc]
    """``sagemaker.tensorflow.TensorFlow`` that records every training job it launches.

    Every argument of the SDK class keeps its meaning, positionally and by keyword.
    Tracking adds keyword-only arguments:

    Args:
        tracking_uri: where records go: ``s3://bucket/prefix`` or a local folder (made
            absolute). Default ``$SAGETRACK_URI``, else
            ``s3://<session default bucket>/sagetrack``.
        experiment: groups runs (default ``"default"``).
        track_batches: also record every N training batches (0 = epochs only).
        tracking: ``False`` makes the estimator behave exactly like the SDK's.
    """

    _run_store: Any = None  # the store class latest_run reads with (set by sagetrack.TensorFlow)

    def __init__(self, *args: Any, tracking_uri: str | None = None,
                 experiment: str | None = None, track_batches: int = 0,
                 tracking: bool = True, _reproduces: Reproduction | None = None,
                 **kwargs: Any) -> None:
        """SDK hook. ``_reproduces`` (private, from :mod:`sagetrack.client.reproduce`): this
        repeats a recorded run; ``source_dir`` becomes its tarball (which holds the
        bootstrap) after the SDK's constructor, and the run records ``reproduces``."""
        self._tracking = check_tracking_flag(tracking)
        self._user_metrics = kwargs.get("metric_definitions")
        if tracking:
            self._args = check_arguments(tracking_uri=tracking_uri, experiment=experiment,
                                         track_batches=track_batches, sdk_kwargs=kwargs)
            kwargs["metric_definitions"] = with_console_metrics(self._args.metric_definitions)
        else:
            self._args = TrackingArguments(tracking_uri, experiment or "default", track_batches)
        self._console_metrics = kwargs.get("metric_definitions")
        self._tracking_uri = self._args.uri
        self._origin: dict[str, Any] | None = (
            None if _reproduces is None else dict(_reproduces.origin))
        self._records = LaunchRecords(self._args.experiment, self._open_store, self._origin,
                                      self._job_exists)
        self._fit_inputs: Any = None
        self._in_fit = self._skip_if_done = False
        self._launch: Launch | None = None  # the record writes of the current fit()
        self._skipped: Any = None  # the run the latest fit() returned instead of launching
        self._untracked: str | None = None  # the latest job launched untracked
        self._record_s3: Any = None
        super().__init__(*args, **kwargs)
        self._user_environment: Any = self.environment  # type: ignore[has-type]
        if _reproduces is not None:
            self.source_dir = _reproduces.source_dir

    # -- public --------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        """The resolved tracking URI (may ask the session for its default bucket)."""
        if self._tracking_uri is None:
            self._tracking_uri = default_tracking_uri(self.sagemaker_session)
        return self._tracking_uri

    @property
    def experiment(self) -> str:
        """The experiment runs of this estimator are recorded under."""
        return self._args.experiment

    @property
    def latest_launch_record(self) -> dict[str, Any] | None:
        """The launch record of the latest job (or tuner/pipeline template) launched, as
        written so far (see :meth:`wait_for_launch_record`)."""
        return self._records.latest

    @property
    def latest_run(self) -> Any:
        """The :class:`sagetrack.Run` of the latest ``fit``: the run of the job it launched,
        or the completed run it returned (``skip_if_done``)."""
        if self._skipped is not None:
            return self._open_runs().run(self._skipped.id, self._skipped.experiment)
        job = self.latest_training_job
        if job is None:
            raise ConfigurationError("No job has been launched yet: call fit() first.")
        if job.name == self._untracked:
            raise ConfigurationError(
                f"Job {job.name} was launched untracked (see the warning at its launch): "
                "it has no run.")
        self.wait_for_launch_record()
        return self._open_runs().run(job.name, self.experiment)

    def _open_runs(self) -> Any:
        # the user-facing class (sagetrack.TensorFlow) reads runs as sagetrack.Run
        from ..store.reader import Store

        return (self._run_store or Store)(self.tracking_uri, s3_client=self._s3_client())

    def wait_for_launch_record(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the launch records of this estimator's jobs are complete (input
        fingerprints included) or kept unsent, or ``timeout`` seconds; the latest one."""
        return self._records.wait(timeout)

    # -- SDK hooks -----------------------------------------------------------------------
    def fit(self, inputs: Any = None, wait: bool = True, logs: str = "All",
            job_name: str | None = None, experiment_config: dict[str, str] | None = None,
            *, skip_if_done: bool = False) -> Any:
        """Launch the job like the SDK does, recording it (see the class docstring).

        A completed run that did the same work (same code content, entry point,
        hyperparameters, data, image, instance type and count, distribution and
        environment) gets a warning naming it; ``skip_if_done=True`` returns that
        :class:`sagetrack.Run` instead of launching, and writes nothing.
        """
        if not self._tracking:
            return super().fit(inputs, wait, logs, job_name, experiment_config)
        check_fit_arguments(job_name=job_name, skip_if_done=skip_if_done)
        self._fit_inputs, self._in_fit, self._skip_if_done = inputs, True, skip_if_done
        self._launch = self._skipped = None
        try:
            result = super().fit(inputs, wait, logs, job_name, experiment_config)
        except SkipLaunch as skip:
            self._skipped = skip.run
            return skip.run
        except BaseException as exc:
            self._record_outcome(exc)
            raise
        finally:
            self._in_fit = False
            self._fit_inputs = None
        if wait:
            self._record_outcome(None)
        return result

    def _prepare_for_training(self, job_name: str | None = None) -> None:
        """SDK hook: inject the bootstrap and settings, then write the launch record."""
        if not self._tracking:
            super()._prepare_for_training(job_name=job_name)
            return
        template = not self._in_fit or is_pipeline_session(self.sagemaker_session)
        if not template:
            job_name = self._get_or_create_name(job_name)  # what the SDK would name it
            try:
                validate_run_id(job_name)
            except ConfigurationError as exc:
                warn(f"sagetrack: job {job_name!r} is launched untracked: its name cannot "
                     f"be a run id ({exc}).")
                self._prepare_untracked(job_name)
                return
        if not self._origin and s3_source_note(self.source_dir):
            warn(str(s3_source_note(self.source_dir)))
        prepared = attempt("prepare tracking", self._prepare_tracking, template)
        if prepared is None:
            self._prepare_untracked(job_name)
            return
        capture, staged, launch_key = prepared
        user_dependencies: Any = self.dependencies  # type: ignore[has-type]
        self.dependencies = [*(user_dependencies or []), *staged]
        try:
            with code_tarball_capture() as tarballs:
                super()._prepare_for_training(job_name=job_name)
        except BaseException:
            capture.release()
            capture.close()
            raise
        finally:
            self.dependencies = user_dependencies
        # Capture ran beside the SDK's packing and upload; from here fit() waits at most
        # the launch budget (see the module docstring).
        deadline = time.monotonic() + settings.LAUNCH_BUDGET.get()
        try:
            self._launch = attempt("write the launch record", self._write_launch, capture,
                                   tarballs, launch_key, template, deadline)
        finally:
            capture.release()
        if self._launch is None:
            capture.close()
        if self._launch is None or self._launch.outcome == UNTRACKED:
            self._untrack(job_name)

    # -- helpers -------------------------------------------------------------------------
    def _prepare_tracking(self, template: bool) -> tuple[LaunchCapture, list[str], str | None]:
        """Start the captures; the bootstrap and settings this launch adds. A duplicate
        check that decides before launching (skip_if_done) and a template wait for all."""
        staged = bootstrap_paths()
        capture = LaunchCapture(wait_all=template or self._skip_if_done)
        try:
            capture.start(source_dir=self.source_dir, entry_point=self.entry_point,
                          git_config=self.git_config, s3_client=self._s3_client,
                          channels=input_channels(self._fit_inputs))
            launch_key = template_key(self.base_job_name, self.experiment) if template else None
            self.environment = container_environment(
                self._args.environment, uri=self.tracking_uri, experiment=self.experiment,
                track_batches=self._args.track_batches, launch_key=launch_key,
                network_isolation=bool(self.enable_network_isolation()),
                metric_definitions=self._args.metric_definitions)
        except BaseException:
            capture.release()
            capture.close()
            raise
        self.metric_definitions = self._console_metrics
        return capture, staged, launch_key

    def _write_launch(self, capture: LaunchCapture, tarballs: list[bytes],
                      launch_key: str | None, template: bool, deadline: float) -> Launch:
        uploaded = self.uploaded_code
        if uploaded is not None:
            capture.add_tarball(self._s3_client(), uploaded.s3_prefix,
                                tarballs[-1] if tarballs else None)
        # listings past their first page wait for the launch; the writer completes them
        wait_all = template or self._skip_if_done
        capture.wait(None if wait_all else max(0.0, deadline - time.monotonic()))
        base = launch_record_base(self, self._args, self.tracking_uri, self._fit_inputs,
                                  self._origin)
        wait_until = max(deadline, time.monotonic() + FIRST_WRITE_WAIT)
        return self._records.launch(base, capture, launch_key=launch_key,
                                    skip=self._skip_if_done, wait_until=wait_until)

    def _prepare_untracked(self, job_name: str | None) -> None:
        self._untrack(job_name)
        super()._prepare_for_training(job_name=job_name)

    def _untrack(self, job_name: str | None) -> None:
        """Launch as the SDK would (a bootstrap in the tarball stays inert without it)."""
        self.environment = self._user_environment
        self.metric_definitions = self._user_metrics
        self._untracked = job_name

    def _s3_client(self) -> Any:
        return s3_client_of(self.sagemaker_session)

    def _open_store(self) -> TrackingStore:
        uri = self.tracking_uri
        if uri.startswith("s3://") and self._record_s3 is None:
            self._record_s3 = record_client(self.sagemaker_session)
        return TrackingStore.open(uri, self._record_s3)

    def _job_exists(self, job_name: str) -> bool | None:
        return training_job_exists(self.sagemaker_session.sagemaker_client, job_name)

    def _record_outcome(self, error: BaseException | None) -> None:
        """Record how fit() ended once the records are written (an error never waits)."""
        launch, job = self._launch, self.latest_training_job
        if launch is None:
            return
        if error is None:
            self.wait_for_launch_record()
        self._records.when_written(lambda: record_outcome(
            job, launch.claimed, error, experiment=self.experiment,
            open_store=self._open_store,
            sagemaker_client=lambda: self.sagemaker_session.sagemaker_client,
            s3_client=self._s3_client))
