"""Read runs back: ``Store(uri).runs()`` as a table, ``Store(uri).run(id)`` as a :class:`Run`.

Reading never needs sagetrack's writer: it only parses the JSON/JSONL files described
in ``docs/record-format.md``. Partial or damaged records are reported in
``Run.problems`` and never crash a listing.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import json
from functools import cached_property
from typing import Any

from ..errors import RecordNotFound, RunNotFound, StoreError
from ..store.backends import Backend, open_backend
from ..store.layout import RUN_FILES, loads_jsonl, validate_experiment, validate_run_id

__all__ = ["Run", "Store", "metric_goal"]

TERMINAL = ("completed", "failed", "stopped")
_JOB_STATUS = {"Completed": "completed", "Failed": "failed", "Stopped": "stopped"}
#: name parts of metrics where lower is better; every other metric is better higher
LOWER_IS_BETTER = ("loss", "error", "mae", "mse", "mape", "perplexity")
_NO_GOAL = frozenset({"learning_rate", "lr", "duration_s"})


def metric_goal(name: str) -> str | None:
    """``"min"`` for loss/error/mae/mse-like names, ``None`` for learning rates, else ``"max"``."""
    base = name.lower().removeprefix("val_")
    if base in _NO_GOAL:
        return None
    return "min" if any(part in base for part in LOWER_IS_BETTER) else "max"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else value


class Run:
    """One recorded training job. Records are loaded lazily and cached."""

    def __init__(self, backend: Backend, experiment: str, run_id: str) -> None:
        self.backend = backend
        self.experiment = experiment
        self.id = run_id
        self.problems: list[str] = []

    def __repr__(self) -> str:
        return f"Run({self.id!r}, experiment={self.experiment!r}, status={self.status!r})"

    @property
    def prefix(self) -> str:
        return f"{self.experiment}/{self.id}"

    def _read(self, name: str) -> bytes | None:
        try:
            return self.backend.get(f"{self.prefix}/{name}")
        except RecordNotFound:
            return None

    def _json(self, name: str) -> dict[str, Any]:
        data = self._read(name)
        if data is None:
            return {}
        try:
            value = json.loads(data)
        except ValueError as exc:
            self.problems.append(f"{name}: not valid JSON ({exc}); file is corrupt or truncated")
            return {}
        return value if isinstance(value, dict) else {}

    def _jsonl(self, name: str) -> list[dict[str, Any]]:
        data = self._read(name)
        if data is None:
            return []
        return list(loads_jsonl(data, name, self.problems))

    # -- records -------------------------------------------------------------------------
    @cached_property
    def record(self) -> dict[str, Any]:
        """The launch record (``run.json``) written by the client at ``fit()``."""
        return self._json(RUN_FILES["run"])

    @cached_property
    def status_record(self) -> dict[str, Any]:
        """The status snapshot (``status.json``)."""
        return self._json(RUN_FILES["status"])

    @cached_property
    def job(self) -> dict[str, Any]:
        """The job outcome the client saw (``job.json``), if it waited or ingested it."""
        return self._json(RUN_FILES["job"])

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters as the script received them (``sagemaker_*`` excluded)."""
        return dict(self.record.get("params") or {})

    @property
    def code(self) -> dict[str, Any]:
        """Code version: git commit, branch, remote, dirty flag, tarball URI and hashes."""
        return dict(self.record.get("code") or {})

    @property
    def inputs(self) -> dict[str, Any]:
        """Input channels: URI and fingerprint (objects, bytes, sha256)."""
        return dict(self.record.get("inputs") or {})

    @property
    def job_config(self) -> dict[str, Any]:
        """Image, instance type/count, framework versions, spot and checkpoint settings."""
        return dict(self.record.get("job") or {})

    @cached_property
    def environment(self) -> dict[str, Any]:
        """The container environment recorded by the chief host."""
        return self._json(RUN_FILES["environment"])

    @cached_property
    def model(self) -> dict[str, Any]:
        """Files saved under SM_MODEL_DIR (path, bytes, sha256) and the model.tar.gz URI."""
        doc = self._json(RUN_FILES["model"])
        uri = self.job.get("model_artifacts") or (self.record.get("artifacts") or {}).get("model")
        return {**doc, "uri": uri} if doc or uri else {}

    @cached_property
    def diff(self) -> str:
        """The uncommitted diff recorded at launch ('' when clean or not in git)."""
        data = self._read(RUN_FILES["diff"])
        return data.decode("utf-8", errors="replace") if data else ""

    @property
    def status(self) -> str:
        """completed, failed, stopped, running, launched, or unknown."""
        recorded = str(self.status_record.get("status") or "")
        job_status = _JOB_STATUS.get(str(self.job.get("status")))
        if recorded in TERMINAL:
            return recorded
        if job_status:
            return job_status
        return recorded or ("launched" if self.record else "unknown")

    @property
    def incomplete(self) -> bool:
        """True when the job ended but the run's records did not reach a final status."""
        recorded = str(self.status_record.get("status") or "")
        return recorded not in TERMINAL and (bool(self.job.get("status") in _JOB_STATUS)
                                             or bool(self.problems))

    @property
    def failure(self) -> dict[str, Any] | None:
        """Exception type, message and traceback tail of a failed run (or the job's reason)."""
        failure = self.status_record.get("failure")
        if failure:
            return dict(failure)
        if self.job.get("failure_reason"):
            return {"type": "JobFailure", "message": self.job["failure_reason"]}
        return None

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last recorded value of every metric."""
        return dict(self.status_record.get("metrics") or {})

    @cached_property
    def epochs(self) -> list[dict[str, Any]]:
        """Raw epoch rows from ``metrics.jsonl``."""
        return self._jsonl(RUN_FILES["metrics"])

    @property
    def metrics(self) -> Any:
        """Per-epoch metrics as a pandas DataFrame indexed by epoch (from 1)."""
        import pandas as pd

        # a restarted attempt may record an epoch again: the latest row wins
        latest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for r in self.epochs:
            latest[(r.get("fit", 0), r.get("epoch"))] = {
                "epoch": r.get("epoch"), **(r.get("metrics") or {}),
                "duration_s": r.get("duration_s"), "fit": r.get("fit", 0)}
        rows = sorted(latest.values(), key=lambda r: (r["fit"], r["epoch"]))
        if not rows:
            return pd.DataFrame(index=pd.Index([], name="epoch"))
        frame = pd.DataFrame(rows).set_index("epoch")
        if frame["fit"].nunique() <= 1:
            frame = frame.drop(columns="fit")
        return frame

    @cached_property
    def best_metrics(self) -> dict[str, float]:
        """Best epoch value of each metric (:func:`metric_goal`); step rows when no epochs."""
        best: dict[str, float] = {}
        for row in self.epochs or self._jsonl(RUN_FILES["steps"]):
            for name, value in (row.get("metrics") or {}).items():
                goal = metric_goal(name)
                if goal is None or not isinstance(value, (int, float)) or value != value:
                    continue
                if name not in best or (value < best[name] if goal == "min"
                                        else value > best[name]):
                    best[name] = float(value)
        return best

    @property
    def steps(self) -> Any:
        """Values from ``log_metrics`` and from output matched by ``metric_definitions``."""
        import pandas as pd

        rows = self._jsonl(RUN_FILES["steps"])
        if not rows:
            return pd.DataFrame(index=pd.Index([], name="step"))
        frame = pd.DataFrame([{"step": r.get("step"), **(r.get("metrics") or {})}
                              for r in rows])
        return frame.groupby("step").last()

    @property
    def batches(self) -> Any:
        """Every-N-batches rows (when ``track_batches`` was set), one row per record."""
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for key in sorted(self.backend.list(f"{self.prefix}/batches")):
            name = key[len(self.prefix) + 1:]
            rows.extend({"step": r.get("step"), "epoch": r.get("epoch"), "batch": r.get("batch"),
                         **(r.get("metrics") or {})} for r in self._jsonl(name))
        if not rows:
            return pd.DataFrame(index=pd.Index([], name="step"))
        # files are read in name order (epoch, attempt, chunk): where a restarted attempt
        # recorded a batch again, its row wins
        frame = pd.DataFrame(rows).drop_duplicates(["epoch", "batch"], keep="last")
        return frame.sort_values("step", kind="stable").set_index("step")

    def _prime(self, **documents: Any) -> Run:
        """Seed cached documents read elsewhere (the run index); returns ``self``."""
        self.__dict__.update(documents)
        return self

    def plot(self, metric: str | None = None, path: str | None = None, **kwargs: Any) -> Any:
        """Learning curves of this run (see :func:`sagetrack.plotting.plot`)."""
        from ..plotting import plot

        return plot([self], metric=metric, path=path, **kwargs)

    def estimator(self, **overrides: Any) -> Any:
        """A ready ``sagetrack.TensorFlow`` repeating this run: same image, code tarball,
        hyperparameters and settings, recorded as reproducing it. ``overrides`` replace
        recorded arguments (``hyperparameters`` are merged); fit it with
        :meth:`training_inputs`. See :mod:`sagetrack.client.reproduce`."""
        from ..client.reproduce import estimator_for

        return estimator_for(self, **overrides)

    def training_inputs(self) -> dict[str, Any]:
        """The recorded input channels, ready for ``estimator.fit(...)``."""
        from ..client.reproduce import training_inputs

        return training_inputs(self)

    def summary(self) -> dict[str, Any]:
        """One flat row for :meth:`Store.runs`."""
        status = self.status_record
        code = self.code
        row: dict[str, Any] = {
            "id": self.id,
            "experiment": self.experiment,
            "status": self.status,
            "start": status.get("started") or self.record.get("created"),
            "end": status.get("ended") or self.job.get("training_end"),
            "epochs": status.get("last_epoch"),
            "commit": code.get("commit"),
            "dirty": code.get("dirty"),
            "instance_type": self.job_config.get("instance_type"),
            "instance_count": self.job_config.get("instance_count"),
        }
        for key, value in self.params.items():
            _flatten(f"params.{key}", value, row)
        for key, value in self.final_metrics.items():
            row[f"metrics.{key}"] = value
        if self.problems:
            row["problems"] = "; ".join(self.problems)
        return row


class Store:
    """A tracking store: a local folder or ``s3://bucket/prefix``.

    ``Store()`` uses the estimator's default (``$SAGETRACK_URI``, else the SageMaker
    session's default bucket).
    """

    def __init__(self, uri: str | None = None, *, s3_client: Any = None) -> None:
        if uri is None:
            from ..client.estimator import default_tracking_uri

            uri = default_tracking_uri()
        self.backend = open_backend(uri, client=s3_client)
        self.uri = self.backend.uri

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def experiments(self) -> list[str]:
        """Experiment names in the store."""
        names = []
        for key in self.backend.list("", delimiter="/"):
            if key.endswith("/") and not key.startswith(("_", ".")):
                names.append(key.rstrip("/"))
        return sorted(names)

    def run_ids(self, experiment: str | None = None) -> list[tuple[str, str]]:
        """(experiment, run id) pairs, in store order."""
        experiments = [validate_experiment(experiment)] if experiment else self.experiments()
        out = []
        for exp in experiments:
            for key in self.backend.list(exp, delimiter="/"):
                if key.endswith("/"):
                    out.append((exp, key.rstrip("/").split("/")[-1]))
        return out

    def _load(self, pairs: list[tuple[str, str]]) -> list[Run]:
        runs = [Run(self.backend, exp, rid) for exp, rid in pairs]

        def warm(run: Run) -> Run:
            for attr in ("record", "status_record", "job"):
                try:
                    getattr(run, attr)
                except StoreError as exc:
                    run.problems.append(f"{attr}: {exc}")
                    run.__dict__[attr] = {}
            return run

        workers = 16 if self.uri.startswith("s3://") else 4
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(warm, runs))

    def list_runs(self, experiment: str | None = None, *, update_index: bool = False
                  ) -> list[Run]:
        """Every run (optionally of one experiment), newest first.

        Settled runs come from the run index when there is one (:mod:`.index`); the rest
        are read directly. ``update_index=True`` also refreshes the index (best effort).
        """
        from .index import load_runs

        runs = load_runs(self, experiment, update=update_index)
        runs.sort(key=lambda r: str(r.status_record.get("started")
                                    or r.record.get("created") or ""), reverse=True)
        return runs

    def runs(self, experiment: str | None = None) -> Any:
        """A pandas DataFrame, one row per run: id, experiment, status, start/end, params,
        final metrics, commit, dirty (newest first)."""
        import pandas as pd

        rows = [run.summary() for run in self.list_runs(experiment)]
        columns = ["id", "experiment", "status", "start", "end", "epochs", "commit", "dirty",
                   "instance_type", "instance_count"]
        frame = pd.DataFrame(rows, columns=None if rows else columns)
        return frame

    def metrics(self, runs: list[Run] | None = None, experiment: str | None = None) -> Any:
        """Per-epoch metrics of many runs as one long DataFrame (``run``, ``epoch``, ...),
        loaded concurrently, settled runs from the run index."""
        from .index import load_metrics

        return load_metrics(self, self.list_runs(experiment) if runs is None else runs)

    def refresh_index(self, experiment: str | None = None, *, rebuild: bool = False
                      ) -> dict[str, dict[str, int]]:
        """Bring the run index up to date (``sagetrack index``); counts per experiment."""
        from .index import refresh

        return refresh(self, experiment, rebuild=rebuild)

    def run(self, run_id: str, experiment: str | None = None) -> Run:
        """The run with this id (a training job name); RunNotFound with suggestions if none."""
        validate_run_id(run_id)
        experiments = [validate_experiment(experiment)] if experiment else self.experiments()
        for exp in experiments:
            run = Run(self.backend, exp, run_id)
            if self.backend.exists(f"{run.prefix}/{RUN_FILES['run']}") or \
                    self.backend.exists(f"{run.prefix}/{RUN_FILES['status']}"):
                return run
        known = [rid for _e, rid in self.run_ids(experiment)]
        raise RunNotFound(run_id, difflib.get_close_matches(run_id, known, n=3, cutoff=0.5))

