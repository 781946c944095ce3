"""sagetrack.plot / Run.plot: learning curves of several runs, headless (Agg)."""

from __future__ import annotations

import json

import pytest

from sagetrack.errors import ConfigurationError
from sagetrack.plotting import plot
from sagetrack.store.layout import dumps_row

from ..support.records import backend, open_store, write_pair, write_run


def visible(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_plot_runs_one_colour_per_run_dashed_validation(store_uri, tmp_path):
    write_pair(store_uri)
    store = open_store(store_uri)
    runs = [store.run("resnet-a"), store.run("resnet-b")]
    path = tmp_path / "curves.png"
    fig = plot(runs, path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = visible(fig)
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    lines = axes[0].get_lines()
    assert [(line.get_color(), line.get_linestyle()) for line in lines] == [
        ("C0", "-"), ("C0", "--"), ("C1", "-"), ("C1", "--")]
    assert list(lines[2].get_ydata()) == [0.8, 0.35, 0.4]
    assert axes[0].get_xlabel() == "epoch"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["resnet-a", "resnet-b", "train", "validation (val_)"]


def test_one_metric_and_run_plot(store_uri, tmp_path):
    write_pair(store_uri)
    run = open_store(store_uri).run("resnet-b")
    fig = run.plot("val_accuracy", path=str(tmp_path / "acc.svg"))
    assert [ax.get_title() for ax in visible(fig)] == ["accuracy"]
    assert (tmp_path / "acc.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ConfigurationError, match=r"No run has metric 'f1'\. Available: loss, "
                                                 r"accuracy"):
        run.plot("f1")


def test_runs_without_epochs_plot_steps_or_fail_clearly(store_uri):
    write_run(store_uri, "e", "no-metrics", losses=[])
    write_run(store_uri, "e", "custom-loop", losses=[])
    rows = [{"step": s, "time": "t", "metrics": {"loss": 1.0 / (s + 1)}, "source": "api"}
            for s in range(5)]
    backend(store_uri).put("e/custom-loop/steps.jsonl",
                           "".join(dumps_row(r) for r in rows).encode())
    store = open_store(store_uri)
    with pytest.raises(ConfigurationError, match="Nothing to plot"):
        plot([store.run("no-metrics")])
    fig = plot([store.run("custom-loop"), store.run("no-metrics")])
    (ax,) = visible(fig)
    assert ax.get_xlabel() == "step" and len(ax.get_lines()) == 1
    with pytest.raises(ConfigurationError, match="at least one run"):
        plot([])


def test_metric_names_and_values_no_axis_can_draw_are_shown_as_text_and_gaps(tmp_path):
    write_run(str(tmp_path), "e", "odd", losses=[])
    rows = [{"epoch": i + 1, "metrics": {"cost$": v, "val_cost$": 1.0, "a_$x^2$": 2.0}}
            for i, v in enumerate([1.0, float("inf"), 1e308, float("nan"), 0.5])]
    backend(str(tmp_path)).put("e/odd/metrics.jsonl",
                               "".join(dumps_row(r) for r in rows).encode())
    run = open_store(str(tmp_path)).run("odd")
    fig = run.plot(path=str(tmp_path / "odd.png"))
    assert (tmp_path / "odd.png").read_bytes()[:4] == b"\x89PNG"
    axes = visible(fig)
    assert sorted(ax.get_title() for ax in axes) == [r"a_\$x^2\$", r"cost\$"]
    cost = next(ax for ax in axes if ax.get_title() == r"cost\$").get_lines()[0]
    assert [str(v) for v in cost.get_ydata()] == ["1.0", "nan", "nan", "nan", "0.5"]


def test_step_metrics_of_a_keras_run_get_their_own_panels_and_restarts_no_repeats(tmp_path):
    uri = str(tmp_path)
    write_run(uri, "e", "mixed", losses=[0.9, 0.5, 0.4])
    out = backend(uri)
    epochs = out.get("e/mixed/metrics.jsonl").decode()
    again = json.loads(epochs.splitlines()[1])  # a restarted attempt records epoch 2 again
    again.update(attempt=2, metrics={**again["metrics"], "loss": 0.45})
    out.put("e/mixed/metrics.jsonl", (epochs + dumps_row(again)).encode())
    steps = [{"step": s, "seq": s, "metrics": {"train:loss": 1.0 - s / 10}, "source": "output"}
             for s in range(4)]
    out.put("e/mixed/steps.jsonl", "".join(dumps_row(r) for r in steps).encode())
    fig = open_store(uri).run("mixed").plot()
    axes = {ax.get_title(): ax for ax in visible(fig)}
    assert list(axes) == ["loss", "accuracy", "train:loss"]
    assert axes["train:loss"].get_xlabel() == "step"
    assert list(axes["train:loss"].get_lines()[0].get_xdata()) == [0, 1, 2, 3]
    assert axes["loss"].get_xlabel() == "epoch"
    train = axes["loss"].get_lines()[0]  # the latest row of epoch 2 (the restart's)
    assert list(train.get_xdata()) == [1, 2, 3] and list(train.get_ydata()) == [0.9, 0.45, 0.4]
