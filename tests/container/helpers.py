"""Build a recorder the way the bootstrap does, over a real local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagetrack.container.config import JobConfig
from sagetrack.container.recorder import Recorder
from sagetrack.container.writer import RecordWriter
from sagetrack.store.backends import LocalBackend
from sagetrack.store.layout import run_prefix


def make_recorder(root: Path, *, run_id: str = "job-1", experiment: str = "exp",
                  chief: bool = True, host: str = "algo-1", track_batches: int = 0,
                  store: Any = None, **config: Any) -> Recorder:
    cfg = JobConfig(uri=str(root), experiment=experiment, run_id=run_id, host=host,
                    hosts=[host], chief=chief, track_batches=track_batches,
                    output_data_dir=str(root / "output"), model_dir=str(root / "model"),
                    **config)
    writer = RecordWriter(store if store is not None else LocalBackend(root),
                          run_prefix(experiment, run_id),
                          mirror=LocalBackend(root / "mirror"), min_interval=0.01)
    return Recorder(cfg, writer, print_metrics=True)
