"""Offline sessions: when a :class:`~sagetrack.local.LocalProcessSession` needs no AWS at all.

A session is offline when it is asked to be (``offline=True``), or, by default, when it is
given no bucket and no S3 endpoint and this machine has no AWS credentials configured and is
not an EC2 instance: nothing could reach AWS anyway. An offline session keeps what would
go to the default bucket in a folder, and turns off what would only fail without network:

* when it has no credentials, the credential look-up at the instance metadata service
  (169.254.169.254), in its process and the job's (``AWS_EC2_METADATA_DISABLED=true``);
* the SageMaker SDK's telemetry (an HTTPS request after every ``fit``);
* the default-bucket look-up (STS ``GetCallerIdentity`` and S3 ``HeadBucket``).

Whether credentials are configured is read from the environment and the shared config
files only: the providers that would fetch credentials over the network (roles, SSO,
containers, credential processes) count as configured when their settings are present.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from sagetrack._imds import DISABLED_VAR, could_be_ec2

__all__ = [
    "DEFAULT_REGION",
    "credentials_configured",
    "decide_offline",
    "skip_metadata_lookup",
    "telemetry_off",
]

#: the region an offline session reports when none is configured (names the image only)
DEFAULT_REGION = "us-east-1"

# botocore credential providers that read only the environment and local files
_LOCAL_PROVIDERS = ("env", "shared-credentials-file", "config-file", "ec2-credentials-file",
                    "boto-config")
# settings of the providers that fetch credentials over the network (or run a program)
_PROFILE_KEYS = ("role_arn", "credential_source", "web_identity_token_file", "sso_start_url",
                 "sso_session", "credential_process", "login_session")
_ENV_KEYS = ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
             "AWS_WEB_IDENTITY_TOKEN_FILE")
_TELEMETRY_PATH = ("SageMaker", "PythonSDK", "Modules")


def credentials_configured(boto_session: Any) -> bool:
    """Whether ``boto_session`` has AWS credentials configured, without any network call."""
    from botocore.credentials import create_credential_resolver
    from botocore.exceptions import ProfileNotFound

    core = boto_session._session  # the botocore session behind the boto3 one
    if getattr(core, "_credentials", None) is not None:  # boto3.Session(aws_access_key_id=...)
        return True
    if any(os.environ.get(key) for key in _ENV_KEYS):
        return True
    try:
        profile = core.get_scoped_config()
    except ProfileNotFound:  # AWS_PROFILE names a profile: AWS is set up, if wrongly
        return True
    if any(profile.get(key) for key in _PROFILE_KEYS):
        return True
    resolver = create_credential_resolver(core)
    return any(_provider_loads(resolver, name) for name in _LOCAL_PROVIDERS)


def _provider_loads(resolver: Any, name: str) -> bool:
    from botocore.exceptions import UnknownCredentialError

    try:
        provider = resolver.get_provider(name)
    except UnknownCredentialError:  # e.g. the env provider under an explicit profile
        return False
    return provider.load() is not None


def decide_offline(offline: bool | None, *, boto_session: Any, default_bucket: str | None,
                   s3_endpoint_url: str | None) -> bool:
    """The session's ``offline`` argument, with ``None`` resolved as the module says."""
    if offline is not None:
        return offline
    if default_bucket or s3_endpoint_url:
        return False
    return not credentials_configured(boto_session) and not could_be_ec2()


def skip_metadata_lookup(boto_session: Any) -> None:
    """Turn off the instance-metadata credential look-up for an offline session without
    credentials: in ``boto_session``'s chain, and (unless it is set) through
    ``AWS_EC2_METADATA_DISABLED=true`` for the clients the SDK creates on its own and for
    the job's processes. Off an EC2 instance that look-up can only fail, over the network.
    """
    core = boto_session._session
    core.get_component("credential_provider").remove("iam-role")
    os.environ.setdefault(DISABLED_VAR, "true")


def telemetry_off(config: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the SDK config ``config`` with ``TelemetryOptOut: true``."""
    out: dict[str, Any] = copy.deepcopy(config) if config else {}
    out.setdefault("SchemaVersion", "1.0")
    node = out
    for key in _TELEMETRY_PATH:
        node = node.setdefault(key, {})
    node["TelemetryOptOut"] = True
    return out
