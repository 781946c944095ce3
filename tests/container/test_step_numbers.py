"""Step rows: values without a step share one count, one output line shares one step."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sagetrack.container.output import MetricScanner
from sagetrack.store.reader import Store

from .helpers import make_recorder


def step_rows(root: Path) -> list[dict[str, Any]]:
    text = (root / "exp/job-1/steps.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_values_without_a_step_are_numbered_in_the_order_recorded(tmp_path):
    rec = make_recorder(tmp_path)
    rec.log_metrics(None, {"loss": 0.9}, source="output", line=0)
    rec.log_metrics(None, {"loss": 0.8}, source="output", line=3)
    rec.log_metrics(None, {"val_loss": 0.7}, source="output", line=4)
    rec.log_metrics(None, {"val_acc": 0.6}, source="output", line=4)  # same line
    rec.log_metrics(100, {"lr": 0.1})
    rec.log_metrics(None, {"acc": 0.5})
    rec.log_metrics(None, {"acc": 0.55})
    rec.finish("completed")
    assert rec.close()
    rows = step_rows(tmp_path)
    assert [(r["step"], r["seq"], r["source"]) for r in rows] == [
        (0, 0, "output"), (1, 1, "output"), (2, 2, "output"), (2, 3, "output"),
        (100, 4, "api"), (3, 5, "api"), (4, 6, "api")]
    steps = Store(str(tmp_path)).run("job-1").steps
    assert list(steps.index) == [0, 1, 2, 3, 4, 100]
    assert steps.loc[2, "val_loss"] == 0.7 and steps.loc[2, "val_acc"] == 0.6
    assert math.isnan(steps.loc[2, "loss"])


def test_a_restarted_attempt_numbers_on_after_the_earlier_rows(tmp_path):
    first = make_recorder(tmp_path / "a")
    for line, loss in enumerate([0.9, 0.8]):
        first.log_metrics(None, {"loss": loss}, source="output", line=line)
    first.finish("completed")
    assert first.close()
    earlier = step_rows(tmp_path / "a")

    again = make_recorder(tmp_path / "b")
    again.resume_from(2, {"status": "running"}, {"steps.jsonl": earlier})
    again.log_metrics(None, {"loss": 0.7}, source="output", line=0)  # the new process's line 0
    again.finish("completed")
    assert again.close()
    rows = step_rows(tmp_path / "b")
    assert [(r["step"], r["seq"], r["attempt"]) for r in rows] == [(0, 0, 1), (1, 1, 1),
                                                                   (2, 2, 2)]
    assert list(Store(str(tmp_path / "b")).run("job-1").steps["loss"]) == [0.9, 0.8, 0.7]


def test_matched_output_lines_keep_their_order_across_metrics(tmp_path):
    """A custom loop printing training values during each epoch and the validation values
    after it: the regexes run in the worker process, and the second epoch's validation
    values land after the second epoch's training values."""
    rec = make_recorder(tmp_path)
    scanner = MetricScanner(rec, [("train:loss", r"batch \d+ loss=([0-9.]+)"),
                                  ("val:loss", r"val_loss=([0-9.]+)"),
                                  ("val:acc", r"val_acc=([0-9.]+)")])
    scanner.start()
    for epoch in (1, 2):
        for batch in range(3):
            scanner.scan(f"epoch {epoch} batch {batch} loss={1 - (epoch * 3 + batch) / 10:.2f}")
            scanner.scan("a line no regex matches")
        scanner.scan(f"epoch {epoch} val_loss={1 - epoch / 4:.2f} val_acc={0.5 + epoch / 10}")
    scanner.close(20)
    rec.finish("completed")
    assert rec.close()
    steps = Store(str(tmp_path)).run("job-1").steps
    rows = {int(s): {k: v for k, v in row.items() if not math.isnan(v)}
            for s, row in steps.iterrows()}
    assert rows == {
        0: {"train:loss": 0.7}, 1: {"train:loss": 0.6}, 2: {"train:loss": 0.5},
        3: {"val:loss": 0.75, "val:acc": 0.6},
        4: {"train:loss": 0.4}, 5: {"train:loss": 0.3}, 6: {"train:loss": 0.2},
        7: {"val:loss": 0.5, "val:acc": 0.7}}
