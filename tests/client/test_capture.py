"""Launch capture: listings past their first page wait for the launch, a capture that fails
leaves its error in the record, git errors warn, and the SDK's tarball bytes are kept."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sagetrack import TensorFlow


def test_a_listing_past_its_first_page_never_holds_up_the_launch(aws, tmp_path, sdk_args):
    """Even with a generous budget, fit() does not wait for page two of a big prefix:
    the listing continues once the record is written, and completes it afterwards."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: aws.s3.put_object(Bucket=aws.bucket, Key=f"big/{i:05d}",
                                                  Body=b"x"), range(1001)))
    (tmp_path / "train.py").write_text("pass\n")
    store = tmp_path / "store" / "default"
    session = aws.sagemaker_session()
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=session,
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    at_page_two: list[Any] = []

    def on_list(params: dict[str, Any], **_: Any) -> None:
        if params.get("ContinuationToken"):  # page two: what was recorded by then?
            at_page_two.extend(json.loads(p.read_text())["pending"]
                               for p in store.glob("*/run.json"))

    session.s3_client.meta.events.register("before-parameter-build.s3.ListObjectsV2", on_list)
    started = time.monotonic()
    est.fit(f"s3://{aws.bucket}/big", wait=False)  # the suite's budget is 60 s
    assert time.monotonic() - started < 60
    run = est.latest_run
    assert at_page_two == [["inputs.training"]]  # written, with the listing pending
    assert run.record["pending"] is None and run.inputs["training"]["objects"] == 1001


def test_a_capture_that_raises_leaves_an_error_in_the_record_not_a_lost_record(
        aws, tmp_path, monkeypatch, sdk_args):
    from sagetrack.client import provenance

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("listing exploded")

    monkeypatch.setattr(provenance, "fingerprint_channel", broken)
    (tmp_path / "train.py").write_text("pass\n")
    est = TensorFlow(source_dir=str(tmp_path), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    est.fit(f"s3://{aws.bucket}/data", wait=False)
    run = est.latest_run
    assert run.inputs["training"]["uri"] == f"s3://{aws.bucket}/data"
    assert run.inputs["training"]["error"] == "RuntimeError: listing exploded"
    assert run.status == "launched" and run.record["pending"] is None


def test_unreadable_git_repo_warns_and_records_the_error(aws, git_repo, tmp_path, sdk_args):
    (git_repo / ".git" / "HEAD").write_text("garbage\n")  # a broken repository
    est = TensorFlow(source_dir=str(git_repo / "src"), sagemaker_session=aws.sagemaker_session(),
                     tracking_uri=str(tmp_path / "store"), **sdk_args)
    with pytest.warns(UserWarning, match="git"):
        est.fit(f"s3://{aws.bucket}/d", wait=False)
    assert est.latest_run.code["error"]


def test_the_sdks_tarball_bytes_are_kept_for_the_launching_thread_only(tmp_path):
    import sagemaker.utils

    from sagetrack.client.capture import code_tarball_capture

    (tmp_path / "train.py").write_text("print('hi')\n")

    def pack() -> str:
        return str(sagemaker.utils.create_tar_file([str(tmp_path / "train.py")]))

    with code_tarball_capture() as kept:
        packed = Path(pack()).read_bytes()
        thread = threading.Thread(target=pack)  # another thread's tarball is not kept
        thread.start()
        thread.join()
    assert kept == [packed]
    pack()  # nor one packed after the block
    assert kept == [packed]
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        assert tar.getnames() == ["train.py"]
