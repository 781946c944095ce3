"""Hyperparameters as records hold them: the run's own id taken out, nesting flattened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["RUN_PLACEHOLDER", "flat_params", "normalised_params", "without_run_id"]

#: stands for the run's own id in values compared between runs
RUN_PLACEHOLDER = "{run}"


def without_run_id(value: Any, run_id: str | None) -> Any:
    """``value`` with ``run_id`` replaced by :data:`RUN_PLACEHOLDER` in every string."""
    if not run_id:
        return value
    if isinstance(value, str):
        return value.replace(run_id, RUN_PLACEHOLDER)
    if isinstance(value, dict):
        return {k: without_run_id(v, run_id) for k, v in value.items()}
    if isinstance(value, list):
        return [without_run_id(v, run_id) for v in value]
    return value


def normalised_params(params: dict[str, Any], run_id: str | None) -> dict[str, Any]:
    """Hyperparameters with the run's own id replaced by ``{run}`` (the SDK's default
    ``model_dir`` names the job), so that equal settings compare equal."""
    return {k: without_run_id(v, run_id) for k, v in params.items()}


def flat_params(params: dict[str, Any], prefix: str = "",
                leaf: Callable[[Any], Any] = lambda value: value) -> dict[str, Any]:
    """Nested hyperparameters as ``prefix + "a.b"`` keys, each leaf passed through ``leaf``
    (an empty dict is a leaf)."""
    out: dict[str, Any] = {}

    def walk(key: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{key}.{k}", v)
        else:
            out[key] = leaf(value)

    for key, value in params.items():
        walk(f"{prefix}{key}", value)
    return out
