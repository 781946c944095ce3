"""Writing the launch record within a deadline: a hung store never holds a launch up.

:meth:`LaunchRecords.launch` writes one launch's records on a thread of its own and waits
for the first writes at most until a deadline (the launch budget, see estimator.py):

1. with every capture done, the same-work check (identity.py) reads the store; with
   ``skip_if_done`` a completed run of the same work is returned before anything is
   written (SkipLaunch);
2. the run is claimed (claim.py): its ``launched`` status, create-only; records of a run
   that may have started are left alone and the launch goes ahead untracked;
3. the same-work marker, ``code.diff`` and ``run.json``, with ``pending`` naming the
   captures still running. A tuner or pipeline gets a template under ``_launch/`` instead.

Past the deadline the launch goes on and the same thread finishes: it completes the
record once every capture is done, retries a write that failed, and finally keeps what it
could not write under ``$SAGETRACK_HOME/unsent`` with one TrackingWarning.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import settings
from .._threads import signals_blocked
from ..errors import ConfigurationError, RecordNotFound, StoreAccessDenied, StoreError
from ..store.layout import dumps, run_prefix
from ..store.reader import Run
from ..store.schema import DIFF_FILE, RUN_FILE, STATUS_FILE
from .capture import LaunchCapture
from .claim import claim_run, launched_status
from .guard import SkipLaunch, warn
from .identity import find_completed, launch_identity, mark_launch, warn_duplicate
from .store_access import TrackingStore

__all__ = ["ATTEMPTS", "FIRST_WRITE_WAIT", "RETRY_DELAY", "UNTRACKED", "Launch", "LaunchRecords"]

log = logging.getLogger("sagetrack")

#: the launch waits at least this long (seconds) for the first writes, even when capture
#: used up the launch budget
FIRST_WRITE_WAIT = 0.5
#: writes of one launch's records tried at most this often, this many seconds apart
ATTEMPTS = 2
RETRY_DELAY = 1.0

#: outcomes of a launch's first writes: written (PENDING: to be completed), not written
#: (FAILED: to be retried; KEPT: kept unsent for good), left alone (UNTRACKED), skipped, or
#: not done by the deadline (BACKGROUND)
WRITTEN, PENDING, FAILED, KEPT, UNTRACKED, SKIP, BACKGROUND = (
    "written", "pending", "failed", "kept", "untracked", "skip", "background")


@dataclass
class Launch:
    """One launch's record writes, shared by the launching thread and the writing one."""

    base: dict[str, Any]
    capture: LaunchCapture
    launch_key: str | None
    skip: bool
    seq: int
    decided: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    abandoned: bool = False  # the launch went on without waiting for the decision
    outcome: str = BACKGROUND
    error: BaseException | None = None
    skip_run: Run | None = None
    claimed: str | None = None  # the run id claimed, once it is
    status: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)  # what to keep when unsent
    kept: set[str] = field(default_factory=set)  # keys kept unsent by a failed attempt
    warned_duplicate: bool = False


class LaunchRecords:
    """The launch records of one estimator's jobs, and the latest of them."""

    def __init__(self, experiment: str, open_store: Callable[[], TrackingStore],
                 origin: dict[str, Any] | None,
                 job_exists: Callable[[str], bool | None]) -> None:
        self.latest: dict[str, Any] | None = None
        self._latest_seq = -1
        self._seq = itertools.count()
        self._experiment = experiment
        self._open_store = open_store
        self._origin = origin
        self._job_exists = job_exists
        self._threads: list[threading.Thread] = []
        self._git_warned = False

    # -- the launching thread ------------------------------------------------------------
    def launch(self, base: dict[str, Any], capture: LaunchCapture, *, launch_key: str | None,
               skip: bool, wait_until: float) -> Launch:
        """Write the records of the launch ``base`` describes; wait for the first writes
        until ``wait_until`` (``time.monotonic()``). The returned :class:`Launch` says how
        they went (``outcome``); raises SkipLaunch for a completed run of the same work."""
        launch = Launch(base, capture, launch_key, skip, next(self._seq))
        self._start(self._run, launch, name="sagetrack-launch-record")
        launch.decided.wait(max(0.0, wait_until - time.monotonic()))
        with launch.lock:
            if not launch.decided.is_set():
                launch.abandoned = True
                log.info("sagetrack: the launch record of %s is still being written; it "
                         "completes in the background", base.get("run_id"))
                return launch
        if launch.skip_run is not None:  # nothing was written
            warn_duplicate(launch.skip_run, skipped=True)
            raise SkipLaunch(launch.skip_run)
        if launch.error is not None:  # test mode: internal errors raise
            raise launch.error
        return launch

    def when_written(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the records being written are written or kept: now when they
        are, else on a thread of its own."""
        writing = [t for t in self._threads if t.is_alive()]
        if not writing:
            fn()
            return

        def run() -> None:
            for thread in writing:
                thread.join()
            fn()

        self._start(run, name="sagetrack-outcome")

    def wait(self, timeout: float | None = None) -> dict[str, Any] | None:
        """Until every record being written is written (or kept), or ``timeout``; the
        latest."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.latest

    def _start(self, target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        with signals_blocked():  # Ctrl-C stays with the main thread
            thread.start()
        return thread

    # -- the writing thread --------------------------------------------------------------
    def _run(self, launch: Launch) -> None:
        try:
            outcome = self._first(launch)
            # (in test mode an error handed to fit() ends the launch's writes)
            if outcome in (PENDING, FAILED) and launch.error is None:
                launch.capture.wait_all()  # the launching thread opens the gate
                self._finish(launch, retry=outcome == FAILED)
        finally:
            launch.capture.close()

    def _decide(self, launch: Launch, outcome: str, error: BaseException | None = None) -> bool:
        """Tell the launching thread, unless it went on already; whether it was told."""
        with launch.lock:
            if not launch.abandoned:
                launch.outcome, launch.error = outcome, error
            launch.decided.set()
            return not launch.abandoned

    def _first(self, launch: Launch) -> str:
        try:
            outcome = self._write(launch, complete=False)
        except SkipLaunch:
            return SKIP  # decided in _write
        except Exception as exc:
            if settings.STRICT.get():
                if not self._decide(launch, FAILED, exc):
                    raise
                return FAILED
            outcome = self._failed(launch, exc, final=isinstance(
                exc, (StoreAccessDenied, ConfigurationError)))
        self._decide(launch, outcome)
        return outcome

    def _finish(self, launch: Launch, *, retry: bool) -> None:
        """Complete the record, or write it again after the first writes failed (at most
        ATTEMPTS writes in all); what still fails is kept unsent."""
        for attempt in range(int(retry), ATTEMPTS):
            if attempt:
                time.sleep(RETRY_DELAY)
            try:
                self._write(launch, complete=True)
                return
            except Exception as exc:
                if settings.STRICT.get():
                    raise
                if attempt == ATTEMPTS - 1 or isinstance(exc, StoreAccessDenied):
                    self._failed(launch, exc, final=True)
                    return

    def _failed(self, launch: Launch, exc: Exception, *, final: bool) -> str:
        """Keep the launch's records unsent; warn once the failure is final."""
        store = None
        try:
            store = self._open_store()
            store.keep(launch.files)
            launch.kept.update(launch.files)
        except Exception as keep_error:
            log.warning("sagetrack: could not keep the unsent launch record: %s", keep_error)
        if not final:
            log.info("sagetrack: writing the launch record failed (%s); retrying", exc)
            return FAILED
        where = store.unsent if store is not None else settings.unsent_dir()
        warn(f"sagetrack could not write the launch record of "
             f"{launch.base.get('run_id') or 'the launch template'} "
             f"({type(exc).__name__}: {exc}); it is kept under {where}. The job is not "
             "affected.")
        launch.files = {}
        return UNTRACKED if launch.claimed is None and launch.launch_key is None else KEPT

    def _write(self, launch: Launch, *, complete: bool) -> str:
        record, diff = self._fill(launch)
        store = self._open_store()
        if launch.launch_key is not None:
            files = {f"{launch.launch_key}.json": dumps({**record, "run_id": None})}
            if diff:
                files[f"{launch.launch_key}.diff"] = diff.encode()
            launch.files = files
            self._set_latest(launch, {**record, "run_id": None})
            for key, data in files.items():
                store.put(key, data)
            self._written(launch, store)
            return WRITTEN
        run_id = record["run_id"]
        prefix = run_prefix(self._experiment, run_id)
        launch.status = launch.status or launched_status(self._experiment, record)
        launch.files = {f"{prefix}/{STATUS_FILE}": launch.status,
                        **({f"{prefix}/{DIFF_FILE}": diff.encode()} if diff else {}),
                        f"{prefix}/{RUN_FILE}": dumps(record)}
        identity = None if record["pending"] else launch_identity(record)
        found = self._find_completed(store, identity, run_id, launch.skip) if identity else None
        if found is not None and launch.skip and not complete:
            with launch.lock:
                if not launch.abandoned:  # nothing written: the launch is skipped
                    launch.skip_run = found
                    launch.decided.set()
                    raise SkipLaunch(found)
        if launch.claimed is None:
            reason = claim_run(store, self._experiment, run_id, launch.status, self._job_exists)
            if reason is not None:
                launch.files = {}
                warn(f"sagetrack: job name {run_id} {reason} in experiment "
                     f"{self._experiment}; its records are left as they are and this job is "
                     "launched untracked. Use a new job_name.")
                return UNTRACKED
            launch.claimed = run_id
        if identity:
            mark_launch(store, identity, self._experiment, record)
        if found is not None and self._origin is None and not launch.warned_duplicate:
            launch.warned_duplicate = True  # a repeat of a run does the same work on purpose
            warn_duplicate(found)
        self._set_latest(launch, record)
        for key, data in launch.files.items():
            if not key.endswith(f"/{STATUS_FILE}"):
                store.put(key, data)
        self._written(launch, store)
        return PENDING if record["pending"] else WRITTEN

    @staticmethod
    def _written(launch: Launch, store: TrackingStore) -> None:
        """Every file is in the store: drop copies an earlier attempt kept unsent."""
        launch.files = {}
        if launch.kept:
            store.discard(sorted(launch.kept))
            launch.kept.clear()

    def _fill(self, launch: Launch) -> tuple[dict[str, Any], str]:
        record, git_error = launch.capture.fill(
            launch.base, recorded_code=(self._origin or {}).get("code"))
        if git_error and not self._git_warned:
            self._git_warned = True
            warn(f"sagetrack could not read the git state of "
                 f"{record['code']['source_dir'] or '.'} ({git_error}); the run records the "
                 "error instead of a commit.")
        diff: str = record["code"].pop("_diff", "")
        return record, diff

    def _find_completed(self, store: TrackingStore, identity: str, run_id: str,
                        skip: bool) -> Run | None:
        try:
            return find_completed(store, identity, run_id)
        except StoreError as exc:
            if not isinstance(exc, (StoreAccessDenied, RecordNotFound)):
                raise  # the store is unreachable: so is the rest of this attempt
            error: Exception = exc
        except Exception as exc:
            if settings.STRICT.get():
                raise
            error = exc
        message = f"sagetrack could not look for a completed run of the same work ({error})"
        if skip:  # asked for: say it was not done
            warn(f"{message}; the job is launched.")
        else:
            log.warning(message)
        return None

    def _set_latest(self, launch: Launch, record: dict[str, Any]) -> None:
        if launch.seq >= self._latest_seq:  # never over a newer launch's record
            self._latest_seq = launch.seq
            self.latest = record
