"""The record format: where each record of a run lives, and name rules.

Layout (version ``sagetrack/1``, documented in ``docs/record-format.md``)::

    <tracking_uri>/<experiment>/<run id>/run.json          launch record (client, at fit)
                                        /code.diff         uncommitted diff (client)
                                        /status.json       status snapshot (replaced whole)
                                        /environment.json  container environment (chief)
                                        /hosts/<host>.json host environment (every host)
                                        /metrics.jsonl     one row per epoch
                                        /steps.jsonl       log_metrics() and output-scraped rows
                                        /batches/<epoch>-<attempt>-<chunk>.jsonl
                                                           every-N-batches rows
                                        /model.json        files saved under SM_MODEL_DIR
                                        /job.json          job outcome seen by the client
    <tracking_uri>/_launch/<experiment>/<name>.json        launch template (tuner, pipeline)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigurationError, CorruptRecord

__all__ = [
    "FORMAT",
    "RUN_FILES",
    "dumps",
    "loads_jsonl",
    "now_iso",
    "parse_time",
    "run_prefix",
    "validate_experiment",
    "validate_run_id",
]

FORMAT = "sagetrack/1"

RUN_FILES = {
    "run": "run.json",
    "diff": "code.diff",
    "status": "status.json",
    "environment": "environment.json",
    "metrics": "metrics.jsonl",
    "steps": "steps.jsonl",
    "model": "model.json",
    "job": "job.json",
}

#: rows per every-N-batches file: a flush rewrites one chunk, never a whole long epoch
BATCH_CHUNK_ROWS = 1000


def batch_file(epoch: int, attempt: int, chunk: int) -> str:
    """The series that holds chunk ``chunk`` (from 0) of ``epoch``'s batch rows recorded
    by ``attempt`` (a restarted job never overwrites an earlier attempt's rows)."""
    return f"batches/{epoch:06d}-{attempt:03d}-{chunk:05d}.jsonl"


_EXPERIMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,127}")
# SageMaker training job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
_RUN_ID = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def validate_experiment(name: object) -> str:
    """Return ``name`` if it is a valid experiment name, else raise ConfigurationError."""
    if not isinstance(name, str) or not _EXPERIMENT.fullmatch(name) or ".." in name:
        raise ConfigurationError(
            "Invalid experiment: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (it becomes a folder / key prefix). Received: experiment={name!r}")
    return name


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is a valid run id (a SageMaker training job name)."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise ConfigurationError(
            "Invalid run id: a run id is a SageMaker training job name (1-63 letters, digits "
            f"and hyphens, starting with a letter or digit). Received: {run_id!r}")
    return run_id


def run_prefix(experiment: str, run_id: str) -> str:
    """Key prefix of one run's records."""
    return f"{validate_experiment(experiment)}/{validate_run_id(run_id)}"


def now_iso() -> str:
    """Current UTC time, ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(value: Any) -> datetime | None:
    """A record's ISO 8601 time as an aware datetime (UTC when unqualified), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, paths, sets: anything with a natural JSON form
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return obj.item()
        except (ValueError, TypeError):
            pass
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2) -> bytes:
    """Serialise a record as UTF-8 JSON (NaN/Infinity kept, as Python's json reads them)."""
    return json.dumps(obj, indent=indent, default=_default, ensure_ascii=False).encode()


def dumps_row(obj: Any) -> str:
    """One JSONL line (with trailing newline)."""
    return json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":")) + "\n"


def loads_jsonl(data: bytes, where: str, problems: list[str] | None = None
                ) -> Iterator[dict[str, Any]]:
    """Parse JSONL, skipping a torn last line; other bad lines are reported in ``problems``.

    Raises CorruptRecord only if ``problems`` is None and a line in the middle is bad.
    """
    lines: Iterable[bytes] = data.split(b"\n")
    lines = list(lines)
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            msg = f"{where} line {i + 1}: " + ("truncated last line" if i >= last - 1
                                               else f"invalid JSON ({exc})")
            if problems is not None:
                problems.append(msg)
                continue
            if i >= last - 1:
                continue
            raise CorruptRecord(where, msg) from exc
        if isinstance(row, dict):
            yield row
