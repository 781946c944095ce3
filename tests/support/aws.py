"""Offline AWS for tests and benchmarks: fake credentials, SDK telemetry off, a moto server
on 127.0.0.1, and an endpoint that never answers."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import multiprocessing
import os
import queue
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
#: an SDK config that opts out of telemetry (tests and benchmarks run offline)
SDK_CONFIG = ("SchemaVersion: '1.0'\n"
              "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")

#: variables that would point a test at real AWS or at another store
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "SAGETRACK_URI",
            "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SAGEMAKER",
            "SAGETRACK_KMS_KEY_ID", "TF_CONFIG")


def fake_aws_environment(base: Path, endpoint: str | None = None) -> dict[str, str]:
    """Fake credentials, us-east-1, SDK telemetry off (config file under ``base``), test
    mode, sagetrack's home under ``base``; AWS at ``endpoint`` (moto) when given."""
    config = base / "sagemaker-config.yaml"
    if not config.exists():
        config.write_text(SDK_CONFIG)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
           "AWS_EC2_METADATA_DISABLED": "true",
           "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config), "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
           "SAGETRACK_STRICT": "1", "SAGETRACK_HOME": str(base / "sagetrack-home"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def set_fake_aws(mp: pytest.MonkeyPatch, base: Path, endpoint: str | None = None) -> None:
    """Apply :func:`fake_aws_environment` with ``mp``; every fixture that prepares AWS for a
    test goes through here."""
    for name in _CLEARED:
        mp.delenv(name, raising=False)
    for key, value in fake_aws_environment(base, endpoint).items():
        mp.setenv(key, value)


def offline_environment() -> None:
    """For a benchmark process: the fake AWS environment in ``os.environ`` (no test mode)."""
    for name in (*_CLEARED, "SAGETRACK_STRICT"):
        os.environ.pop(name, None)
    base = Path(tempfile.gettempdir()) / "sagetrack-bench"
    base.mkdir(exist_ok=True)
    env = fake_aws_environment(base)
    env.pop("SAGETRACK_STRICT")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    os.environ.update(env)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)


def validate_sdk_config_once() -> None:
    """Patch ``sagemaker.utils.validate_sagemaker_config`` to validate each config once.

    The SDK re-validates its JSON-schema config on every lookup (~0.3 s each); the config
    never changes within a test run or a benchmark. It applies to the SDK's estimator and
    sagetrack's alike.
    """
    import sagemaker.utils

    original = sagemaker.utils.validate_sagemaker_config
    if getattr(original, "__validated_once__", False):
        return
    seen: set[str] = set()

    @functools.wraps(original)
    def validate_once(config: Any = None) -> Any:
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in seen:
            original(config)
            seen.add(key)

    validate_once.__validated_once__ = True  # type: ignore[attr-defined]
    sagemaker.utils.validate_sagemaker_config = validate_once


# -- moto ----------------------------------------------------------------------------------
def _seed_in_process(bucket: str, prefix: str, count: int) -> None:
    # moto's own backend (same process as the server): 10,000 objects in ~0.5 s instead of
    # ~30 s of PutObject calls. Objects are real moto objects with sizes and ETags.
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT]["global"]
    with contextlib.suppress(Exception):  # already there
        backend.create_bucket(bucket, REGION)
    for i in range(count):
        backend.put_object(bucket, f"{prefix}/part-{i:05d}.tfrecord",
                           f"record {i}\n".encode() * 8)


def _serve_moto(port_queue: Any, seed: list[tuple[str, str, int]]) -> None:
    """Child process: a ThreadedMotoServer on 127.0.0.1, optionally pre-filled."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for bucket, prefix, count in seed:
        _seed_in_process(bucket, prefix, count)
    port_queue.put(f"http://{host}:{port}")
    while True:  # until the parent terminates us
        time.sleep(3600)


@contextlib.contextmanager
def moto_server(*, in_process: bool = False,
                seed: Sequence[tuple[str, str, int]] = ()) -> Iterator[str]:
    """A moto server (S3, SageMaker...) on 127.0.0.1; yields its URL.

    By default it runs in a child process, so that the server's own Python work
    does not compete for the caller's GIL (benchmarks: real S3 is on another machine).
    ``seed``: (bucket, prefix, object count) to pre-fill.
    """
    if in_process:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            for bucket, prefix, count in seed:
                _seed_in_process(bucket, prefix, count)
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()
        return
    ctx = multiprocessing.get_context("spawn")
    urls = ctx.Queue()
    proc = ctx.Process(target=_serve_moto, args=(urls, list(seed)), daemon=True,
                       name="moto-server")
    proc.start()
    try:
        try:
            url = urls.get(timeout=120)
        except queue.Empty as exc:
            raise RuntimeError("the moto server did not start within 120 s") from exc
        yield url
    finally:
        proc.terminate()
        proc.join(10)


@contextlib.contextmanager
def blackhole(on_accept: Callable[[], Any] | None = None) -> Iterator[str]:
    """An endpoint on 127.0.0.1 that accepts TCP connections and never answers; yields its
    URL. ``on_accept`` is called after each connection is accepted."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # keep it open, read nothing, answer nothing
            if on_accept is not None:
                on_accept()

    thread = threading.Thread(target=accept, name="blackhole", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


@dataclass
class AWS:
    """Handles on the moto server for one test: a fresh bucket and clients."""

    url: str
    bucket: str
    s3: Any

    def sagemaker_session(self, **kwargs: Any) -> Any:
        import boto3
        import sagemaker

        return sagemaker.Session(boto_session=boto3.Session(region_name=REGION),
                                 default_bucket=self.bucket, **kwargs)

    def list_keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                   Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def upload_dir(self, folder: Path, prefix: str) -> str:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.s3.put_object(Bucket=self.bucket, Key=f"{prefix}/"
                                   f"{path.relative_to(folder).as_posix()}", Body=path.read_bytes())
        return f"s3://{self.bucket}/{prefix}"


def new_bucket(url: str) -> AWS:
    """A fresh bucket on the moto server at ``url``."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=url)
    s3.create_bucket(Bucket=bucket)
    return AWS(url=url, bucket=bucket, s3=s3)
