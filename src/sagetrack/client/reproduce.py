"""Repeat a recorded run: what the repeat sends, whether its data is still the same, launch.

* :func:`reproduction_request` - what a repeat of a run sends: estimator arguments, the
  recorded code tarball, hyperparameters and input channels (no AWS call);
* :func:`check_data` - re-fingerprints every input channel and compares with the record;
* :func:`estimator_for` (``Run.estimator``) - a ready ``sagetrack.TensorFlow``;
* :func:`reproduce` - refuses with :class:`DataChanged` when the data changed, then fits.

The estimator reuses the recorded tarball through its private ``_reproduces=`` argument
(:class:`~sagetrack.client.launch_record.Reproduction`): ``source_dir`` becomes the
tarball's S3 URI (a ``file://`` tarball, kept by an offline local session, is unpacked
into a new folder and packed again), and the new run's launch record links to the
original in ``reproduces``. :mod:`sagetrack.client.checkout` writes the code that ran to a folder.
"""

from __future__ import annotations

import concurrent.futures
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlparse

from .._redact import REDACTED
from ..container.recorder import METRIC_LINE_PREFIX
from ..errors import SagetrackError
from ..store.reader import Run
from .launch_record import Reproduction
from .provenance import fingerprint_channel
from .store_access import s3_client_of

__all__ = [
    "ChannelCheck",
    "DataChanged",
    "ReproductionError",
    "Request",
    "build_estimator",
    "check_data",
    "estimator_for",
    "reproduce",
    "reproduction_request",
    "tarball_uri",
    "training_inputs",
]

#: git fields of the original run carried into ``reproduces.code``
_GIT_FIELDS = ("git", "commit", "branch", "remote", "dirty", "diff_sha256", "diff_chars")
_FS_TYPES = {"efs": "EFS", "fsxlustre": "FSxLustre"}


class ReproductionError(SagetrackError):
    """A run cannot be repeated or checked out as recorded; the message says why."""


class DataChanged(ReproductionError):
    """An input channel no longer matches the fingerprint recorded by the original run."""

    def __init__(self, run_id: str, checks: list[ChannelCheck]) -> None:
        self.run_id = run_id
        self.checks = list(checks)
        lines = "\n".join(f"  {c.channel}: {c.detail}" for c in checks)
        super().__init__(
            f"The input data of run {run_id} changed since it ran, so a repeat would not "
            f"reproduce it:\n{lines}\nRestore the data, or pass --allow-data-change "
            "(allow_data_change=True) to launch anyway; the new run records the change.")


@dataclass
class ChannelCheck:
    """One input channel re-fingerprinted: ``status`` is same, changed or unverifiable."""

    channel: str
    uri: str
    status: str
    recorded: dict[str, Any]
    current: dict[str, Any]

    @property
    def detail(self) -> str:
        r, c = self.recorded, self.current
        if self.status == "same":
            return f"same ({r.get('objects')} objects, {r.get('bytes')} bytes)"
        if self.status == "changed":
            return (f"changed: {r.get('objects')} -> {c.get('objects')} objects, "
                    f"{r.get('bytes')} -> {c.get('bytes')} bytes, sha256 "
                    f"{str(r.get('sha256'))[:12]} -> {str(c.get('sha256'))[:12]} ({self.uri})")
        why = r.get("error") or r.get("note") or c.get("error") or c.get("note") or \
            "no fingerprint recorded"
        return f"cannot verify: {why} ({self.uri})"


@dataclass
class Request:
    """Everything a repeat of run ``run_id`` sends (printed by ``reproduce --dry-run``)."""

    run_id: str
    experiment: str
    source_dir: str
    estimator_args: dict[str, Any]
    inputs: dict[str, dict[str, str]]
    reproduces: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        args = {"source_dir": self.source_dir, **self.estimator_args}
        lines = [f"sagetrack.TensorFlow(  # repeats run {self.run_id} ({self.experiment})"]
        lines += [f"    {k}={v!r}," for k, v in args.items()]
        channels = {name: info["uri"] for name, info in self.inputs.items()}
        lines.append(f").fit({channels!r})")
        lines += [f"# note: {n}" for n in self.notes]
        return "\n".join(lines)


def _has_redacted(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_redacted(v) for v in value)
    return isinstance(value, str) and REDACTED in value


def tarball_uri(run: Run) -> str:
    """Where the code tarball ``run`` ran is (ReproductionError when none was recorded)."""
    tarball = run.code.get("tarball") or {}
    uri = tarball.get("uri") or (run.record.get("artifacts") or {}).get("code")
    if not isinstance(uri, str) or not uri:
        raise ReproductionError(
            f"Run {run.id} recorded no code tarball, so its code cannot be reused (jobs "
            "launched from git_config or pipelines record the repository instead).")
    return uri


def reproduction_request(run: Run, **overrides: Any) -> Request:
    """The arguments a repeat of ``run`` uses; ``overrides`` replace recorded estimator
    arguments (``hyperparameters`` and ``environment`` are merged into the recorded ones).

    Raises ReproductionError when the record lacks what a repeat needs, or holds values
    redacted as credentials that ``overrides`` do not supply.
    """
    record = run.record
    if not record:
        problems = f" ({'; '.join(run.problems)})" if run.problems else ""
        raise ReproductionError(
            f"Run {run.id} has no readable launch record (run.json){problems}: "
            "there is nothing to reproduce from.")
    code: dict[str, Any] = dict(run.code)
    job = run.job_config
    source_dir = tarball_uri(run)
    if not source_dir.startswith(("s3://", "file://")):
        raise ReproductionError(
            f"Run {run.id} ran code from {source_dir}, which a new job cannot reuse. Use "
            "`sagetrack checkout` and launch from that folder.")
    program = (record.get("sagemaker_params") or {}).get("sagemaker_program")
    entry_point = program or posixpath.basename(str(code.get("entry_point") or ""))
    if not entry_point:
        raise ReproductionError(f"Run {run.id} recorded no entry point script.")
    params = run.params
    model_dir = params.pop("model_dir", None)
    notes: list[str] = []
    args: dict[str, Any] = {
        "entry_point": entry_point,
        "image_uri": job.get("image_uri"),
        "framework_version": job.get("framework_version"),
        "py_version": job.get("py_version"),
        "role": job.get("role"),
        "instance_type": job.get("instance_type"),
        "instance_count": job.get("instance_count"),
        "volume_size": job.get("volume_size"),
        "max_run": job.get("max_run"),
        "output_path": job.get("output_path"),
        "base_job_name": job.get("base_job_name"),
        "distribution": job.get("distribution") or None,
        "environment": job.get("environment") or None,
        "metric_definitions": [d for d in job.get("metric_definitions") or []
                               if isinstance(d, dict) and not
                               str(d.get("Regex", "")).startswith(METRIC_LINE_PREFIX)] or None,
        "checkpoint_local_path": job.get("checkpoint_local_path"),
        "tracking_uri": run.backend.uri,
        "experiment": run.experiment,
        "track_batches": (record.get("tracking") or {}).get("track_batches") or 0,
    }
    if job.get("enable_network_isolation"):
        args["enable_network_isolation"] = True
    if job.get("use_spot_instances"):
        args.update(use_spot_instances=True, max_wait=job.get("max_wait"))
    # the SDK's default model_dir names the job: let it name the new one
    if model_dir is None:
        args["model_dir"] = False
    elif not (isinstance(model_dir, str) and run.id in model_dir):
        args["model_dir"] = model_dir
    if job.get("checkpoint_s3_uri"):
        notes.append(f"checkpoint_s3_uri ({job['checkpoint_s3_uri']}) is not reused: the new "
                     "job would resume from the original's checkpoints. Pass "
                     "checkpoint_s3_uri=... to set one.")
    args = {k: v for k, v in args.items() if v is not None}
    overrides = dict(overrides)
    changed = sorted([k for k in overrides if k not in ("hyperparameters", "environment")]
                     + [f"{group}.{k}" for group in ("hyperparameters", "environment")
                        for k in overrides.get(group) or {}])
    args["hyperparameters"] = {**params, **(overrides.pop("hyperparameters", None) or {})}
    if "environment" in overrides:
        args["environment"] = {**args.get("environment", {}), **overrides.pop("environment")}
    args.update(overrides)
    redacted = [f"hyperparameter {k!r}" for k, v in args["hyperparameters"].items()
                if _has_redacted(v)]
    redacted += [f"environment variable {k!r}" for k, v in (args.get("environment") or {}
                                                            ).items() if _has_redacted(v)]
    if redacted:
        raise ReproductionError(
            f"The {', '.join(redacted)} of run {run.id} was redacted when recorded (it looked "
            "like a credential). Supply the value: run.estimator(hyperparameters={...}, "
            "environment={...}), or `sagetrack reproduce RUN --hyperparameter NAME=VALUE "
            "--env NAME=VALUE`.")
    if not args.get("role"):
        raise ReproductionError(f"Run {run.id} recorded no IAM role: pass role=... (--role).")
    reproduces = {
        "run_id": run.id, "experiment": run.experiment, "tracking_uri": run.backend.uri,
        "content_sha256": (code.get("tarball") or {}).get("content_sha256"),
        "code": {k: code[k] for k in _GIT_FIELDS if k in code},
        "overrides": changed,
    }
    inputs = {name: {"uri": str((info or {}).get("uri") or ""),
                     "data_type": str((info or {}).get("data_type") or "S3Prefix")}
              for name, info in run.inputs.items()}
    return Request(run_id=run.id, experiment=run.experiment, source_dir=source_dir,
                   estimator_args=args, inputs=inputs, reproduces=reproduces, notes=notes)


def training_inputs(run: Run) -> dict[str, Any]:
    """The recorded input channels as SDK inputs (``TrainingInput``, ``FileSystemInput``,
    or a ``file://`` string for local mode), ready for ``estimator.fit(...)``."""
    from sagemaker.inputs import FileSystemInput, TrainingInput

    out: dict[str, Any] = {}
    for name, info in run.inputs.items():
        uri = str((info or {}).get("uri") or "")
        data_type = str((info or {}).get("data_type") or "S3Prefix")
        if uri.startswith("s3://"):
            out[name] = TrainingInput(uri, s3_data_type=data_type)
        elif data_type == "FileSystem" and "://" in uri:
            kind, rest = uri.split("://", 1)
            fs_id, _sep, path = rest.partition("/")
            out[name] = FileSystemInput(fs_id, _FS_TYPES.get(kind, kind), "/" + path)
        elif uri:
            out[name] = uri
    return out


def check_data(run: Run, s3_client: Any = None) -> list[ChannelCheck]:
    """Re-fingerprint each recorded input channel (concurrently) and compare."""
    if s3_client is None:
        import boto3

        s3_client = boto3.session.Session().client("s3")
    channels = {name: dict(info or {}) for name, info in run.inputs.items()}

    def check(item: tuple[str, dict[str, Any]]) -> ChannelCheck:
        name, recorded = item
        uri = str(recorded.get("uri") or "")
        current = fingerprint_channel(s3_client, uri, str(recorded.get("data_type")
                                                          or "S3Prefix")) if uri else {}
        if not recorded.get("sha256") or not current.get("sha256"):
            status = "unverifiable"
        else:
            status = "same" if current["sha256"] == recorded["sha256"] else "changed"
        return ChannelCheck(name, uri, status, recorded, current)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(check, sorted(channels.items())))


def build_estimator(request: Request, sagemaker_session: Any = None, *,
                    data_changed: dict[str, str] | None = None,
                    estimator_class: Any = None) -> Any:
    """A ``sagetrack.TensorFlow`` for ``request`` (see the module docstring);
    ``data_changed`` (channel -> status) is recorded in the new run's ``reproduces``;
    ``estimator_class`` is the class to build (the user-facing one is passed from above)."""
    from .estimator import TensorFlow as ClientTensorFlow

    TensorFlow = estimator_class or ClientTensorFlow
    origin = dict(request.reproduces)
    if data_changed:
        origin["data_changed"] = dict(data_changed)
    source_dir = request.source_dir
    if source_dir.startswith("file://"):  # kept by an offline local session: packed anew
        source_dir = _unpacked(source_dir)
    return TensorFlow(**request.estimator_args, sagemaker_session=sagemaker_session,
                      _reproduces=Reproduction(source_dir, origin))


def _unpacked(uri: str) -> str:
    """A new folder holding the user files of the code tarball at the ``file://`` ``uri``
    (sagetrack's bootstrap left out: the estimator adds its own)."""
    import tarfile
    import tempfile

    from .._tar import extract
    from .staging import BOOTSTRAP_NAMES

    folder = tempfile.mkdtemp(prefix="sagetrack-reproduce-")
    try:
        extract(urlparse(uri).path, folder, skip_top=BOOTSTRAP_NAMES)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReproductionError(f"Cannot read the code tarball {uri}: {exc}") from exc
    return folder


def estimator_for(run: Run, *, sagemaker_session: Any = None, estimator_class: Any = None,
                  **overrides: Any) -> Any:
    """A ready ``sagetrack.TensorFlow`` that repeats ``run`` (``Run.estimator``)."""
    return build_estimator(reproduction_request(run, **overrides), sagemaker_session,
                           estimator_class=estimator_class)


def reproduce(run: Run, *, allow_data_change: bool = False, wait: bool = False,
              logs: str = "All", sagemaker_session: Any = None, s3_client: Any = None,
              estimator_class: Any = None, **overrides: Any) -> Any:
    """Launch a tracked job repeating ``run`` and return its estimator
    (``.latest_run`` is the new run, whose record ``reproduces`` links to ``run``).

    The inputs are re-fingerprinted first; DataChanged is raised when any channel changed
    or cannot be verified, unless ``allow_data_change``.
    """
    request = reproduction_request(run, **overrides)
    est = build_estimator(request, sagemaker_session,  # arguments checked before any AWS call
                          estimator_class=estimator_class)
    checks = check_data(run, s3_client or s3_client_of(est.sagemaker_session))
    bad = [c for c in checks if c.status != "same"]
    if bad and not allow_data_change:
        raise DataChanged(run.id, bad)
    if bad:  # the new run records what changed
        est = build_estimator(request, est.sagemaker_session,
                              data_changed={c.channel: c.status for c in bad},
                              estimator_class=estimator_class)
    est.fit(training_inputs(run), wait=wait, logs=logs)
    return est
