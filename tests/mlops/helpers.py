"""Shared helpers for the mlops tests: running code on other threads with their own DB connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def run_in_threads(targets: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Run each callable on its own thread (own DB connection), all released at once.

    Returns results (or raised exceptions) in order. Connections are closed on the
    thread that opened them so the test database can be flushed and dropped.
    """
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)

    def run(index: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[index] = target()
        except BaseException as error:  # reported to the test, not swallowed
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread did not finish"
    return results
