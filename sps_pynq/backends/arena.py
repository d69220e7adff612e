"""What the `sim` and `rtl` backends share: an arena in host memory (a numpy byte array) standing in for the
board's DDR buffer, with the same bounds checks on every write and read.

Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import BackendError
from ..program import STATS_RECORD_BYTES, Program
from .base import Backend, arena_bytes, check_arena_range


class HostArenaBackend(Backend):
    """A Backend whose arena is `self.arena` (uint8, one per loaded program). Subclasses implement run()."""

    arena: Optional[np.ndarray] = None

    def load(self, program: Program) -> None:
        """Check the hardware, allocate a zeroed arena and copy the program image into it."""
        self.check_hardware(program)
        if len(program.image) > program.arena_size:
            raise BackendError(f"program image of {len(program.image)} bytes is larger than its arena of "
                               f"{program.arena_size} bytes; re-pack the model")
        self.program = program
        self.arena = np.zeros(program.arena_size, dtype=np.uint8)
        self.arena[:len(program.image)] = np.frombuffer(program.image, dtype=np.uint8)

    def _need(self) -> None:
        if self.arena is None:
            raise BackendError(f"the {self.name} backend has no program loaded (call load first, or use Session)")

    def stats_offset(self) -> Optional[int]:
        """Where the program's per-layer statistics records go, or None when they do not fit in the arena."""
        p = self.program
        end = p.stats_offset + p.num_layers * STATS_RECORD_BYTES
        return p.stats_offset if 0 <= p.stats_offset and end <= p.arena_size else None

    def write(self, offset: int, data: np.ndarray) -> None:
        self._need()
        raw = arena_bytes(data)
        check_arena_range("write", offset, raw.size, self.arena.size)
        self.arena[offset:offset + raw.size] = raw

    def read(self, offset: int, nbytes: int) -> np.ndarray:
        self._need()
        check_arena_range("read", offset, nbytes, self.arena.size)
        return self.arena[offset:offset + nbytes].view(np.int8).copy()

    def close(self) -> None:
        self.arena = None
