"""Metrics declared in ``metric_definitions`` are read from the script's output."""

from __future__ import annotations

import json
import time

from sagetrack.store.reader import Store
from tests.support.scripts import run_script, store_of


def test_a_backtracking_metric_regex_is_dropped_and_never_holds_up_the_script(tmp_path):
    # (x+x+)+y backtracks exponentially on a line of x's without a y: ~2^40 steps here
    metrics = json.dumps([["slow", "(x+x+)+y=([0-9.]+)"], ["loss", "loss=([0-9.]+)"]])
    start = time.monotonic()
    out = run_script(tmp_path, """
        for step in range(3):
            print("x" * 40, flush=True)
            print(f"loss={1.0 / (step + 1):.2f}", flush=True)
    """, env={"SAGETRACK_METRICS": metrics})
    elapsed = time.monotonic() - start
    assert out.returncode == 0, out.stderr[-2000:]
    assert elapsed < 60  # the regex alone would run for hours
    run = Store(store_of(tmp_path)).run("job-1")
    assert list(run.steps["loss"]) == [1.0, 0.5, 0.33]
    assert "slow" not in run.steps.columns
    assert "no longer applied" in out.stderr
    assert run.status == "completed"
