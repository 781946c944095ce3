"""A parameter-server task, as the SageMaker TensorFlow container starts one on every host.

Started as ``python <this file>`` by the job's interpreter with the ps task's ``TF_CONFIG``
in the environment; it serves until the supervisor kills its process group. Like the
toolkit shim, it runs by path and imports nothing from sagetrack.
"""

from __future__ import annotations

import json
import os
import sys

__all__ = ["main"]


def main() -> None:
    """Start the ``tf.distribute.Server`` that ``TF_CONFIG`` describes and serve forever."""
    _restore_sys_path()
    import tensorflow as tf

    cfg = json.loads(os.environ["TF_CONFIG"])
    server = tf.distribute.Server(
        tf.train.ClusterSpec(cfg["cluster"]),
        job_name="ps",
        task_index=cfg["task"]["index"],
        protocol="grpc",
        start=True,
    )
    server.join()


def _restore_sys_path() -> None:
    """Put the working directory first on ``sys.path`` instead of this file's folder."""
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and sys.path[0] and os.path.realpath(sys.path[0]) == here:
        sys.path[0] = ""


if __name__ == "__main__":
    main()
