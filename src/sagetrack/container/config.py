"""What the training container knows about the tracked run, read from its environment.

The estimator passes its settings in the job's ``Environment`` (``SAGETRACK_*``); the
SageMaker toolkit provides the job identity (``TRAINING_JOB_NAME``) and topology
(``SM_HOSTS``, ``SM_CURRENT_HOST``), and distributed launchers add ``TF_CONFIG`` or an
MPI rank. Only stdlib here: this runs inside every process of the job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import settings

__all__ = ["ENV", "JobConfig", "encode_metric_regexes", "is_chief", "strict_mode"]


class ENV:
    """Environment variable names shared by the estimator and the container (their types,
    defaults and meaning are in :mod:`sagetrack.settings`)."""

    ENABLED = settings.ENABLED.name
    URI = settings.URI.name
    EXPERIMENT = settings.EXPERIMENT.name
    TRACK_BATCHES = settings.TRACK_BATCHES.name
    KMS_KEY_ID = settings.KMS_KEY_ID.name
    LAUNCH = settings.LAUNCH.name
    METRICS = settings.METRICS.name  # JSON [[name, regex], ...], split over _0, _1, ... if long
    STRICT = settings.STRICT.name    # test mode: internal tracking errors raise
    OFFLINE = settings.OFFLINE.name  # no network (network isolation): local copies only


ENV_VALUE_LIMIT = 512  # CreateTrainingJob limit for one Environment value


def strict_mode(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether internal tracking errors should raise instead of warning (test mode)."""
    return settings.STRICT.get(environ)


def encode_metric_regexes(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Environment entries carrying (name, regex) pairs, each value within the limit."""
    if not pairs:
        return {}
    text = json.dumps([list(p) for p in pairs], separators=(",", ":"))
    if len(text) <= ENV_VALUE_LIMIT:
        return {ENV.METRICS: text}
    chunks = [text[i:i + ENV_VALUE_LIMIT] for i in range(0, len(text), ENV_VALUE_LIMIT)]
    return {f"{ENV.METRICS}_{i}": chunk for i, chunk in enumerate(chunks)}


def _decode_metric_regexes(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    text = environ.get(ENV.METRICS)
    if text is None:
        parts, i = [], 0
        while f"{ENV.METRICS}_{i}" in environ:
            parts.append(environ[f"{ENV.METRICS}_{i}"])
            i += 1
        text = "".join(parts)
    if not text:
        return []
    return [(str(n), str(r)) for n, r in json.loads(text)]


def _hosts(environ: Mapping[str, str]) -> tuple[str, list[str]]:
    host = environ.get("SM_CURRENT_HOST", "")
    try:
        hosts = [str(h) for h in json.loads(environ.get("SM_HOSTS", "[]"))]
    except ValueError:
        hosts = []
    if not host:
        try:
            rc = json.loads(environ.get("SM_RESOURCE_CONFIG", "{}"))
            host, hosts = rc.get("current_host", ""), rc.get("hosts", hosts)
        except ValueError:
            pass
    return host or "algo-1", hosts or [host or "algo-1"]


def _rank(environ: Mapping[str, str]) -> int | None:
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK"):
        if environ.get(name, "").isdigit():
            return int(environ[name])
    return None


def is_chief(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process is the single writer of the job's metrics.

    Chief when this host is first in ``SM_HOSTS``, the MPI rank (if any) is 0, and the
    ``TF_CONFIG`` task (if any) is the chief/master, or worker 0 when there is none.
    """
    host, hosts = _hosts(environ)
    if hosts and host != hosts[0]:
        return False
    rank = _rank(environ)
    if rank is not None and rank != 0:
        return False
    tf_config = environ.get("TF_CONFIG")
    if tf_config:
        try:
            cfg = json.loads(tf_config)
            task = cfg.get("task", {})
            cluster = cfg.get("cluster", {})
            ttype, index = task.get("type"), int(task.get("index", 0))
        except (ValueError, AttributeError, TypeError):
            return True
        if ttype in ("chief", "master"):
            return True
        if ttype == "worker":
            return index == 0 and not (cluster.get("chief") or cluster.get("master"))
        return False  # ps, evaluator
    return True


@dataclass(frozen=True)
class JobConfig:
    """The tracked run as seen from inside one process of the training job."""

    uri: str
    experiment: str
    run_id: str
    host: str
    hosts: list[str]
    chief: bool
    track_batches: int = 0
    metric_regexes: list[tuple[str, str]] = field(default_factory=list)
    kms_key_id: str | None = None
    launch_key: str | None = None
    output_data_dir: str = "/opt/ml/output/data"
    model_dir: str = "/opt/ml/model"
    checkpoint_dir: str | None = None
    rank: int | None = None
    offline: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JobConfig | None:
        """The config of a tracked job, or None when tracking is not enabled here."""
        if not settings.ENABLED.get(environ) or not settings.URI.get(environ):
            return None
        host, hosts = _hosts(environ)
        base = environ.get("SAGEMAKER_BASE_DIR", "/opt/ml")
        run_id = (environ.get("TRAINING_JOB_NAME") or _job_name_from_hps(environ)
                  or "local-run")
        return cls(
            uri=settings.URI.get(environ),
            experiment=settings.EXPERIMENT.get(environ),
            run_id=run_id,
            host=host,
            hosts=hosts,
            chief=is_chief(environ),
            track_batches=settings.TRACK_BATCHES.get(environ),
            metric_regexes=_decode_metric_regexes(environ),
            kms_key_id=settings.KMS_KEY_ID.get(environ) or None,
            launch_key=settings.LAUNCH.get(environ) or None,
            output_data_dir=environ.get("SM_OUTPUT_DATA_DIR", f"{base}/output/data"),
            model_dir=environ.get("SM_MODEL_DIR", f"{base}/model"),
            checkpoint_dir=_checkpoint_dir(base),
            rank=_rank(environ),
            offline=settings.OFFLINE.get(environ),
        )


def _job_name_from_hps(environ: Mapping[str, str]) -> str | None:
    try:
        env = json.loads(environ.get("SM_TRAINING_ENV", "{}"))
    except ValueError:
        return None
    name = env.get("job_name") or env.get("hyperparameters", {}).get("sagemaker_job_name")
    return str(name) if name else None


def _checkpoint_dir(base: str) -> str | None:
    path = os.path.join(base, "input", "config", "checkpointconfig.json")
    try:
        with open(path) as fh:
            return str(json.load(fh).get("LocalPath") or f"{base}/checkpoints")
    except (OSError, ValueError):
        return None
