"""The core's interrupt, awaitable from any thread and any event loop.

pynq delivers an interrupt on one event loop: creating a `pynq.Interrupt` makes pynq register the UIO device's
file descriptor with `asyncio.get_event_loop()` of the creating thread (pynq.uio.UioController), and
`Interrupt.wait()` only returns when that loop runs. A blocking call that waits on a new loop
(`asyncio.run`), or on a loop that is blocked (a Jupyter cell waiting inside the kernel's loop), never sees it.
So the interrupt lives on a loop of its own: one daemon thread ("sps-irq") runs an event loop forever, the
`pynq.Interrupt` is created there, and `ThreadInterrupt.wait()` awaits its `wait()` on that loop from whichever
loop the caller runs (`asyncio.run_coroutine_threadsafe`). Cancelling the caller's wait cancels the wait there.

Torch- and onnx-free; pynq is not imported here (the factory given to `thread_interrupt` does that).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Callable, Optional


class _LoopThread:
    """A daemon thread running one event loop forever, started on first use."""

    def __init__(self, name: str = "sps-irq"):
        self.name = name
        self._lock = threading.Lock()
        self.loop: Optional[asyncio.AbstractEventLoop] = None

    def start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve():
                    asyncio.set_event_loop(loop)     # what pynq's UioController will find with get_event_loop()
                    loop.call_soon(ready.set)
                    loop.run_forever()
                threading.Thread(target=serve, name=self.name, daemon=True).start()
                ready.wait()
                self.loop = loop
            return self.loop

    def call(self, fn: Callable, *args):
        """fn(*args) run on the loop's thread (inside the loop: get_event_loop() there is this loop)."""
        loop = self.start()

        async def job():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(job(), loop).result()


_IRQ_THREAD = _LoopThread()


class ThreadInterrupt:
    """`irq` (a pynq.Interrupt or anything with a coroutine wait()) bound to `loop`, awaitable from any loop."""

    def __init__(self, irq, loop: asyncio.AbstractEventLoop):
        self.irq = irq
        self.loop = loop

    async def wait(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            await self.irq.wait()
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.irq.wait(), self.loop))

    def __repr__(self):
        return f"ThreadInterrupt({self.irq!r})"


def thread_interrupt(factory: Callable[[], object]) -> ThreadInterrupt:
    """Create the interrupt with `factory()` (e.g. `lambda: pynq.Interrupt(pin)`) on the interrupt thread, so that
    pynq binds it to that thread's loop. Exceptions of the factory propagate."""
    irq = _IRQ_THREAD.call(factory)
    return ThreadInterrupt(irq, _IRQ_THREAD.loop)
