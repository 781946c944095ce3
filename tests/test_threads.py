"""map_io: reading from a local disk stays on the calling thread (threads would only share
the interpreter); reading that waits (S3, a network mount) goes to threads; order kept."""

from __future__ import annotations

import threading
import time

import pytest

from sagetrack._threads import PROBE, map_io


def test_computing_work_is_done_in_turn_on_the_calling_thread():
    threads: list[int] = []

    def compute(x: int) -> int:
        threads.append(threading.get_ident())
        return x + sum(range(100_000)) * 0  # about 2 ms of CPU: a parse, not a wait

    assert map_io(compute, range(40), workers=4) == list(range(40))
    assert set(threads) == {threading.get_ident()}


def test_waiting_work_goes_to_threads_after_the_first_few():
    threads: list[int] = []

    def wait(x: int) -> int:
        threads.append(threading.get_ident())
        time.sleep(0.005)  # a read from a network mount
        return x

    assert map_io(wait, range(40), workers=4) == list(range(40))
    assert set(threads[:PROBE]) == {threading.get_ident()}
    assert threading.get_ident() not in threads[PROBE:]


def test_known_waits_start_on_threads_and_errors_reach_the_caller():
    threads: list[int] = []

    def read(x: int) -> int:
        threads.append(threading.get_ident())
        if x == 7:
            raise OSError("unreadable")
        return x

    assert map_io(read, range(5), workers=4, waits=True) == list(range(5))
    assert threading.get_ident() not in threads
    with pytest.raises(OSError, match="unreadable"):
        map_io(read, range(20), workers=4)
    assert map_io(read, [], workers=4) == []
