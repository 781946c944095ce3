"""Recorded values as text, for ``sagetrack`` command output and ``str(RunDiff)``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import timezone
from typing import Any

from .store.layout import parse_time

__all__ = [
    "diffstat",
    "format_bytes",
    "format_number",
    "format_time",
    "format_value",
    "humanize_duration",
    "short",
    "table",
]


def format_value(value: Any, digits: int = 6, *, compact: bool = False) -> str:
    """A recorded value as text: ``-`` for none, yes/no, ``digits`` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":") if compact else None, default=str)
    return str(value)


def short(value: Any, n: int = 12) -> str:
    """The first ``n`` characters of a hash or commit; ``-`` when none."""
    return str(value)[:n] if value else "-"


def format_number(value: float | None, signed: bool = False) -> str:
    """``0.3512``, ``+0.05`` (``signed``), ``nan``; ``-`` when none."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def format_bytes(n: Any) -> str:
    """``512 B``, ``1.2 MB``; ``-`` when unknown."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "-"
    try:
        size = float(n)
    except OverflowError:
        return "-"
    if not math.isfinite(size) or size < 0:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_time(value: Any) -> str:
    """An ISO 8601 record time as ``YYYY-MM-DD HH:MM`` UTC; ``-`` when not a time."""
    parsed = parse_time(value)
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if parsed else "-"


def humanize_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m10s``, ``42s``; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def diffstat(text: str) -> list[tuple[str, int, int]]:
    """(file, lines added, lines removed) for each file of a unified git diff."""
    stats: list[tuple[str, int, int]] = []
    name, added, removed = None, 0, 0
    for line in text.splitlines():
        match = re.match(r"diff --git a/(.*) b/(.*)", line)
        if match:
            if name is not None:
                stats.append((name, added, removed))
            name, added, removed = match.group(2), 0, 0
        elif name is None or line.startswith(("+++", "---")):
            continue
        elif line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    if name is not None:
        stats.append((name, added, removed))
    return stats


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 40) -> str:
    """A plain left-aligned table; cells longer than ``max_width`` are cut with '~', except
    in the first column (ids must stay whole to be copied)."""
    cut = [[c if len(c) <= max_width or i == 0 else c[: max_width - 1] + "~"
            for i, c in enumerate(row)] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cut]) for i, h in enumerate(headers)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [list(headers), *cut]]
    return "\n".join(lines)
