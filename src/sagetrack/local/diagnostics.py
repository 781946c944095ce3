"""What to do about a failed local job that would have run in its SageMaker image.

The local job runs the script with this machine's TensorFlow, not the image's. A few
failures come from that difference alone, and their messages do not say so: a Keras 2
script under Keras 3, a ``model_dir`` on S3 that local TensorFlow cannot write to, a
container path written into the script, ``tf.estimator`` after TensorFlow 2.16.
:func:`failure_hint` recognises them in the job's failure text and says what to pass
instead; docs/local-mode.md ("Running older scripts") has the details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sagetrack.local import contract

__all__ = ["failure_hint", "with_hint"]

_KERAS3 = re.compile(
    r"has no attribute 'reset_states'|Invalid filepath extension for saving|"
    r"save_format|has no attribute '(?:fit|evaluate|predict)_generator'|"
    r"keras\.layers\.experimental|optimizers\.legacy|keras\.wrappers|keras\.engine|"
    r"No module named 'keras\.(?:engine|wrappers|layers\.experimental)"
)
_S3 = re.compile(r"File system scheme '(s3|gs)' not implemented")
_CONTAINER_PATH = re.compile(
    r"(?:No such file or directory|Permission denied|Read-only file system)[^\n]*'/opt/ml"
    r"|'/opt/ml[^']*'[^\n]*(?:No such file or directory|Permission denied)"
)
_ESTIMATOR = re.compile(
    r"module 'tensorflow' has no attribute 'estimator'|No module named 'tensorflow_estimator'"
)


def failure_hint(failure: str, request: Mapping[str, Any]) -> str | None:
    """One sentence for a failure caused by running locally instead of in the image."""
    hps = contract.decode_hyperparameters(request.get("HyperParameters") or {})
    environment = request.get("Environment") or {}
    if _S3.search(failure):
        model_dir = hps.get("model_dir")
        if isinstance(model_dir, str) and model_dir.startswith("s3://"):
            return (
                f"the script wrote to --model_dir {model_dir}, the SDK's default: the "
                "TensorFlow image gives TensorFlow an S3 file system, this machine's "
                "TensorFlow has none. Pass model_dir='/opt/ml/model' (saved in "
                "model.tar.gz), model_dir=False, or save to SM_MODEL_DIR."
            )
        return (
            "this machine's TensorFlow has no S3 file system (the TensorFlow images have "
            "one): read inputs from the channel folders (SM_CHANNEL_<NAME>) and write to "
            "SM_MODEL_DIR or SM_OUTPUT_DATA_DIR."
        )
    legacy = str(environment.get("TF_USE_LEGACY_KERAS", "")).lower() in ("1", "true")
    if _KERAS3.search(failure) and not legacy:
        return (
            "this looks like a Keras 2 script (as in the TensorFlow <= 2.15 images) run "
            "with Keras 3: pip install tf-keras and pass environment={'TF_USE_LEGACY_KERAS': "
            "'1'} to the estimator to run it with Keras 2."
        )
    if _CONTAINER_PATH.search(failure):
        return (
            "the script uses a container path (/opt/ml/...), which exists only in the "
            "container: read the folders from SM_MODEL_DIR, SM_CHANNEL_<NAME> and "
            "SM_OUTPUT_DATA_DIR, or pass the path as a hyperparameter or "
            "checkpoint_local_path (container paths there point into the host's folders)."
        )
    if _ESTIMATOR.search(failure):
        return (
            "tf.estimator was removed in TensorFlow 2.16, so this script runs only with "
            "TensorFlow <= 2.15 (install one locally, or run the job on SageMaker)."
        )
    return None


def with_hint(failure: str, hint: str | None, limit: int) -> str:
    """``failure`` with ``hint`` appended, within ``limit`` characters (the hint is kept)."""
    if hint is None:
        return failure[:limit]
    tail = f"\nsagetrack.local: {hint}"
    return failure[: max(0, limit - len(tail))] + tail
