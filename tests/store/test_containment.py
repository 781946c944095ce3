"""Every write of a local store stays inside its root, even with planted symbolic links."""

from __future__ import annotations

import pytest

from sagetrack.errors import StoreAccessDenied
from sagetrack.store.backends import LocalBackend
from sagetrack.store.reader import Store
from tests.support.records import write_run


@pytest.mark.parametrize("planted", ["_index", "exp", "exp/job-1", "_index/exp"])
def test_a_symlinked_folder_never_takes_a_write_outside(tmp_path, planted):
    store, outside = tmp_path / "store", tmp_path / "outside"
    outside.mkdir()
    write_run(str(store), "exp", "job-1")
    link = store / planted
    if link.exists():
        import shutil

        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    backend = LocalBackend(store)
    with pytest.raises(StoreAccessDenied, match="outside the store"):
        backend.put(f"{planted}/x.json", b"{}")
    assert list(outside.rglob("*")) == []


def test_listing_with_a_symlinked_index_writes_nothing_outside(tmp_path):
    store, outside = tmp_path / "store", tmp_path / "outside"
    outside.mkdir()
    for i in range(3):
        write_run(str(store), "exp", f"job-{i}")
    (store / "_index").symlink_to(outside, target_is_directory=True)
    runs = Store(str(store)).list_runs(update_index=True)  # the index refresh is best effort
    assert sorted(r.id for r in runs) == ["job-0", "job-1", "job-2"]
    assert list(outside.rglob("*")) == []
