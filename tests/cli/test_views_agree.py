"""The runs table, the report's pages, the plot and the DataFrames show the same metrics
at the same steps, for Keras runs and custom-loop runs side by side."""

from __future__ import annotations

import json
import math
import re

import pytest

from sagetrack.cli.main import main
from sagetrack.plotting import plot
from sagetrack.report.collect import run_document, run_files, runs_table
from sagetrack.store.layout import dumps_row

from ..support.records import (
    CUSTOM_LOOP_LINES,
    backend,
    open_store,
    write_custom_loop_run,
    write_pair,
    write_run,
)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def mixed(store_uri):
    """Two Keras runs and a third-party custom loop whose metrics come from its output."""
    write_pair(store_uri)
    write_custom_loop_run(store_uri, "resnet", "loop-1", CUSTOM_LOOP_LINES,
                          started="2024-05-03T09:00:00.000+00:00",
                          ended="2024-05-03T09:05:00.000+00:00")
    return store_uri


def test_every_run_shows_its_own_metrics_and_the_footer_names_the_rest(mixed, capsys):
    code, out, err = run_cli(capsys, "runs", "--uri", mixed)
    assert code == 0 and err == ""
    lines = out.splitlines()
    header = lines[0].split()
    assert header[header.index("warmup") + 1:-2] == ["val_loss", "val_accuracy", "val:loss"]
    assert lines[1].split()[0] == "loop-1"
    assert lines[1].split()[-5:-2] == ["-", "-", "0.55"]  # its own validation loss
    assert lines[2].split()[-7:-2] == ["0.5", "(0.45)", "0.5", "(0.55)", "-"]
    assert lines[-1] == ("not shown: loss, accuracy, val:acc, train:loss "
                         "(--metrics NAME,... chooses the metric columns)")

    code, out, _ = run_cli(capsys, "runs", "--uri", mixed, "--metrics", "train:loss,val:acc")
    lines = out.splitlines()
    assert lines[0].split()[-4:-2] == ["train:loss", "val:acc"]
    assert lines[1].split()[-4:-2] == ["0.4", "0.7"]
    assert "not shown" not in out


def test_the_report_page_shows_the_same_metric_columns_as_the_table(mixed, capsys):
    runs = open_store(mixed).list_runs()
    page = runs_table(runs)
    shown = [key.removeprefix("final.") for key in page["visible"] if key.startswith("final.")]
    code, out, _ = run_cli(capsys, "runs", "--uri", mixed)
    assert code == 0
    table = out.splitlines()[0].split()
    assert shown == table[table.index("warmup") + 1:-2]
    assert [k for k in page["visible"] if k.startswith("best.")] == ["best.val_loss",
                                                                    "best.val_accuracy"]
    keys = [c["key"] for c in page["columns"]]
    loop = dict(zip(keys, page["rows"][[r.id for r in runs].index("loop-1")], strict=True))
    assert loop["final.val:loss"] == 0.55 and loop["final.train:loss"] == 0.4


def test_report_curves_plot_and_dataframe_agree_on_steps(mixed):
    run = open_store(mixed).run("loop-1")
    frame = run.steps
    doc = run_document(run, run_files(run), None, mixed)
    curve = doc["curves"]["step"]
    assert curve["x"] == [float(s) for s in frame.index]
    for name, values in curve["series"].items():
        assert [None if math.isnan(v) else v for v in frame[name]] == values
    fig = plot(run)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert sorted(panels) == ["train:loss", "val:acc", "val:loss"]
    (val,) = panels["val:loss"].get_lines()
    assert list(val.get_xdata()) == [3.0, 7.0]  # drawn through the steps it has values at
    assert list(val.get_ydata()) == [0.75, 0.55]
    assert list(panels["train:loss"].get_lines()[0].get_xdata()) == [0, 1, 2, 4, 5, 6]


def test_plot_draws_a_panel_for_every_metric(store_uri, tmp_path, capsys):
    write_run(store_uri, "e", "wide", losses=[])
    names = [f"m{i}_loss" for i in range(11)] + ["val_m0_loss", "learning_rate"]
    rows = [{"epoch": e, "metrics": {n: 1.0 / (e + i) for i, n in enumerate(names)}}
            for e in (1, 2, 3)]
    backend(store_uri).put("e/wide/metrics.jsonl",
                           "".join(dumps_row(r) for r in rows).encode())
    target = tmp_path / "wide.png"
    code, out, err = run_cli(capsys, "plot", "wid", "--uri", store_uri, "-o", str(target))
    assert code == 0 and err == "" and target.read_bytes()[:4] == b"\x89PNG"
    listed = re.search(r"metrics: (.*)$", out.strip()).group(1).split(", ")
    assert sorted(listed) == sorted(n for n in names if not n.startswith("val_"))
    fig = plot(open_store(store_uri).run("wide"))
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 12  # m0..m10 and learning_rate; val_m0_loss shares m0's panel
    assert len(fig.axes) == 12 and fig.axes[0].get_subplotspec().get_gridspec().ncols == 4
    code, out, _ = run_cli(capsys, "plot", "wide", "--uri", store_uri, "-o",
                           str(tmp_path / "w.svg"), "--json")
    assert len(json.loads(out)["metrics"]) == 12


def test_show_and_diff_take_a_unique_prefix(mixed, capsys):
    code, out, _ = run_cli(capsys, "show", "loop", "--uri", mixed)
    assert code == 0 and out.startswith("Run loop-1  (experiment resnet)")
    code, _, err = run_cli(capsys, "diff", "resnet", "loop", "--uri", mixed)
    assert code == 1
    assert err == ("sagetrack: error: 'resnet' is the start of 2 run ids: resnet-a, "
                   "resnet-b. Give more of the id.\n")
