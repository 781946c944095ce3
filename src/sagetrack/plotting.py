"""Learning curves of several runs on one figure: ``sagetrack.plot(runs, metric=None)``.

One panel per metric (``loss``, ``accuracy``, ...). Each run keeps one colour; the
training value is a solid line and its ``val_`` variant a dashed line of the same colour.
Figures are built with the object-oriented API (no pyplot, no global backend change), so
``plot(..., path="curves.png")`` works headless and the returned ``Figure`` displays in
notebooks. Needs matplotlib (``pip install 'sagetrack[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError
from .store.reader import Run, metric_goal

__all__ = ["curves", "plot"]

MAX_PANELS = 6
#: values beyond this magnitude are left out (the axes could not scale to them)
MAX_VALUE = 1e100


def curves(run: Run) -> tuple[str, list[float], dict[str, list[float]]]:
    """(x label, x values, metric name -> values) of one run: epochs, else steps.

    Missing, non-finite and out-of-range values are NaN (a gap in the curve)."""
    rows = run.epochs
    label = "epoch"
    if rows:
        several_fits = len({r.get("fit", 0) for r in rows}) > 1
        xs = [float(i + 1) if several_fits else float(r["epoch"]) for i, r in enumerate(rows)]
        if several_fits:
            label = "epoch (all fit calls)"
        names = sorted({k for r in rows for k in r.get("metrics", {})})
        return label, xs, {n: [_float(r.get("metrics", {}).get(n)) for r in rows]
                           for n in names}
    steps = run.steps  # custom training loops: log_metrics rows
    return "step", [float(x) for x in steps.index], {
        str(c): [_float(v) for v in steps[c]] for c in steps.columns}


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return number if math.isfinite(number) and abs(number) <= MAX_VALUE else math.nan


def _text(label: str) -> str:
    """A metric name as plain text (matplotlib reads ``$...$`` as math)."""
    return label.replace("$", r"\$")


def _panels(names: set[str], metric: str | None) -> list[str]:
    bases = sorted({n.removeprefix("val_") for n in names},
                   key=lambda b: (b != "loss", metric_goal(b) is None, b))
    if metric is None:
        return bases[:MAX_PANELS]
    base = metric.removeprefix("val_")
    if base not in bases:
        raise ConfigurationError(
            f"No run has metric {metric!r}. Available: {', '.join(bases) or 'none'}.")
    return [base]


def plot(runs: Run | Iterable[Run], metric: str | None = None, path: str | None = None, *,
         title: str | None = None, dpi: int = 110) -> Any:
    """Plot learning curves of ``runs``; save to ``path`` when given; return the Figure.

    ``metric`` picks one panel (``"loss"`` and ``"val_loss"`` both mean the loss panel with
    training and validation curves); by default every metric gets a panel (up to 6).
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:  # pragma: no cover - matplotlib is in the dev extras
        raise ConfigurationError(
            "Plotting needs matplotlib: pip install 'sagetrack[plot]'.") from exc
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ConfigurationError("plot() needs at least one run. Received: no runs.")
    data = {id(run): curves(run) for run in runs}
    names = {n for _label, _xs, values in data.values() for n in values}
    if not names:
        raise ConfigurationError(
            "Nothing to plot: none of the runs recorded epoch or step metrics "
            f"({', '.join(r.id for r in runs)}).")
    panels = _panels(names, metric)
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = [f"C{i}" for i in range(10)]
    labels = {run.id for run in runs}
    for ax, base in zip(axes, panels, strict=False):
        for i, run in enumerate(runs):
            xlabel, xs, values = data[id(run)]
            color = colors[i % len(colors)]
            for name, style in ((base, "-"), (f"val_{base}", "--")):
                if name in values:
                    ax.plot(xs, values[name], linestyle=style, color=color,
                            marker="o" if len(xs) <= 25 else None, markersize=3)
            ax.set_xlabel(xlabel)
        ax.set_title(_text(base))
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=colors[i % len(colors)], label=run.id if len(labels) ==
                      len(runs) else f"{run.experiment}/{run.id}") for i, run in enumerate(runs)]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="train"),
                Line2D([], [], color="0.3", linestyle="--", label="validation (val_)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
               fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    if path:
        fig.savefig(path, dpi=dpi)
    return fig
