"""Read runs back from a store: the record reader under ``sagetrack.Run``/``Store``.

:class:`Run` reads one run's records lazily through the tolerant parser
(:mod:`.parse`), so every property has the type :mod:`.schema` gives it whatever the
files hold: a missing, damaged or wrongly shaped record leaves its empty value and a line
in :attr:`Run.problems`, never an exception. :class:`Store` lists and finds runs, from the
run index (:mod:`.index`) where it helps. The user-facing classes in :mod:`sagetrack.api`
add plotting and reproduction and the default store.
"""

from __future__ import annotations

import difflib
import json
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

from .._redact import redact_bytes
from ..errors import AmbiguousRunId, RecordNotFound, RunNotFound
from .backends import Backend, open_backend
from .layout import validate_experiment, validate_run_id
from .metrics import metric_goal, step_table
from .params import flat_params
from .parse import finite, parse_document, parse_rows
from .schema import (
    BATCHES_DIR,
    DIFF_FILE,
    ENVIRONMENT_FILE,
    JOB_FILE,
    JOB_TERMINAL,
    METRICS_FILE,
    MODEL_FILE,
    RUN_FILE,
    STATUS_FILE,
    STEPS_FILE,
    TERMINAL,
    ArtifactsDoc,
    BatchRow,
    ChannelDoc,
    CodeDoc,
    EnvironmentDoc,
    EpochRow,
    FailureDoc,
    JobConfigDoc,
    JobDoc,
    ModelDoc,
    ReproducesDoc,
    RunDoc,
    RunsIndexLine,
    StatusDoc,
    StepRow,
    TarballDoc,
    run_status,
    status_disagreement,
)

__all__ = ["Run", "Store", "StoreBase", "metric_goal"]

R = TypeVar("R", bound="Run")


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


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

    def read(self, name: str, *, redact: bool = True) -> bytes | None:
        """The bytes of the run's record file ``name`` (None when there is none), through
        the redactor every write goes through: a record written by another tool or an
        older version shows no secret in any view either. ``redact=False`` is for rows of
        numbers (epochs, batches), whose only text is metric names and times."""
        try:
            data = self.backend.get(f"{self.prefix}/{name}")
        except RecordNotFound:
            return None
        return redact_bytes(name, data) if redact else data

    # -- records -------------------------------------------------------------------------
    @cached_property
    def record(self) -> RunDoc:
        """The launch record (``run.json``) written by the client at ``fit()``."""
        return parse_document(self.read(RUN_FILE), RUN_FILE, RunDoc, self.problems)

    @cached_property
    def status_record(self) -> StatusDoc:
        """The status snapshot (``status.json``)."""
        return parse_document(self.read(STATUS_FILE), STATUS_FILE, StatusDoc, self.problems)

    @cached_property
    def job(self) -> JobDoc:
        """The job outcome the client saw (``job.json``), if it waited or ingested it."""
        return parse_document(self.read(JOB_FILE), JOB_FILE, JobDoc, self.problems)

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters as the script received them (``sagemaker_*`` excluded)."""
        return dict(self.record.get("params") or {})

    @property
    def code(self) -> CodeDoc:
        """Code version: git commit, branch, remote, dirty flag, tarball URI and hashes."""
        return cast(CodeDoc, dict(self.record.get("code") or {}))

    @property
    def tarball(self) -> TarballDoc:
        """The code tarball SageMaker ran: URI, sha256, content hash, files (``{}`` if none)."""
        return cast(TarballDoc, dict(self.code.get("tarball") or {}))

    @property
    def inputs(self) -> dict[str, ChannelDoc]:
        """Input channels: URI and fingerprint (objects, bytes, sha256)."""
        return dict(self.record.get("inputs") or {})

    @property
    def job_config(self) -> JobConfigDoc:
        """Image, instance type/count, framework versions, spot and checkpoint settings."""
        return cast(JobConfigDoc, dict(self.record.get("job") or {}))

    @property
    def artifacts(self) -> ArtifactsDoc:
        """Where SageMaker puts the code, model and output archives."""
        return cast(ArtifactsDoc, dict(self.record.get("artifacts") or {}))

    @property
    def reproduces(self) -> ReproducesDoc:
        """The run this run repeats (``{}`` unless launched by ``sagetrack.reproduce``)."""
        return cast(ReproducesDoc, dict(self.record.get("reproduces") or {}))

    @cached_property
    def environment(self) -> EnvironmentDoc:
        """The container environment recorded by the chief host."""
        return parse_document(self.read(ENVIRONMENT_FILE), ENVIRONMENT_FILE, EnvironmentDoc,
                              self.problems)

    @cached_property
    def model(self) -> dict[str, Any]:
        """Files saved under SM_MODEL_DIR (path, bytes, sha256) and the model.tar.gz URI."""
        doc = parse_document(self.read(MODEL_FILE), MODEL_FILE, ModelDoc, self.problems)
        uri = self.job.get("model_artifacts") or self.artifacts.get("model")
        return {**doc, "uri": uri} if doc or uri else {}

    @cached_property
    def diff(self) -> str:
        """The uncommitted diff recorded at launch ('' when clean or not in git)."""
        data = self.read(DIFF_FILE)
        return data.decode("utf-8", errors="replace") if data else ""

    @property
    def started(self) -> str | None:
        """When the job started (else when it was launched), ISO 8601."""
        return self.status_record.get("started") or self.record.get("created")

    @property
    def ended(self) -> str | None:
        """When the run ended (the recorded status, else the job's end), ISO 8601."""
        return self.status_record.get("ended") or self.job.get("training_end")

    @property
    def status(self) -> str:
        """completed, failed, stopped, running, launched, or unknown. SageMaker's outcome
        wins over the container's where both exist; a disagreement is in ``problems``."""
        recorded, job_status = self.status_record.get("status"), self.job.get("status")
        conflict = status_disagreement(recorded, job_status)
        if conflict and conflict not in self.problems:
            self.problems.append(conflict)
        return run_status(recorded, job_status, bool(self.record))

    @property
    def incomplete(self) -> bool:
        """True when the job ended but the run's records did not reach a final status."""
        return self.status_record.get("status") not in TERMINAL and (
            self.job.get("status") in JOB_TERMINAL or bool(self.problems))

    @property
    def failure(self) -> FailureDoc | None:
        """Exception type, message and traceback tail of a failed run (or the job's reason)."""
        failure = self.status_record.get("failure")
        if failure:
            return cast(FailureDoc, dict(failure))
        reason = self.job.get("failure_reason")
        if reason:
            return FailureDoc(type="JobFailure", message=reason)
        return None

    @property
    def final_metrics(self) -> dict[str, float]:
        """The last recorded value of every metric: epoch, custom-loop and output values
        (``status.json``; when that holds none, the last values of the epoch and step
        rows)."""
        recorded = self.status_record.get("metrics")
        if recorded:
            return dict(recorded)
        final: dict[str, float] = {}
        for row in self.epochs:
            final.update(row.get("metrics", {}))
        for values in step_table(self.step_rows).values():
            final.update(values)
        return final

    @cached_property
    def epochs(self) -> list[EpochRow]:
        """Raw epoch rows from ``metrics.jsonl``."""
        return parse_rows(self.read(METRICS_FILE, redact=False), METRICS_FILE, EpochRow,
                          self.problems)

    @cached_property
    def step_rows(self) -> list[StepRow]:
        """Raw rows from ``steps.jsonl``."""
        return parse_rows(self.read(STEPS_FILE), STEPS_FILE, StepRow, self.problems)

    @property
    def metrics(self) -> Any:
        """Per-epoch metrics as a pandas DataFrame indexed by epoch (from 1)."""
        import pandas as pd

        # a restarted attempt may record an epoch again: the latest row wins
        latest: dict[tuple[int, int], dict[str, Any]] = {}
        for r in self.epochs:
            fit = r.get("fit", 0)
            latest[(fit, r["epoch"])] = {**r.get("metrics", {}), "epoch": r["epoch"],
                                         "duration_s": r.get("duration_s"), "fit": fit}
        rows = [latest[key] for key in sorted(latest)]
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
        rows: list[EpochRow] | list[StepRow] = self.epochs or self.step_rows
        for row in rows:
            for name, raw in row.get("metrics", {}).items():
                goal, value = metric_goal(name), finite(raw)
                if goal is None or value is None:
                    continue
                if name not in best or (value < best[name] if goal == "min"
                                        else value > best[name]):
                    best[name] = value
        return best

    @property
    def steps(self) -> Any:
        """Values from ``log_metrics`` and from output matched by ``metric_definitions``,
        as a DataFrame indexed by step, one column per metric (NaN where a metric has no
        value at a step).

        A value logged with a step is at that step. Values recorded without one (every
        output value, ``log_metrics()`` without ``step``) are numbered in the order they
        were recorded, across metrics, the values of one output line sharing a number:
        a validation value printed after an epoch comes after that epoch's training
        values. Older records are renumbered the same way (:func:`.metrics.step_table`).
        """
        import pandas as pd

        table = step_table(self.step_rows)
        if not table:
            return pd.DataFrame(index=pd.Index([], name="step"))
        frame = pd.DataFrame.from_dict(table, orient="index")
        frame.index = pd.Index(frame.index, name="step")
        return frame

    @cached_property
    def batch_rows(self) -> list[BatchRow]:
        """Raw rows of the ``batches/`` files, in file name order (epoch, attempt, chunk)."""
        rows: list[BatchRow] = []
        for key in sorted(self.backend.list(f"{self.prefix}/{BATCHES_DIR}")):
            name = key[len(self.prefix) + 1:]
            rows += parse_rows(self.read(name, redact=False), name, BatchRow, self.problems)
        return rows

    @property
    def batches(self) -> Any:
        """Every-N-batches rows (when ``track_batches`` was set), one row per record."""
        import pandas as pd

        rows = [{**r.get("metrics", {}), "step": r["step"], "epoch": r["epoch"],
                 "batch": r["batch"]} for r in self.batch_rows]
        if not rows:
            return pd.DataFrame(index=pd.Index([], name="step"))
        # where a restarted attempt recorded a batch again, its row (read later) wins
        frame = pd.DataFrame(rows).drop_duplicates(["epoch", "batch"], keep="last")
        return frame.sort_values("step", kind="stable").set_index("step")

    def _prime(self: R, entry: RunsIndexLine) -> R:
        """Seed the records of a run index line (checked when the index was read)."""
        self.__dict__.update(record=entry.get("record", {}),
                             status_record=entry.get("status", {}),
                             job=entry.get("job", {}), best_metrics=entry.get("best", {}))
        return self

    def summary(self) -> dict[str, Any]:
        """One flat row for :meth:`Store.runs`."""
        code, job = self.code, self.job_config
        row: dict[str, Any] = {
            "id": self.id,
            "experiment": self.experiment,
            "status": self.status,
            "start": self.started,
            "end": self.ended,
            "epochs": self.status_record.get("last_epoch"),
            "commit": code.get("commit"),
            "dirty": code.get("dirty"),
            "instance_type": job.get("instance_type"),
            "instance_count": job.get("instance_count"),
        }
        row.update(flat_params(self.params, "params.", leaf=_cell))
        for key, value in self.final_metrics.items():
            row[f"metrics.{key}"] = value
        if self.problems:
            row["problems"] = "; ".join(self.problems)
        return row


class StoreBase(Generic[R]):
    """A tracking store (a local folder or ``s3://bucket/prefix``) read back as runs of
    :attr:`run_class`."""

    #: the class of the runs :meth:`run` and :meth:`list_runs` return
    run_class: type[R]

    def __init__(self, uri: str, *, s3_client: Any = None) -> None:
        self.backend = open_backend(uri, client=s3_client)
        self.uri = self.backend.uri

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def new_run(self, experiment: str, run_id: str) -> R:
        """A reader of run ``run_id`` of ``experiment`` (nothing is read yet)."""
        return self.run_class(self.backend, experiment, run_id)

    def experiments(self) -> list[str]:
        """Experiment names in the store (names starting with ``_`` are reserved)."""
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

    def load(self, pairs: list[tuple[str, str]]) -> list[R]:
        """Runs with their launch record, status and job outcome read (concurrently from
        S3); a record that cannot be read becomes a problem of its run."""
        from .index import warm

        return warm([self.new_run(exp, rid) for exp, rid in pairs],
                    {"record": {}, "status_record": {}, "job": {}})

    def list_runs(self, experiment: str | None = None, *, update_index: bool = False
                  ) -> list[R]:
        """Every run (optionally of one experiment), newest first.

        Settled runs come from the run index when there is one (:mod:`.index`); the rest
        are read directly. ``update_index=True`` also refreshes the index (best effort).
        """
        from .index import load_runs

        runs = load_runs(self, experiment, update=update_index)
        runs.sort(key=lambda r: str(r.started or ""), reverse=True)
        return runs

    def runs(self, experiment: str | None = None) -> Any:
        """A pandas DataFrame, one row per run: id, experiment, status, start/end, params,
        final metrics, commit, dirty (newest first)."""
        import pandas as pd

        rows = [run.summary() for run in self.list_runs(experiment)]
        columns = ["id", "experiment", "status", "start", "end", "epochs", "commit", "dirty",
                   "instance_type", "instance_count"]
        return pd.DataFrame(rows, columns=None if rows else columns)

    def metrics(self, runs: list[R] | None = None, experiment: str | None = None) -> Any:
        """Per-epoch metrics of many runs as one long DataFrame (``run``, ``epoch``, ...),
        loaded concurrently, settled runs from the run index."""
        from .index import load_metrics

        return load_metrics(self, self.list_runs(experiment) if runs is None else runs)

    def refresh_index(self, experiment: str | None = None, *, rebuild: bool = False
                      ) -> dict[str, dict[str, int]]:
        """Bring the run index up to date (``sagetrack index``); counts per experiment."""
        from .index import refresh

        return refresh(self, experiment, rebuild=rebuild)

    def run(self, run_id: str, experiment: str | None = None) -> R:
        """The run with this id (a training job name), or else the only run whose id
        starts with ``run_id``.

        An exact id always wins. Raises :class:`~sagetrack.errors.AmbiguousRunId` (listing
        the candidates) when ``run_id`` starts several run ids, and
        :class:`~sagetrack.errors.RunNotFound` with close matches when it starts none.
        """
        validate_run_id(run_id)
        experiments = [validate_experiment(experiment)] if experiment else self.experiments()
        for exp in experiments:
            run = self.new_run(exp, run_id)
            if self.backend.exists(f"{run.prefix}/{RUN_FILE}") or \
                    self.backend.exists(f"{run.prefix}/{STATUS_FILE}"):
                return run
        pairs = self.run_ids(experiment)
        matches = sorted({rid for _e, rid in pairs if rid.startswith(run_id)})
        if len(matches) > 1:
            raise AmbiguousRunId(run_id, matches)
        if matches:
            exp = next(e for e, rid in pairs if rid == matches[0])
            return self.new_run(exp, matches[0])
        known = [rid for _e, rid in pairs]
        raise RunNotFound(run_id, difflib.get_close_matches(run_id, known, n=3, cutoff=0.5))


class Store(StoreBase[Run]):
    """A tracking store read back as plain :class:`Run` records."""

    run_class = Run
