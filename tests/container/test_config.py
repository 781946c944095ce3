"""Exactly one metrics writer per job, whatever the topology."""

from __future__ import annotations

import json

import pytest

from sagetrack.container.config import JobConfig, encode_metric_regexes, is_chief


def env(hosts: int, current: int, **extra: str) -> dict[str, str]:
    names = [f"algo-{i + 1}" for i in range(hosts)]
    return {"SM_HOSTS": json.dumps(names), "SM_CURRENT_HOST": names[current], **extra}


@pytest.mark.parametrize("hosts", [1, 2, 4])
def test_one_chief_among_simulated_hosts(hosts):
    assert [is_chief(env(hosts, i)) for i in range(hosts)] == [True] + [False] * (hosts - 1)


def test_mpi_ranks_share_the_master_host_and_only_rank_0_writes():
    # under MPI every rank inherits the master's SM_CURRENT_HOST; the rank decides
    layout = [env(2, 0, OMPI_COMM_WORLD_RANK=str(rank)) for rank in range(8)]
    assert [is_chief(e) for e in layout] == [True] + [False] * 7
    assert not is_chief(env(2, 0, PMI_RANK="3"))


@pytest.mark.parametrize(("task", "cluster", "chief"), [
    ({"type": "worker", "index": 0}, {"worker": ["a:1", "b:1"]}, True),
    ({"type": "worker", "index": 1}, {"worker": ["a:1", "b:1"]}, False),
    ({"type": "worker", "index": 0}, {"chief": ["c:1"], "worker": ["a:1"]}, False),
    ({"type": "chief", "index": 0}, {"chief": ["c:1"], "worker": ["a:1"]}, True),
    ({"type": "master", "index": 0}, {"master": ["m:1"], "ps": ["p:1"]}, True),
    ({"type": "ps", "index": 0}, {"master": ["m:1"], "ps": ["p:1"]}, False),
    ({"type": "evaluator", "index": 0}, {"worker": ["a:1"]}, False),
])
def test_tf_config_roles(task, cluster, chief):
    tf_config = json.dumps({"cluster": cluster, "task": task})
    assert is_chief({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-1",
                     "TF_CONFIG": tf_config}) is chief


def test_config_from_env_and_long_metric_lists_are_chunked():
    pairs = [(f"metric_{i}", "x" * 40 + f"([0-9.]+){i}") for i in range(30)]
    encoded = encode_metric_regexes(pairs)
    assert len(encoded) > 1 and all(len(v) <= 512 for v in encoded.values())
    config = JobConfig.from_env({**env(4, 2), "SAGETRACK": "1", "SAGETRACK_URI": "s3://b/p",
                                 "TRAINING_JOB_NAME": "job-7", "SAGETRACK_TRACK_BATCHES": "25",
                                 **encoded})
    assert config is not None
    assert (config.run_id, config.host, config.chief, config.track_batches) == (
        "job-7", "algo-3", False, 25)
    assert config.metric_regexes == pairs
    assert JobConfig.from_env({"SAGETRACK_URI": "s3://b/p"}) is None  # switch off
