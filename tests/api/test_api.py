"""``sagetrack.Store`` and ``sagetrack.Run``: the store's reader plus the default store,
plots and reproduction."""

from __future__ import annotations

import subprocess
import sys

import sagetrack
from sagetrack import api
from sagetrack.store import reader

from ..support.records import write_pair


def test_the_public_names_are_the_api_classes_over_the_record_reader():
    assert sagetrack.Store is api.Store and sagetrack.Run is api.Run
    assert issubclass(api.Run, reader.Run)
    for name in ("plot", "estimator", "training_inputs"):
        assert callable(getattr(api.Run, name)) and not hasattr(reader.Run, name)


def test_store_defaults_to_sagetrack_uri_and_returns_api_runs(tmp_path, monkeypatch):
    write_pair(str(tmp_path))
    monkeypatch.setenv("SAGETRACK_URI", str(tmp_path))
    store = sagetrack.Store()
    assert store.uri == str(tmp_path.resolve())
    runs = store.list_runs()
    assert [type(r) for r in runs] == [api.Run, api.Run]
    run = store.run("resnet-a")
    assert isinstance(run, api.Run) and run.status == "completed"
    assert set(run.training_inputs()) == {"training"}
    # the record reader alone gives plain records, from the same files
    plain = reader.Store(str(tmp_path)).run("resnet-a")
    assert type(plain) is reader.Run and plain.params == run.params


def test_reading_records_imports_nothing_above_the_store():
    code = ("import sys, sagetrack.store.reader, sagetrack.store.index\n"
            "above = ('sagetrack.client', 'sagetrack.api', 'sagetrack.plotting', "
            "'sagetrack.compare', 'sagetrack.cli', 'sagetrack.local', 'sagemaker')\n"
            "print(sorted(m for m in sys.modules if m.startswith(above)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]"
