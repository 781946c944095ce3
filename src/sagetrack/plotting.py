"""Learning curves of several runs on one figure: ``sagetrack.plot(runs, metric=None)``.

One panel per metric (``loss``, ``accuracy``, ...), every metric the runs recorded: the
grid has three panels a row (four past nine panels) and grows as tall as it needs. Each
run keeps one colour; the training value is a solid line and its ``val_`` variant a
dashed line of the same colour. Epoch metrics are drawn per epoch; custom-loop and
``metric_definitions`` values (``Run.steps``) per step, each curve through the steps
where its metric has a value. Figures are built with the object-oriented API (no pyplot,
no global backend change), so ``plot(..., path="curves.png")`` works headless and the
returned ``Figure`` displays in notebooks. Needs matplotlib (``pip install
'sagetrack[plot]'``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError
from .store.metrics import metric_goal, step_table
from .store.reader import Run

__all__ = ["curves", "plot"]

#: panels a row; past :data:`WIDE_AFTER` panels, one more
COLUMNS = 3
WIDE_AFTER = 9
#: values beyond this magnitude are left out (the axes could not scale to them)
MAX_VALUE = 1e100

#: one curve: (x label, x values, y values)
Curve = tuple[str, list[float], list[float]]


def _epochs(run: Run) -> tuple[str, list[float], list[dict[str, Any]]]:
    """(x label, x values, metrics) of the epoch rows, as ``Run.metrics`` holds them: the
    latest row of an epoch a restarted attempt recorded again; numbered through all
    ``fit`` calls when there were several."""
    latest = {(r.get("fit", 0), r["epoch"]): r.get("metrics", {}) for r in run.epochs}
    keys = sorted(latest)
    values = [dict(latest[k]) for k in keys]
    if len({fit for fit, _epoch in keys}) > 1:
        return "epoch (all fit calls)", [float(i + 1) for i in range(len(keys))], values
    return "epoch", [float(epoch) for _fit, epoch in keys], values


def curves(run: Run) -> dict[str, Curve]:
    """Every metric of one run as a curve: epoch metrics per epoch (a gap where an epoch
    lacks a value), the other metrics per step (``Run.steps``), through the steps where
    they have a value; non-finite and out-of-range values are NaN (a gap)."""
    out: dict[str, Curve] = {}
    label, xs, rows = _epochs(run)
    for name in sorted({k for r in rows for k in r}):
        out[name] = (label, xs, [_float(r.get(name)) for r in rows])
    points: dict[str, tuple[list[float], list[float]]] = {}
    for step, values in step_table(run.step_rows).items():
        for name, value in values.items():
            if name not in out:
                xs_, ys = points.setdefault(name, ([], []))
                xs_.append(float(step))
                ys.append(_float(value))
    for name in sorted(points):
        out[name] = ("step", *points[name])
    return out


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
        return bases
    base = metric.removeprefix("val_")
    if base not in bases:
        raise ConfigurationError(
            f"No run has metric {metric!r}. Available: {', '.join(bases) or 'none'}.")
    return [base]


def plot(runs: Run | Iterable[Run], metric: str | None = None, path: str | None = None, *,
         title: str | None = None, dpi: int = 110) -> Any:
    """Plot learning curves of ``runs``; save to ``path`` when given; return the Figure.

    ``metric`` picks one panel (``"loss"`` and ``"val_loss"`` both mean the loss panel with
    training and validation curves); by default every metric the runs recorded gets a
    panel, none left out: three a row (four past nine panels), as many rows as needed.
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
    names = {n for series in data.values() for n in series}
    if not names:
        raise ConfigurationError(
            "Nothing to plot: none of the runs recorded epoch or step metrics "
            f"({', '.join(r.id for r in runs)}).")
    panels = _panels(names, metric)
    cols = min(len(panels), COLUMNS + (len(panels) > WIDE_AFTER))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    colors = [f"C{i}" for i in range(10)]
    labels = {run.id for run in runs}
    for ax, base in zip(axes, panels, strict=False):
        xlabels: list[str] = []
        for i, run in enumerate(runs):
            series = data[id(run)]
            color = colors[i % len(colors)]
            for name, style in ((base, "-"), (f"val_{base}", "--")):
                if name in series:
                    xlabel, xs, ys = series[name]
                    ax.plot(xs, ys, linestyle=style, color=color,
                            marker="o" if len(xs) <= 25 else None, markersize=3)
                    if xlabel not in xlabels:
                        xlabels.append(xlabel)
        ax.set_xlabel(" / ".join(xlabels))
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
