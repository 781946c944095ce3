"""Start tracking inside the training process, before the user's script runs.

``sitecustomize.py`` (shipped at the root of the code tarball, first on ``PYTHONPATH``)
calls :func:`activate` when the job's environment has ``SAGETRACK=1``. It

1. creates the run's recorder and background writer (store + local mirror under
   ``SM_OUTPUT_DATA_DIR/sagetrack``) and records the host environment;
2. on the chief, arranges for ``keras.Model.fit`` / ``tf_keras.Model.fit`` to be wrapped
   as soon as Keras is imported, and scans output for declared metrics;
3. records the final status at exit as the process really ends (:mod:`.exit_status`):
   completed, failed (uncaught exception, non-zero exit status) or stopped (SIGTERM, as
   StopTrainingJob and spot interruptions send), plus the files saved under
   ``SM_MODEL_DIR``; pending writes are flushed with a time bound, and any previous
   SIGTERM handler still runs afterwards.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import settings
from .._threads import signals_blocked
from ..store.backends import LocalBackend, open_backend
from ..store.layout import run_prefix
from ..store.schema import DIFF_FILE, FORMAT, RUN_FILE
from .config import JobConfig
from .environment import describe_environment
from .exit_status import ExitState
from .exit_status import install as install_exit_hooks
from .recorder import Recorder, active_recorder, set_active_recorder
from .safety import safe
from .writer import RecordWriter

__all__ = ["activate", "is_entry_process"]

log = logging.getLogger("sagetrack")
EXIT_TIMEOUT_ENV = settings.EXIT_TIMEOUT.name
_ACTIVE_PID_ENV = settings.ACTIVE_PID.name


def is_entry_process(environ: Any = os.environ) -> bool:
    """Whether this interpreter runs the job's user entry point (not pip, not a helper)."""
    entry = environ.get("SM_USER_ENTRY_POINT")
    if not entry:
        return False
    if environ.get(_ACTIVE_PID_ENV) == str(os.getppid()):
        return False  # a subprocess of the tracked process (data loader, ...)
    argv = list(getattr(sys, "orig_argv", sys.argv))
    module = entry[:-3] if entry.endswith(".py") else entry
    for i, arg in enumerate(argv[1:], start=1):
        if os.path.basename(arg) == os.path.basename(entry):
            return True
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1] == module:
            return True
    return False


class _PostImportHook(importlib.abc.MetaPathFinder):
    """Run a callback right after a top-level module has been executed."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = hooks
        self._busy: set[str] = set()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        hook = self.hooks.get(fullname)
        if hook is None or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _HookedLoader(spec.loader, hook)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, hook: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._hook = hook

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._hook(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _keras_hook(module_name: str) -> Callable[[ModuleType], None]:
    @safe
    def hook(module: ModuleType) -> None:
        from .keras import patch_model_fit

        patch_model_fit(module, module_name)

    return hook


def activate(environ: Any = os.environ) -> Recorder | None:
    """Start tracking this process if it is a tracked job's entry point; return the recorder."""
    config = JobConfig.from_env(environ)
    if config is None or not is_entry_process(environ) or active_recorder() is not None:
        return None
    os.environ[_ACTIVE_PID_ENV] = str(os.getpid())
    store = None if config.offline else open_backend(config.uri, kms_key_id=config.kms_key_id)
    mirror = LocalBackend(os.path.join(config.output_data_dir, "sagetrack"))
    # on the chief, a copy in the checkpoint dir travels with the job's checkpoints, so a
    # restarted (spot) job continues the same run even when the store is unreachable
    checkpoint = (LocalBackend(os.path.join(config.checkpoint_dir, CHECKPOINT_FOLDER))
                  if config.chief and config.checkpoint_dir else None)
    prefix = run_prefix(config.experiment, config.run_id)
    writer = RecordWriter(store, prefix, mirror=mirror, checkpoint=checkpoint)
    recorder = Recorder(config, writer)
    set_active_recorder(recorder)
    if checkpoint is not None:
        _resume(recorder, checkpoint, prefix)
    recorder.start(describe_environment(config))

    if config.chief:
        hooks = {name: _keras_hook(name) for name in ("keras", "tf_keras")}
        for name in list(hooks):
            if name in sys.modules:  # already imported (not the usual case)
                hooks.pop(name)(sys.modules[name])
        if hooks:
            sys.meta_path.insert(0, _PostImportHook(hooks))
    state = ExitState()
    if config.chief and config.metric_regexes:
        from .output import install_scanner

        scanner = install_scanner(recorder, config.metric_regexes)
        if scanner is not None:
            state.before_finish.append(scanner.close)
    if config.chief and config.launch_key:
        state.launch = threading.Event()
        with signals_blocked():
            threading.Thread(target=_record_from_template,
                             args=(store, writer, config, state.launch),
                             name="sagetrack-launch", daemon=True).start()
    install_exit_hooks(recorder, state)
    return recorder


@safe
def _record_from_template(store: Any, writer: RecordWriter, config: JobConfig,
                          written: threading.Event) -> None:
    try:
        _write_record_from_template(store, writer, config, written)
    finally:
        written.set()  # done, or failed: nothing to wait for at exit


def _write_record_from_template(store: Any, writer: RecordWriter, config: JobConfig,
                                written: threading.Event) -> None:
    """Create this job's launch record from the template the client wrote.

    Jobs started by a HyperparameterTuner or a pipeline get their name from the service,
    so the client records a template; the chief completes it with the hyperparameters
    this job received and, where permitted, the input URIs from DescribeTrainingJob.
    """
    import json

    from ..errors import RecordNotFound

    try:
        record = json.loads(store.get(f"{config.launch_key}.json"))
    except RecordNotFound:
        record = {"format": FORMAT, "code": {}, "job": {}}
    try:
        diff = store.get(f"{config.launch_key}.diff")
        writer.set(DIFF_FILE, diff, urgent=False)
    except RecordNotFound:
        pass
    from .._redact import redact_mapping

    hps = json.loads(os.environ.get("SM_HPS", "{}") or "{}")
    record.update(run_id=config.run_id, experiment=config.experiment,
                  params=redact_mapping(hps), launch_template=config.launch_key)
    record.setdefault("inputs", {})
    writer.set(RUN_FILE, dict(record))  # complete but for the inputs, in case the next step hangs
    written.set()
    described = _inputs_from_describe(config.run_id)
    if described:
        record["inputs"] = described
        writer.set(RUN_FILE, record)


def _inputs_from_describe(job_name: str) -> dict[str, Any]:
    try:
        import boto3
        from botocore.config import Config

        quick = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2})
        desc = boto3.client("sagemaker", config=quick).describe_training_job(
            TrainingJobName=job_name)
    except Exception:  # no permission or no network: the record keeps the template's view
        return {}
    inputs = {}
    for channel in desc.get("InputDataConfig", []):
        s3 = channel.get("DataSource", {}).get("S3DataSource", {})
        if s3:
            inputs[channel["ChannelName"]] = {"uri": s3.get("S3Uri"),
                                              "data_type": s3.get("S3DataType"),
                                              "note": "from DescribeTrainingJob; not fingerprinted"}
    return inputs


CHECKPOINT_FOLDER = ".sagetrack"


@safe
def _resume(recorder: Recorder, checkpoint: LocalBackend, prefix: str) -> None:
    """Continue the run if the checkpoint dir holds records of an earlier attempt."""
    import json

    from ..store.layout import RUN_FILES, loads_jsonl

    if not checkpoint.exists(f"{prefix}/{RUN_FILES['status']}"):
        return
    status = json.loads(checkpoint.get(f"{prefix}/{RUN_FILES['status']}"))
    series = {}
    for name in (RUN_FILES["metrics"], RUN_FILES["steps"]):
        if checkpoint.exists(f"{prefix}/{name}"):
            series[name] = list(loads_jsonl(checkpoint.get(f"{prefix}/{name}"), name, []))
    attempt = int(status.get("attempt") or 1) + 1
    log.warning("sagetrack: continuing run %s (attempt %d)", recorder.config.run_id, attempt)
    recorder.resume_from(attempt, status, series)


