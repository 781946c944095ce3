"""A third-party custom training loop, tracked only through its ``metric_definitions``:
its output values keep their print order across metrics, and the table, the report, the
plot and the DataFrames show them."""

from __future__ import annotations

import json
import math

from sagetrack.cli.main import main
from sagetrack.report.collect import run_document, run_files, runs_table
from sagetrack.store.reader import Store
from tests.support.scripts import run_script, store_of

SCRIPT = """
    for epoch in (1, 2):
        for batch in range(3):
            print(f"epoch {epoch} batch {batch} loss={1 - (epoch * 3 + batch) / 10:.2f}",
                  flush=True)
            print("nothing to match here", flush=True)
        print(f"epoch {epoch} done: val_loss={1 - epoch / 4:.2f} val_acc={0.5 + epoch / 10}",
              flush=True)
"""
DEFINITIONS = [["train:loss", r"batch \d+ loss=([0-9.]+)"], ["val:loss", r"val_loss=([0-9.]+)"],
               ["val:acc", r"val_acc=([0-9.]+)"]]


def test_a_custom_loop_tracked_from_its_output(tmp_path, capsys):
    out = run_script(tmp_path, SCRIPT, env={"SAGETRACK_METRICS": json.dumps(DEFINITIONS)})
    assert out.returncode == 0, out.stderr[-2000:]
    uri = store_of(tmp_path)
    run = Store(uri).run("job")  # a prefix of job-1
    assert run.id == "job-1" and run.status == "completed" and run.problems == []
    steps = run.steps
    rows = {int(s): {k: v for k, v in row.items() if not math.isnan(v)}
            for s, row in steps.iterrows()}
    assert rows == {
        0: {"train:loss": 0.7}, 1: {"train:loss": 0.6}, 2: {"train:loss": 0.5},
        3: {"val:loss": 0.75, "val:acc": 0.6},
        4: {"train:loss": 0.4}, 5: {"train:loss": 0.3}, 6: {"train:loss": 0.2},
        7: {"val:loss": 0.5, "val:acc": 0.7}}
    assert [r.get("seq") for r in run.step_rows] == list(range(10))
    assert Store(uri).runs().loc[0, "metrics.val:acc"] == 0.7

    assert main(["runs", "--uri", uri]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[4:7] == ["val:loss", "val:acc", "train:loss"]
    assert table[1].split()[5:8] == ["0.5", "0.7", "0.2"]  # final (= best) values
    assert "not shown" not in "\n".join(table)
    page = runs_table(Store(uri).list_runs())
    assert [k for k in page["visible"] if k.startswith("final.")] == [
        "final.val:loss", "final.val:acc", "final.train:loss"]
    curve = run_document(run, run_files(run), None, uri)["curves"]["step"]
    assert curve["x"] == [float(s) for s in range(8)]
    assert curve["series"]["val:loss"] == [None, None, None, 0.75, None, None, None, 0.5]

    assert main(["plot", "job-1", "--uri", uri, "-o", str(tmp_path / "loop.png")]) == 0
    assert capsys.readouterr().out.strip().endswith("metrics: train:loss, val:acc, val:loss")
