"""Metric columns, the step axis of ``Run.steps``, final metrics and run lookup by prefix."""

from __future__ import annotations

import json
import math

import pytest

from sagetrack.errors import AmbiguousRunId, RunNotFound
from sagetrack.store.metrics import is_validation, metric_columns, step_table

from ..support.records import (
    CUSTOM_LOOP_LINES,
    backend,
    open_store,
    write_custom_loop_run,
    write_pair,
    write_run,
)

KERAS = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}


# -- metric columns ------------------------------------------------------------------------
def test_runs_that_agree_get_the_validation_metrics_then_the_loss():
    chosen = metric_columns([KERAS, KERAS, KERAS])
    assert chosen.shown == ["val_loss", "val_accuracy", "loss"]
    assert chosen.hidden == ["accuracy", "learning_rate"]  # learning rates last, never shown
    assert metric_columns([KERAS], limit=4).shown == ["val_loss", "val_accuracy", "loss",
                                                      "accuracy"]
    assert metric_columns([KERAS], first="accuracy").shown == ["accuracy", "val_loss",
                                                               "val_accuracy"]


def test_every_run_gets_a_column_of_its_own_metrics():
    custom = {"train:loss", "val:loss", "val:acc"}
    gan = {"gen_loss", "disc_loss"}
    chosen = metric_columns([KERAS] * 5 + [custom, gan])
    for names in (KERAS, custom, gan):
        assert set(chosen.shown) & names, (chosen, names)
    # the metric most runs have comes first; the others each serve their run
    assert chosen.shown == ["val_loss", "val:loss", "disc_loss"]
    assert set(chosen.hidden) == (KERAS | custom | gan) - set(chosen.shown)
    assert chosen.hidden[-1] == "learning_rate"


def test_columns_are_capped_and_the_rest_named():
    runs = [{f"metric_{i}"} for i in range(12)]
    chosen = metric_columns(runs, cap=8)
    assert len(chosen.shown) == 8
    assert sorted(chosen.shown + chosen.hidden) == sorted(f"metric_{i}" for i in range(12))
    assert metric_columns([{"learning_rate"}, set()]).shown == []


def test_validation_names():
    assert [is_validation(n) for n in ("val_loss", "val:acc", "validation-error", "VAL loss",
                                       "value_loss", "loss", "interval")] == [
        True, True, True, True, False, False, False]


# -- the step axis -------------------------------------------------------------------------
def _frame_rows(frame):
    return {int(step): {k: v for k, v in row.items() if not math.isnan(v)}
            for step, row in frame.iterrows()}


@pytest.mark.parametrize("old_format", [False, True])
def test_output_values_keep_their_print_order_across_metrics(store_uri, old_format):
    """The second epoch's validation values come after the second epoch's training
    values, in records written now and in records of earlier versions."""
    write_custom_loop_run(store_uri, "loops", "loop-1", CUSTOM_LOOP_LINES,
                          old_format=old_format)
    run = open_store(store_uri).run("loop-1")
    steps = run.steps
    assert steps.index.name == "step" and list(steps.index) == list(range(8))
    assert _frame_rows(steps) == dict(enumerate(CUSTOM_LOOP_LINES))
    epoch_2_val = steps["val:loss"].last_valid_index()
    assert epoch_2_val > steps["train:loss"].last_valid_index()
    assert steps.loc[epoch_2_val, "val:acc"] == 0.7
    assert run.problems == []


def test_explicit_steps_are_kept_and_values_of_one_step_merged():
    rows = [
        {"step": 10, "seq": 0, "metrics": {"loss": 1.0}, "source": "api"},
        {"step": 0, "seq": 1, "metrics": {"acc": 0.5}, "source": "output"},
        {"step": 10, "seq": 2, "metrics": {"acc": 0.6}, "source": "api"},
        {"step": 10, "seq": 3, "metrics": {"loss": float("nan")}, "source": "api"},
        {"step": 5, "seq": 4, "metrics": {"loss": 2.0}, "source": "api"},
        {"step": 5, "seq": 5, "metrics": {"loss": 3.0}, "source": "api"},
    ]
    assert step_table(rows) == {0: {"acc": 0.5}, 5: {"loss": 3.0},
                                10: {"loss": 1.0, "acc": 0.6}}


def test_old_output_rows_are_renumbered_by_line_and_other_rows_kept():
    rows = [  # written by an earlier version: output values numbered per metric
        {"step": 0, "time": "t1", "metrics": {"loss": 1.0}, "source": "output"},
        {"step": 0, "time": "t1", "metrics": {"acc": 0.1}, "source": "output"},  # same line
        {"step": 1, "time": "t1", "metrics": {"loss": 0.9}, "source": "output"},  # next line
        {"step": 7, "time": "t2", "metrics": {"lr": 0.1}, "source": "api"},
        {"step": 2, "time": "t3", "metrics": {"loss": 0.8}, "source": "output"},
        {"step": 1, "time": "t4", "metrics": {"acc": 0.2}, "source": "output"},
    ]
    assert step_table(rows) == {0: {"loss": 1.0, "acc": 0.1}, 1: {"loss": 0.9},
                                2: {"loss": 0.8}, 3: {"acc": 0.2}, 7: {"lr": 0.1}}


# -- final metrics and Store.runs() --------------------------------------------------------
def test_custom_loop_metrics_reach_store_runs(store_uri):
    write_pair(store_uri)
    write_custom_loop_run(store_uri, "resnet", "loop-1", CUSTOM_LOOP_LINES,
                          started="2024-05-03T00:00:00.000+00:00")
    write_custom_loop_run(store_uri, "resnet", "loop-old", CUSTOM_LOOP_LINES, old_format=True,
                          started="2024-05-04T00:00:00.000+00:00")
    out = backend(store_uri)  # a status that lost its metrics: the step rows give them
    status = json.loads(out.get("resnet/loop-old/status.json"))
    out.put("resnet/loop-old/status.json", json.dumps({**status, "metrics": {}}).encode())
    frame = open_store(store_uri).runs().set_index("id")
    for rid in ("loop-1", "loop-old"):
        assert frame.loc[rid, "metrics.train:loss"] == 0.4
        assert frame.loc[rid, "metrics.val:acc"] == 0.7
    assert frame.loc["resnet-b", "metrics.val_loss"] == 0.5
    assert math.isnan(frame.loc["resnet-b", "metrics.train:loss"])
    assert open_store(store_uri).run("loop-old").best_metrics["val:loss"] == 0.55


# -- Store.run by prefix -------------------------------------------------------------------
def test_store_run_takes_a_unique_prefix_and_the_exact_id_first(store_uri):
    write_pair(store_uri)
    write_run(store_uri, "vgg", "vgg-2024-1")
    write_run(store_uri, "vgg", "vgg")
    store = open_store(store_uri)
    run = store.run("resnet-b")
    assert (run.experiment, run.id, run.status) == ("resnet", "resnet-b", "completed")
    assert store.run("vgg").id == "vgg"  # exact, though also the start of vgg-2024-1
    assert store.run("vgg-2").id == "vgg-2024-1"
    assert store.run("resnet-a", "resnet").params["learning-rate"] == 0.1
    with pytest.raises(AmbiguousRunId) as err:
        store.run("resnet")
    assert isinstance(err.value, RunNotFound)
    assert err.value.candidates == ["resnet-a", "resnet-b"]
    assert str(err.value) == ("'resnet' is the start of 2 run ids: resnet-a, resnet-b. "
                              "Give more of the id.")
    with pytest.raises(RunNotFound, match="No run with id 'vgg-2'") as missing:
        store.run("vgg-2", "resnet")  # only in another experiment
    assert not isinstance(missing.value, AmbiguousRunId)
