"""The ``SAGETRACK_*`` environment a tracked job gets, beside the user's own ``environment``.

The container side reads these (``sagetrack.container.config.JobConfig``): where records
go, the experiment, how often batches are recorded, the KMS key, whether the job has no
network, the user's metric regexes, and for a tuner or pipeline job the key of the launch
template it turns into its run record.
"""

from __future__ import annotations

import re
from typing import Any

from .. import settings
from ..container.config import ENV_VALUE_LIMIT, encode_metric_regexes
from ..errors import ConfigurationError
from ..store.layout import now_iso
from ..store.schema import LAUNCH_PREFIX

__all__ = ["container_environment", "template_key"]


def template_key(base_job_name: str | None, experiment: str) -> str:
    """A new store key (without ``.json``) for the launch template of a tuner or pipeline."""
    safe = re.sub(r"[^A-Za-z0-9-]", "-", base_job_name or "job")[:40]
    return f"{LAUNCH_PREFIX}/{experiment}/{safe}-{now_iso().replace(':', '').replace('.', '')}"


def container_environment(user_environment: dict[str, Any], *, uri: str, experiment: str,
                          track_batches: int, network_isolation: bool,
                          launch_key: str | None,
                          metric_definitions: list[dict[str, str]]) -> dict[str, Any]:
    """The user's environment with sagetrack's settings added (at most 8 entries)."""
    if len(uri) > ENV_VALUE_LIMIT:
        raise ConfigurationError(
            f"tracking_uri is longer than {ENV_VALUE_LIMIT} characters, the SageMaker limit "
            f"for an environment value. Received {len(uri)} characters.")
    ours: dict[str, str] = {
        settings.ENABLED.name: "1",
        settings.URI.name: uri,
        settings.EXPERIMENT.name: experiment,
        settings.TRACK_BATCHES.name: str(track_batches),
    }
    kms = settings.KMS_KEY_ID.get()
    if kms:
        ours[settings.KMS_KEY_ID.name] = kms
    if network_isolation:
        ours[settings.OFFLINE.name] = "1"  # no network in the container: records travel in output
    if launch_key is not None:
        ours[settings.LAUNCH.name] = launch_key
    ours.update(encode_metric_regexes([(d["Name"], d["Regex"]) for d in metric_definitions]))
    return {**user_environment, **ours}
