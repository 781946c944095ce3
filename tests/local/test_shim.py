"""The job-side programs (toolkit shim, parameter server) and the environment they get.

The shim runs in real subprocesses, in front of a small stand-in ``sagemaker_training``
package that records what the shim changed; the real toolkit runs it in test_jobs.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sagetrack import settings
from sagetrack.local import _ps_server, _shim, contract
from sagetrack.local.hosts import Host, host_env
from sagetrack.local.processes import ps_server_command, toolkit_command

RunShim = Callable[..., "subprocess.Popen[str]"]

FAKE_TOOLKIT = {
    "sagemaker_training/__init__.py": "",
    "sagemaker_training/cli/__init__.py": "",
    "sagemaker_training/modules.py": """
        def install_requirements(path, capture_error=False):
            print("REAL install_requirements " + path, flush=True)

        def install(path, capture_error=False):
            print("REAL install " + path, flush=True)
    """,
    "sagemaker_training/entry_point.py": """
        import os

        def install(name, path="/code", capture_error=False):
            print("install %s" % name, flush=True)

        def run(uri, user_entry_point, args, env_vars=None, wait=True, capture_error=False):
            print("run capture_error=%s" % capture_error, flush=True)
            install(name=user_entry_point, path=os.environ.get("FAKE_CODE_DIR", "/code"),
                    capture_error=capture_error)
    """,
    "sagemaker_training/cli/train.py": """
        import asyncio, os, sys, time
        from sagemaker_training import entry_point, modules

        async def user_process():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import time; time.sleep(3)"
            )
            print("USER STARTED", flush=True)
            await proc.wait()

        def main():
            print("sys.path[0]=%r" % sys.path[0], flush=True)
            modules.install_requirements("/code")
            modules.install("/code")
            entry_point.run("s3://b/sourcedir.tar.gz", "train.py", [])
            if os.environ["FAKE_MODE"] == "wait":
                print("WAITING", flush=True)
                time.sleep(60)
            elif os.environ["FAKE_MODE"] == "user":
                asyncio.run(user_process())
                print("USER EXITED", flush=True)
    """,
}


@pytest.fixture
def fake_toolkit_path(tmp_path: Path) -> Path:
    root = tmp_path / "fake-toolkit"
    for name, text in FAKE_TOOLKIT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def run_shim(fake_toolkit_path: Path, tmp_path: Path) -> Iterator[RunShim]:
    started: list[subprocess.Popen[str]] = []

    def run(mode: str, skip_install: str, **extra: str) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(fake_toolkit_path), FAKE_MODE=mode, **extra)
        env[settings.LOCAL_SKIP_INSTALL.name] = skip_install
        proc = subprocess.Popen(
            toolkit_command(sys.executable),
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_until(proc: subprocess.Popen[str], marker: str) -> str:
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} never printed; output:\n{seen}")


def test_shim_modules_import_without_side_effects() -> None:
    handler = signal.getsignal(signal.SIGTERM)
    create = asyncio.create_subprocess_exec
    assert callable(_shim.main) and callable(_ps_server.main)
    assert signal.getsignal(signal.SIGTERM) is handler
    assert asyncio.create_subprocess_exec is create
    # The shim cannot import sagetrack's settings in the job; the names must agree.
    assert settings.LOCAL_SKIP_INSTALL.name == _shim.SKIP_INSTALL_VAR
    for command, module in ((toolkit_command, _shim), (ps_server_command, _ps_server)):
        python, script = command("/venv/bin/python")
        assert python == "/venv/bin/python"
        assert Path(script).is_file() and Path(script).samefile(str(module.__file__))


def test_shim_skips_installs_and_captures_errors(run_shim: RunShim) -> None:
    proc = run_shim("done", "1")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "sys.path[0]=''" in out  # as with `python -c`: not sagetrack's local/ folder
    assert "NOT installing /code/requirements.txt: install_requirements=False" in out
    assert "NOT running 'pip install .' for the package in /code" in out
    assert "REAL install" not in out
    assert "run capture_error=True" in out


def test_shim_names_keras2_lines_before_the_entry_point_is_installed(
    run_shim: RunShim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("import tensorflow as tf\nm = tf.keras.metrics.Mean()\n"
                                   "m.reset_states()\n")
    (code / "sitecustomize.py").write_text("x.reset_states()\n")  # not the user's code
    monkeypatch.delenv("TF_USE_LEGACY_KERAS", raising=False)
    proc = run_shim("done", "1", FAKE_CODE_DIR=str(code))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    notice = "[sagetrack.local] train.py:3 uses reset_states(), which Keras 3 metrics name"
    assert out.index(notice) < out.index("install train.py")
    assert "TF_USE_LEGACY_KERAS" in out and "sitecustomize.py:" not in out

    proc = run_shim("done", "1", FAKE_CODE_DIR=str(code), TF_USE_LEGACY_KERAS="1")
    out, _ = proc.communicate(timeout=60)
    assert "uses reset_states()" not in out and "install train.py" in out


def test_shim_installs_when_asked(run_shim: RunShim) -> None:
    proc = run_shim("done", "0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "REAL install_requirements /code" in out and "REAL install /code" in out
    assert "NOT installing" not in out
    assert "run capture_error=True" in out


def test_shim_exits_on_sigterm_before_the_user_process(run_shim: RunShim) -> None:
    proc = run_shim("wait", "1")
    _read_until(proc, "WAITING")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 128 + signal.SIGTERM


def test_shim_relays_until_the_user_process_exits_on_sigterm(run_shim: RunShim) -> None:
    proc = run_shim("user", "1")
    _read_until(proc, "USER STARTED")
    os.kill(proc.pid, signal.SIGTERM)  # the toolkit only; the user process runs on
    out, _ = proc.communicate(timeout=30)
    assert "SIGTERM: waiting for the training process to exit" in out
    assert "USER EXITED" in out
    assert proc.returncode == 0


def test_host_env_sets_the_skip_install_switch(tmp_path: Path) -> None:
    host = Host("algo-1", 0, str(tmp_path / "algo-1"), str(tmp_path / "algo-1" / "checkpoints"))
    request = {"Environment": {"MY_FLAG": "on"}, "EnableNetworkIsolation": True}
    for install, expected in ((False, "1"), (True, "0")):
        env = host_env(
            request,
            host,
            caller_env={"SM_HOSTS": "x", "TF_CONFIG": "{}", "KEEP": "k", "AWS_REGION": "a"},
            child_env={"AWS_ACCESS_KEY_ID": "secret", "AWS_REGION": "us-east-1", "KEEP": None},
            job_name="job",
            job_arn="arn:job",
            install_requirements=install,
            tf_config=None,
        )
        assert env[settings.LOCAL_SKIP_INSTALL.name] == expected
        assert env["SAGEMAKER_BASE_DIR"] == host.base_dir
        assert env["MY_FLAG"] == "on" and env["AWS_REGION"] == "us-east-1"
        assert not {"SM_HOSTS", "TF_CONFIG", "KEEP", "AWS_ACCESS_KEY_ID"} & set(env)


@pytest.mark.slow
def test_parameter_server_serves_its_tf_config(tmp_path: Path) -> None:
    """The real ``tf.distribute.Server`` listens on the ps task's port."""
    ps_port, worker_port = contract.free_ports(2)
    tf_config = {
        "cluster": {"ps": [f"127.0.0.1:{ps_port}"], "worker": [f"127.0.0.1:{worker_port}"]},
        "task": {"type": "ps", "index": 0},
    }
    proc = subprocess.Popen(
        ps_server_command(sys.executable),
        cwd=tmp_path,
        env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", ps_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"no server on port {ps_port} (exit code {proc.poll()})")
        assert proc.poll() is None  # serves until killed
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
