"""The CLI's scanning workers, forked from it: every task's result in order, a task's error raised
as it is, a worker that dies an error instead of a hang."""

from __future__ import annotations

import os
import threading

import pytest

from dblogpack import workerpool
from dblogpack.errors import InternalError, SourceError


def _square_and_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def _fails_at_three(n: int) -> int:
    if n == 3:
        raise SourceError("cannot open piece 3")
    return n


def _dies_at_three(n: int) -> int:
    if n == 3:
        os._exit(9)
    return n


def test_results_come_in_task_order_from_worker_processes() -> None:
    pool = workerpool.ForkPool(2)
    try:
        results = list(pool.map(_square_and_pid, range(40)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    assert [square for square, _ in results] == [n * n for n in range(40)]
    assert os.getpid() not in {pid for _, pid in results}


@pytest.mark.parametrize("tasks", [0, 1])
def test_fewer_tasks_than_workers(tasks: int) -> None:
    pool = workerpool.ForkPool(2)
    try:
        assert [square for square, _ in pool.map(_square_and_pid, range(tasks))] == [0] * tasks
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_tasks_error_is_raised_in_the_caller_after_the_results_before_it() -> None:
    pool = workerpool.ForkPool(2)
    seen: list[int] = []
    try:
        with pytest.raises(SourceError, match="cannot open piece 3"):
            for result in pool.map(_fails_at_three, range(10)):
                seen.append(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    assert seen == [0, 1, 2]


def test_a_worker_that_dies_fails_the_map_instead_of_hanging() -> None:
    pool = workerpool.ForkPool(2)
    try:
        with pytest.raises(InternalError, match="worker process died"):
            list(pool.map(_dies_at_three, range(10)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_single_threaded_caller_forks_its_workers_a_threaded_one_does_not() -> None:
    assert isinstance(workerpool.open_pool(2), workerpool.ForkPool)
    idle = threading.Event()
    other_thread = threading.Thread(target=idle.wait)
    other_thread.start()
    try:
        pool = workerpool.open_pool(2)
        try:
            assert not isinstance(pool, workerpool.ForkPool)
            assert list(pool.map(abs, [-1, -2])) == [1, 2]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        idle.set()
        other_thread.join()
