"""Check the estimator's arguments in its constructor, and ``fit()``'s, before any AWS call.

:func:`check_arguments` validates the tracking arguments and the SDK arguments tracking
depends on (``source_dir``, ``dependencies``, ``environment``, ``hyperparameters``,
``metric_definitions``, credentials for an S3 store) against what sagetrack and SageMaker
accept; :func:`check_fit_arguments` does the same for ``fit()``'s ``job_name`` and
``skip_if_done``. Each error says what was received and how to fix it. Integers may be
any integer-like value (``operator.index``: ``numpy.int64`` too). :func:`with_console_metrics`
adds the ``metric_definitions`` that let SageMaker chart the metrics the tracking callback
prints.
"""

from __future__ import annotations

import json
import operator
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from ..container.config import ENV_VALUE_LIMIT
from ..container.recorder import METRIC_LINE_PREFIX
from ..errors import ConfigurationError
from ..store.backends import validate_uri
from ..store.layout import validate_experiment
from .staging import BOOTSTRAP_NAMES, RUNTIME_PACKAGE

__all__ = [
    "DEFAULT_CONSOLE_METRICS",
    "MAX_ENVIRONMENT",
    "MAX_METRIC_DEFINITIONS",
    "TrackingArguments",
    "check_arguments",
    "check_fit_arguments",
    "check_tracking_flag",
    "console_metric_definitions",
    "s3_source_note",
    "with_console_metrics",
]

MAX_METRIC_DEFINITIONS = 40
MAX_METRIC_NAME = 255
MAX_METRIC_REGEX = 500
MAX_ENVIRONMENT = 100
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_CHARS = 2500
#: SageMaker's pattern for an environment variable's name
_ENV_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,1023}")
#: the environment names sagetrack sets for the job (see container_env.py)
_OWN_NAMES = (settings.ENABLED.name, settings.URI.name, settings.EXPERIMENT.name,
              settings.TRACK_BATCHES.name, settings.LAUNCH.name, settings.OFFLINE.name,
              settings.ACTIVE_PID.name)
#: environment entries sagetrack adds at most (see container_env.py)
OWN_ENVIRONMENT = 8
#: metrics given console definitions by default (the names Keras reports most often)
DEFAULT_CONSOLE_METRICS = (
    "loss", "val_loss", "accuracy", "val_accuracy", "learning_rate",
    "sparse_categorical_accuracy", "val_sparse_categorical_accuracy",
    "categorical_accuracy", "val_categorical_accuracy", "mae", "val_mae", "auc", "val_auc",
)


@dataclass(frozen=True)
class TrackingArguments:
    """The estimator's tracking arguments, checked."""

    uri: str | None  # None: $SAGETRACK_URI or the session's bucket, resolved when used
    experiment: str = "default"
    track_batches: int = 0
    environment: dict[str, Any] = field(default_factory=dict)  # the user's
    metric_definitions: list[dict[str, str]] = field(default_factory=list)  # the user's


def check_tracking_flag(tracking: Any) -> bool:
    """``tracking`` itself: True or False."""
    if not isinstance(tracking, bool):
        raise ConfigurationError(
            f"Invalid argument `tracking`: expected True or False. Received: "
            f"tracking={tracking!r}")
    return tracking


def check_arguments(*, tracking_uri: Any, experiment: Any, track_batches: Any,
                    sdk_kwargs: dict[str, Any]) -> TrackingArguments:
    """Validate what a tracked estimator is given; ``sdk_kwargs`` are the SDK's arguments.
    A relative ``tracking_uri`` (or ``$SAGETRACK_URI``) is made absolute here."""
    environment = _check_environment(sdk_kwargs.get("environment"))
    if tracking_uri is None and settings.URI.get():
        tracking_uri = settings.URI.get()
    if tracking_uri is not None:
        tracking_uri = _check_uri(tracking_uri)
    experiment = validate_experiment("default" if experiment is None else experiment)
    track_batches = _count("track_batches", track_batches,
                           "0 records epochs only, N every N training batches")
    _check_source(sdk_kwargs)
    _check_credentials(tracking_uri, sdk_kwargs.get("sagemaker_session"))
    _check_json(sdk_kwargs.get("hyperparameters"))
    metric_definitions = _check_metric_definitions(sdk_kwargs.get("metric_definitions"))
    return TrackingArguments(tracking_uri, experiment, track_batches, environment,
                             metric_definitions)


def check_fit_arguments(*, job_name: Any, skip_if_done: Any) -> None:
    """``fit()``'s ``job_name`` (None or a str without control characters; a name the
    store cannot use is launched untracked, see estimator.py) and ``skip_if_done``."""
    if not isinstance(skip_if_done, bool):
        raise ConfigurationError(
            "Invalid argument `skip_if_done`: expected True or False. Received: "
            f"skip_if_done={skip_if_done!r}")
    if job_name is None or _pipeline_value(job_name):
        return
    if not isinstance(job_name, str):
        raise ConfigurationError(
            "Invalid argument `job_name`: expected a str (a SageMaker training job name: "
            f"1-63 letters, digits and hyphens). Received: job_name={job_name!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in job_name):
        raise ConfigurationError(
            "Invalid argument `job_name`: it contains a control character (newline, tab, "
            "NUL...), which no training job name can hold. Received: "
            f"job_name={job_name!r}")


def s3_source_note(source_dir: Any) -> str | None:
    """The warning for a launch whose ``source_dir`` is a tarball on S3, else None.

    The SDK runs such a tarball as it is and drops ``dependencies``, so sagetrack cannot add
    its bootstrap: the job is recorded from the client (parameters, code tarball and hash,
    data, job configuration, outcome), and from inside only when the tarball already holds
    the bootstrap (one that sagetrack launched before, as after ``attach``)."""
    if not (isinstance(source_dir, str) and source_dir.lower().startswith("s3://")):
        return None
    return ("sagetrack: source_dir is on S3, so sagetrack cannot add its bootstrap to the "
            "code: the run is recorded from the client (parameters, code tarball, data, job "
            "configuration; the outcome with fit(wait=True) or `sagetrack ingest`), and "
            "metrics only if that tarball was launched by sagetrack before. Received: "
            f"source_dir={source_dir!r}")


def _pipeline_value(value: Any) -> bool:
    return type(value).__module__.startswith("sagemaker.workflow")


def _count(name: str, value: Any, meaning: str) -> int:
    """An integer >= 0: an int or any integer-like value (``operator.index``), not a bool."""
    is_bool = isinstance(value, bool) or (type(value).__module__ == "numpy"
                                          and type(value).__name__.startswith("bool"))
    try:
        number = None if is_bool else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < 0:
        raise ConfigurationError(
            f"Invalid argument `{name}`: expected an int >= 0 ({meaning}). "
            f"Received: {name}={value!r}")
    return number


def _check_uri(uri: Any) -> str:
    """``validate_uri``, and short enough to travel in the job's environment."""
    text = validate_uri(uri)
    if len(text) > ENV_VALUE_LIMIT:
        shown = repr(uri) if len(uri) <= 200 else f"{uri[:200]!r}... ({len(uri)} characters)"
        raise ConfigurationError(
            f"Invalid tracking_uri: it is {len(text)} characters long as an absolute URI; "
            f"the job receives it in its environment, where SageMaker allows "
            f"{ENV_VALUE_LIMIT}. Use a shorter path. Received: tracking_uri={shown}")
    return text


def _check_environment(env: Any) -> dict[str, Any]:
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise ConfigurationError(
            f"Invalid argument `environment`: expected a dict. Received: {env!r}"[:400])
    if len(env) + OWN_ENVIRONMENT > MAX_ENVIRONMENT:
        raise ConfigurationError(
            f"`environment` has {len(env)} entries; SageMaker allows {MAX_ENVIRONMENT} and "
            f"sagetrack needs up to {OWN_ENVIRONMENT}. Remove some, or pass tracking=False. "
            f"Received {len(env)} entries.")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise ConfigurationError(
                "Invalid `environment` name: SageMaker accepts letters, digits and '_', not "
                f"starting with a digit. Received: {key!r}")
        if key in _OWN_NAMES or key.startswith(settings.METRICS.name):
            raise ConfigurationError(
                f"`environment` sets {key}, which sagetrack sets for the job; use the "
                "estimator's tracking arguments instead (tracking_uri, experiment, "
                f"track_batches). Received: {key}={value!r}"[:400])
        if _pipeline_value(value):
            continue
        if not isinstance(value, str) or len(value) > ENV_VALUE_LIMIT:
            raise ConfigurationError(
                f"Invalid `environment` value for {key}: SageMaker accepts a str of at most "
                f"{ENV_VALUE_LIMIT} characters. Received: {key}={value!r}"[:400])
    return dict(env)


def console_metric_definitions(names: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """SageMaker metric definitions matching the lines the tracking callback prints."""
    # the prefix is plain text ("#sagetrack"); metric names are escaped
    return [{"Name": name,
             "Regex": f"{METRIC_LINE_PREFIX} epoch=[0-9]+ (?:.* )?{re.escape(name)}=(\\S+)"}
            for name in names]


def with_console_metrics(user_definitions: list[dict[str, str]]) -> list[dict[str, str]]:
    """The user's metric definitions, then console ones for the common Keras metrics the
    user did not define, up to SageMaker's limit."""
    taken = {d["Name"] for d in user_definitions}
    room = MAX_METRIC_DEFINITIONS - len(user_definitions)
    ours = [n for n in DEFAULT_CONSOLE_METRICS if n not in taken][: max(room, 0)]
    return user_definitions + console_metric_definitions(ours)


def _check_json(hyperparameters: Any) -> None:
    if hyperparameters is None:
        return
    if not isinstance(hyperparameters, dict):
        raise ConfigurationError(
            "Invalid argument `hyperparameters`: expected a dict. "
            f"Received: hyperparameters={hyperparameters!r}"[:400])
    if len(hyperparameters) > MAX_HYPERPARAMETERS:
        raise ConfigurationError(
            f"Invalid argument `hyperparameters`: SageMaker accepts at most "
            f"{MAX_HYPERPARAMETERS}. Received {len(hyperparameters)} entries.")
    for key, value in hyperparameters.items():
        if _pipeline_value(value):
            continue  # pipeline parameters are resolved by the pipeline
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"Invalid hyperparameter {key!r}: SageMaker sends hyperparameters as JSON and "
                f"{type(value).__name__} is not JSON-serialisable ({exc}). Convert it to a "
                f"str, number, bool, list or dict (int(x) for numpy integers). Received: "
                f"{key}={value!r}"[:600]) from exc
        if len(text) > MAX_HYPERPARAMETER_CHARS:
            raise ConfigurationError(
                f"Invalid hyperparameter {key!r}: SageMaker accepts at most "
                f"{MAX_HYPERPARAMETER_CHARS} characters of JSON per value; it has "
                f"{len(text)}. Received: {key}={text[:100]}...")


def _check_metric_definitions(defs: Any) -> list[dict[str, str]]:
    if defs is None:
        return []
    if not isinstance(defs, list) or not all(
            isinstance(d, dict) and isinstance(d.get("Name"), str)
            and isinstance(d.get("Regex"), str) for d in defs):
        raise ConfigurationError(
            "Invalid argument `metric_definitions`: expected a list of "
            "{'Name': str, 'Regex': str} dicts. Received: " + repr(defs)[:300])
    if len(defs) > MAX_METRIC_DEFINITIONS:
        raise ConfigurationError(
            f"Invalid argument `metric_definitions`: SageMaker accepts at most "
            f"{MAX_METRIC_DEFINITIONS}. Received {len(defs)}.")
    for d in defs:
        if not 1 <= len(d["Name"]) <= MAX_METRIC_NAME:
            raise ConfigurationError(
                f"Invalid metric name: SageMaker accepts 1-{MAX_METRIC_NAME} characters. "
                f"Received: {d['Name'][:300]!r}")
        if not 1 <= len(d["Regex"]) <= MAX_METRIC_REGEX:
            raise ConfigurationError(
                f"Invalid regex for metric {d['Name']!r}: SageMaker accepts 1-"
                f"{MAX_METRIC_REGEX} characters. Received: {d['Regex'][:300]!r}")
        try:
            re.compile(d["Regex"])
        except re.error as exc:
            raise ConfigurationError(
                f"Invalid regex for metric {d['Name']!r}: {exc}. Received: {d['Regex']!r}"
            ) from exc
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


def _check_source(kwargs: dict[str, Any]) -> None:
    source_dir = kwargs.get("source_dir")
    dependencies = kwargs.get("dependencies")
    if dependencies is not None and not (isinstance(dependencies, (list, tuple)) and all(
            isinstance(d, str) or _pipeline_value(d) for d in dependencies)):
        raise ConfigurationError(
            "Invalid argument `dependencies`: expected a list of local paths (str). "
            f"Received: dependencies={dependencies!r}"[:400])
    # without source_dir only the entry point file is packed, so only source_dir can clash
    if isinstance(source_dir, str) and os.path.exists(os.path.join(source_dir,
                                                                   RUNTIME_PACKAGE)):
        raise ConfigurationError(
            f"source_dir contains {RUNTIME_PACKAGE}, the name sagetrack ships its container "
            "side under. Rename it, or pass tracking=False. Received: "
            f"source_dir={source_dir!r}")
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
                f"tarball ({', '.join(sorted(BOOTSTRAP_NAMES))}). Rename it or pass "
                "tracking=False.")
