"""A store with every kind of run the report shows, written in the documented layout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sagetrack.store.layout import FORMAT, dumps, dumps_row

from ..support.records import backend, store_uri, write_pair, write_run

__all__ = ["HOSTILE", "RUNS", "load_data", "make_store", "store_uri"]

#: record text that would run script if the pages ever treated it as HTML
HOSTILE = ('</script><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
           '&amp; \u2028"quoted"')
#: (experiment, run id) of every run :func:`make_store` writes
RUNS = [("resnet", "resnet-a"), ("resnet", "resnet-b"), ("resnet", "resnet-live"),
        ("resnet", "evil-1"), ("custom", "loop-1")]


def make_store(uri: str) -> str:
    """Two finished runs (write_pair), a running one, one full of hostile text, and a
    custom-loop run (steps only); resnet-b also has batch rows and two hosts."""
    write_pair(uri)
    out = backend(uri)
    rows = [{"epoch": 1, "batch": b, "step": b, "time": 1.0, "metrics": {"loss": 1 / (b + 1)}}
            for b in range(0, 300, 10)]
    out.put("resnet/resnet-b/batches/000001-001-00000.jsonl",
            "".join(dumps_row(r) for r in rows).encode())
    for host in ("algo-1", "algo-2"):
        out.put(f"resnet/resnet-b/hosts/{host}.json", dumps({
            "host": host, "hosts": ["algo-1", "algo-2"], "chief": host == "algo-1",
            "rank": int(host[-1]) - 1, "python": "3.10.14", "tensorflow": "2.16.1"}))
    write_run(uri, "resnet", "resnet-live", status="running", ended=None, losses=[0.7, 0.6],
              started="2024-05-03T09:00:00.000+00:00", params={"learning-rate": 0.02})
    write_run(uri, "resnet", "evil-1", params={"note": HOSTILE}, status="failed",
              losses=[0.9, 0.8],
              started="2024-05-04T09:00:00.000+00:00", ended="2024-05-04T09:05:00.000+00:00",
              failure={"type": "ValueError", "message": HOSTILE, "traceback": HOSTILE},
              diff=f"diff --git a/t.py b/t.py\n--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n-a\n"
                   f"+{HOSTILE}\n")
    write_run(uri, "custom", "loop-1", losses=[], started="2024-05-05T09:00:00.000+00:00",
              ended="2024-05-05T09:30:00.000+00:00")
    steps = [{"step": s, "time": "2024-05-05T09:00:00.000+00:00", "source": "log_metrics",
              "metrics": {"gen_loss": 2.0 / s, "disc_loss": 1.0 + s / 10}} for s in range(1, 6)]
    out.put("custom/loop-1/steps.jsonl", "".join(dumps_row(r) for r in steps).encode())
    out.put("custom/loop-1/status.json", dumps({
        "format": FORMAT, "run_id": "loop-1", "experiment": "custom", "status": "completed",
        "started": "2024-05-05T09:00:00.000+00:00", "ended": "2024-05-05T09:30:00.000+00:00",
        "metrics": steps[-1]["metrics"]}))
    return uri


def load_data(path: Path) -> tuple[str, Any]:
    """The name and value of a data file (``sagetrack.data(name, value);``)."""
    text = path.read_text(encoding="ascii")
    match = re.fullmatch(r"sagetrack\.data\((\"[^\"]*\"),(.*)\);\n", text, re.DOTALL)
    assert match, text[:200]
    return json.loads(match.group(1)), json.loads(match.group(2))
