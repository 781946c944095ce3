"""The EC2 instance metadata service, and importing the SageMaker SDK without asking it in vain.

Importing ``sagemaker`` creates a default session (for JumpStart) whose clients ask botocore
for credentials. With none configured, botocore's last resort is the instance metadata
service at 169.254.169.254: a network call that can only fail on a machine that is not an
EC2 instance. :func:`sdk_import` turns that one look-up off while the SDK is imported on
such machines (standard library only; the client and local mode both use it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["DISABLED_VAR", "could_be_ec2", "sdk_import"]

#: botocore's switch for the instance metadata service
DISABLED_VAR = "AWS_EC2_METADATA_DISABLED"

# How AWS documents telling an EC2 instance from the inside: the hypervisor UUID (Xen) or
# the DMI vendor and asset tag (Nitro).
_MARKERS = (
    ("/sys/hypervisor/uuid", "ec2"),
    ("/sys/devices/virtual/dmi/id/sys_vendor", "amazon"),
    ("/sys/devices/virtual/dmi/id/bios_vendor", "amazon"),
    ("/sys/devices/virtual/dmi/id/board_asset_tag", "i-"),
)


def could_be_ec2() -> bool:
    """Whether this host may have an instance metadata service (``False``: surely none).

    True on EC2 instances (SageMaker notebook instances included) and whenever
    ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` names a metadata service explicitly.
    """
    if os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        return True
    for path, marker in _MARKERS:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(256).strip().lower()
        except OSError:
            continue
        if text.startswith(marker):
            return True
    return False


@contextlib.contextmanager
def sdk_import() -> Iterator[None]:
    """Within the block, botocore does not ask the metadata service, unless this may be an
    EC2 instance or ``AWS_EC2_METADATA_DISABLED`` is set either way (then nothing changes).

    Only sessions created inside the block are affected; sessions created later look up
    credentials as usual.
    """
    if DISABLED_VAR in os.environ or could_be_ec2():
        yield
        return
    os.environ[DISABLED_VAR] = "true"
    try:
        yield
    finally:
        os.environ.pop(DISABLED_VAR, None)
