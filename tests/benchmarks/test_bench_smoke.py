"""Keep the benchmark scripts from rotting: run the hot-path benchmark in a tiny setup.

Only the shape of the results is checked, never a timing: timings belong in
``docs/benchmarks.md``, measured with ``make bench``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hot_path_benchmark_produces_well_formed_results(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "hot_path.py"), "--quick", "--no-fit",
           "--no-blackhole", "--epochs", "5", "--batches", "20", "--hang-s", "0.1",
           "--close-timeout-s", "0.3", "--epoch-gap-s", "0.001", "--out", str(tmp_path)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Hot path" in proc.stdout  # the table was printed

    doc = json.loads((tmp_path / "hot_path.quick.json").read_text())
    assert doc["benchmark"] == "hot_path" and doc["quick"] is True
    assert doc["machine"]["cpus"] >= 1
    assert isinstance(doc["meets_target"], bool)
    stores = {r["store"] for r in doc["results"]}
    assert {"none", "healthy local", "hanging 0.1 s"} <= stores
    hooks_seen = set()
    for result in doc["results"]:
        assert result["hooks"], result
        for hook, stats in result["hooks"].items():
            hooks_seen.add(hook)
            assert stats["n"] > 0
            for key in ("median", "p99", "max", "min"):
                assert isinstance(stats[key], float) and math.isfinite(stats[key])
                assert stats[key] >= 0
            assert stats["min"] <= stats["median"] <= stats["max"]
        if result["store"] != "none":
            assert isinstance(result["close_s"], float)
    assert {"on_epoch_end", "on_train_batch_end"} <= hooks_seen
