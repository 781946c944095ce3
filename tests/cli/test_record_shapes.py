"""Records of any shape never break reading: a value of the wrong type anywhere in any
record file becomes a problem of its run; every other run, every ``Store`` and ``Run``
method and every command keep working.

A hand-made store with eight wrongly shaped runs shows what users see; property-based
tests put any JSON value into any field of any record file next to a valid run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagetrack.api import Store
from sagetrack.cli.main import main
from sagetrack.compare import diff
from sagetrack.errors import SagetrackError

from ..support.records import write_offline_run

EXPERIMENT = "exp"
GOOD, BAD = "good-1", "bad-1"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run ``sagetrack ARGV`` in this process; (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _set(doc: Any, path: tuple[str | int, ...], value: Any) -> Any:
    """``doc`` with the value at ``path`` replaced (missing objects are created)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(doc) if isinstance(doc, list) else []
        items[head:head + 1] = [_set(items[head] if head < len(items) else {}, rest, value)]
        return items
    doc = dict(doc) if isinstance(doc, dict) else {}
    doc[head] = _set(doc.get(head), rest, value)
    return doc


def mutate(run_dir: Path, name: str, path: tuple[str | int, ...], value: Any) -> None:
    """Put ``value`` at ``path`` of record file ``name`` (of its first line for JSONL)."""
    file = run_dir / name
    if name.endswith(".jsonl"):
        rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        rows[0] = _set(rows[0], path, value)
        file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        file.write_text(json.dumps(_set(_read_json(file), path, value)))


def write_complete_run(root: Path, run_id: str, day: str = "2024-05-01") -> None:
    """A valid run with a job outcome, its code tarball and input data on local disk."""
    write_offline_run(root, EXPERIMENT, run_id, started=f"{day}T10:00:00.000+00:00",
                      job_doc={"status": "Completed", "failure_reason": None,
                               "training_end": f"{day}T10:12:30.000+00:00",
                               "model_artifacts": "s3://bucket/model.tar.gz"})


def make_store(root: Path) -> Path:
    """``root/store`` with two valid, complete runs (``good-1``, ``bad-1``), the second
    with step and batch rows too."""
    write_complete_run(root, GOOD, "2024-05-01")
    write_complete_run(root, BAD, "2024-05-02")
    run_dir = root / "store" / EXPERIMENT / BAD
    (run_dir / "steps.jsonl").write_text('{"step": 0, "time": "t", "metrics": {"x": 1.0}}\n')
    (run_dir / "batches").mkdir()
    (run_dir / "batches" / "000001-001-00000.jsonl").write_text(
        '{"epoch": 1, "batch": 0, "step": 0, "time": 1.5, "metrics": {"loss": 0.9}}\n')
    return root / "store"


# -- what a user sees ----------------------------------------------------------------------
WRONG_SHAPES: dict[str, list[tuple[str, tuple[str | int, ...], Any]]] = {
    "launch-record-is-a-list": [("run.json", (), [1, 2, 3])],
    "code-is-a-string": [("run.json", ("code",), "train.py")],
    "params-is-a-list": [("run.json", ("params",), ["lr", 0.1])],
    "inputs-and-job-junk": [("run.json", ("inputs", "training"), "s3://x"),
                            ("run.json", ("job",), [1]), ("run.json", ("reproduces",), "y"),
                            ("run.json", ("code", "tarball", "files"), {"a": 1})],
    "status-metrics-is-a-list": [("status.json", ("metrics",), ["loss"]),
                                 ("status.json", ("status",), 3)],
    "status-failure-junk": [("status.json", ("failure",), "boom"),
                            ("status.json", ("last_epoch",), 10 ** 400),
                            ("status.json", ("started",), {"t": 1})],
    "job-outcome-junk": [("job.json", ("status",), {"x": 1}),
                         ("job.json", ("failure_reason",), ["a"]),
                         ("job.json", ("training_end",), 5)],
    "epoch-rows-junk": [("metrics.jsonl", ("epoch",), "1"),
                        ("metrics.jsonl", ("metrics", "loss"), {"v": 1})],
}


@pytest.fixture(scope="module")
def wrong_shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    store = make_store(root)
    for run_id, changes in WRONG_SHAPES.items():
        write_complete_run(root, run_id, "2024-05-03")
        for name, path, value in changes:
            mutate(store / EXPERIMENT / run_id, name, path, value)
    return root


def test_runs_lists_every_run_and_marks_those_with_record_problems(wrong_shapes):
    code, out, err = cli("runs", "--uri", str(wrong_shapes / "store"))
    assert (code, err) == (0, "")
    status = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]
              if line.split() and line.split()[0] in {GOOD, BAD, *WRONG_SHAPES}}
    assert status[GOOD] == "completed" and status[BAD] == "completed"
    assert {status[run_id] for run_id in WRONG_SHAPES} <= {"completed!", "launched!"}
    assert sorted(status) == sorted([GOOD, BAD, *WRONG_SHAPES])
    assert "8 runs have record problems: sagetrack show ID" in out

    code, out, err = cli("runs", "--uri", str(wrong_shapes / "store"), "--json")
    rows = {row["id"]: row for row in json.loads(out)}
    assert (code, err) == (0, "") and rows[GOOD]["problems"] == []
    assert all(rows[run_id]["problems"] for run_id in WRONG_SHAPES)
    assert rows["params-is-a-list"]["problems"] == [
        "run.json: params: expected an object, got a list; ignored"]


@pytest.mark.parametrize("run_id", sorted(WRONG_SHAPES))
def test_every_command_reads_a_wrongly_shaped_run_cleanly(wrong_shapes, run_id, tmp_path):
    uri = str(wrong_shapes / "store")
    code, out, err = cli("show", run_id, "--uri", uri)
    assert (code, err) == (0, "")
    assert "Problems (records unreadable or partial)" in out
    problems = Store(uri).run(run_id)
    problems.best_metrics, problems.environment, problems.model  # noqa: B018
    for problem in problems.problems:
        assert problem in out
    assert cli("show", run_id, "--uri", uri, "--json")[0] == 0
    assert cli("diff", GOOD, run_id, "--uri", uri)[0] == 0
    code, _out, err = cli("plot", GOOD, run_id, "--uri", uri, "-o", str(tmp_path / "c.png"))
    assert code == 0 and (tmp_path / "c.png").is_file(), err
    for argv in (["checkout", run_id, str(tmp_path / "co")], ["reproduce", run_id, "--dry-run"]):
        code, out, err = cli(*argv, "--uri", uri)
        assert code in (0, 1) and "Traceback" not in err
        assert (out if code == 0 else err).strip()  # a result, or a message saying why


def test_a_launch_record_of_another_shape_reads_as_missing(wrong_shapes):
    run = Store(str(wrong_shapes / "store")).run("launch-record-is-a-list")
    assert run.record == {} and run.params == {} and run.status == "completed"
    assert run.problems == ["run.json: expected a JSON object, got a list; ignored"]


def test_strings_no_path_region_or_terminal_can_take_give_clear_errors(tmp_path):
    write_complete_run(tmp_path, GOOD)
    run_dir = tmp_path / "store" / EXPERIMENT / GOOD
    mutate(run_dir, "run.json", ("code", "tarball", "uri"), "file:///tmp/code\x00.tar.gz")
    mutate(run_dir, "run.json", ("job", "region"), "us east 1")
    record = (run_dir / "run.json").read_text().replace('"epochs": 3', '"epochs": "\\ud800"')
    (run_dir / "run.json").write_text(record)
    uri = str(tmp_path / "store")
    code, out, err = cli("show", GOOD, "--uri", uri)
    assert code == 0 and re.search(r"\n  epochs +\?\n", out)
    code, out, err = cli("checkout", GOOD, str(tmp_path / "co"), "--uri", uri)
    assert code == 1 and "Invalid record key" in err and "NUL" in err
    code, out, err = cli("reproduce", GOOD, "--dry-run", "--uri", uri)
    assert code == 1 and "Cannot use AWS region 'us east 1'" in err and "--region" in err


# -- any value in any field ----------------------------------------------------------------
#: (record file, path of the field; () is the whole record or JSONL line)
TARGETS: list[tuple[str, tuple[str | int, ...]]] = [
    ("run.json", ()), ("run.json", ("params",)), ("run.json", ("params", "epochs")),
    ("run.json", ("code",)), ("run.json", ("code", "commit")), ("run.json", ("code", "dirty")),
    ("run.json", ("code", "tarball")), ("run.json", ("code", "tarball", "uri")),
    ("run.json", ("code", "tarball", "files")), ("run.json", ("code", "tarball", "sha256")),
    ("run.json", ("inputs",)), ("run.json", ("inputs", "training")),
    ("run.json", ("inputs", "training", "uri")), ("run.json", ("inputs", "training", "sha256")),
    ("run.json", ("inputs", "training", "bytes")), ("run.json", ("job",)),
    ("run.json", ("job", "region")), ("run.json", ("job", "environment")),
    ("run.json", ("job", "instance_count")), ("run.json", ("job", "metric_definitions")),
    ("run.json", ("artifacts",)), ("run.json", ("artifacts", "model")),
    ("run.json", ("reproduces",)), ("run.json", ("reproduces", "code")),
    ("run.json", ("reproduces", "run_id")), ("run.json", ("created",)),
    ("run.json", ("sagemaker_params",)), ("run.json", ("tracking",)),
    ("status.json", ()), ("status.json", ("status",)), ("status.json", ("metrics",)),
    ("status.json", ("metrics", "loss")), ("status.json", ("failure",)),
    ("status.json", ("failure", "traceback")), ("status.json", ("started",)),
    ("status.json", ("ended",)), ("status.json", ("last_epoch",)),
    ("status.json", ("attempt",)), ("status.json", ("fits",)),
    ("job.json", ()), ("job.json", ("status",)), ("job.json", ("failure_reason",)),
    ("job.json", ("model_artifacts",)), ("job.json", ("training_end",)),
    ("environment.json", ()), ("environment.json", ("packages",)),
    ("environment.json", ("python",)), ("environment.json", ("cpu_count",)),
    ("model.json", ()), ("model.json", ("files",)), ("model.json", ("files", 0)),
    ("model.json", ("files", 0, "bytes")),
    ("metrics.jsonl", ()), ("metrics.jsonl", ("epoch",)), ("metrics.jsonl", ("metrics",)),
    ("metrics.jsonl", ("metrics", "loss")), ("metrics.jsonl", ("fit",)),
    ("metrics.jsonl", ("duration_s",)),
    ("steps.jsonl", ()), ("steps.jsonl", ("step",)), ("steps.jsonl", ("metrics",)),
    ("batches/000001-001-00000.jsonl", ()), ("batches/000001-001-00000.jsonl", ("epoch",)),
    ("batches/000001-001-00000.jsonl", ("batch",)),
    ("batches/000001-001-00000.jsonl", ("metrics",)),
]
FILES = sorted({name for name, _path in TARGETS} | {"code.diff"})

scalars = (st.none() | st.booleans() | st.integers()
           | st.integers(min_value=10 ** 300, max_value=10 ** 400).map(lambda n: -n)
           | st.integers(min_value=10 ** 300, max_value=10 ** 400)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
#: a change: a value at one field, or a whole record file replaced by arbitrary bytes
changes = st.one_of(
    st.tuples(st.sampled_from(TARGETS), json_values),
    st.tuples(st.tuples(st.sampled_from(FILES), st.just(("<bytes>",))), st.binary(max_size=60)))

RUN_PROPERTIES = [
    "record", "status_record", "job", "params", "code", "tarball", "inputs", "job_config",
    "artifacts", "reproduces", "environment", "model", "diff", "started", "ended", "status",
    "incomplete", "failure", "final_metrics", "epochs", "step_rows", "batch_rows", "metrics",
    "best_metrics", "steps", "batches", "problems", "prefix"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two valid runs, copied for every example (their tarball and data stay here)."""
    root = tmp_path_factory.mktemp("template")
    make_store(root)
    return root / "store"


@contextlib.contextmanager
def changed_store(template: Path, change: tuple[Any, Any]) -> Iterator[Path]:
    """A copy of ``template`` with ``change`` applied to run ``bad-1``."""
    (name, path), value = change
    root = Path(tempfile.mkdtemp(prefix="shapes-"))
    try:
        store = root / "store"
        shutil.copytree(template, store)
        run_dir = store / EXPERIMENT / BAD
        if path == ("<bytes>",):
            (run_dir / name).write_bytes(value)
        else:
            mutate(run_dir, name, path, value)
        yield store
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _quietly(fn: Any, *args: Any) -> Any:
    """``fn(*args)``; a SagetrackError is an allowed answer (returned, not raised)."""
    try:
        return fn(*args)
    except SagetrackError as exc:
        return exc


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(change=changes)
def test_any_value_anywhere_leaves_the_api_working(template, change):
    with changed_store(template, change) as root:
        store = Store(str(root))
        assert [r.id for r in store.list_runs()][-1] == GOOD  # listed, oldest
        for method in (store.experiments, store.run_ids, store.runs, store.metrics,
                       store.refresh_index, store.list_runs):
            _quietly(method)
        good, bad = store.run(GOOD), store.run(BAD)
        for name in RUN_PROPERTIES:
            getattr(bad, name)
        problems = list(bad.problems)
        for name in RUN_PROPERTIES:  # reading again reports nothing new
            getattr(bad, name)
        assert bad.problems == problems and good.problems == []
        bad.summary(), repr(bad), bad.training_inputs()
        result = diff(good, bad)
        str(result), json.dumps(result.to_dict(), default=str)
        assert all(isinstance(p, str) for p in bad.problems)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(change=changes)
def test_any_value_anywhere_leaves_every_command_working(template, change):
    with changed_store(template, change) as root:
        uri = str(root)
        outputs = {}
        for argv in (["runs"], ["runs", "--json"], ["show", BAD], ["show", BAD, "--json"],
                     ["diff", GOOD, BAD], ["plot", GOOD, BAD, "-o", str(root / "c.png")],
                     ["checkout", BAD, str(root / "checkout")],
                     ["reproduce", BAD, "--dry-run"], ["index"]):
            code, out, err = cli(*argv, "--uri", uri)
            assert code in (0, 1, 2), (argv, code)
            assert "Traceback" not in err, (argv, err)
            assert code == 0 or err.strip(), argv  # an error says why
            outputs[" ".join(argv[:2])] = out
        assert GOOD in outputs["runs"]
        assert GOOD in [row["id"] for row in json.loads(outputs["runs --json"])]
