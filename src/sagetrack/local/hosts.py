"""One base dir per host, laid out as SageMaker lays out ``/opt/ml`` in the container.

For each host ``algo-1`` .. ``algo-N``: the ``input/config/*.json`` files, the empty
``input/data``, ``model``, ``output/data``, ``code`` and checkpoint folders, the Python
that runs its processes (optionally a virtualenv of its own) and their environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagetrack import settings
from sagetrack.local import contract
from sagetrack.local.errors import LocalModeError

__all__ = ["Host", "host_env", "lay_out_host", "make_venv", "tf_configs"]

#: Environment variables that steer the toolkit; never inherited from the caller.
_CONTROL_VARS = frozenset(
    {
        "CURRENT_HOST",
        "SAGEMAKER_BASE_DIR",
        "SAGEMAKER_PROGRAM",
        "SAGEMAKER_SUBMIT_DIRECTORY",
        "SAGEMAKER_TRAINING_MODULE",
        "SAGEMAKER_REGION",
        "SAGEMAKER_JOB_NAME",
        "SAGEMAKER_CONTAINER_LOG_LEVEL",
        "SAGEMAKER_ENABLE_CLOUDWATCH_METRICS",
        "SAGEMAKER_S3_OUTPUT",
        "TF_CONFIG",
        "TRAINING_JOB_NAME",
        "TRAINING_JOB_ARN",
    }
)


@dataclass
class Host:
    """One simulated instance: its base dir, its Python and environment, its processes."""

    name: str
    index: int
    base_dir: str
    checkpoint_dir: str
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    # set while the job runs, by the supervisor
    proc: subprocess.Popen[bytes] | None = None
    readers: list[threading.Thread] = field(default_factory=list)
    extra_procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    exited_at: float | None = None
    killed: bool = False
    done: bool = False


def lay_out_host(
    request: Mapping[str, Any], job_dir: str, names: Sequence[str], index: int
) -> Host:
    """Create host ``names[index]``'s base dir under ``job_dir`` with its config files."""
    name = names[index]
    base = os.path.join(job_dir, name)
    host = Host(name, index, base, checkpoint_dir=_checkpoint_dir(request, base))
    for sub in ("input/config", "input/data", "model", "output/data", "code"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    resource = request.get("ResourceConfig") or {}
    algo = request.get("AlgorithmSpecification") or {}
    default_mode = str(algo.get("TrainingInputMode", "File"))
    config_dir = os.path.join(base, "input", "config")
    _write_json(
        os.path.join(config_dir, "hyperparameters.json"),
        contract.map_container_values(request.get("HyperParameters") or {}, base, encoded=True),
    )
    _write_json(
        os.path.join(config_dir, "inputdataconfig.json"),
        contract.build_input_data_config(request.get("InputDataConfig") or [], default_mode),
    )
    _write_json(
        os.path.join(config_dir, "resourceconfig.json"),
        contract.build_resource_config(
            name,
            list(names),
            str(resource.get("InstanceType", "local")),
            contract.loopback_interface(),
        ),
    )
    ckpt = request.get("CheckpointConfig") or None
    if ckpt:
        _write_json(
            os.path.join(config_dir, "checkpointconfig.json"),
            {"LocalPath": host.checkpoint_dir, "S3Path": ckpt["S3Uri"]},
        )
        os.makedirs(host.checkpoint_dir, exist_ok=True)
    return host


def tf_configs(
    distribution: str | None, names: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``TF_CONFIG`` per host for its toolkit, and for its parameter server (if any)."""
    names = list(names)
    if distribution == contract.DIST_MWMS:
        ports = dict(zip(names, contract.free_ports(len(names)), strict=True))
        return {h: contract.build_tf_config_mwms(names, h, ports) for h in names}, {}
    if distribution == contract.DIST_PS:
        all_ports = contract.free_ports(2 * len(names))
        ports = dict(zip(names, all_ports[: len(names)], strict=True))
        ps_ports = dict(zip(names, all_ports[len(names) :], strict=True))
        toolkits = {h: contract.build_tf_config_ps(names, h, ports, ps_ports) for h in names}
        servers = {
            h: contract.build_tf_config_ps(names, h, ports, ps_ports, ps_task=True) for h in names
        }
        return toolkits, servers
    return {}, {}


def make_venv(job_dir: str, host_name: str, log: Callable[[str], None]) -> str:
    """Create the host's isolated virtualenv under ``job_dir``; returns its Python."""
    venv = os.path.join(job_dir, "venvs", host_name)
    cmd = [sys.executable, "-m", "venv", "--system-site-packages"]
    if importlib.util.find_spec("pip") is not None:
        cmd.append("--without-pip")  # fast: pip comes from the caller's site-packages
    log(f"[sagetrack.local] creating isolated virtualenv {venv}")
    result = subprocess.run(
        [*cmd, venv], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise LocalModeError(
            f"Could not create the job's virtualenv ({' '.join(cmd)} {venv}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    python = os.path.join(venv, "bin", "python")
    # `venv --system-site-packages` sees the *base* interpreter's packages; when the
    # caller itself runs in a virtualenv, make its packages visible too (after the new
    # venv's own site-packages, so what requirements.txt installs wins).
    probe = subprocess.run(
        [python, "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    own_site = probe.stdout.strip()
    parent_sites = [p for p in site.getsitepackages() if os.path.isdir(p)]
    with open(os.path.join(own_site, "_sagetrack_parent.pth"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(parent_sites) + "\n")
    return python


def host_env(
    request: Mapping[str, Any],
    host: Host,
    *,
    caller_env: Mapping[str, str],
    child_env: Mapping[str, str | None],
    job_name: str,
    job_arn: str,
    install_requirements: bool,
    tf_config: Mapping[str, Any] | None,
) -> dict[str, str]:
    """The environment of the host's processes.

    The caller's environment without toolkit control variables, then the session's
    ``child_env`` (``None`` unsets; no credentials with network isolation), the request's
    ``Environment``, and the container contract's own variables.
    """
    env = {
        k: v for k, v in caller_env.items() if k not in _CONTROL_VARS and not k.startswith("SM_")
    }
    network_isolation = bool(request.get("EnableNetworkIsolation"))
    for key, value in child_env.items():
        if network_isolation and key.startswith("AWS_") and "REGION" not in key:
            continue  # no credentials inside a network-isolated container
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    environment = {str(k): str(v) for k, v in (request.get("Environment") or {}).items()}
    env.update(contract.map_container_values(environment, host.base_dir, encoded=False))
    env.setdefault("PYTHONUNBUFFERED", "1")  # as in the SageMaker framework images
    env.update(
        {
            "SAGEMAKER_BASE_DIR": host.base_dir,
            "SM_STUDIO_LOCAL_MODE": "true",
            "TRAINING_JOB_NAME": job_name,
            "TRAINING_JOB_ARN": job_arn,
            settings.LOCAL_SKIP_INSTALL.name: "0" if install_requirements else "1",
        }
    )
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _checkpoint_dir(request: Mapping[str, Any], base_dir: str) -> str:
    ckpt = request.get("CheckpointConfig") or {}
    local = str(ckpt.get("LocalPath") or "/opt/ml/checkpoints")
    mapped = contract.map_container_path(local, base_dir)
    if mapped == local:
        # A path outside /opt/ml would be shared by all hosts: keep it per host too.
        return os.path.join(base_dir, local.lstrip("/"))
    return mapped


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)
