"""The one narrow interface every backend implements (in the manner of tinygrad's ops_<name>.py).

A backend owns one arena (the DDR buffer of the board, a bytearray in simulation). `Session` drives it:

    backend.load(program)            check the hardware matches, allocate the arena, copy the image
    backend.write(offset, data)      copy input bytes into the arena
    backend.run()                    run the whole layer program once (one START on hardware); returns what
                                     the host learnt on the way (e.g. the board's CTRL polls), no device reads
    await backend.run_async()        the same as a coroutine (the board awaits its interrupt; others run run()
                                     on a worker thread so the event loop goes on)
    backend.read(offset, nbytes)     copy output bytes out of the arena
    backend.stats()                  counters of the last run
    backend.close()

What a backend does not support raises `BackendError`; it never silently does something else.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import abc
import asyncio
from typing import Optional

import numpy as np

from ..errors import BackendError, HardwareMismatchError
from ..hw.config import HwConfig
from ..program import Program
from .stats import Stats


def arena_bytes(data: np.ndarray) -> np.ndarray:
    """`data` of any dtype as a flat uint8 view: what a backend copies into its arena."""
    return np.ascontiguousarray(data).reshape(-1).view(np.uint8)


def check_arena_range(access: str, offset: int, nbytes: int, arena_size: int) -> None:
    """Refuse a `access` ("read" or "write") of `nbytes` at `offset` that does not lie inside the arena."""
    if offset < 0 or nbytes < 0 or offset + nbytes > arena_size:
        raise BackendError(f"{access} of {nbytes} bytes at offset {offset} lies outside the arena of "
                           f"{arena_size} bytes")


class Backend(abc.ABC):
    name = "base"
    virtual = False           # True when the "hardware" is a model (the virtual board): counters are modelled
    remote = False            # True when the device is reached over the network (PYNQ's remote protocol)

    def __init__(self, hw: Optional[HwConfig] = None):
        self.hw = hw              # the hardware this backend offers; None = whatever the program was packed for
        self.program: Optional[Program] = None

    def check_hardware(self, program: Program, where: str = "") -> None:
        """Refuse a program packed for different hardware, naming both configurations."""
        if self.hw is None:
            return
        if not self.hw.same_hardware(program.hw):
            raise HardwareMismatchError(
                f"{where or 'model'} was packed for {program.hw.describe()}, but the {self.name} backend offers "
                f"{self.hw.describe()}; re-pack with `sps-pynq pack --hw {self.hw.name}` or load the matching "
                f"overlay")

    @abc.abstractmethod
    def load(self, program: Program) -> None:
        """Check the program's hardware, allocate the arena and copy the program image into it."""

    @abc.abstractmethod
    def write(self, offset: int, data: np.ndarray) -> None:
        """Copy `data` (any dtype, as raw bytes) into the arena at byte `offset`."""

    @abc.abstractmethod
    def read(self, offset: int, nbytes: int) -> np.ndarray:
        """Copy `nbytes` out of the arena at byte `offset`, as int8."""

    @abc.abstractmethod
    def run(self) -> dict:
        """Run the whole program once; return facts of the run the host has without asking the device
        (may be empty)."""

    async def run_async(self) -> dict:
        """run() as a coroutine; this default runs run() on a worker thread, so the event loop is not blocked."""
        return await asyncio.get_running_loop().run_in_executor(None, self.run)

    @abc.abstractmethod
    def stats(self) -> Stats:
        """Counters of the last run (reads the device where the counters live there)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
