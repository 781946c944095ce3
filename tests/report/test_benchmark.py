"""Keep ``benchmarks/report_scale.py`` from rotting: a tiny run, its results' shape only
(timings belong in docs/report.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_benchmark_runs_and_writes_its_results(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "report_scale.py"), "--runs", "12",
           "--epochs", "4", "--repeat", "1", "--no-s3", "--no-browser", "--out-dir",
           str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((tmp_path / "report_scale.json").read_text())
    operations = [r["operation"] for r in doc["results"]]
    assert operations == ["first report, no index", "first report", "again, nothing changed",
                          "again, 10 new runs", "sagetrack report (CLI)"]
    assert all(r["median_s"] > 0 and r["runs"] == 12 for r in doc["results"])
