"""Async in PYNQ's convention, shared by the backends and Session: coroutines do the work, blocking calls run them
to their end.

    run_blocking(coro)    run a coroutine from blocking code: on this thread's own event loop, or on a helper
                          thread's loop when a loop already runs in this thread (a Jupyter cell)
    await acquire(lock)   take a threading.Lock from a coroutine without blocking the event loop

Torch- and onnx-free: this runs on the board.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Optional


async def acquire(lock: threading.Lock) -> None:
    """Take a threading.Lock from a coroutine without blocking the event loop (other coroutines of the loop may
    be what holds it); cancellation-safe, as nothing is taken until acquire() succeeds."""
    delay = 1e-4
    while not lock.acquire(blocking=False):
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5e-3)


_THREAD_LOOPS = threading.local()
_HELPER: Optional[concurrent.futures.ThreadPoolExecutor] = None
_HELPER_LOCK = threading.Lock()


def _run_on_own_loop(coro):
    loop = getattr(_THREAD_LOOPS, "loop", None)
    if loop is None or loop.is_closed():
        loop = _THREAD_LOOPS.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def run_blocking(coro):
    """Run coroutine `coro` to its end from blocking code, as PYNQ's blocking calls do with their `_async`
    coroutines: on this thread's own event loop, or, when a loop is already running in this thread (a Jupyter
    cell), on a helper thread's loop while this thread waits (the running loop cannot be re-entered)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_own_loop(coro)
    global _HELPER
    with _HELPER_LOCK:
        if _HELPER is None:
            _HELPER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="sps-blocking")
    return _HELPER.submit(_run_on_own_loop, coro).result()
