"""The README's local quick start, run as written on a machine with no AWS set-up.

The code blocks between the README's quick-start markers run in fresh processes from a
folder holding a copy of the example, with no AWS or SageMaker variable, ``HOME`` in an
empty folder (no ``~/.aws``), and a ``sitecustomize`` that refuses every connection or name
look-up outside loopback and logs each attempt (``tests/support/no_network.py``).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.support.no_network import attempts, offline_env

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLE = "examples/resnet_cifar10"
START = "<!-- local quick start:"
END = "<!-- end of local quick start -->"

def quickstart_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of the fenced blocks between the quick-start markers, dedented."""
    section = text.split(START, 1)[1].split(END, 1)[0]
    blocks = re.findall(r"^( *)```(\w+)\n(.*?)^\1```", section, re.MULTILINE | re.DOTALL)
    return [(lang, textwrap.dedent(indent_fix(indent, code))) for indent, lang, code in blocks]


def indent_fix(indent: str, code: str) -> str:
    return "\n".join(line[len(indent):] if line.startswith(indent) else line
                     for line in code.splitlines()) + "\n"


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float
        ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-4000:] + proc.stderr
    return proc


def test_the_readme_has_the_quick_start_blocks():
    blocks = quickstart_blocks(README.read_text())
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash"]
    assert "LocalProcessSession()" in blocks[1][1]
    assert "sagetrack checkout RUN" in blocks[2][1]


@pytest.mark.slow
def test_readme_local_quick_start_runs_offline_and_checkout_recovers_the_code(tmp_path):
    from sagetrack._imds import could_be_ec2

    if could_be_ec2():
        pytest.skip("this host may be an EC2 instance: LocalProcessSession() would use its "
                    "instance role, which is what it should do there")
    prepare, train, inspect = quickstart_blocks(README.read_text())
    work = tmp_path / "clone"
    shutil.copytree(ROOT / EXAMPLE, work / EXAMPLE,
                    ignore=shutil.ignore_patterns("__pycache__", "data", "*.pyc"))
    env = offline_env(tmp_path)

    run(["bash", "-euo", "pipefail", "-c", prepare[1]], work, env, timeout=300)
    (work / "quickstart.py").write_text(train[1])
    out = run([sys.executable, "quickstart.py"], work, env, timeout=900)
    assert attempts(env) == ""

    from sagetrack import Store

    store = Store(str(work / "sagetrack-runs"))
    (run_record,) = store.list_runs("quickstart")
    assert run_record.status == "completed"
    epochs = 2
    assert list(run_record.metrics.index) == list(range(1, epochs + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(run_record.metrics.columns)
    assert "val_accuracy" in out.stdout  # the printed metrics table
    tarball = run_record.code["tarball"]
    assert tarball["uri"].startswith("file://" + str(tmp_path / "home"))

    # new processes, the README's commands with the run's id for RUN
    listing = run(["bash", "-euo", "pipefail", "-c",
                   re.sub(r"\bRUN\b", run_record.id, inspect[1])], work, env, timeout=300)
    assert run_record.id in listing.stdout
    assert attempts(env) == ""
    checked_out = work / "code-that-ran" / "code"
    data = Path(tarball["uri"][len("file://"):]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == tarball["sha256"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        user_files = {m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore
                      for m in members if not m.name.removeprefix("./").startswith(
                          ("sitecustomize.py", "_sagetrack"))}
    assert user_files  # the example's files, exactly as they ran
    for name, content in user_files.items():
        assert (checked_out / name).read_bytes() == content, name
        assert (work / EXAMPLE / name).read_bytes() == content, name
    assert not (checked_out / "sitecustomize.py").exists()
