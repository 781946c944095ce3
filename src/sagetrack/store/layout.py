"""Names and helpers of the record format: run keys, name rules, times, JSON encoding.

The file names, reserved prefixes, statuses and shapes of ``sagetrack/1`` live in
:mod:`.schema` (re-exported here: ``FORMAT``, ``RUN_FILES``, ``batch_file``, ...);
``docs/record-format.md`` documents them.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timezone
from typing import Any

from ..errors import ConfigurationError, CorruptRecord
from .schema import BATCH_CHUNK_ROWS, FORMAT, RUN_FILES, batch_file, host_file

__all__ = [
    "BATCH_CHUNK_ROWS",
    "FORMAT",
    "RUN_FILES",
    "batch_file",
    "dumps",
    "dumps_row",
    "host_file",
    "loads_jsonl",
    "now_iso",
    "parse_time",
    "run_prefix",
    "validate_experiment",
    "validate_run_id",
]

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
    """A record's ISO 8601 time as an aware UTC datetime (UTC when unqualified), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # not a time, or beyond year 1-9999 once in UTC
        return None


#: bounds on what one record may hold: deeper or larger values are cut, never recursed into
MAX_DEPTH = 64
MAX_ITEMS = 100_000
MAX_TEXT = 1_000_000
_TRUSTED_ARRAYS = ("numpy",)
_SCALARS = frozenset({int, float, bool, type(None)})


def plain(obj: Any, _depth: int = 0) -> Any:
    """``obj`` as plain JSON data, in bounded time and memory.

    Standard containers, numbers (numpy scalars included) and strings are kept; numpy
    arrays become lists; paths, dates and every other object become their ``str()``.
    No other method of an unknown object is called (a ``unittest.mock.Mock`` answers any
    attribute), nesting is cut at :data:`MAX_DEPTH`, containers at :data:`MAX_ITEMS` and
    strings at :data:`MAX_TEXT` characters.
    """
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj if obj is None or type(obj) in (bool, int, float) else _number(obj)
    if isinstance(obj, str):
        return obj if len(obj) <= MAX_TEXT else obj[:MAX_TEXT] + "...[cut]"
    if _depth >= MAX_DEPTH:
        return "...[nested too deep]"
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for i, (key, value) in enumerate(obj.items()):
            if i >= MAX_ITEMS:
                out["...[cut]"] = f"{len(obj) - MAX_ITEMS} more entries"
                break
            out[key if isinstance(key, str) else _text(key)] = plain(value, _depth + 1)
        return out
    if isinstance(obj, (list, tuple)) and len(obj) <= MAX_ITEMS and \
            set(map(type, obj)) <= _SCALARS:  # a series of numbers: nothing to convert
        return list(obj)
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=_text) if isinstance(obj, (set, frozenset)) else obj
        return [plain(v, _depth + 1) for v in list(items)[:MAX_ITEMS]]
    if isinstance(obj, numbers.Number):
        return _number(obj)
    if type(obj).__module__.split(".")[0] in _TRUSTED_ARRAYS and hasattr(obj, "tolist"):
        return plain(obj.tolist(), _depth + 1)
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    return _text(obj)


def _number(obj: Any) -> Any:
    try:
        if isinstance(obj, numbers.Integral):
            return int(obj)
        if isinstance(obj, numbers.Real):
            return float(obj)
    except Exception:
        pass
    return _text(obj)


def _text(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    try:
        text = str(obj)
    except Exception:
        return f"<{type(obj).__name__}>"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "...[cut]"


def dumps(obj: Any, *, indent: int | None = 2) -> bytes:
    """Serialise a record as UTF-8 JSON (NaN/Infinity kept, as Python's json reads them)."""
    return json.dumps(plain(obj), indent=indent, ensure_ascii=False).encode()


def dumps_row(obj: Any) -> str:
    """One JSONL line (with trailing newline)."""
    return json.dumps(plain(obj), ensure_ascii=False, separators=(",", ":")) + "\n"


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
        except (ValueError, RecursionError) as exc:
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
