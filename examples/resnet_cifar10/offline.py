"""An embedded S3 for the notebook, which shows the S3 path of a SageMaker job offline.

``start()`` runs a moto server on 127.0.0.1, points every AWS client of this process and
of the local training jobs at it (``AWS_ENDPOINT_URL``), sets fake credentials and turns
off the SageMaker SDK's telemetry. Nothing leaves the machine. Not needed on real AWS, and
not needed without S3: ``run_demo.py`` keeps data, code and models in local folders
(an offline ``LocalProcessSession``) and uses no moto.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"  # any well-formed ARN works offline
_SDK_CONFIG = ("SchemaVersion: '1.0'\n"
               "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")


def start(bucket: str) -> Any:
    """Start the embedded S3 and create ``bucket``; returns the server (``.stop()``)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    config = os.path.join(tempfile.mkdtemp(prefix="sagetrack-demo-"), "sagemaker.yaml")
    with open(config, "w") as fh:
        fh.write(_SDK_CONFIG)
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "offline-demo", "AWS_SECRET_ACCESS_KEY": "offline-demo",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": config,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    })
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    import boto3

    boto3.client("s3", region_name=REGION).create_bucket(Bucket=bucket)
    return server


def quiet_logs() -> None:
    """Keep the SDK's, botocore's and the embedded server's INFO chatter out of the output."""
    import logging

    for name in ("botocore", "boto3", "werkzeug", "sagemaker.config", "sagemaker.image_uris",
                 "sagemaker.telemetry"):
        logging.getLogger(name).setLevel(logging.WARNING)
