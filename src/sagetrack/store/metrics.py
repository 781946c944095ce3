"""Metrics as the records hold them: which way each improves, which are worth a column,
and the rows of ``steps.jsonl`` on one step axis.

Pure functions of metric names and parsed rows (no I/O, no pandas). The runs table of
the ``sagetrack`` command and the runs page of the report choose their metric columns
with :func:`metric_columns`; ``Run.steps``, the plots and the report's step curves read
``steps.jsonl`` through :func:`step_table`, so every view shows the same values at the
same steps.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import StepRow

__all__ = [
    "LOWER_IS_BETTER",
    "MetricColumns",
    "is_validation",
    "metric_columns",
    "metric_goal",
    "step_table",
]

#: name parts of metrics where lower is better; every other metric is better higher
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "perplexity")
_NO_GOAL = frozenset({"learning_rate", "lr", "duration_s"})
_VALIDATION = re.compile(r"val(idation)?([_:./ -]|$)", re.IGNORECASE)

#: metric columns a runs table shows when the runs agree on their metrics
DEFAULT_COLUMNS = 3
#: most metric columns chosen to give every run one of its own metrics
MAX_COLUMNS = 8


def metric_goal(name: str) -> str | None:
    """``"min"`` for loss/error/mae/mse-like names, ``None`` for learning rates, else ``"max"``."""
    base = name.lower().removeprefix("val_")
    if base in _NO_GOAL:
        return None
    return "min" if any(part in base for part in LOWER_IS_BETTER) else "max"


def is_validation(name: str) -> bool:
    """Whether ``name`` reads as a validation metric: ``val_loss``, ``val:acc``,
    ``validation-error`` (not ``value_loss``)."""
    return _VALIDATION.match(name) is not None


def _rank_key(counts: Counter[str]) -> Any:
    def key(name: str) -> tuple[int, bool, bool, str]:
        base = _VALIDATION.sub("", name, count=1).lower()
        return -counts[name], not is_validation(name), "loss" not in base, name

    return key


@dataclass(frozen=True)
class MetricColumns:
    """The metric columns of a table of runs: ``shown`` in column order, and ``hidden``,
    the other metrics the runs recorded (best ranked first, learning rates last)."""

    shown: list[str]
    hidden: list[str] = field(default_factory=list)


def metric_columns(runs: Sequence[Collection[str]], *, first: str | None = None,
                   limit: int = DEFAULT_COLUMNS, cap: int = MAX_COLUMNS) -> MetricColumns:
    """Which metrics a table of runs shows, given each run's metric names (its final and
    best metrics: epoch metrics, else custom-loop and ``metric_definitions`` values).

    Metrics are ranked by how many of the runs recorded them, then validation metrics
    first, losses first, then by name. First come the fewest metrics that give every run
    a column of its own (greedily, the metric most of the runs not yet served have, the
    better ranked on a tie), up to ``cap`` columns; then the next ranked metrics until
    there are ``limit``. ``first`` (the metric a table is sorted by) is always the first
    column. Metrics without a goal (learning rates, :func:`metric_goal`) are never chosen.
    """
    counts: Counter[str] = Counter()
    groups: Counter[frozenset[str]] = Counter()  # runs with the same metrics count once
    for names in runs:
        own = frozenset(names)
        counts.update(own)
        groups[own] += 1
    key = _rank_key(counts)
    ranked = sorted((n for n in counts if metric_goal(n) is not None), key=key)
    scored = set(ranked)
    chosen = [first] if first else []
    unserved = {names: weight for names, weight in groups.items()
                if scored.intersection(names) and not names.intersection(chosen)}
    while unserved and len(chosen) < max(cap, limit):
        serves: Counter[str] = Counter()
        for names, weight in unserved.items():
            for name in names:
                serves[name] += weight
        pick = min((n for n in serves if n in scored), key=lambda n: (-serves[n], key(n)))
        chosen.append(pick)
        unserved = {names: w for names, w in unserved.items() if pick not in names}
    for name in ranked:
        if len(chosen) >= limit:
            break
        if name not in chosen:
            chosen.append(name)
    shown = ([first] if first else []) + sorted((n for n in chosen if n != first), key=key)
    hidden = [n for n in ranked if n not in shown]
    hidden += sorted(n for n in counts if metric_goal(n) is None and n not in shown)
    return MetricColumns(shown, hidden)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def step_table(rows: Sequence[StepRow]) -> dict[int, dict[str, float]]:
    """The rows of ``steps.jsonl`` on one step axis: step -> metric -> value, by step.

    Every row keeps its ``step``: the step ``log_metrics`` was given, else the next number
    of the run's one count of values recorded without a step, which the values matched
    on one output line (``metric_definitions``) share. So values recorded at one step line
    up, and those without a step keep the order they were recorded in, across metrics.
    Where a metric has several values at one step, the last recorded wins (a NaN does not
    replace a number).

    Rows written before rows had ``seq`` numbered output values per metric from 0; those
    rows are renumbered here in the order they were recorded (the file's), consecutive
    rows of one moment (same ``time``) with different metrics sharing a number, as one
    output line's values do now. Steps of other rows without ``seq`` are kept as written.
    """
    table: dict[int, dict[str, float]] = {}
    renumber = 0           # the next number of an old output row
    group: set[str] = set()  # metrics of the old output line being renumbered
    group_time: object = None
    for row in rows:
        metrics = row.get("metrics", {})
        step = row["step"]
        if row.get("source") == "output" and "seq" not in row:
            if group and (row.get("time") != group_time or group.intersection(metrics)):
                group = set()
            if not group:
                renumber += 1
            step, group_time = renumber - 1, row.get("time")
            group.update(metrics)
        else:
            group = set()
        cell = table.setdefault(step, {})
        for name, value in metrics.items():
            if not (_is_nan(value) and name in cell):
                cell[name] = value
    return {step: table[step] for step in sorted(table)}
