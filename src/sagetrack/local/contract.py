"""The SageMaker training-container contract, as files and environment for local processes.

Everything here is pure (no processes, no AWS): the ``/opt/ml/input/config/*.json`` files,
the host names, and the ``TF_CONFIG`` the SageMaker TensorFlow container would build, with
loopback addresses instead of ``algo-N`` host names.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from sagetrack.local.errors import UnsupportedLocalFeatureError

__all__ = [
    "CONTAINER_BASE",
    "DIST_MWMS",
    "DIST_PS",
    "build_input_data_config",
    "build_resource_config",
    "build_tf_config_mwms",
    "build_tf_config_ps",
    "decode_hyperparameters",
    "distribution_kind",
    "free_ports",
    "host_names",
    "loopback_interface",
    "map_container_path",
    "map_container_values",
]

CONTAINER_BASE = "/opt/ml"
DIST_MWMS = "multi_worker_mirrored_strategy"
DIST_PS = "parameter_server"

_MWMS_HP = "sagemaker_multi_worker_mirrored_strategy_enabled"
_PS_HP = "sagemaker_parameter_server_enabled"
_UNSUPPORTED_HPS = {
    "sagemaker_mpi_enabled": "MPI (distribution={'mpi': ...})",
    "sagemaker_distributed_dataparallel_enabled": "SageMaker distributed data parallel",
    "sagemaker_pytorch_xla_multi_worker_enabled": "PyTorch XLA",
    "sagemaker_torch_distributed_enabled": "torch_distributed",
}
_UNSUPPORTED_HINT = (
    "Local process mode runs one plain process per host. Use "
    "distribution={'multi_worker_mirrored_strategy': {'enabled': True}} (or "
    "'parameter_server'), or run the job on SageMaker (instance_type='ml.*' with a "
    "regular sagemaker.Session)."
)


def host_names(count: int) -> list[str]:
    """SageMaker's host names for ``count`` instances: ``algo-1`` .. ``algo-N``."""
    return [f"algo-{i}" for i in range(1, count + 1)]


def loopback_interface() -> str:
    """Name of the loopback interface (``lo`` on Linux, ``lo0`` on macOS)."""
    try:
        names = {name for _idx, name in socket.if_nameindex()}
    except OSError:  # pragma: no cover - platforms without if_nameindex
        names = set()
    for candidate in ("lo", "lo0"):
        if candidate in names:
            return candidate
    return "lo"


def build_resource_config(
    current_host: str, hosts: Sequence[str], instance_type: str, network_interface: str
) -> dict[str, Any]:
    """``resourceconfig.json`` for one host, as SageMaker writes it."""
    group = "homogeneousCluster"
    return {
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_group_name": group,
        "hosts": list(hosts),
        "instance_groups": [
            {"instance_group_name": group, "instance_type": instance_type, "hosts": list(hosts)}
        ],
        "network_interface_name": network_interface,
    }


def build_input_data_config(
    channels: Sequence[Mapping[str, Any]], default_input_mode: str
) -> dict[str, dict[str, Any]]:
    """``inputdataconfig.json``: per channel only mode, distribution, content type."""
    out: dict[str, dict[str, Any]] = {}
    for channel in channels:
        source = channel.get("DataSource", {})
        if "S3DataSource" in source:
            distribution = source["S3DataSource"].get("S3DataDistributionType", "FullyReplicated")
        elif "FileDataSource" in source:
            distribution = source["FileDataSource"].get(
                "FileDataDistributionType", "FullyReplicated"
            )
        else:
            distribution = "FullyReplicated"
        entry: dict[str, Any] = {
            "TrainingInputMode": channel.get("InputMode") or default_input_mode,
            "S3DistributionType": distribution,
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        if channel.get("ContentType"):
            entry["ContentType"] = channel["ContentType"]
        out[str(channel["ChannelName"])] = entry
    return out


def decode_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    """JSON-decode hyperparameter values as the toolkit does (undecodable ones stay strings)."""
    decoded: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def distribution_kind(hyperparameters: Mapping[str, str], instance_count: int) -> str | None:
    """Which TF distribution the request asks for: ``DIST_MWMS``, ``DIST_PS`` or ``None``.

    Raises :class:`UnsupportedLocalFeatureError` for MPI and the other launchers that need
    more than one plain process per host.
    """
    hps = decode_hyperparameters(hyperparameters)
    for key, label in _UNSUPPORTED_HPS.items():
        if hps.get(key) is True:
            raise UnsupportedLocalFeatureError(
                f"The training request enables {label} (hyperparameter {key}=true), which "
                f"LocalProcessSession does not support. {_UNSUPPORTED_HINT}"
            )
    if hps.get(_MWMS_HP) is True:
        return DIST_MWMS
    if hps.get(_PS_HP) is True and instance_count > 1:
        return DIST_PS
    return None


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (kept bound until all are picked)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def build_tf_config_mwms(
    hosts: Sequence[str], current_host: str, ports: Mapping[str, int]
) -> dict[str, Any]:
    """MultiWorkerMirroredStrategy ``TF_CONFIG``: every host is a worker, index = host position."""
    return {
        "cluster": {"worker": [f"127.0.0.1:{ports[h]}" for h in hosts]},
        "environment": "cloud",
        "task": {"type": "worker", "index": list(hosts).index(current_host)},
    }


def build_tf_config_ps(
    hosts: Sequence[str],
    current_host: str,
    ports: Mapping[str, int],
    ps_ports: Mapping[str, int],
    ps_task: bool = False,
) -> dict[str, Any]:
    """Parameter-server ``TF_CONFIG`` as the SageMaker TF container builds it.

    ``hosts[0]`` is the master, the other hosts are workers, and every host also runs a
    parameter server (``ps`` task) on a second port.
    """
    hosts = list(hosts)
    workers = hosts[1:]
    cluster: dict[str, list[str]] = {"master": [f"127.0.0.1:{ports[hosts[0]]}"]}
    cluster["ps"] = [f"127.0.0.1:{ps_ports[h]}" for h in hosts]
    if workers:
        cluster["worker"] = [f"127.0.0.1:{ports[h]}" for h in workers]
    if ps_task:
        task = {"type": "ps", "index": hosts.index(current_host)}
    elif current_host == hosts[0]:
        task = {"type": "master", "index": 0}
    else:
        task = {"type": "worker", "index": workers.index(current_host)}
    return {"cluster": cluster, "environment": "cloud", "task": task}


def map_container_path(path: str, base_dir: str) -> str:
    """Translate an ``/opt/ml/...`` container path into the same path under ``base_dir``."""
    if path == CONTAINER_BASE:
        return base_dir
    if path.startswith(CONTAINER_BASE + "/"):
        return base_dir.rstrip("/") + path[len(CONTAINER_BASE) :]
    return path


def map_container_values(
    values: Mapping[str, str], base_dir: str, *, encoded: bool
) -> dict[str, str]:
    """``values`` with every value that is a container path pointed into ``base_dir``.

    For hyperparameters (``encoded``: JSON-encoded, as in the request) and environment
    variables whose value is ``/opt/ml`` or below, such as ``model_dir="/opt/ml/model"``:
    the script gets the same folder of its own host, as in the container.
    """
    out: dict[str, str] = {}
    for key, raw in values.items():
        value: Any = raw
        decoded = False
        if encoded:
            with contextlib.suppress(TypeError, ValueError):
                value, decoded = json.loads(raw), True
        if isinstance(value, str) and (
            value == CONTAINER_BASE or value.startswith(CONTAINER_BASE + "/")
        ):
            mapped = map_container_path(value, base_dir)
            out[key] = json.dumps(mapped) if decoded else mapped
        else:
            out[key] = raw
    return out
