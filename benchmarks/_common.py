"""Shared helpers for the benchmarks: a safe offline environment, statistics, tables, JSON.

Every benchmark script imports this module first and calls :func:`offline_environment`
before it imports TensorFlow, boto3 or the SageMaker SDK, so that nothing can reach real
AWS (fake credentials, no profile, SDK telemetry off) and the SDK's config schema is
validated once rather than on every lookup, exactly as ``tests/conftest.py`` does.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT",
    "REGION",
    "RESULTS_DIR",
    "ROLE",
    "SDK_CONFIG",
    "blackhole",
    "machine_info",
    "moto_server",
    "offline_environment",
    "percentile",
    "print_table",
    "summarize",
    "validate_sdk_config_once",
    "write_results",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"

# the offline AWS helpers are shared with the test suite
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.support.aws import (  # noqa: E402
    ACCOUNT,
    REGION,
    ROLE,
    SDK_CONFIG,
    blackhole,
    moto_server,
    validate_sdk_config_once,
)
from tests.support.aws import offline_environment as _offline_environment  # noqa: E402


def offline_environment() -> None:
    """Fake AWS credentials, SDK telemetry off, quiet TensorFlow; ``src/`` importable."""
    _offline_environment()
    src = str(ROOT / "src")
    if src not in sys.path:
        sys.path.insert(0, src)


# -- the machine ---------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (cores, CPU model, load, library versions)."""
    versions: dict[str, str | None] = {}
    for name in ("tensorflow", "keras", "sagemaker", "boto3", "moto", "mlflow", "numpy"):
        module = sys.modules.get(name)
        versions[name] = getattr(module, "__version__", None) if module else None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "gpu": _gpus(),
        "versions": {k: v for k, v in versions.items() if v},
    }


def _gpus() -> list[str]:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return []
    try:
        return [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:
        return []


# -- statistics ----------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, median, mean, min, max, quartiles, p99 of ``values``."""
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "median": statistics.median(vals),
        "mean": statistics.fmean(vals),
        "min": min(vals),
        "max": max(vals),
        "p25": percentile(vals, 25),
        "p75": percentile(vals, 75),
        "p99": percentile(vals, 99),
    }


# -- output --------------------------------------------------------------------------------
def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]],
                notes: Sequence[str] = ()) -> str:
    """Print (and return) a Markdown table, so that it can be pasted into the docs."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(items, widths, strict=True)) + " |"

    out = [f"\n### {title}\n", line(headers),
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    out += [f"\n{n}" for n in notes]
    text = "\n".join(out) + "\n"
    print(text, flush=True)
    return text


def write_results(name: str, payload: dict[str, Any], *, quick: bool,
                  out_dir: Path | None = None) -> Path:
    """Write ``<out_dir>/<name>.json`` (``<name>.quick.json`` for a quick run)."""
    folder = Path(out_dir) if out_dir is not None else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (f"{name}.quick.json" if quick else f"{name}.json")
    doc = {"benchmark": name, "quick": quick,
           "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(),
           **payload}
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"results written to {path}", flush=True)
    return path


def fmt_s(seconds: float, digits: int = 3) -> str:
    return f"{seconds:.{digits}f}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def fmt_ratio(ratio: float) -> str:
    return f"{ratio:.3f} ({(ratio - 1) * 100:+.1f}%)"


def thread_cpu(prefix: str, exclude: set[int | None] | frozenset[int] = frozenset()) -> float:
    """CPU seconds used so far by live threads named ``prefix...`` (Linux thread clocks)."""
    import threading

    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith(prefix) or thread.ident is None \
                or thread.ident in exclude:
            continue
        try:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (AttributeError, OSError):  # not Linux, or the thread just ended
            continue
    return total


# -- a recorder built the way the container bootstrap builds one ---------------------------
def make_recorder(run_root: Path, store: Any, *, run_id: str, experiment: str = "bench",
                  track_batches: int = 0, environment: bool = True,
                  print_metrics: bool = True) -> Any:
    """A started :class:`~sagetrack.container.recorder.Recorder` over ``store``.

    As ``sagetrack.container.bootstrap.activate`` does: the store given, a local mirror
    under the job's output folder, the writer's default coalescing interval, and the host
    environment recorded at start.
    """
    from sagetrack.container.config import JobConfig
    from sagetrack.container.environment import describe_environment
    from sagetrack.container.recorder import Recorder
    from sagetrack.container.writer import RecordWriter
    from sagetrack.store.backends import LocalBackend
    from sagetrack.store.layout import run_prefix

    output = run_root / run_id / "output"
    config = JobConfig(uri=getattr(store, "uri", str(run_root)), experiment=experiment,
                       run_id=run_id, host="algo-1", hosts=["algo-1"], chief=True,
                       track_batches=track_batches, output_data_dir=str(output / "data"),
                       model_dir=str(run_root / run_id / "model"))
    writer = RecordWriter(store, run_prefix(experiment, run_id),
                          mirror=LocalBackend(output / "data" / "sagetrack"))
    recorder = Recorder(config, writer, print_metrics=print_metrics)
    recorder.start(describe_environment(config) if environment else None)
    return recorder
