"""Launch capture: git state, input fingerprints and the code tarball's hashes, gathered on a
thread pool beside the SDK's packing and upload, so that ``fit()`` waits as little as it can.

:class:`LaunchCapture` runs one launch's captures (:mod:`sagetrack.client.provenance` does
the work); :meth:`LaunchCapture.fill` puts what is done into a launch record and names what
is still pending. :class:`LaunchGate` and :func:`code_tarball_capture` are the two pieces of
launch-time machinery the launch benchmark (``benchmarks/launch_overhead.py``,
docs/benchmarks.md) showed to pay for themselves; each says what it saves.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._threads import signals_blocked
from ..store.layout import RUN_FILES
from . import provenance
from .staging import BOOTSTRAP_NAMES

__all__ = ["LaunchCapture", "LaunchGate", "code_tarball_capture", "input_channels"]

log = logging.getLogger("sagetrack")

Futures = dict[str, "concurrent.futures.Future[Any]"]


class LaunchGate:
    """Holds the long part of a capture (a listing's second page onwards) until the launch
    is done, so that parsing thousands of keys does not compete with the launch for the
    GIL; the launch sees which captures are parked and stops waiting for them.

    Measured (docs/benchmarks.md, "What was found and fixed", 3): with a 10,000-object
    input prefix, parking the listing here and not waiting for parked captures took the
    time ``fit(wait=False)`` adds from +1.48 s to +0.94 s per launch (median of 5).
    """

    def __init__(self, *, opened: bool = False) -> None:
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.parked = 0
        if opened:
            self._open.set()

    def open(self) -> None:
        """Let parked captures go on (the launch is done)."""
        self._open.set()

    def wait_turn(self) -> None:
        """Park the calling capture until :meth:`open`."""
        if self._open.is_set():
            return
        with self._lock:
            self.parked += 1
        try:
            self._open.wait()
        finally:
            with self._lock:
                self.parked -= 1


# The SDK packs the code tarball into a temporary file and deletes it after the upload.
# Keeping its bytes for the launching thread spares downloading it again to hash it.
# Measured (docs/benchmarks.md, "What was found and fixed", 4): the download (HEAD + GET)
# took 0.35 s per launch on the benchmark's small code folder, and grows with the code;
# with the bytes kept only the HEAD that checks the size remains.
_TARBALLS = threading.local()
_MAX_TARBALL_COPY = 64 * 1024 * 1024  # larger ones are downloaded in the background


@contextlib.contextmanager
def code_tarball_capture() -> Iterator[list[bytes]]:
    """Within the block, the bytes of code tarballs the SDK packs in this thread."""
    import sagemaker.utils

    create = getattr(sagemaker.utils, "create_tar_file", None)
    if create is not None and not getattr(create, "_sagetrack", False):
        # installed once, a pass-through outside a capture block and in other threads
        original = create

        @functools.wraps(original)
        def create_tar_file(*args: Any, **kwargs: Any) -> Any:
            path = original(*args, **kwargs)
            slot = getattr(_TARBALLS, "slot", None)
            if slot is not None:
                with contextlib.suppress(Exception):  # never in the way of the SDK
                    if os.path.getsize(path) <= _MAX_TARBALL_COPY:
                        slot.append(Path(path).read_bytes())
            return path

        create_tar_file._sagetrack = True  # type: ignore[attr-defined]
        sagemaker.utils.create_tar_file = create_tar_file
    slot: list[bytes] = []
    _TARBALLS.slot = slot
    try:
        yield slot
    finally:
        _TARBALLS.slot = None


def input_channels(inputs: Any) -> dict[str, tuple[str, str]]:
    """Channel name -> (URI, S3DataType) of ``fit()`` inputs, as the SDK sends them."""
    if inputs is None:
        return {}
    from sagemaker.job import _Job

    out: dict[str, tuple[str, str]] = {}
    try:
        config = _Job._format_inputs_to_input_config(inputs, validate_uri=False)
    except Exception as exc:  # the SDK will raise its own error for bad inputs
        log.debug("sagetrack could not read inputs: %s", exc)
        return out
    for channel in config or []:
        source = channel.get("DataSource", {})
        s3 = source.get("S3DataSource")
        if s3:
            out[channel["ChannelName"]] = (str(s3.get("S3Uri")),
                                           str(s3.get("S3DataType", "S3Prefix")))
        elif source.get("FileSystemDataSource"):
            fs = source["FileSystemDataSource"]
            out[channel["ChannelName"]] = (
                f"{fs.get('FileSystemType', 'fs').lower()}://{fs.get('FileSystemId')}"
                f"{fs.get('DirectoryPath', '')}", "FileSystem")
    return out


class LaunchCapture:
    """The captures of one launch, on a pool of 16 threads (signals stay with the main
    thread). With ``wait_all``, listings never park: the caller needs every result."""

    def __init__(self, *, wait_all: bool) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=16,
                                                           thread_name_prefix="sagetrack")
        self._gate = LaunchGate(opened=wait_all)
        self.futures: Futures = {}

    def _submit(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        with signals_blocked():  # the pool's threads: Ctrl-C stays with the main thread
            self.futures[name] = self._pool.submit(fn, *args, **kwargs)

    def start(self, *, source_dir: Any, entry_point: Any, git_config: Any,
              channels: dict[str, tuple[str, str]], s3_client: Callable[[], Any]) -> None:
        """Capture the git state of the local code (``source_dir``, else the entry point's
        folder; not for ``git_config`` or S3 code) and fingerprint each input channel."""
        source = source_dir if isinstance(source_dir, str) else (
            os.path.dirname(os.path.abspath(entry_point))
            if isinstance(entry_point, str) else None)
        if source and not git_config and not source.lower().startswith("s3://"):
            self._submit("git", provenance.git_info, source)
        if channels:
            s3 = s3_client()
            for name, (uri, data_type) in channels.items():
                self._submit(f"input:{name}", provenance.fingerprint_channel, s3, uri,
                             data_type, gate=self._gate)

    def add_tarball(self, s3_client: Any, uri: str, local_copy: bytes | None) -> None:
        """Hash the uploaded code tarball at ``uri`` (from ``local_copy`` when it matches)."""
        self._submit("tarball", provenance.code_tarball_info, s3_client, uri,
                     exclude=BOOTSTRAP_NAMES, local_copy=local_copy)

    def wait(self, timeout: float | None) -> None:
        """Until every capture is done or parked at the gate, or ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            waiting = [f for f in self.futures.values() if not f.done()]
            if not waiting or len(waiting) <= self._gate.parked:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            concurrent.futures.wait(waiting, timeout=0.02 if left is None else min(left, 0.02),
                                    return_when=concurrent.futures.FIRST_COMPLETED)

    def release(self) -> None:
        """The launch is done: parked captures go on."""
        self._gate.open()

    def close(self) -> None:
        """No more captures; threads end when theirs are done."""
        self._pool.shutdown(wait=False)

    def wait_all(self) -> None:
        """Until every capture is done (the gate must be open)."""
        concurrent.futures.wait(self.futures.values())

    def fill(self, record: dict[str, Any], *, recorded_code: dict[str, Any] | None = None
             ) -> tuple[dict[str, Any], str | None]:
        """A copy of ``record`` with the finished captures in it and ``pending`` naming the
        others, and the error of the git capture, if any. The uncommitted diff is in
        ``code["_diff"]``. ``recorded_code`` (a recorded tarball's git state) stands in
        when git was not captured."""
        record = {**record, "code": dict(record["code"]),
                  "inputs": {k: dict(v) for k, v in record["inputs"].items()}}
        code, pending, git_error = record["code"], [], None
        git = self.futures.get("git")
        if git is not None and git.done():
            try:
                info, diff = git.result()
            except Exception as exc:  # git_info reports errors itself; this is a backstop
                info, diff = {"git": None, "error": f"{type(exc).__name__}: {exc}"[:500]}, ""
            git_error = info.get("error") or None
            code.update(info)
            code["_diff"] = diff
            code["diff_file"] = RUN_FILES["diff"] if diff else None
        elif git is not None:
            pending.append("code.git")
        if git is None and recorded_code:
            code.update(recorded_code)
        tarball = self.futures.get("tarball")
        if tarball is not None and tarball.done():
            try:
                code["tarball"] = tarball.result()
            except Exception as exc:
                code["tarball"] = {"uri": code["tarball"]["uri"], "error": str(exc)[:500]}
        elif tarball is not None:
            pending.append("code.tarball")
        for name, info in record["inputs"].items():
            future = self.futures.get(f"input:{name}")
            if future is not None and future.done():
                try:
                    info.update(future.result())
                except Exception as exc:
                    info["error"] = f"{type(exc).__name__}: {exc}"[:500]
            elif future is not None:
                pending.append(f"inputs.{name}")
        record["pending"] = pending or None
        return record, git_error
