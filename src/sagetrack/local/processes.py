"""The job's processes: one toolkit process group per host, their output, stop and kill.

Each host's toolkit (and parameter server, if any) runs in its own process group, so a
stop signals everything the toolkit started, as stopping a container does. Output lines go
to the job's log, prefixed with the host name when there are several hosts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sagetrack.local import _ps_server, _shim
from sagetrack.local.hosts import Host

__all__ = ["Supervisor", "kill_leftovers", "kill_now", "ps_server_command", "toolkit_command"]

#: writes one line (and a prefix) to the job's log
LogLine = Callable[[str, str], None]

_LEFTOVER_SECONDS = 2.0  # after a host's main process exits, before its group is killed
_KILL_DRAIN_SECONDS = 5.0
_POLL_SECONDS = 0.1


def toolkit_command(python: str) -> list[str]:
    """The command that runs the ``sagemaker-training`` toolkit for one host."""
    return [python, os.path.abspath(_shim.__file__)]  # by path: see _shim


def ps_server_command(python: str) -> list[str]:
    """The command that runs a host's TensorFlow parameter server."""
    return [python, os.path.abspath(_ps_server.__file__)]


class Supervisor:
    """Starts the hosts' processes and watches them until every host is done."""

    def __init__(
        self, job_name: str, hosts: Sequence[Host], log: LogLine, stop: threading.Event
    ) -> None:
        self.job_name = job_name
        self.hosts = list(hosts)
        self._log = log
        self._stop = stop  # set when the job is asked to stop

    def start(self, ps_configs: Mapping[str, Mapping[str, Any]]) -> None:
        """Spawn every host's toolkit (after its parameter server, when it has one)."""
        prefix_hosts = len(self.hosts) > 1
        for host in self.hosts:
            prefix = f"[{host.name}] " if prefix_hosts else ""
            ps_config = ps_configs.get(host.name)
            if ps_config is not None:
                ps_env = dict(host.env, TF_CONFIG=json.dumps(ps_config))
                ps = _spawn(ps_server_command(host.python), host, ps_env)
                host.extra_procs.append(ps)
                host.readers.append(self._reader(ps, f"[{host.name}-ps] "))
            host.proc = _spawn(toolkit_command(host.python), host, host.env)
            host.readers.append(self._reader(host.proc, prefix))

    def wait(
        self, grace: float, max_runtime: float | None, on_max_runtime: Callable[[], None]
    ) -> str | None:
        """Watch the hosts until all are done; returns the failure reason, if any.

        The first host that fails stops the others. A stop (or ``max_runtime`` seconds,
        after which ``on_max_runtime`` is called to request one) sends SIGTERM to every
        process group, and SIGKILL ``grace`` seconds later.
        """
        started = time.monotonic()
        term_sent: float | None = None
        failure: str | None = None
        while True:
            now = time.monotonic()
            for host in self.hosts:
                self._check_host(host, now)
                if host.done and failure is None and not self._stop.is_set():
                    assert host.proc is not None
                    if host.proc.returncode != 0:
                        failure = self._failure_reason(host)
                        if len(self.hosts) > 1:
                            self._log(
                                f"[sagetrack.local] {host.name} failed; stopping the other hosts",
                                "",
                            )
                        if term_sent is None:
                            term_sent = now
                            self._terminate_all(signal.SIGTERM)
            if all(h.done for h in self.hosts):
                break
            if max_runtime and now - started > max_runtime and not self._stop.is_set():
                self._log("[sagetrack.local] MaxRuntimeInSeconds exceeded; stopping", "")
                on_max_runtime()
            if self._stop.is_set() and term_sent is None:
                term_sent = now
                self._terminate_all(signal.SIGTERM)
            if term_sent is not None and now - term_sent > grace:
                self._terminate_all(signal.SIGKILL)
            time.sleep(_POLL_SECONDS)
        for host in self.hosts:  # parameter servers and leftovers
            for proc in host.extra_procs:
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(Exception):
                    proc.wait(timeout=_KILL_DRAIN_SECONDS)
        return failure

    def _reader(self, proc: subprocess.Popen[bytes], prefix: str) -> threading.Thread:
        def pump() -> None:
            assert proc.stdout is not None
            for raw in iter(proc.stdout.readline, b""):
                self._log(raw.decode("utf-8", "replace"), prefix)
            proc.stdout.close()

        thread = threading.Thread(target=pump, name=f"{self.job_name}-log", daemon=True)
        thread.start()
        return thread

    def _check_host(self, host: Host, now: float) -> None:
        proc = host.proc
        if host.done or proc is None:
            return
        if proc.poll() is None:
            return
        if host.exited_at is None:
            host.exited_at = now
        reader = host.readers[-1]
        if not reader.is_alive():
            host.done = True
            return
        waited = now - host.exited_at
        if not self._stop.is_set() and waited > _LEFTOVER_SECONDS and not host.killed:
            # The main process is gone; the container would be torn down with everything
            # still running in it.
            _signal_group(proc.pid, signal.SIGKILL)
            host.killed = True
        if host.killed and waited > _LEFTOVER_SECONDS + _KILL_DRAIN_SECONDS:
            host.done = True  # a process escaped the group but holds the pipe; give up on it

    def _terminate_all(self, sig: int) -> None:
        for host in self.hosts:
            if host.done or host.proc is None:
                continue
            if sig == signal.SIGKILL:
                if host.killed:
                    continue
                host.killed = True
            _signal_group(host.proc.pid, sig)
            for proc in host.extra_procs:
                _signal_group(proc.pid, sig)

    def _failure_reason(self, host: Host) -> str:
        assert host.proc is not None
        path = os.path.join(host.base_dir, "output", "failure")
        text = ""
        with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read().strip()
        if not text:
            code = host.proc.returncode
            if code < 0:
                try:
                    signame = signal.Signals(-code).name
                except ValueError:
                    signame = str(-code)
                text = f"the training process on {host.name} was killed by {signame}"
            else:
                text = f"the training process on {host.name} exited with code {code}"
        prefix = f"[{host.name}] " if len(self.hosts) > 1 else ""
        return f"AlgorithmError: {prefix}{text}"


def kill_now(hosts: Sequence[Host]) -> None:
    """SIGKILL every process group of ``hosts`` at once."""
    for host in hosts:
        for proc in [host.proc, *host.extra_procs]:
            if proc is not None:
                _signal_group(proc.pid, signal.SIGKILL)
        host.killed = True


def kill_leftovers(hosts: Sequence[Host]) -> None:
    """SIGKILL the process groups of ``hosts`` still running, and reap them."""
    for host in hosts:
        for proc in [host.proc, *host.extra_procs]:
            if proc is not None and proc.poll() is None:
                _signal_group(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=_KILL_DRAIN_SECONDS)


def _spawn(cmd: list[str], host: Host, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        cwd=host.base_dir,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: StopTrainingJob signals all of it
    )


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
