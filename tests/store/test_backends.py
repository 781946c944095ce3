"""Both store backends: the same keys, and create-only writes that never overwrite."""

from __future__ import annotations

import os
import threading

import pytest

from sagetrack.store.backends import LocalBackend, S3Backend


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        return LocalBackend(tmp_path / "store")
    aws = request.getfixturevalue("aws")
    return S3Backend(aws.bucket, "track", client=aws.s3)


def test_put_if_absent_writes_once_and_never_overwrites(backend):
    assert backend.put_if_absent("e/r/status.json", b'{"status": "running"}') is True
    assert backend.put_if_absent("e/r/status.json", b'{"status": "launched"}') is False
    assert backend.get("e/r/status.json") == b'{"status": "running"}'
    backend.put("e/r/status.json", b'{"status": "completed"}')  # a plain put still replaces
    assert backend.get("e/r/status.json") == b'{"status": "completed"}'
    assert list(backend.list("e/r")) == ["e/r/status.json"]  # no temp files left behind


def test_local_put_if_absent_has_exactly_one_winner_among_racing_writers(tmp_path):
    """(On S3 the conditional PutObject gives the same guarantee server-side.)"""
    backend = LocalBackend(tmp_path / "store")
    results: dict[int, bool] = {}
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        barrier.wait()
        results[i] = backend.put_if_absent("e/r/status.json", f"writer {i}".encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, ok in results.items() if ok]
    assert len(results) == 8 and len(winners) == 1
    assert backend.get("e/r/status.json") == f"writer {winners[0]}".encode()
    assert list(backend.list("e/r")) == ["e/r/status.json"]
    if isinstance(backend, LocalBackend):  # no hidden temp files left behind either
        assert os.listdir(backend.root / "e" / "r") == ["status.json"]


def test_local_put_if_absent_without_hard_links(tmp_path, monkeypatch):
    """FAT, some FUSE and network mounts refuse os.link: claim the name another way."""
    import errno

    def no_links(*_):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    backend = LocalBackend(tmp_path / "store")
    assert backend.put_if_absent("e/r/status.json", b"first") is True
    assert backend.put_if_absent("e/r/status.json", b"second") is False
    assert backend.get("e/r/status.json") == b"first"
    assert os.listdir(backend.root / "e" / "r") == ["status.json"]


def test_s3_put_if_absent_on_a_store_without_conditional_writes(aws):
    """An S3-compatible server answering 501 to If-None-Match: HEAD, then PUT."""
    from botocore.awsrequest import AWSResponse

    refused: list[str] = []

    def not_implemented(request, **_):
        if "If-None-Match" not in request.headers:
            return None
        refused.append(request.url)
        body = b"<Error><Code>NotImplemented</Code><Message>no</Message></Error>"
        raw = type("Raw", (), {"stream": lambda self, **k: iter([body]),
                               "read": lambda self: body})()
        return AWSResponse(request.url, 501, {"Content-Type": "application/xml"}, raw)

    aws.s3.meta.events.register("before-send.s3.PutObject", not_implemented)
    backend = S3Backend(aws.bucket, "track", client=aws.s3)
    assert backend.put_if_absent("e/r/status.json", b"first") is True
    assert backend.put_if_absent("e/r/status.json", b"second") is False
    assert backend.get("e/r/status.json") == b"first"
    assert len(refused) == 2  # each call tried the conditional write first
