"""A job's data, moved as SageMaker moves it: channels and code in, checkpoints both ways,
``model.tar.gz`` and ``output.tar.gz`` out.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sagetrack import _tar
from sagetrack.local import contract
from sagetrack.local.errors import LocalModeError
from sagetrack.local.hosts import Host
from sagetrack.local.storage import Storage, join_uri, local_path_from_file_uri

__all__ = ["Artifacts"]


class Artifacts:
    """Downloads and uploads the data of one job (``request``) for its hosts."""

    def __init__(
        self, request: Mapping[str, Any], storage: Storage, log: Callable[[str], None]
    ) -> None:
        self.request = request
        self.storage = storage
        self._log = log
        # per host: the checkpoint files already uploaded, as (size, mtime_ns)
        self._ckpt_seen: dict[str, dict[str, tuple[int, int]]] = {}

    # ------------------------------------------------------------------ in
    def download_inputs(self, hosts: Sequence[Host]) -> None:
        """Fill every host's ``input/data/<channel>`` (sharded channels split over hosts)."""
        for channel in self.request.get("InputDataConfig") or []:
            name = str(channel["ChannelName"])
            source = channel["DataSource"]
            if "S3DataSource" in source:
                uri = str(source["S3DataSource"]["S3Uri"])
                sharded = source["S3DataSource"].get("S3DataDistributionType") == "ShardedByS3Key"
            else:
                uri = str(source["FileDataSource"]["FileUri"])
                sharded = source["FileDataSource"].get("FileDataDistributionType") == (
                    "ShardedByS3Key"
                )
            targets = [os.path.join(h.base_dir, "input", "data", name) for h in hosts]
            if sharded and len(hosts) > 1:
                for i, target in enumerate(targets):
                    n = self.storage.download(uri, target, shard=(i, len(targets)))
                    self._log(
                        f"[sagetrack.local] channel {name!r}: {n} files from {uri} "
                        f"to {hosts[i].name} (sharded)"
                    )
            else:
                n = self.storage.download(uri, targets[0])
                for target in targets[1:]:
                    _link_tree(targets[0], target)
                self._log(f"[sagetrack.local] channel {name!r}: {n} files from {uri}")

    def prepare_code(self, hosts: Sequence[Host]) -> None:
        """Extract the code where the toolkit cannot download it (network isolation)."""
        hps = contract.decode_hyperparameters(self.request.get("HyperParameters") or {})
        submit = hps.get("sagemaker_submit_directory")
        if not isinstance(submit, str) or submit.startswith("s3://"):
            return  # the toolkit downloads it itself, as in the container
        for host in hosts:
            src = contract.map_container_path(submit, host.base_dir)
            if src.startswith("file://"):
                src = local_path_from_file_uri(src)
            code_dir = os.path.join(host.base_dir, "code")
            if os.path.isdir(src):
                shutil.copytree(src, code_dir, dirs_exist_ok=True)
            elif os.path.isfile(src) and tarfile.is_tarfile(src):
                _extract_code(src, code_dir)
            else:
                raise LocalModeError(
                    f"sagemaker_submit_directory={submit!r} was not found at {src}."
                )

    # ------------------------------------------------------------------ checkpoints
    def restore_checkpoints(self, hosts: Sequence[Host]) -> None:
        """Download the checkpoint URI into every host's checkpoint dir, as on a restart."""
        ckpt = self.request.get("CheckpointConfig")
        if not ckpt:
            return
        uri = str(ckpt["S3Uri"])
        for host in hosts:
            try:
                n = self.storage.download(uri, host.checkpoint_dir)
            except LocalModeError:
                n = 0  # nothing to restore yet
            if n:
                self._log(
                    f"[sagetrack.local] restored {n} checkpoint files from {uri} to {host.name}"
                )
            self._ckpt_seen[host.name] = _signatures(host.checkpoint_dir)

    def sync_checkpoints(self, hosts: Sequence[Host]) -> None:
        """Upload the checkpoint files that are new or changed since the last sync."""
        ckpt = self.request.get("CheckpointConfig")
        if not ckpt:
            return
        kms = self._kms_key()
        for host in hosts:
            seen = self._ckpt_seen.setdefault(host.name, {})
            self.storage.sync_up(host.checkpoint_dir, str(ckpt["S3Uri"]), seen, kms)

    # ------------------------------------------------------------------ out
    def upload_model(self, hosts: Sequence[Host], job_name: str, staging: str) -> str | None:
        """Upload the hosts' merged ``model/``; returns its URI (``None``: no output path)."""
        dest = self._output_uri(job_name)
        if dest is None:
            return None
        kms = self._kms_key()
        model_dirs = [os.path.join(h.base_dir, "model") for h in hosts]
        output = self.request.get("OutputDataConfig") or {}
        if str(output.get("CompressionType", "GZIP")).upper() == "NONE":
            seen: dict[str, tuple[int, int]] = {}
            for model_dir in model_dirs:
                self.storage.sync_up(model_dir, join_uri(dest, "model"), seen, kms)
            return join_uri(dest, "model") + "/"
        os.makedirs(staging, exist_ok=True)
        tarball = os.path.join(staging, "model.tar.gz")
        _merged_tar(model_dirs, tarball)
        self.storage.upload_file(tarball, join_uri(dest, "model.tar.gz"), kms)
        return join_uri(dest, "model.tar.gz")

    def upload_output(self, hosts: Sequence[Host], job_name: str, staging: str) -> None:
        """Upload the hosts' merged ``output/data/`` as ``output.tar.gz`` (always)."""
        dest = self._output_uri(job_name)
        if dest is None:
            return
        os.makedirs(staging, exist_ok=True)
        tarball = os.path.join(staging, "output.tar.gz")
        _merged_tar([os.path.join(h.base_dir, "output", "data") for h in hosts], tarball)
        self.storage.upload_file(tarball, join_uri(dest, "output.tar.gz"), self._kms_key())
        self._log(f"[sagetrack.local] uploaded the job's artifacts to {dest}")

    def _output_uri(self, job_name: str) -> str | None:
        output = self.request.get("OutputDataConfig") or {}
        out_path = str(output.get("S3OutputPath") or "")
        return join_uri(out_path, job_name, "output") if out_path else None

    def _kms_key(self) -> str | None:
        return (self.request.get("OutputDataConfig") or {}).get("KmsKeyId") or None


def _signatures(directory: str) -> dict[str, tuple[int, int]]:
    sigs: dict[str, tuple[int, int]] = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            sigs[os.path.relpath(path, directory)] = (st.st_size, st.st_mtime_ns)
    return sigs


def _link_tree(src: str, dst: str) -> None:
    """Replicate a downloaded channel to another host (hard links, copies as fallback)."""

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy, dirs_exist_ok=True)


def _extract_code(tarball: str, target: str) -> None:
    """Extract a code tarball; members that would escape ``target`` fail the job."""
    refused = _tar.extract(tarball, target, links=True).skipped
    if refused:
        raise LocalModeError(
            f"The code tarball {tarball} has members that are not extracted because they "
            "would land outside the code directory (absolute or '..' paths, links leading "
            f"out, special files): {refused[:5]}. Package a plain source_dir instead."
        )


def _merged_tar(directories: list[str], tarball: str) -> None:
    """Tar the union of ``directories`` (later ones win on equal paths), paths relative."""
    entries: dict[str, str] = {}
    for directory in directories:
        if not os.path.isdir(directory):
            continue
        for root, dirs, files in os.walk(directory):
            for name in dirs + files:
                path = os.path.join(root, name)
                entries[os.path.relpath(path, directory)] = path
    with tarfile.open(tarball, "w:gz") as tar:
        for rel in sorted(entries):
            tar.add(entries[rel], arcname=rel, recursive=False)
