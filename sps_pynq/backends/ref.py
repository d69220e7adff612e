"""The `ref` backend: the numpy reference (sps_pynq.reference) running the program on an arena in host memory.

The arithmetic spec executed as plainly as possible, slow; the other backends are tested against it. It checks
nothing the hardware checks (buffer sizes, alignment): it answers what the layers compute.
Torch- and onnx-free: this module runs on the board.
"""
from __future__ import annotations

import time

from .. import reference
from .arena import HostArenaBackend
from .stats import Stats, program_layers, program_stats


class RefBackend(HostArenaBackend):
    name = "ref"

    def load(self, program) -> None:
        super().load(program)
        self._seconds = 0.0

    def run(self) -> dict:
        self._need()
        t0 = time.perf_counter()
        reference.run_program(self.arena, self.program.descriptors(), self.program.hw)
        self._seconds = time.perf_counter() - t0
        return {}

    def stats(self) -> Stats:
        self._need()
        return program_stats(self.name, program_layers(self.program), seconds=self._seconds,
                             note="seconds are wall time of the numpy reference on this host")
