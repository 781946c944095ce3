"""One record schema: docs/record-format.md and ``store/schema.py`` agree, and the one
tolerant parser keeps what is valid and reports the rest."""

from __future__ import annotations

import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagetrack.store import parse, schema
from sagetrack.store.parse import MAX_DEPTH, MAX_PROBLEMS, check, parse_document, parse_rows
from sagetrack.store.reader import Store
from tests.support.scripts import run_script, store_of

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "record-format.md").read_text()

#: every record shape, and the file it describes
SHAPES: list[type] = [
    schema.RunDoc, schema.CodeDoc, schema.TarballDoc, schema.ChannelDoc, schema.JobConfigDoc,
    schema.ArtifactsDoc, schema.TrackingDoc, schema.ReproducesDoc, schema.StatusDoc,
    schema.FailureDoc, schema.JobDoc, schema.EnvironmentDoc, schema.ModelDoc,
    schema.ModelFileDoc, schema.EpochRow, schema.StepRow, schema.BatchRow,
    schema.IdentityMarker, schema.IndexHeader, schema.RunsIndexLine, schema.MetricsIndexLine]
#: the shape of each ```json example, by the section it is in
EXAMPLES = {"run.json": schema.RunDoc, "status.json": schema.StatusDoc,
            "job.json": schema.JobDoc, "environment.json": schema.EnvironmentDoc,
            "model.json": schema.ModelDoc}


def _layout_block() -> list[str]:
    block = DOC.split("```\n<tracking_uri>/", 1)[1].split("```", 1)[0]
    return [re.split(r"\s{2,}", line.strip())[0] for line in block.splitlines()
            if line.strip()]


def _names() -> set[str]:
    return {*schema.RUN_FILES.values(), schema.HOSTS_DIR, schema.BATCHES_DIR,
            *schema.RESERVED_PREFIXES, schema.INDEX_RUNS_FILE, schema.INDEX_METRICS_FILE,
            schema.FORMAT, schema.INDEX_FORMAT, *schema.RUN_STATUSES, *schema.JOB_STATUSES,
            schema.UNKNOWN}


def test_every_name_and_status_of_the_schema_is_documented():
    assert [n for n in sorted(_names())
            if not re.search(rf"(?<![\w.-]){re.escape(n)}(?![\w-])", DOC)] == []


def test_every_file_in_the_documented_layout_is_in_the_schema():
    files = set(schema.RUN_FILES.values())
    unknown = []
    for entry in _layout_block():
        if re.fullmatch(r"<[^>]+>/", entry):
            continue  # <experiment>/, <run id>/
        top = entry.split("/")[0]
        if "/" not in entry:
            ok = entry in files
        elif top in (schema.HOSTS_DIR, schema.BATCHES_DIR):
            ok = (entry == schema.host_file("<host>") or entry == f"{schema.BATCHES_DIR}/"
                  "<epoch>-<attempt>-<chunk>.jsonl")
        else:
            ok = top in schema.RESERVED_PREFIXES and (
                top != schema.INDEX_PREFIX or entry.split("/")[-1] in (
                    schema.INDEX_RUNS_FILE, schema.INDEX_METRICS_FILE))
        if not ok:
            unknown.append(entry)
    assert unknown == []
    documented = {e for e in _layout_block() if "/" not in e} | {
        e.split("/")[0] for e in _layout_block() if "/" in e and not e.startswith("<")}
    assert files | {schema.HOSTS_DIR, schema.BATCHES_DIR, *schema.RESERVED_PREFIXES} <= \
        documented


def _backticked(after: str) -> list[str]:
    line = DOC.split(after, 1)[1].split(".", 1)[0]
    return re.findall(r"`([A-Za-z]+)`", line)


def test_status_vocabularies_match_the_doc():
    assert tuple(_backticked("`status` is one of")) == schema.RUN_STATUSES
    assert tuple(_backticked("`status` is SageMaker's `TrainingJobStatus`:")) == \
        schema.JOB_STATUSES
    assert set(schema.TERMINAL) < set(schema.RUN_STATUSES)
    assert set(schema.JOB_TERMINAL) < set(schema.JOB_STATUSES)
    assert set(schema.JOB_TO_RUN_STATUS) == set(schema.JOB_STATUSES)


def test_every_key_of_every_shape_is_documented():
    missing = [f"{shape.__name__}.{key}" for shape in SHAPES for key in get_type_hints(shape)
               if f'"{key}"' not in DOC and f"`{key}`" not in DOC]
    assert missing == []


def _json_examples() -> list[tuple[type, Any]]:
    out = []
    for section in DOC.split("\n## ")[1:]:
        title = section.split("\n", 1)[0]
        for block in re.findall(r"```json\n(.*?)```", section, re.S):
            if title.startswith("`metrics.jsonl`"):
                decoder, text = json.JSONDecoder(), block.strip()
                while text:
                    row, end = decoder.raw_decode(text)
                    text = text[end:].strip()
                    shape = (schema.BatchRow if "batch" in row else schema.StepRow
                             if "step" in row else schema.EpochRow)
                    out.append((shape, row))
                continue
            shape = next(s for name, s in EXAMPLES.items() if f"`{name}`" in title)
            out.append((shape, json.loads(block)))
    return out


def _unknown_keys(value: Any, tp: Any, path: str) -> list[str]:
    """Keys of ``value`` that ``tp`` does not name (free-form mappings are not walked)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [k for a in get_args(tp) if a is not type(None)
                for k in _unknown_keys(value, a, path)][:1] if value is not None else []
    if typing.is_typeddict(tp) and isinstance(value, dict):
        hints = get_type_hints(tp)
        return [f"{path}.{k}" for k in value if k not in hints] + [
            u for k, v in value.items() if k in hints
            for u in _unknown_keys(v, hints[k], f"{path}.{k}")]
    if origin is list and isinstance(value, list):
        return [u for v in value for u in _unknown_keys(v, get_args(tp)[0], path)]
    if origin is dict and isinstance(value, dict):
        return [u for v in value.values() for u in _unknown_keys(v, get_args(tp)[1], path)]
    return []


def test_the_documented_examples_are_valid_records_with_known_keys():
    examples = _json_examples()
    assert {shape for shape, _v in examples} == {*EXAMPLES.values(), schema.EpochRow,
                                                 schema.StepRow, schema.BatchRow}
    for shape, value in examples:
        problems: list[str] = []
        assert check(value, shape, shape.__name__, problems) is not None
        assert problems == []
        assert _unknown_keys(value, shape, shape.__name__) == []


# -- the parser ----------------------------------------------------------------------------
def test_wrong_types_are_dropped_and_reported_the_rest_kept():
    problems: list[str] = []
    record = parse_document(json.dumps({
        "params": {"lr": 0.1, "layers": [1, {"a": None}]}, "code": "train.py",
        "inputs": {"training": "s3://b/x", "val": {"uri": "s3://b/v", "objects": 10 ** 400}},
        "job": {"environment": ["A=1"], "instance_count": 2}, "reproduces": None,
        "newer_key": {"anything": [1]}}).encode(), "run.json", schema.RunDoc, problems)
    assert record == {"params": {"lr": 0.1, "layers": [1, {"a": None}]},
                      "inputs": {"val": {"uri": "s3://b/v"}}, "job": {"instance_count": 2},
                      "reproduces": None, "newer_key": {"anything": [1]}}
    assert problems == [
        "run.json: code: expected an object, got the string 'train.py'; ignored",
        "run.json: inputs.training: expected an object, got the string 's3://b/x'; ignored",
        "run.json: inputs.val.objects: expected an integer, got a 401-digit integer; ignored",
        "run.json: job.environment: expected an object, got a list; ignored"]


def test_metric_values_must_be_numbers_nan_included():
    problems: list[str] = []
    status = parse_document(
        b'{"status": "exploded", "metrics": {"loss": NaN, "acc": 1, "f1": {"v": 1}, '
        b'"ok": true, "inf": -Infinity}, "last_epoch": "3", "failure": null}',
        "status.json", schema.StatusDoc, problems)
    assert math.isnan(status["metrics"]["loss"])
    assert {k: v for k, v in status["metrics"].items() if k != "loss"} == {
        "acc": 1, "inf": -math.inf}
    assert status["failure"] is None and "status" not in status and "last_epoch" not in status
    assert len(problems) == 4 and "status: expected one of launched, running" in problems[0]


@pytest.mark.parametrize("data, problem", [
    (b"[1, 2]", "status.json: expected a JSON object, got a list; ignored"),
    (b'"running"', "status.json: expected a JSON object, got the string 'running'; ignored"),
    (b"[" * 100_000, "status.json: not valid JSON (nested too deeply)"),
    (b"\xff\xfe{", "status.json: not valid JSON"),
    (b"1" * 5000, "status.json: not valid JSON"),  # beyond Python's integer digits limit
])
def test_whole_files_that_are_not_objects(data, problem):
    problems: list[str] = []
    assert parse_document(data, "status.json", schema.StatusDoc, problems) == {}
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_rows_need_their_key_and_bad_lines_are_counted_not_listed():
    lines = [b'{"epoch": 1, "metrics": {"loss": 1.0}}', b"[1]", b'{"epoch": null}',
             b'{"metrics": {}}', b'{"epoch": true}', b'{"epoch": 2, "metrics": [1]}']
    lines += [b"{}"] * 20 + [b'{"epoch": 3']
    problems: list[str] = []
    rows = parse_rows(b"\n".join(lines), "metrics.jsonl", schema.EpochRow, problems)
    assert rows == [{"epoch": 1, "metrics": {"loss": 1.0}}, {"epoch": 2}]
    assert problems[:5] == [
        "metrics.jsonl line 2: expected a JSON object, got a list; skipped",
        "metrics.jsonl line 3: epoch: expected an integer, got null; skipped",
        "metrics.jsonl line 4: no epoch; skipped",
        "metrics.jsonl line 5: epoch: expected an integer, got true; skipped",
        "metrics.jsonl line 6: metrics: expected an object, got a list; ignored"]
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"metrics.jsonl: {26 - MAX_PROBLEMS} more problems"


LINE_PIECES = [b'{"epoch": 1, "metrics": {"loss": 0.5}}', b'{"epoch": 2}', b"{}", b"[1]",
               b'{"epoch": 3, "metrics": {"a": 1, "b": NaN}}', b'{"epoch": "x"}', b"",
               b" ", b"\r", b"\t", b"\x0c", b"\xef\xbb\xbf", b"\xff", b"{", b"}", b"[", b"]",
               b",", b'"', b'"\\n"', b"\xc3\xa9", b"\xe2\x80\xa8", b"\x00", b"1", b"null",
               b'{"epoch": 4, "time": "t", "duration_s": null, "fit": 0, "attempt": 1}']


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(LINE_PIECES), max_size=4).map(b"".join),
                max_size=12))
def test_rows_decoded_at_once_are_the_rows_decoded_line_by_line(lines):
    """parse_rows decodes a file in one pass when every line is one JSON value, else line
    by line: the same rows and problems either way, whatever the lines hold."""
    data = b"\n".join(lines)
    fast: list[str] = []
    rows = parse_rows(data, "m.jsonl", schema.EpochRow, fast)
    slow: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parse, "_values", lambda data, lines: None)
        assert parse_rows(data, "m.jsonl", schema.EpochRow, slow) == rows
    assert fast == slow


def test_a_file_of_plain_rows_is_decoded_in_one_pass():
    data = b'{"epoch": 1, "metrics": {"loss": 0.5}}\r\n\n {"epoch": 2} \n'
    assert parse._values(data, data.split(b"\n")) == [
        (0, {"epoch": 1, "metrics": {"loss": 0.5}}), (2, {"epoch": 2})]
    for odd in (b'{"epoch": 1}\n{"epoch":\n 2}', b'{"epoch": 1} 2', b"\xef\xbb\xbf{}"):
        assert parse._values(odd, odd.split(b"\n")) is None  # line by line says why


def test_values_nested_too_deep_are_dropped():
    deep: Any = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    problems: list[str] = []
    record = parse_document(json.dumps({"params": {"deep": deep, "ok": [[1]]}}).encode(),
                            "run.json", schema.RunDoc, problems)
    assert record == {"params": {"ok": [[1]]}}
    assert problems == [f"run.json: params.deep: nested more than {MAX_DEPTH} levels deep; "
                        "ignored"]


def test_run_status_follows_the_ended_job_then_the_final_status():
    assert schema.run_status("running", "Failed", True) == "failed"
    assert schema.run_status("completed", "Failed", True) == "failed"  # SageMaker's outcome
    assert schema.status_disagreement("completed", "Failed") is not None
    assert schema.status_disagreement("completed", "Completed") is None
    assert schema.run_status(None, "InProgress", True) == "launched"
    assert schema.run_status(None, None, False) == "unknown"
    assert schema.run_status("running", None, True) == "running"


# -- what sagetrack writes parses cleanly ---------------------------------------------------
KERAS_JOB = """
    import os
    import numpy as np
    import keras
    import sagetrack
    m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.zeros((16, 3), "float32"); y = np.zeros(16, "int32")
    m.fit(x, y, epochs=2, batch_size=4, validation_split=0.25, verbose=0)
    sagetrack.log_metrics(step=0, custom=1.5)
    m.save(os.path.join(os.environ["SM_MODEL_DIR"], "model.keras"))
"""


def test_records_written_in_a_job_read_back_without_problems(tmp_path):
    result = run_script(tmp_path, KERAS_JOB, env={"SAGETRACK_TRACK_BATCHES": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    run = Store(store_of(tmp_path)).run("job-1")
    assert run.status == "completed" and list(run.metrics.index) == [1, 2]
    assert {"loss", "val_loss", "accuracy"} <= set(run.best_metrics)
    assert run.steps.loc[0, "custom"] == 1.5 and len(run.batches) == 6
    assert run.environment["host"] == "algo-1" and run.model["files"][0]["path"] == \
        "model.keras"
    host = parse_document(run.backend.get(f"{run.prefix}/{schema.host_file('algo-1')}"),
                          "hosts/algo-1.json", schema.EnvironmentDoc, run.problems)
    assert host["chief"] is True
    assert run.problems == []
