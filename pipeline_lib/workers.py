"""Stopping a process pool at once, for stages that hand whole videos to worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

__all__ = ["stop_now"]


def stop_now(pool: ProcessPoolExecutor) -> None:
    """Cancel queued jobs and terminate the running workers (on Ctrl-C, SIGTERM or a failed job).

    Leaving the pool's `with` block would otherwise run every queued video first; what a terminated worker
    left half-written is a hidden partial file, pruned by the next run.
    """
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in multiprocessing.active_children():
        worker.terminate()
