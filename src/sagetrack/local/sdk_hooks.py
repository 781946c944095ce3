"""The three SageMaker SDK methods a :class:`~sagetrack.local.LocalProcessSession` adjusts.

Each wrapper calls the SDK's own method unchanged for every other session:

* ``_TrainingJob._add_spot_checkpoint_args`` refuses ``checkpoint_s3_uri`` and
  ``checkpoint_local_path`` whenever ``session.local_mode`` is true, because Docker local
  mode cannot sync checkpoints. Local processes can, so the check runs as for SageMaker.
* ``EstimatorBase._prepare_for_training`` builds the default ``output_path`` from the
  default bucket. An offline session has a folder instead: ``file://<local bucket>/``.
  A TensorFlow ``model_dir`` left to the SDK under a ``file://`` output path becomes
  ``file://.../<job>/model``, the counterpart of ``s3://.../<job>/model`` (the SDK's own
  join would drop the ``//``).
* ``EstimatorBase._stage_user_code_in_s3`` packs the code with the SDK's
  ``tar_and_upload_dir`` and uploads it. With an offline session (or a ``file://``
  ``code_location``) the same tarball is written to
  ``<local bucket>/<job>/source/sourcedir.tar.gz`` and the job gets its ``file://`` URI.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from sagetrack.local.storage import join_uri, local_path_from_file_uri

__all__ = ["install"]

_MARK = "_sagetrack_local"
_STAGING_BUCKET = "sagetrack-local"  # stands in for a bucket name while the SDK packs


def install() -> None:
    """Wrap the three SDK methods (once per process)."""
    from sagemaker.estimator import EstimatorBase, _TrainingJob

    _wrap_classmethod(_TrainingJob, "_add_spot_checkpoint_args", _checkpoint_args)
    _wrap_method(EstimatorBase, "_prepare_for_training", _prepare_for_training)
    _wrap_method(EstimatorBase, "_stage_user_code_in_s3", _stage_user_code)


def _local_session(estimator: Any) -> Any:
    """The estimator's session when it is a ``LocalProcessSession``, else ``None`` (known
    by the class's marker: this module is imported by the session's own module)."""
    session = getattr(estimator, "sagemaker_session", None)
    return session if getattr(type(session), "local_process_session", False) else None


# ---------------------------------------------------------------------------- the wrappers
def _checkpoint_args(original: Callable[..., Any], cls: Any, local_mode: bool,
                     estimator: Any, train_args: dict[str, Any]) -> Any:
    if _local_session(estimator) is not None:
        local_mode = False
    return original(cls, local_mode, estimator, train_args)


def _prepare_for_training(original: Callable[..., Any], estimator: Any,
                          job_name: str | None = None) -> Any:
    session = _local_session(estimator)
    if session is not None and session.local_bucket and estimator.output_path is None:
        estimator.output_path = join_uri(_file_uri(session.local_bucket),
                                         session.default_bucket_prefix or "") + "/"
    result = original(estimator, job_name=job_name)
    output = estimator.output_path
    if (session is not None and getattr(estimator, "model_dir", False) is None
            and isinstance(output, str) and output.startswith("file://")):
        estimator.model_dir = join_uri(output, estimator._current_job_name, "model")
    return result


def _stage_user_code(original: Callable[..., Any], estimator: Any) -> Any:
    session = _local_session(estimator)
    location = estimator.code_location
    if session is None or (location is None and not session.local_bucket) or (
            location is not None and not str(location).startswith("file://")):
        return original(estimator)
    from sagemaker import fw_utils

    if location is not None:
        root, prefix = local_path_from_file_uri(str(location)), ""
    else:
        root, prefix = session.local_bucket, session.default_bucket_prefix or ""
    key_prefix = join_uri(prefix, estimator._current_job_name, "source").lstrip("/")
    uploaded = fw_utils.tar_and_upload_dir(
        session=session.boto_session, bucket=_STAGING_BUCKET, s3_key_prefix=key_prefix,
        script=estimator.entry_point, directory=estimator.source_dir,
        dependencies=estimator.dependencies, kms_key=None,
        s3_resource=_FolderResource(root), settings=session.settings)
    staged = f"s3://{_STAGING_BUCKET}/"
    if uploaded.s3_prefix.startswith(staged):  # not for an s3:// source_dir, used as is
        path = os.path.join(root, uploaded.s3_prefix[len(staged):])
        uploaded = fw_utils.UploadedCode(s3_prefix=_file_uri(path),
                                         script_name=uploaded.script_name)
    return uploaded


# ---------------------------------------------------------------------------- helpers
def _file_uri(path: str) -> str:
    return "file://" + os.path.abspath(path)


class _FolderResource:
    """The one call ``tar_and_upload_dir`` makes on its S3 resource, into a folder."""

    def __init__(self, root: str) -> None:
        self.root = root

    def Object(self, bucket: str, key: str) -> _FolderObject:  # boto3's name
        return _FolderObject(os.path.join(self.root, key))


class _FolderObject:
    def __init__(self, path: str) -> None:
        self.path = path

    def upload_file(self, filename: str, ExtraArgs: Any = None, **_: Any) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sourcedir-")
        os.close(fd)
        try:
            shutil.copyfile(filename, tmp)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _wrap_method(cls: Any, name: str, hook: Callable[..., Any]) -> None:
    original = cls.__dict__.get(name)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return hook(original, self, *args, **kwargs)

    setattr(wrapper, _MARK, True)
    setattr(cls, name, wrapper)


def _wrap_classmethod(cls: Any, name: str, hook: Callable[..., Any]) -> None:
    current = cls.__dict__.get(name)
    original = getattr(current, "__func__", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def wrapper(klass: Any, *args: Any, **kwargs: Any) -> Any:
        return hook(original, klass, *args, **kwargs)

    setattr(wrapper, _MARK, True)
    setattr(cls, name, classmethod(wrapper))
