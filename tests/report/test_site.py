"""Generating the report: rows and columns, run pages, escaping, rewriting only changes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sagetrack import report
from sagetrack.errors import ConfigurationError
from sagetrack.report import site as site_module
from sagetrack.report.site import js_data
from sagetrack.report.target import Folder, Target

from ..support.records import backend, open_store, write_run
from .conftest import HOSTILE, RUNS, load_data, make_store


@pytest.fixture
def site(tmp_path: Path) -> tuple[str, Path]:
    uri = make_store(str(tmp_path / "store"))
    return uri, tmp_path / "site"


def column(table: dict, key: str) -> list:
    index = [c["key"] for c in table["columns"]].index(key)
    return [row[index] for row in table["rows"]]


def test_runs_table_has_every_run_and_sensible_default_columns(site):
    uri, out = site
    result = report.build(uri, out)
    assert result.runs == len(RUNS) and result.url == (out / "index.html").resolve().as_uri()
    name, table = load_data(out / "data" / "runs.js")
    assert name == "runs"
    ids = column(table, "id")
    assert sorted(zip(column(table, "experiment"), ids, strict=True)) == sorted(RUNS)
    assert ids[0] == "loop-1"  # newest first
    status = dict(zip(ids, column(table, "status"), strict=True))
    assert status == {"resnet-a": "completed", "resnet-b": "completed",
                      "resnet-live": "running", "evil-1": "failed", "loop-1": "completed"}
    duration = dict(zip(ids, column(table, "duration"), strict=True))
    assert duration["resnet-a"] == 750.0 and duration["resnet-live"] is None  # shown live
    assert column(table, "commit")[0] == "a" * 40
    assert column(table, "data")[-1].startswith("training ")
    keys = [c["key"] for c in table["columns"]]
    # custom-loop metrics are columns too, with their best values
    for key in ("final.gen_loss", "best.gen_loss", "final.val_accuracy", "params.warmup"):
        assert key in keys
    visible = table["visible"]
    assert visible[:3] == ["id", "experiment", "status"]  # two experiments: shown
    assert "params.learning-rate" in visible and "params.model_dir" not in visible
    assert "final.val_loss" in visible and "final.learning_rate" not in visible
    best = dict(zip(ids, column(table, "best.val_accuracy"), strict=True))
    assert best["resnet-b"] == pytest.approx(0.55)


def test_run_pages_hold_everything_recorded(site):
    uri, out = site
    report.build(uri, out)
    _name, b = load_data(out / "data" / "run" / "resnet" / "resnet-b.js")
    assert b["params"]["warmup"] == 2 and b["code"]["branch"] == "main"
    assert b["diff"].startswith("diff --git") and b["diffstat"] == [["train.py", 1, 1]]
    assert set(b["hosts"]) == {"algo-1", "algo-2"} and b["hosts"]["algo-2"]["rank"] == 1
    assert b["inputs"]["training"]["objects"] == 4 and b["environment"]["python"] == "3.10.14"
    assert b["model"]["files"][0]["path"] == "model.keras"
    assert b["curves"]["epoch"]["x"] == [1.0, 2.0, 3.0]
    assert b["curves"]["epoch"]["series"]["loss"] == [0.8, 0.35, 0.4]
    assert len(b["curves"]["batch"]["x"]) == 30 and "loss" in b["curves"]["batch"]["series"]
    assert b["commands"]["reproduce"] == (f"sagetrack reproduce resnet-b -e resnet --uri {uri}"
                                          " --dry-run")
    assert b["previous"]["id"] == "resnet-a"
    assert "~ learning-rate" in b["previous"]["text"]  # sagetrack diff resnet-a resnet-b
    assert b["facets"]["Hyperparameters"]["model_dir"] == "s3://bucket/{run}/model"
    _name, loop = load_data(out / "data" / "run" / "custom" / "loop-1.js")
    assert "epoch" not in loop["curves"]
    assert loop["curves"]["step"]["series"]["gen_loss"] == [2.0, 1.0, 2 / 3, 0.5, 0.4]
    _name, live = load_data(out / "data" / "run" / "resnet" / "resnet-live.js")
    assert live["status"] == "running" and live["ended"] is None
    _name, evil = load_data(out / "data" / "run" / "resnet" / "evil-1.js")
    assert evil["failure"]["message"] == HOSTILE and evil["params"]["note"] == HOSTILE


def test_record_text_cannot_break_out_of_the_data_files(site):
    uri, out = site
    report.build(uri, out)
    for path in (out / "data").rglob("*.js"):
        text = path.read_text(encoding="ascii")  # ASCII only: U+2028 and friends escaped
        body = text[text.index(",") + 1:]
        assert "<" not in body and ">" not in body and "&" not in body, path
    assert "\\u003c/script\\u003e" in (out / "data/run/resnet/evil-1.js").read_text()
    assert "window.__pwned" not in (out / "index.html").read_text()
    assert js_data("x", {"v": math.nan}) == b'sagetrack.data("x",{"v":NaN});\n'


def test_a_second_generation_writes_only_what_changed(site):
    uri, out = site
    first = report.build(uri, out)
    assert "data/run/resnet/resnet-a.js" in first.written and first.unchanged == 0
    again = report.build(uri, out)
    assert again.written == [] and again.unchanged == len(first.written)
    write_run(uri, "resnet", "resnet-new", started="2024-05-06T09:00:00.000+00:00",
              ended="2024-05-06T09:10:00.000+00:00")
    third = report.build(uri, out)
    assert sorted(third.written) == ["data/meta.js", "data/run/resnet/resnet-new.js",
                                     "data/runs.js"]
    (out / "data/run/resnet/resnet-a.js").unlink()  # a file removed from the site comes back
    assert report.build(uri, out).written == ["data/run/resnet/resnet-a.js", "data/meta.js"]


class Recorded(Folder):
    """A folder that notes the order files are written in."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.order: list[str] = []

    def put_redacted(self, key: str, data: bytes, content_type: str = "") -> None:
        self.order.append(key)
        super().put_redacted(key, data, content_type)


def test_meta_names_its_generation_and_is_written_after_the_data_it_names(site, monkeypatch):
    """What an open ``--watch`` page relies on: when data/meta.js changes, all it names is
    there, and two generations of different content differ in meta.js even within one
    second."""
    uri, out = site
    monkeypatch.setattr(site_module, "now_iso", lambda: "2024-05-03T10:00:00Z")
    files = Recorded(out)
    target = Target(files)

    def generate() -> list[str]:
        files.order.clear()
        site_module.generate(open_store(uri), target, watch=2)
        return list(files.order)

    def revision() -> str:
        return load_data(out / "data" / "meta.js")[1]["revision"]

    first_order = generate()
    write_run(uri, "resnet", "resnet-new")
    for order in (first_order, generate()):
        meta = order.index("data/meta.js")
        assert all(p.startswith(("data/", "assets/")) for p in order[:meta])
        # then the page, when it changed, and the manifest
        assert order[meta + 1:] in (["index.html", "manifest.json"], ["manifest.json"])
    assert first_order[-2] == "index.html"
    first = revision()
    assert generate() == [] and revision() == first  # nothing changed: nothing written
    write_run(uri, "resnet", "resnet-live", status="completed", losses=[0.7, 0.6, 0.5],
              started="2024-05-03T09:00:00.000+00:00")
    order = generate()
    assert "data/run/resnet/resnet-live.js" in order
    assert order[-2:] == ["data/meta.js", "manifest.json"]
    assert revision() != first


#: secrets a record written without redaction (another tool, an older version) may hold,
#: amid text that a redactor working on the file's text would cut into
PLANTED = ["AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1B2" * 9, "hunter2-db-pass",
           "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N"]
AWKWARD = ['password=hunter2-db-pass"});\n', '{"token": "', "Bearer ", "\\", "</script>",
           "--api-token", '":"', "\u2028"]


@pytest.mark.parametrize("publish", [False, True])
def test_site_data_hold_no_secret_and_stay_valid_scripts(tmp_path, publish):
    uri = make_store(str(tmp_path / "store"))
    params = {"db_password": "hunter2-db-pass", "note": " ".join(AWKWARD),
              "argv": ["--api-token", PLANTED[1], "--lr", "0.1"],
              "env": f"AWS_ACCESS_KEY_ID={PLANTED[0]} JWT={PLANTED[3]}",
              **{f"awkward{i}": f"{text} client_secret={PLANTED[i % 4]}"
                 for i, text in enumerate(AWKWARD)}}
    record = json.loads((Path(uri) / "resnet/resnet-a/run.json").read_text())
    record["params"] = params  # written as it is, past the store's redactor
    (Path(uri) / "resnet/resnet-a/run.json").write_text(json.dumps(record))
    result = report.publish(uri) if publish else report.build(uri, tmp_path / "site")
    root = Path(result.location)
    data = sorted(root.glob("data/**/*.js"))
    assert len(data) == len(RUNS) + 2  # every run's page, the table, the metadata
    for path in data:
        load_data(path)  # still one call with valid JSON
        assert path.stat().st_mode & 0o777 == 0o644  # for a browser or a web server
    for path in root.rglob("*"):
        if path.is_file():
            assert not [p for p in PLANTED if p in path.read_text()], path
    _name, page = load_data(root / "data/run/resnet/resnet-a.js")
    assert page["params"]["db_password"] == "[REDACTED]"
    assert page["params"]["argv"] == ["--api-token", "[REDACTED]", "--lr", "0.1"]


def test_settled_runs_are_not_read_again(site):
    uri, out = site
    report.build(uri, out)
    page = (out / "data/run/resnet/resnet-a.js").read_bytes()
    backend(uri).put("resnet/resnet-a/metrics.jsonl", b"")  # a settled run's records are final
    report.build(uri, out)
    assert (out / "data/run/resnet/resnet-a.js").read_bytes() == page
    # the running run is read again each time
    write_run(uri, "resnet", "resnet-live", status="running", ended=None,
              losses=[0.7, 0.6, 0.5], started="2024-05-03T09:00:00.000+00:00")
    assert "data/run/resnet/resnet-live.js" in report.build(uri, out).written


def test_only_the_chosen_experiments(site):
    uri, out = site
    result = report.build(open_store(uri), out, experiments=["custom"])
    _name, table = load_data(out / "data" / "runs.js")
    assert result.runs == 1 and column(table, "id") == ["loop-1"]
    assert "experiment" not in table["visible"]
    with pytest.raises(ConfigurationError, match=r"No experiment 'nope'.*custom, resnet"):
        report.build(uri, out, experiments=["nope"])


def test_an_empty_store_gives_an_empty_report(tmp_path):
    (tmp_path / "store").mkdir()
    result = report.build(str(tmp_path / "store"), tmp_path / "site")
    assert result.runs == 0 and load_data(tmp_path / "site/data/runs.js")[1]["rows"] == []
    with pytest.raises(ConfigurationError, match="must be a folder"):
        report.build(str(tmp_path / "store"), tmp_path / "site" / "index.html")


def test_publish_to_a_local_store_writes_beside_the_records(site):
    uri, _out = site
    result = report.publish(uri)
    assert result.location == f"{Path(uri).resolve()}/_site"
    assert result.url == (Path(uri) / "_site" / "index.html").resolve().as_uri()
    assert (Path(uri) / "_site/data/run/custom/loop-1.js").is_file()
    assert not (Path(uri) / "_site" / "share.html").exists()
    assert open_store(uri).experiments() == ["custom", "resnet"]  # _site is no experiment
    assert report.publish(uri).written == []


@pytest.mark.parametrize("value, seconds", [("3600", 3600), ("90m", 5400), ("12h", 43200),
                                            ("7d", 604800), (60, 60)])
def test_parse_expires(value, seconds):
    assert report.parse_expires(value) == seconds


@pytest.mark.parametrize("value", ["0", "8d", "soon", "-5", "1w"])
def test_parse_expires_refuses_what_s3_cannot_sign(value):
    with pytest.raises(ConfigurationError, match=f"Received: {value!r}"):
        report.parse_expires(value)


def test_compared_values_are_the_runs_own_whatever_run_came_before(site):
    from sagetrack.report.collect import run_document, run_files

    uri, _out = site
    store = open_store(uri)
    a, b, loop = store.run("resnet-a"), store.run("resnet-b"), store.run("loop-1")
    alone = run_document(b, run_files(b), None, uri)
    after_a = run_document(b, run_files(b), a, uri)
    after_other = run_document(b, run_files(b), loop, uri)
    assert alone["facets"] == after_a["facets"] == after_other["facets"]
    assert "previous" not in alone and after_a["previous"]["id"] == "resnet-a"
    facets = alone["facets"]
    assert facets["Code"]["commit"] == "a" * 40 and facets["Packages"]["rich"] == "13.0"
    assert facets["Data"]["training objects"] == 4
    assert facets["Final metrics"]["val_loss"] == 0.5 and facets["Best metrics"]["loss"] == 0.35
