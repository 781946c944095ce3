"""Same work: what makes two launches the same, and the completed run that already did it.

:func:`launch_identity` is everything in a launch record that changes what the job
computes: the user code's content hash (sagetrack's bootstrap and VCS internals such as
``.git/`` left out, see provenance.py), the program SageMaker runs, the hyperparameters
(the run's own id normalised), the input fingerprints, the image, the instance type and
count, the distribution and the (redacted) user environment. Each launch leaves a marker
``_identity/<hash>/<experiment>/<run id>.json``, so :func:`find_completed` is one LIST
whatever the store's size, plus one status read per earlier launch of the same work.
:func:`find_duplicate` scans a store's runs instead.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import warnings
from typing import Any, TypeVar

from ..errors import TrackingWarning
from ..store.layout import dumps
from ..store.params import RUN_PLACEHOLDER, normalised_params, without_run_id
from ..store.reader import Run, StoreBase
from ..store.schema import COMPLETED, IDENTITY_PREFIX
from .store_access import TrackingStore

__all__ = ["RUN_PLACEHOLDER", "find_completed", "find_duplicate", "identity_key",
           "launch_identity", "mark_launch", "normalised_params", "warn_duplicate"]


R = TypeVar("R", bound=Run)


def launch_identity(record: dict[str, Any]) -> str | None:
    """What makes two launches the same work (see the module docstring), as canonical JSON;
    None when the code content, the image or an input fingerprint is unknown."""
    code = record.get("code") or {}
    content = (code.get("tarball") or {}).get("content_sha256")
    job = record.get("job") or {}
    inputs = record.get("inputs") or {}
    data = {name: (info or {}).get("sha256") for name, info in inputs.items()}
    if not content or not job.get("image_uri") or not all(data.values()):
        return None
    run_id = record.get("run_id")
    program = (record.get("sagemaker_params") or {}).get("sagemaker_program") \
        or code.get("entry_point")
    work = {
        "code": content,
        "program": program,
        "params": normalised_params(dict(record.get("params") or {}), run_id),
        "data": data,
        "image": job.get("image_uri"),
        "instance_type": job.get("instance_type"),
        "instance_count": job.get("instance_count"),
        "distribution": job.get("distribution") or None,
        "environment": without_run_id(dict(job.get("environment") or {}), run_id),
    }
    return json.dumps(work, sort_keys=True, default=str)


def identity_key(identity: str) -> str:
    """The ``_identity/<hash>`` folder of one identity."""
    return f"{IDENTITY_PREFIX}/{hashlib.sha256(identity.encode()).hexdigest()[:32]}"


def find_duplicate(store: StoreBase[R], record: dict[str, Any], *,
                   experiment: str | None = None) -> R | None:
    """The newest completed run of ``store`` (or of one ``experiment``) that did the same
    work as launch ``record`` (see :func:`launch_identity`)."""
    key = launch_identity(record)
    if key is None:
        return None
    for run in store.list_runs(experiment):
        if run.id != record.get("run_id") and run.status == COMPLETED \
                and launch_identity({**run.record, "run_id": run.id}) == key:
            return run
    return None


def find_completed(store: TrackingStore, identity: str, run_id: str) -> Run | None:
    """The newest completed earlier launch marked with ``identity`` (reads only)."""
    backend = store.backend
    markers = [key.split("/")[-2:] for key in sorted(backend.list(identity_key(identity)),
                                                      reverse=True)]
    earlier = [Run(backend, exp, name.removesuffix(".json")) for exp, name in markers
               if name.removesuffix(".json") != run_id]
    if not earlier:
        return None
    try:  # one status read per earlier launch of this work, read concurrently
        with concurrent.futures.ThreadPoolExecutor(
                max_workers=min(8, len(earlier)), thread_name_prefix="sagetrack") as pool:
            statuses = list(pool.map(lambda run: run.status, earlier))
    except RuntimeError:  # no new threads at interpreter shutdown: one by one
        statuses = [run.status for run in earlier]
    return next((run for run, status in zip(earlier, statuses, strict=True)
                 if status == COMPLETED), None)


def mark_launch(store: TrackingStore, identity: str, experiment: str,
                record: dict[str, Any]) -> None:
    """Leave this launch's marker under its identity."""
    store.put(f"{identity_key(identity)}/{experiment}/{record['run_id']}.json",
              dumps({"run_id": record["run_id"], "created": record["created"]}))


def warn_duplicate(found: Run, *, skipped: bool = False) -> None:
    """The TrackingWarning that a completed run already did this launch's work."""
    then = ("fit() returns it instead of launching (skip_if_done=True)" if skipped else
            "Pass fit(..., skip_if_done=True) to reuse it instead of launching")
    warnings.warn(
        f"sagetrack: run {found.id} (experiment {found.experiment}) already completed the "
        "same work (same code, entry point, hyperparameters, data, image, instances, "
        f"distribution and environment). {then}.", TrackingWarning, stacklevel=2)
