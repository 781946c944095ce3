"""``sagetrack report``: write, publish, watch (a live view that Ctrl-C stops cleanly)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sagetrack import report
from sagetrack.cli.main import main

from ..support.records import write_run
from .conftest import RUNS, load_data, make_store

ROOT = Path(__file__).resolve().parents[2]


def test_report_writes_a_folder_and_says_where_to_open_it(tmp_path, capsys):
    uri = make_store(str(tmp_path / "store"))
    out = tmp_path / "site"
    assert main(["report", "--uri", uri, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"Open: {(out / 'index.html').resolve().as_uri()}" in text
    assert f"{len(RUNS)} runs" in text
    assert main(["report", "--uri", uri, "-o", str(out), "--json", "-e", "custom"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 1 and "data/runs.js" in result["written"]


def test_report_publish_and_usage_errors(tmp_path, capsys):
    uri = make_store(str(tmp_path / "store"))
    assert main(["report", "--uri", uri, "--publish"]) == 0
    assert "_site/index.html" in capsys.readouterr().out
    assert (Path(uri) / "_site" / "manifest.json").is_file()
    assert main(["report", "--uri", uri, "--publish", "--expires", "8d"]) == 2
    assert "Invalid expiry of the shared link" in capsys.readouterr().err
    assert main(["report", "--uri", uri, "--publish", "-o", str(tmp_path / "x")]) == 2
    assert main(["report", "--uri", uri, "--watch", "--interval", "0"]) == 2
    assert main(["report", "--uri", uri, "-e", "nope", "-o", str(tmp_path / "y")]) == 1
    assert "No experiment 'nope'" in capsys.readouterr().err


def test_watch_regenerates_what_changed_until_stopped(tmp_path):
    uri = make_store(str(tmp_path / "store"))
    out = tmp_path / "site"
    results: list[report.SiteResult] = []
    stop = threading.Event()

    def update(result: report.SiteResult) -> None:
        results.append(result)
        if len(results) == 1:  # the run goes on: one more epoch
            write_run(uri, "resnet", "resnet-live", status="running", ended=None,
                      losses=[0.7, 0.6, 0.55], started="2024-05-03T09:00:00.000+00:00")
        if len(results) == 3:
            stop.set()

    report.watch(uri, output=out, interval=0.01, on_update=update, stop=stop)
    assert len(results) == 3
    assert "data/run/resnet/resnet-live.js" in results[1].written
    assert results[2].written == []  # nothing changed since
    _name, live = load_data(out / "data/run/resnet/resnet-live.js")
    assert live["curves"]["epoch"]["x"] == [1.0, 2.0, 3.0]
    assert load_data(out / "data/meta.js")[1]["watch"] == 0.01


def test_watch_stops_cleanly_on_ctrl_c(tmp_path):
    uri = make_store(str(tmp_path / "store"))
    out = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "sagetrack.cli", "report", "--uri", uri,
                             "-o", str(out), "--watch", "--interval", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not (out / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "Open: file://" in stdout and "stopped" in stderr
    assert json.loads((out / "manifest.json").read_text())["files"]["data/runs.js"]
