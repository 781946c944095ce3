"""A job's state file, ``<work_dir>/jobs/<name>.json``: how other sessions find a job.

The process that runs a job rewrites the file at every status change; a session in another
process (or after a restart) reads it to describe, list or attach to the job. A job whose
supervising process is gone before it finished reads as ``Failed``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from ..store.schema import JOB_TERMINAL

__all__ = [
    "STATE_VERSION",
    "TERMINAL_STATUSES",
    "JobStatusFields",
    "apply_state",
    "read_state",
    "state_path",
    "to_state",
    "write_state",
]

STATE_VERSION = 1
TERMINAL_STATUSES = JOB_TERMINAL


class JobStatusFields(Protocol):
    """The fields of a job the state file holds."""

    request: dict[str, Any]
    arn: str
    owner_pid: int
    status: str
    secondary_status: str
    failure_reason: str | None
    model_artifacts: str | None
    creation_time: datetime
    last_modified: datetime
    start_time: datetime | None
    end_time: datetime | None
    transitions: list[dict[str, Any]]


def state_path(work_dir: str, name: str) -> str:
    """Where the state file of job ``name`` lives under ``work_dir``."""
    return os.path.join(work_dir, "jobs", f"{name}.json")


def to_state(job: JobStatusFields) -> dict[str, Any]:
    """JSON-safe state of ``job`` (the caller holds the job's lock)."""
    return {
        "version": STATE_VERSION,
        "request": job.request,
        "arn": job.arn,
        "owner_pid": job.owner_pid,
        "status": job.status,
        "secondary_status": job.secondary_status,
        "failure_reason": job.failure_reason,
        "model_artifacts": job.model_artifacts,
        "creation_time": _iso(job.creation_time),
        "last_modified": _iso(job.last_modified),
        "start_time": _iso(job.start_time),
        "end_time": _iso(job.end_time),
        "transitions": [
            {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in t.items()}
            for t in job.transitions
        ],
    }


def apply_state(job: JobStatusFields, state: Mapping[str, Any]) -> None:
    """Set ``job``'s fields from a state file read back (the caller holds the job's lock).

    A job that is not finished but whose owner process is gone (or is this process, which
    no longer has it in memory) can never finish: it becomes ``Failed``.
    """
    job.arn = str(state.get("arn") or job.arn)
    job.owner_pid = int(state.get("owner_pid") or 0)
    job.status = str(state.get("status", "InProgress"))
    job.secondary_status = str(state.get("secondary_status", ""))
    job.failure_reason = state.get("failure_reason")
    job.model_artifacts = state.get("model_artifacts")
    job.creation_time = _parse_time(state.get("creation_time")) or job.creation_time
    job.last_modified = _parse_time(state.get("last_modified")) or job.last_modified
    job.start_time = _parse_time(state.get("start_time"))
    job.end_time = _parse_time(state.get("end_time"))
    job.transitions = [
        {k: (_parse_time(v) if k.endswith("Time") else v) for k, v in t.items()}
        for t in state.get("transitions", [])
    ]
    orphaned = job.owner_pid != os.getpid() and not _pid_alive(job.owner_pid)
    if job.status not in TERMINAL_STATUSES and (orphaned or job.owner_pid == os.getpid()):
        job.status = "Failed"
        job.secondary_status = "Failed"
        job.failure_reason = (
            f"InternalServerError: the process that ran this job (pid "
            f"{job.owner_pid}) exited before the job finished."
        )


def write_state(path: str, state: Mapping[str, Any]) -> None:
    """Replace the state file at ``path`` atomically (readers never see half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1, default=str)
    os.replace(tmp, path)


def read_state(work_dir: str, name: str) -> dict[str, Any] | None:
    """The state of job ``name`` under ``work_dir``; ``None`` when absent or unreadable."""
    if "/" in name or name.startswith("."):
        return None
    try:
        with open(state_path(work_dir, name), encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and "request" in state else None


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
