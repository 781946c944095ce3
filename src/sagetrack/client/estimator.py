"""``sagetrack.TensorFlow``: the SDK's TensorFlow estimator, with every job tracked.

The subclass touches three SDK hooks, each documented where it is overridden:

* ``__init__`` validates the tracking arguments before the SDK creates a session, and
  adds console ``metric_definitions`` for the tracked metrics;
* ``_prepare_for_training`` (called by ``fit``, ``HyperparameterTuner`` and pipeline
  steps) adds the container bootstrap to ``dependencies`` and the ``SAGETRACK_*``
  settings to ``environment``, then writes the launch record;
* ``fit`` passes the inputs to the launch record and records the job's outcome.

Besides, ``sagemaker.utils.create_tar_file`` gets a pass-through wrapper that keeps, for
the thread launching a tracked job only, the bytes of the code tarball the SDK packs, so
that its hash needs no download (without it, sagetrack downloads the tarball instead).

Tracking failures on the client become one :class:`TrackingWarning` and a local copy of
the record under ``~/.sagetrack/unsent``; they never raise into ``fit()``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import getpass
import json
import logging
import math
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sagemaker.tensorflow import TensorFlow as _SDKTensorFlow

from .._version import __version__
from .._redact import redact_mapping
from ..container.config import ENV, ENV_VALUE_LIMIT, encode_metric_regexes
from ..container.recorder import METRIC_LINE_PREFIX
from .._threads import signals_blocked
from ..errors import ConfigurationError, TrackingWarning
from ..store.backends import LocalBackend, open_backend, validate_uri
from ..store.layout import FORMAT, RUN_FILES, dumps, now_iso, run_prefix, validate_experiment
from .provenance import LaunchGate, code_tarball_info, fingerprint_channel, git_info
from .staging import BOOTSTRAP_NAMES, bootstrap_paths

__all__ = ["TensorFlow", "default_tracking_uri"]

log = logging.getLogger("sagetrack")

MAX_METRIC_DEFINITIONS = 40


def _launch_budget(default: float = 0.5) -> float:
    raw = os.environ.get("SAGETRACK_LAUNCH_BUDGET", "")
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        log.warning("sagetrack: SAGETRACK_LAUNCH_BUDGET=%r is not a number of seconds >= 0; "
                    "using %s", raw, default)
        return default
    return min(value, 24 * 3600.0)  # "inf": wait for the complete record, within reason


#: how long fit() waits for provenance capture before launching; what is not done by then
#: (typically fingerprinting a large input prefix) is written by a background thread
LAUNCH_BUDGET_S = _launch_budget()
MAX_ENVIRONMENT = 100
#: metrics given console definitions by default (the names Keras reports most often)
DEFAULT_CONSOLE_METRICS = (
    "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
    "sparse_categorical_accuracy", "val_sparse_categorical_accuracy",
    "categorical_accuracy", "val_categorical_accuracy", "mae", "val_mae", "auc", "val_auc",
)
UNSENT_DIR = Path(os.environ.get("SAGETRACK_HOME", "~/.sagetrack")).expanduser() / "unsent"


def default_tracking_uri(session: Any = None) -> str:
    """``$SAGETRACK_URI``, else ``s3://<session default bucket>/sagetrack``."""
    env = os.environ.get("SAGETRACK_URI")
    if env:
        return validate_uri(env)
    if session is None:
        from sagemaker.session import Session

        session = Session()
    return f"s3://{session.default_bucket()}/sagetrack"


def console_metric_definitions(names: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """SageMaker metric definitions matching the lines the tracking callback prints."""
    # the prefix is plain text ("#sagetrack"); metric names are escaped
    return [{"Name": name,
             "Regex": f"{METRIC_LINE_PREFIX} epoch=[0-9]+ (?:.* )?{re.escape(name)}=(\\S+)"}
            for name in names]


def _check_json(hyperparameters: Any) -> None:
    if hyperparameters is None:
        return
    if not isinstance(hyperparameters, dict):
        raise ConfigurationError(
            "Invalid argument `hyperparameters`: expected a dict. "
            f"Received: {type(hyperparameters).__name__}")
    for key, value in hyperparameters.items():
        if type(value).__module__.startswith("sagemaker.workflow"):
            continue  # pipeline parameters are resolved by the pipeline
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"Invalid hyperparameter {key!r}: SageMaker sends hyperparameters as JSON and "
                f"{type(value).__name__} is not JSON-serialisable ({exc}). Convert it to a "
                "str, number, bool, list or dict.") from exc


def _check_metric_definitions(defs: Any) -> list[dict[str, str]]:
    if defs is None:
        return []
    if not isinstance(defs, list) or not all(
            isinstance(d, dict) and isinstance(d.get("Name"), str)
            and isinstance(d.get("Regex"), str) for d in defs):
        raise ConfigurationError(
            "Invalid argument `metric_definitions`: expected a list of "
            "{'Name': str, 'Regex': str} dicts. Received: " + repr(defs)[:300])
    for d in defs:
        try:
            re.compile(d["Regex"])
        except re.error as exc:
            raise ConfigurationError(
                f"Invalid regex for metric {d['Name']!r}: {exc}. Received: {d['Regex']!r}"
            ) from exc
    if len(defs) > MAX_METRIC_DEFINITIONS:
        raise ConfigurationError(
            f"Invalid argument `metric_definitions`: SageMaker accepts at most "
            f"{MAX_METRIC_DEFINITIONS}. Received {len(defs)}.")
    return list(defs)


def _check_credentials(uri: str | None, session: Any) -> None:
    """An S3 store needs credentials: say so now rather than after the job started."""
    if not uri or not uri.startswith("s3://"):
        return
    boto_session = getattr(session, "boto_session", None)
    if boto_session is None:
        import boto3

        boto_session = boto3.Session()
    if boto_session.get_credentials() is None:
        raise ConfigurationError(
            f"No AWS credentials found for tracking_uri={uri!r}. Configure credentials "
            "(AWS_PROFILE, environment variables, or an instance role), or use a local "
            "folder as tracking_uri.")


def _validate_source(kwargs: dict[str, Any]) -> None:
    source_dir = kwargs.get("source_dir")
    if isinstance(source_dir, str) and source_dir.lower().startswith("s3://"):
        raise ConfigurationError(
            "sagetrack cannot track a job whose source_dir is on S3: the SDK drops "
            "`dependencies` for S3 code, so the tracking bootstrap cannot be added. Pass a "
            f"local source_dir, or tracking=False. Received: source_dir={source_dir!r}")
    # without source_dir only the entry point file is packed, so only source_dir can clash
    if isinstance(source_dir, str) and os.path.isfile(os.path.join(source_dir,
                                                                   "sitecustomize.py")):
        raise ConfigurationError(
            "source_dir contains sitecustomize.py, which sagetrack uses to start tracking in "
            "the container. Rename yours (import it from your script), or pass "
            f"tracking=False. Received: source_dir={source_dir!r}")
    for dep in kwargs.get("dependencies") or []:
        if isinstance(dep, str) and os.path.basename(dep.rstrip("/")) in BOOTSTRAP_NAMES:
            raise ConfigurationError(
                f"dependencies entry {dep!r} clashes with a name sagetrack adds to the code "
                "tarball (sagetrack/, sitecustomize.py). Rename it or pass tracking=False.")


class TensorFlow(_SDKTensorFlow):  # type: ignore[misc]
    """``sagemaker.tensorflow.TensorFlow`` that records every training job it launches.

    Every argument of the SDK class keeps its meaning, positionally and by keyword.
    Tracking adds keyword-only arguments:

    Args:
        tracking_uri: where records go: ``s3://bucket/prefix`` or a local folder.
            Default ``$SAGETRACK_URI``, else ``s3://<session default bucket>/sagetrack``.
        experiment: groups runs (default ``"default"``).
        track_batches: also record every N training batches (0 = epochs only).
        tracking: ``False`` makes the estimator behave exactly like the SDK's.
    """

    def __init__(self, *args: Any, tracking_uri: str | None = None,
                 experiment: str | None = None, track_batches: int = 0,
                 tracking: bool = True, **kwargs: Any) -> None:
        if not isinstance(tracking, bool):
            raise ConfigurationError(
                f"Invalid argument `tracking`: expected True or False. Received: "
                f"tracking={tracking!r}")
        self._tracking = tracking
        env = kwargs.get("environment")
        if tracking and env is not None and not isinstance(env, dict):
            raise ConfigurationError(
                f"Invalid argument `environment`: expected a dict. Received: {env!r}")
        self._user_environment: dict[str, Any] = dict(env or {})
        if tracking:
            if tracking_uri is not None:
                tracking_uri = validate_uri(tracking_uri)
            elif os.environ.get("SAGETRACK_URI"):
                validate_uri(os.environ["SAGETRACK_URI"])
            experiment = validate_experiment("default" if experiment is None else experiment)
            if not isinstance(track_batches, int) or isinstance(track_batches, bool) \
                    or track_batches < 0:
                raise ConfigurationError(
                    "Invalid argument `track_batches`: expected an int >= 0 (0 records epochs "
                    f"only). Received: track_batches={track_batches!r}")
            _validate_source(kwargs)
            _check_credentials(tracking_uri or os.environ.get("SAGETRACK_URI"),
                               kwargs.get("sagemaker_session"))
            _check_json(kwargs.get("hyperparameters"))
            user_defs = _check_metric_definitions(kwargs.get("metric_definitions"))
            if len(self._user_environment) + 8 > MAX_ENVIRONMENT:
                raise ConfigurationError(
                    f"`environment` has {len(self._user_environment)} entries; SageMaker allows "
                    f"{MAX_ENVIRONMENT} and sagetrack needs up to 8. Remove some, or pass "
                    "tracking=False.")
            taken = {d["Name"] for d in user_defs}
            room = MAX_METRIC_DEFINITIONS - len(user_defs)
            ours = [n for n in DEFAULT_CONSOLE_METRICS if n not in taken][: max(room, 0)]
            kwargs["metric_definitions"] = user_defs + console_metric_definitions(ours)
            self._user_metric_definitions = user_defs
        self._tracking_uri = tracking_uri
        self._experiment = experiment or "default"
        self._track_batches = track_batches
        self._fit_inputs: Any = None
        self._in_fit = False
        self.latest_launch_record: dict[str, Any] | None = None
        super().__init__(*args, **kwargs)

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
        return self._experiment

    @property
    def latest_run(self) -> Any:
        """The :class:`sagetrack.Run` of the latest job launched by ``fit``."""
        job = getattr(self, "latest_training_job", None)
        if job is None:
            raise ConfigurationError("No job has been launched yet: call fit() first.")
        from ..store.reader import Store

        self.wait_for_launch_record()
        return Store(self.tracking_uri, s3_client=self._s3_client()).run(job.name)

    # -- SDK hooks -----------------------------------------------------------------------
    def fit(self, inputs: Any = None, wait: bool = True, logs: str = "All",
            job_name: str | None = None, experiment_config: dict[str, str] | None = None,
            *, skip_if_done: bool = False) -> Any:
        """Launch the job like the SDK does, recording it (see the class docstring).

        A completed run that did the same work (same code content, hyperparameters, data
        and image) gets a warning naming it; ``skip_if_done=True`` returns that
        :class:`sagetrack.Run` instead of launching.
        """
        if not self._tracking:
            return super().fit(inputs, wait, logs, job_name, experiment_config)
        self._fit_inputs, self._in_fit, self._skip_if_done = inputs, True, skip_if_done
        self._fit_run_id: str | None = None
        try:
            result = super().fit(inputs, wait, logs, job_name, experiment_config)
        except _SkipLaunch as skip:
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
        staged = self._try("stage the tracking bootstrap", bootstrap_paths)
        if staged is None:  # tracking off for this job, training unaffected
            self.environment = dict(self._user_environment) or None
            super()._prepare_for_training(job_name=job_name)
            return
        template = not self._in_fit or self._pipeline_session()
        # a duplicate-work check that must decide before launching (skip_if_done) and a
        # template (read by the jobs) wait for every capture
        wait_all = template or self._skip_requested()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=16,
                                                     thread_name_prefix="sagetrack")
        gate = LaunchGate(opened=wait_all)
        try:
            with signals_blocked():  # the pool's threads: Ctrl-C stays with the main thread
                futures = self._start_capture(pool, gate)
            self.environment = self._container_environment(template)
            user_dependencies: Any = self.dependencies  # type: ignore[has-type]
            self.dependencies = [*(user_dependencies or []), *staged]
            try:
                with _code_tarball_capture() as tarballs:
                    super()._prepare_for_training(job_name=job_name)
            finally:
                self.dependencies = user_dependencies
            uploaded = getattr(self, "uploaded_code", None)
            if uploaded is not None:
                with signals_blocked():
                    futures["tarball"] = pool.submit(
                        code_tarball_info, self._s3_client(), uploaded.s3_prefix,
                        exclude=BOOTSTRAP_NAMES,
                        local_copy=tarballs[-1] if tarballs else None)
            # Capture ran beside the SDK's packing and upload; fit() now waits at most the
            # launch budget for what is left, and not at all for listings past their first
            # page (parked at the gate until the launch is done). The record is written
            # before the job is created, with "pending" naming what is not done yet, which
            # a background thread completes while SageMaker provisions the job.
            _wait_for_captures(futures, gate, None if wait_all else LAUNCH_BUDGET_S)
            base = self._try("build the launch record", self._launch_record_base)
            pending = None if base is None else self._try(
                "write the launch record", self._write_launch_record, base, futures, template)
        finally:
            gate.open()
        if pending:  # one thread per launch: a loop of fit(wait=False) is never held up
            finisher = threading.Thread(
                target=self._complete_launch_record, args=(base, futures, pool),
                name="sagetrack-launch-record")
            self._finishers = [t for t in getattr(self, "_finishers", []) if t.is_alive()]
            self._finishers.append(finisher)
            with signals_blocked():
                finisher.start()
        else:
            pool.shutdown(wait=False)

    def _complete_launch_record(self, base: dict[str, Any],
                                futures: dict[str, concurrent.futures.Future[Any]],
                                pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Rewrite the launch record once every capture is done (background thread)."""
        try:
            concurrent.futures.wait(futures.values())
            self._try("complete the launch record", self._write_launch_record, base,
                      futures, False, False, True)
        finally:
            pool.shutdown(wait=False)

    def wait_for_launch_record(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Block until the launch records of this estimator's jobs are complete (input
        fingerprints included), or ``timeout`` seconds; return the latest one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for finisher in list(getattr(self, "_finishers", [])):
            finisher.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.latest_launch_record

    # -- internals -----------------------------------------------------------------------
    def _pipeline_session(self) -> bool:
        try:
            from sagemaker.workflow.pipeline_context import PipelineSession
        except ImportError:  # pragma: no cover - old SDKs
            return False
        return isinstance(self.sagemaker_session, PipelineSession)

    def _template_key(self) -> str:
        base = self.base_job_name or "job"
        safe = re.sub(r"[^A-Za-z0-9-]", "-", base)[:40]
        return f"_launch/{self._experiment}/{safe}-{now_iso().replace(':', '').replace('.', '')}"

    def _container_environment(self, template: bool) -> dict[str, Any]:
        env = {k: v for k, v in self._user_environment.items()}
        ours: dict[str, str] = {
            ENV.ENABLED: "1",
            ENV.URI: self.tracking_uri,
            ENV.EXPERIMENT: self._experiment,
            ENV.TRACK_BATCHES: str(self._track_batches),
        }
        if len(self.tracking_uri) > ENV_VALUE_LIMIT:
            raise ConfigurationError(
                f"tracking_uri is longer than {ENV_VALUE_LIMIT} characters, the SageMaker limit "
                f"for an environment value. Received {len(self.tracking_uri)} characters.")
        kms = os.environ.get("SAGETRACK_KMS_KEY_ID")
        if kms:
            ours[ENV.KMS_KEY_ID] = kms
        if self.enable_network_isolation():
            ours[ENV.OFFLINE] = "1"  # no network in the container: records travel in output
        if template:
            self._launch_key = self._template_key()
            ours[ENV.LAUNCH] = self._launch_key
        ours.update(encode_metric_regexes(
            [(d["Name"], d["Regex"]) for d in self._user_metric_definitions]))
        env.update(ours)
        return env

    def _s3_client(self) -> Any:
        session = self.sagemaker_session
        client = getattr(session, "s3_client", None)
        if client is None:
            client = session.boto_session.client("s3", region_name=session.boto_region_name)
        return client

    def _start_capture(self, pool: concurrent.futures.ThreadPoolExecutor, gate: LaunchGate
                       ) -> dict[str, concurrent.futures.Future[Any]]:
        source = self.source_dir if isinstance(self.source_dir, str) else (
            os.path.dirname(os.path.abspath(self.entry_point))
            if isinstance(self.entry_point, str) else None)
        futures: dict[str, concurrent.futures.Future[Any]] = {}
        self._capture_started = time.monotonic()
        if source and not self.git_config and not source.lower().startswith("s3://"):
            futures["git"] = pool.submit(git_info, source)
        if self._fit_inputs is not None:
            channels = self._channels(self._fit_inputs)
            s3 = self._s3_client()
            for name, (uri, data_type) in channels.items():
                futures[f"input:{name}"] = pool.submit(fingerprint_channel, s3, uri, data_type,
                                                       gate=gate)
        return futures

    @staticmethod
    def _channels(inputs: Any) -> dict[str, tuple[str, str]]:
        """Channel name -> (URI, S3DataType), as the SDK puts them in the request."""
        from sagemaker.job import _Job

        out: dict[str, tuple[str, str]] = {}
        try:
            config = _Job._format_inputs_to_input_config(inputs, validate_uri=False)
        except Exception as exc:  # the SDK will raise its own error for bad inputs
            log.debug("sagetrack could not read inputs: %s", exc)
            return out
        for channel in config or []:
            source = channel.get("DataSource", {})
            s3 = source.get("S3DataSource")
            if s3:
                out[channel["ChannelName"]] = (str(s3.get("S3Uri")),
                                               str(s3.get("S3DataType", "S3Prefix")))
            elif source.get("FileSystemDataSource"):
                fs = source["FileSystemDataSource"]
                out[channel["ChannelName"]] = (
                    f"{fs.get('FileSystemType', 'fs').lower()}://{fs.get('FileSystemId')}"
                    f"{fs.get('DirectoryPath', '')}", "FileSystem")
        return out

    def _write_launch_record(self, base: dict[str, Any],
                             futures: dict[str, concurrent.futures.Future[Any]],
                             template: bool, first: bool = True, background: bool = False
                             ) -> list[str] | None:
        """Write the launch record with the captures done so far; return what is pending.

        The first write claims the run: the ``launched`` status is written create-only, and
        a job name that already has a run that started is left alone (nothing written)."""
        record = self._fill_capture(base, futures)
        diff = record["code"].pop("_diff", "")
        store = self._store()
        if template:
            record["run_id"] = None
            self.latest_launch_record = record
            self._put(store, f"{self._launch_key}.json", dumps(record))
            if diff:
                self._put(store, f"{self._launch_key}.diff", diff.encode())
            return None
        prefix = run_prefix(self._experiment, record["run_id"])
        if first and not self._claim_run(store, prefix, record):
            return None
        if not record["pending"]:
            # a launch completed in the background has started already: nothing to skip
            self._check_duplicate(record, skip=not background and self._skip_requested())
        current = self.latest_launch_record
        if not background or current is None or current.get("run_id") == record["run_id"]:
            self.latest_launch_record = record  # not over a newer launch's record
        if diff:
            self._put(store, f"{prefix}/{RUN_FILES['diff']}", diff.encode())
        self._put(store, f"{prefix}/{RUN_FILES['run']}", dumps(record))
        pending: list[str] | None = record["pending"]
        return pending

    def _claim_run(self, store: Any, prefix: str, record: dict[str, Any]) -> bool:
        """Write the ``launched`` status unless the run id already has a run that started."""
        key = f"{prefix}/{RUN_FILES['status']}"
        status = dumps({
            "format": FORMAT, "run_id": record["run_id"], "experiment": self._experiment,
            "status": "launched", "started": None, "updated": record["created"],
            "ended": None, "attempt": 0, "last_epoch": None, "metrics": {}, "failure": None,
        })
        if self._put(store, key, status, if_absent=True):
            self._fit_run_id = record["run_id"]
            return True
        try:
            existing = json.loads(store.get(key)).get("status")
        except Exception:
            existing = None
        if existing in (None, "launched"):  # an earlier launch of this name that never ran
            self._put(store, key, status)
            self._fit_run_id = record["run_id"]
            return True
        msg = (f"sagetrack: job name {record['run_id']} already has a run ({existing}) in "
               f"experiment {self._experiment}; its records are left as they are and this "
               "launch is not recorded. Use a new job_name.")
        log.warning(msg)
        warnings.warn(msg, TrackingWarning, stacklevel=5)
        return False

    def _skip_requested(self) -> bool:
        return bool(getattr(self, "_skip_if_done", False))

    def _check_duplicate(self, record: dict[str, Any], skip: bool) -> None:
        """Warn about (or, with ``skip_if_done``, skip for) a completed identical run.

        Each launch leaves a marker ``_identity/<hash>/<experiment>/<run id>.json`` keyed by
        what makes two launches the same work, so the check is one LIST whatever the
        store's size, plus one status read per earlier launch of the same work.
        """
        found = self._try("look for a completed run of the same work",
                          self._find_and_mark_identity, record, skip)
        if found is None:
            return
        warnings.warn(
            f"sagetrack: run {found.id} (experiment {found.experiment}) already completed the "
            "same work (same code, hyperparameters, data and image). Pass "
            "fit(..., skip_if_done=True) to reuse it instead of launching.", TrackingWarning,
            stacklevel=5)
        if skip:
            raise _SkipLaunch(found)

    def _find_and_mark_identity(self, record: dict[str, Any], skip: bool) -> Any:
        import hashlib

        from ..compare import launch_identity
        from ..store.reader import Run

        identity = launch_identity(record)
        if identity is None:
            return None
        prefix = f"_identity/{hashlib.sha256(identity.encode()).hexdigest()[:32]}"
        store = self._store()
        markers = [key.split("/")[-2:] for key in sorted(store.list(prefix), reverse=True)]
        earlier = [Run(store, experiment, name.removesuffix(".json"))
                   for experiment, name in markers
                   if name.removesuffix(".json") != record["run_id"]]
        found = None
        if earlier:  # one status read per earlier launch of this work, read concurrently
            try:
                with concurrent.futures.ThreadPoolExecutor(
                        max_workers=min(8, len(earlier)), thread_name_prefix="sagetrack"
                ) as pool:
                    statuses = list(pool.map(lambda run: run.status, earlier))
            except RuntimeError:  # no new threads at interpreter shutdown: one by one
                statuses = [run.status for run in earlier]
            found = next((run for run, status in zip(earlier, statuses, strict=True)
                          if status == "completed"), None)
        if found is None or not skip:  # it will launch
            store.put(f"{prefix}/{self._experiment}/{record['run_id']}.json",
                      dumps({"run_id": record["run_id"], "created": record["created"]}))
        if getattr(self, "_reproduces", None):
            return None  # repeating a run on purpose: no warning about the same work
        return found

    def _put(self, store: Any, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        """Write ``key``; False when ``if_absent`` and it exists. Failures keep a copy."""
        try:
            if if_absent:
                return bool(store.put_if_absent(key, data))
            store.put(key, data)
            return True
        except Exception:
            LocalBackend(UNSENT_DIR / _uri_folder(self.tracking_uri)).put(key, data)
            raise

    def _fill_capture(self, record: dict[str, Any],
                      futures: dict[str, concurrent.futures.Future[Any]]) -> dict[str, Any]:
        """A copy of ``record`` with the finished captures in it, the others pending."""
        record = {**record, "code": dict(record["code"]),
                  "inputs": {k: dict(v) for k, v in record["inputs"].items()}}
        code, pending = record["code"], []
        git = futures.get("git")
        if git is not None and git.done():
            try:
                info, diff = git.result()
            except Exception as exc:  # git_info reports errors itself; this is a backstop
                info, diff = {"git": None, "error": f"{type(exc).__name__}: {exc}"[:500]}, ""
            if info.get("error") and not getattr(self, "_git_warned", False):
                self._git_warned = True
                msg = (f"sagetrack could not read the git state of {code['source_dir'] or '.'}"
                       f" ({info['error']}); the run records the error instead of a commit.")
                log.warning(msg)
                warnings.warn(msg, TrackingWarning, stacklevel=4)
            code.update(info)
            code["_diff"] = diff
            code["diff_file"] = RUN_FILES["diff"] if diff else None
        elif git is not None:
            pending.append("code.git")
        origin = getattr(self, "_reproduces", None)
        if git is None and isinstance(origin, dict) and origin.get("code"):
            code.update(origin["code"])  # a recorded tarball: the original run's git state
        tarball = futures.get("tarball")
        if tarball is not None and tarball.done():
            try:
                code["tarball"] = tarball.result()
            except Exception as exc:
                code["tarball"] = {"uri": code["tarball"]["uri"], "error": str(exc)[:500]}
        elif tarball is not None:
            pending.append("code.tarball")
        for name, info in record["inputs"].items():
            future = futures.get(f"input:{name}")
            if future is not None and future.done():
                try:
                    info.update(future.result())
                except Exception as exc:
                    info["error"] = f"{type(exc).__name__}: {exc}"[:500]
            elif future is not None:
                pending.append(f"inputs.{name}")
        record["pending"] = pending or None
        return record

    def _launch_record_base(self) -> dict[str, Any]:
        """Everything the launch record holds except the background captures."""
        import sagemaker

        hps = self.hyperparameters() or {}
        decoded = {k: _decode(v) for k, v in hps.items()}
        params = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
        uploaded = getattr(self, "uploaded_code", None)
        code: dict[str, Any] = {
            "entry_point": self.entry_point if isinstance(self.entry_point, str) else None,
            "source_dir": self.source_dir if isinstance(self.source_dir, str) else None,
            "dependencies": [d for d in (self.dependencies or []) if isinstance(d, str)],
            "git_config": redact_mapping(self.git_config) if self.git_config else None,
            "tarball": {"uri": uploaded.s3_prefix} if uploaded is not None else None,
        }
        inputs = {name: {"uri": uri, "data_type": data_type}
                  for name, (uri, data_type) in (self._channels(self._fit_inputs).items()
                                                 if self._fit_inputs is not None else [])}
        job_name = self._current_job_name
        output_path = self.output_path if isinstance(self.output_path, str) else None
        artifacts = {"code": uploaded.s3_prefix if uploaded is not None else None}
        if output_path:
            base = output_path.rstrip("/") + f"/{job_name}/output"
            artifacts.update(model=f"{base}/model.tar.gz", output=f"{base}/output.tar.gz")
        session = self.sagemaker_session
        return {
            "format": FORMAT,
            "run_id": job_name,
            "experiment": self._experiment,
            "created": now_iso(),
            "user": _user(),
            "client_host": socket.gethostname(),
            "sagetrack_version": __version__,
            "sagemaker_sdk_version": sagemaker.__version__,
            "params": redact_mapping(params),
            "sagemaker_params": {k: v for k, v in decoded.items() if k.startswith("sagemaker_")},
            "code": code,
            "inputs": inputs,
            "job": {
                "image_uri": self._try("resolve the image URI", self.training_image_uri),
                "instance_type": _plain(self.instance_type),
                "instance_count": _plain(self.instance_count),
                "volume_size": _plain(getattr(self, "volume_size", None)),
                "max_run": _plain(getattr(self, "max_run", None)),
                "framework_version": self.framework_version,
                "py_version": self.py_version,
                "distribution": getattr(self, "distribution", None) or None,
                "use_spot_instances": bool(getattr(self, "use_spot_instances", False)),
                "max_wait": _plain(getattr(self, "max_wait", None)),
                "checkpoint_s3_uri": _plain(getattr(self, "checkpoint_s3_uri", None)),
                "checkpoint_local_path": _plain(getattr(self, "checkpoint_local_path", None)),
                "output_path": output_path,
                "role": _plain(getattr(self, "role", None)),
                "region": getattr(session, "boto_region_name", None),
                "enable_network_isolation": bool(self.enable_network_isolation()),
                "environment": redact_mapping(self._user_environment),
                "metric_definitions": self.metric_definitions,
                "base_job_name": self.base_job_name,
            },
            "artifacts": artifacts,
            "tracking": {"uri": self.tracking_uri, "track_batches": self._track_batches},
            "reproduces": getattr(self, "_reproduces", None),
        }

    def _record_outcome(self, error: BaseException | None) -> None:
        # after an error (Ctrl-C included) do not wait long for a slow input listing
        self.wait_for_launch_record(None if error is None else 5.0)
        job = getattr(self, "latest_training_job", None)
        claimed = getattr(self, "_fit_run_id", None)  # the run this fit() recorded
        if error is not None:
            if claimed is None:
                return  # failed before anything was recorded
            if job is None or job.name != claimed:
                # CreateTrainingJob itself failed: the run never started
                self._try("record the launch failure", self._write_job_doc, claimed,
                          {"status": "Failed", "stage": "create",
                           "failure_reason": f"{type(error).__name__}: {error}"})
                return
        if job is None:
            return

        def describe() -> None:
            desc = job.describe()
            self._write_job_doc(job.name, {
                "status": desc.get("TrainingJobStatus"),
                "secondary_status": desc.get("SecondaryStatus"),
                "failure_reason": desc.get("FailureReason"),
                "model_artifacts": (desc.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
                "training_start": str(desc.get("TrainingStartTime") or "") or None,
                "training_end": str(desc.get("TrainingEndTime") or "") or None,
                "billable_seconds": desc.get("BillableTimeInSeconds"),
                "training_seconds": desc.get("TrainingTimeInSeconds"),
            })
            if desc.get("TrainingJobStatus") in ("Completed", "Failed", "Stopped"):
                self._ingest_if_needed(job.name)

        self._try("record the job outcome", describe)

    def _ingest_if_needed(self, job_name: str) -> None:
        """Ingest the job's local copy when the container's records did not reach the store."""
        store = self._store()
        key = f"{run_prefix(self._experiment, job_name)}/{RUN_FILES['status']}"
        try:
            status = json.loads(store.get(key)).get("status")
        except Exception:
            status = None
        if status in ("completed", "failed", "stopped"):
            return
        from .ingest import ingest_job

        written = ingest_job(job_name, store, sagemaker_client=self.sagemaker_session
                             .sagemaker_client, s3_client=self._s3_client())
        if written:
            log.info("sagetrack: ingested %d records of %s from its output", len(written),
                     job_name)

    def _store(self) -> Any:
        return open_backend(self.tracking_uri, client=self._s3_client()
                            if self.tracking_uri.startswith("s3://") else None,
                            kms_key_id=os.environ.get("SAGETRACK_KMS_KEY_ID"))

    def _write_job_doc(self, run_id: str, doc: dict[str, Any]) -> None:
        store = self._store()
        self._put(store, f"{run_prefix(self._experiment, run_id)}/{RUN_FILES['job']}",
                  dumps({"format": FORMAT, "recorded": now_iso(), **doc}))

    def _try(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (ConfigurationError, _SkipLaunch):
            raise
        except Exception as exc:
            if os.environ.get(ENV.STRICT, "").lower() in ("1", "true", "yes"):
                raise
            msg = (f"sagetrack could not {what} ({type(exc).__name__}: {exc}); the job is not "
                   f"affected. Unsent records are kept under {UNSENT_DIR}.")
            log.warning(msg)
            warnings.warn(msg, TrackingWarning, stacklevel=3)
            return None


def _wait_for_captures(futures: dict[str, concurrent.futures.Future[Any]], gate: LaunchGate,
                       timeout: float | None) -> None:
    """Wait until every capture is done or parked at the gate, or ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        waiting = [f for f in futures.values() if not f.done()]
        if not waiting or len(waiting) <= gate.parked:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        concurrent.futures.wait(waiting, timeout=0.02 if left is None else min(left, 0.02),
                                return_when=concurrent.futures.FIRST_COMPLETED)


_TARBALLS = threading.local()
_MAX_TARBALL_COPY = 64 * 1024 * 1024  # larger ones are downloaded in the background


@contextlib.contextmanager
def _code_tarball_capture() -> Iterator[list[bytes]]:
    """Keep the bytes of code tarballs the SDK packs in this thread (it deletes the file
    after the upload), so that hashing them needs no download."""
    import sagemaker.utils

    create = getattr(sagemaker.utils, "create_tar_file", None)
    if create is not None and not getattr(create, "_sagetrack", False):
        # installed once, a pass-through outside a capture block and in other threads
        original = create

        @functools.wraps(original)
        def create_tar_file(*args: Any, **kwargs: Any) -> Any:
            path = original(*args, **kwargs)
            slot = getattr(_TARBALLS, "slot", None)
            if slot is not None:
                with contextlib.suppress(Exception):  # never in the way of the SDK
                    if os.path.getsize(path) <= _MAX_TARBALL_COPY:
                        slot.append(Path(path).read_bytes())
            return path

        create_tar_file._sagetrack = True  # type: ignore[attr-defined]
        sagemaker.utils.create_tar_file = create_tar_file
    slot: list[bytes] = []
    _TARBALLS.slot = slot
    try:
        yield slot
    finally:
        _TARBALLS.slot = None


class _SkipLaunch(Exception):
    """Carries the completed identical run out of the SDK's fit() (``skip_if_done``).

    An Exception, not a BaseException: the SDK's telemetry wrapper around ``fit`` returns
    from ``finally`` and so swallows anything that is not an Exception."""

    def __init__(self, run: Any) -> None:
        super().__init__(run.id)
        self.run = run


def _decode(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return _plain(value)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)  # pipeline variables and other objects


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _uri_folder(uri: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", uri).strip("_") or "store"
